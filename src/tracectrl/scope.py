"""Scopes: put a session id in force for a block or a call, then restore the previous one.

:class:`session_scope` is the ``with`` / ``async with`` form and :func:`with_session`
the decorator form.  Both take a token on entry and reset with it on every exit
path (return, exception, cancellation, generator close), so a session never
outlives its scope.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Generator
from contextvars import Token
from types import TracebackType
from typing import (
    Any,
    Callable,
    NoReturn,
    Optional,
    TypeVar,
    overload,
)

from typing_extensions import ParamSpec

from tracectrl._sessionvar import fresh_session_id, session_var
from tracectrl._tokens import reset, reset_latest
from tracectrl.session import current_session_id, validate_session_id

__all__ = ["SessionIdFactory", "session_scope", "with_session"]

# Bound once, here.  CPython 3.11+ compiles ``name.method(...)`` on a name bound by
# ``import`` as an attribute load that makes a new bound-method object on every
# call (the method-call fast path is kept for other names), which was a third of
# the cost of entering and exiting a scope.
_set_session = session_var.set
_reset_session = session_var.reset
_get_session = session_var.get

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: A function of the decorated call's arguments that picks its session id
#: (``None``: join the current session or start one).
SessionIdFactory = Callable[..., Optional[str]]


class session_scope:
    """Put a session in force for a ``with`` or ``async with`` block, then restore the previous one.

    ``session_id`` given: that id (validated now, so a bad id raises here, before
    the block).  Otherwise the block *joins* the session in force, or starts one
    like :func:`tracectrl.new_session` when there is none; ``new=True`` always
    starts one.  Entering returns the session id in force inside the block.

    Exit resets the session with the token taken on entry, whether the block
    returns, raises or is cancelled, so a ``set_session_id`` inside the block is
    undone too.  One scope object may be entered nested or by many tasks at once:
    each entry keeps its own token.  Exiting in another task or thread than the one
    that entered does not raise: the previous value is restored in the exiting
    context and a :class:`RuntimeWarning` names the mistake.

    It is not a decorator: ``@with_session(...)`` is the decorator form, and
    using a ``session_scope`` as one raises a :class:`TypeError` that says so.

    Raises:
        TypeError: ``session_id`` is not a ``str`` (a function: used as a decorator).
        ValueError: ``session_id`` is invalid, or given together with ``new=True``.
    """

    __slots__ = ("_session_id", "_tokens")

    def __init__(self, session_id: str | None = None, *, new: bool = False) -> None:
        # The identity check skips re-validating the id the previous scope was built with,
        # which keeps `with session_scope(sid):` in a loop near the cost of a bare set/reset.
        mode: str | object | None = session_id
        if session_id is not _last_checked_id or new:
            mode = _checked_scope_id(session_id, new)
        self._session_id = mode
        # One token per open entry, newest last, touched only by single list
        # operations, each atomic (see reset_latest): threads sharing the object
        # never lose or take each other's token.
        self._tokens: list[Token[Optional[str]]] = []

    def __enter__(self) -> str:
        session_id = self._session_id
        if session_id.__class__ is not str:
            session_id = _resolve_joined(session_id is _NEW)
        self._tokens.append(_set_session(session_id))
        return session_id

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tokens = self._tokens
        try:
            token = tokens[-1]
            _reset_session(token)
        except (ValueError, RuntimeError, IndexError):
            reset_latest(session_var, tokens)  # another task's entry is newest, or none is open
        else:
            tokens.remove(token)  # by identity: other threads may have added theirs since

    # The async methods repeat the sync bodies rather than call them: one call less
    # keeps `async with` within the cost target of a hand-written manager.
    async def __aenter__(self) -> str:
        session_id = self._session_id
        if session_id.__class__ is not str:
            session_id = _resolve_joined(session_id is _NEW)
        self._tokens.append(_set_session(session_id))
        return session_id

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tokens = self._tokens
        try:
            token = tokens[-1]
            _reset_session(token)
        except (ValueError, RuntimeError, IndexError):
            reset_latest(session_var, tokens)
        else:
            tokens.remove(token)

    def __call__(self, func: object, /) -> NoReturn:
        """Refuse to decorate ``func``: :func:`with_session` is the decorator form.

        Raises:
            TypeError: always, naming the decorator to use instead.
        """
        raise TypeError(_NOT_A_DECORATOR.format(scope=repr(self)))

    def __repr__(self) -> str:
        if self._session_id is _NEW:
            return "session_scope(new=True)"
        if self._session_id is None:
            return "session_scope()"
        return f"session_scope({self._session_id!r})"


#: Marks a scope that starts a new session on each entry.
_NEW = object()

#: The id the last ``session_scope`` was validated with (any value here passed validation).
_last_checked_id: object = _NEW


_NOT_A_DECORATOR = (
    "{scope} is a context manager, not a decorator: use @with_session "
    '(or @with_session("id"), @with_session(new=True)) to run every call of a function in a session'
)


def _checked_scope_id(session_id: object, new: bool) -> str | object | None:
    """Validate ``session_scope``'s arguments; return the id, ``None`` (join) or ``_NEW``."""
    global _last_checked_id  # noqa: PLW0603 - a one-entry cache, see session_scope.__init__
    if session_id is None:
        return _NEW if new else None
    if callable(session_id) and not isinstance(session_id, str):
        # `@session_scope` over a function: say which decorator was meant.
        raise TypeError(_NOT_A_DECORATOR.format(scope="session_scope"))
    if new:
        raise ValueError("pass either a session_id or new=True, not both")
    _last_checked_id = session_id = validate_session_id(session_id)
    return session_id


@overload
def with_session(func: Callable[_P, _R], /) -> Callable[_P, _R]: ...


@overload
def with_session(
    session_id: str | None = None, /, *, new: bool = False
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]: ...


@overload
def with_session(
    *, session_id: str | SessionIdFactory | None, new: bool = False
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]: ...


def with_session(
    func_or_id: Callable[..., Any] | str | None = None,
    /,
    *,
    session_id: str | SessionIdFactory | None = None,
    new: bool = False,
) -> Any:
    """Run every call of the decorated function inside a session scope.

    Usable bare (``@with_session``: join the current session or start one) or
    called: ``@with_session("id")`` (always that id),
    ``@with_session(new=True)`` (a new session per call), or
    ``@with_session(session_id=lambda *args, **kwargs: ...)`` (an id picked from
    the call's arguments; returning ``None`` joins or starts one).  A fixed id is
    validated when decorating; an id from a factory is validated at each call.

    Works on functions, coroutine functions, generators and async generators.
    Coroutines hold the session from start to finish.  Generators hold it only
    while their body runs: between items the caller sees its own session, what
    the body sets (a scope it opens, ``set_session_id``) is in force again when
    it resumes, and
    ``close()``/``aclose()`` and exceptions thrown in run the body's cleanup
    under the decorated session.  A generator picks its session when it starts
    (its first ``next()``), not when it is created.  Signatures, ``functools.wraps``
    metadata and ``inspect.iscoroutinefunction`` & co. are kept.

    Raises:
        TypeError: a fixed ``session_id`` is not a ``str``; at call time, a
            factory returned a non-``str``.
        ValueError: a fixed ``session_id`` is invalid or given with ``new=True``.
    """
    if callable(func_or_id) and session_id is None and not new:
        return _decorate(func_or_id, _resolver(None, new=False))
    if func_or_id is not None:
        if session_id is not None:
            raise TypeError("with_session() got the session id twice")
        if not isinstance(func_or_id, str):
            raise TypeError(
                "with_session() takes a str session id positionally; "
                f"pass a callable as session_id=..., got {type(func_or_id).__name__}"
            )
        session_id = func_or_id
    resolve = _resolver(session_id, new=new)
    return functools.partial(_decorate, resolve=resolve)


_Resolver = Callable[[tuple[Any, ...], dict[str, Any]], str]


def _resolver(session_id: str | SessionIdFactory | None, *, new: bool) -> _Resolver:
    """Return the function that picks the session id for one call of the decorated function."""
    if session_id is not None and new:
        raise ValueError("pass either a session_id or new=True, not both")
    if session_id is None:
        return lambda args, kwargs: _resolve_joined(new)
    if isinstance(session_id, str):
        fixed = validate_session_id(session_id)
        return lambda args, kwargs: fixed
    if not callable(session_id):
        raise TypeError(f"session id must be a str or a callable, got {type(session_id).__name__}")
    factory = session_id

    def from_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        picked = factory(*args, **kwargs)
        return _resolve_joined(False) if picked is None else validate_session_id(picked)

    return from_arguments


def _resolve_joined(new: bool) -> str:
    """Return the session to join (the current one unless ``new``) or a fresh one."""
    if not new:
        current = current_session_id()
        if current is not None:
            return current
    return fresh_session_id()


def _decorate(func: Callable[_P, _R], resolve: _Resolver) -> Callable[_P, _R]:
    """Wrap ``func`` so that each call runs under the session ``resolve`` picks."""
    if inspect.isasyncgenfunction(func):
        wrapper: Callable[..., Any] = _async_generator_wrapper(func, resolve)
    elif inspect.iscoroutinefunction(func):
        wrapper = _coroutine_wrapper(func, resolve)
    elif inspect.isgeneratorfunction(func):
        wrapper = _generator_wrapper(func, resolve)
    else:
        wrapper = _function_wrapper(func, resolve)
    return functools.wraps(func)(wrapper)


def _function_wrapper(func: Callable[..., _R], resolve: _Resolver) -> Callable[..., _R]:
    def call_in_session(*args: Any, **kwargs: Any) -> _R:
        token = _set_session(resolve(args, kwargs))
        try:
            return func(*args, **kwargs)
        finally:
            try:
                _reset_session(token)
            except (ValueError, RuntimeError):  # exited elsewhere: the safe, slow path
                reset(session_var, token)

    return call_in_session


def _coroutine_wrapper(func: Callable[..., Any], resolve: _Resolver) -> Callable[..., Any]:
    async def await_in_session(*args: Any, **kwargs: Any) -> Any:
        token = _set_session(resolve(args, kwargs))
        try:
            return await func(*args, **kwargs)
        finally:
            try:
                _reset_session(token)
            except (ValueError, RuntimeError):  # exited elsewhere: the safe, slow path
                reset(session_var, token)

    return await_in_session


def _generator_wrapper(
    func: Callable[..., Generator[Any, Any, Any]], resolve: _Resolver
) -> Callable[..., Generator[Any, Any, Any]]:
    def iterate_in_session(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        return (yield from _step_in_session(func(*args, **kwargs), resolve(args, kwargs)))

    return iterate_in_session


def _step_in_session(
    generator: Generator[Any, Any, Any], session_id: str | None
) -> Generator[Any, Any, Any]:
    """Delegate to ``generator`` like ``yield from``, with the session set only while it runs.

    What the body leaves in force when it yields (a scope it opened, a
    ``set_session_id``) is what it finds again when it resumes.
    """
    resume: Callable[[Any], Any] = generator.send
    value: Any = None
    while True:
        token = _set_session(session_id)
        try:
            item = resume(value)
        except StopIteration as stop:
            return stop.value
        finally:
            session_id = _get_session()
            reset(session_var, token)
        try:
            value = yield item
        except GeneratorExit:
            _run_in_session(session_id, generator.close)
            raise
        except BaseException as exc:
            resume, value = generator.throw, exc
        else:
            resume = generator.send


def _run_in_session(session_id: str | None, step: Callable[[], object]) -> None:
    """Run one step of a generator's body (its cleanup) under ``session_id``."""
    token = _set_session(session_id)
    try:
        step()
    finally:
        reset(session_var, token)


def _async_generator_wrapper(
    func: Callable[..., AsyncGenerator[Any, Any]], resolve: _Resolver
) -> Callable[..., AsyncGenerator[Any, Any]]:
    async def iterate_in_session(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        session_id: str | None = resolve(args, kwargs)
        generator = func(*args, **kwargs)
        resume: Callable[[Any], Any] = generator.asend
        value: Any = None
        while True:
            token = _set_session(session_id)
            try:
                item = await resume(value)
            except StopAsyncIteration:
                return
            finally:
                session_id = _get_session()  # the body's own, for its next step
                reset(session_var, token)
            try:
                value = yield item
            except GeneratorExit:
                token = _set_session(session_id)
                try:
                    await generator.aclose()
                finally:
                    reset(session_var, token)
                raise
            except BaseException as exc:
                resume, value = generator.athrow, exc
            else:
                resume = generator.asend

    return iterate_in_session
