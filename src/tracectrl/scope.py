"""Scopes: put a session id in force for a block or a call, then restore the previous one.

:class:`session_scope` is the ``with`` / ``async with`` form and :func:`with_session`
the decorator form.  Both take a token on entry and reset with it on every exit
path (return, exception, cancellation, generator close), so a session never
outlives its scope.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import AsyncGenerator, Awaitable, Generator, Mapping
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

from tracectrl import _trace as _trace_module
from tracectrl._sessionvar import fresh_session_id, session_var
from tracectrl._span import AttributeValue
from tracectrl._trace import get_trace_state, reset_trace_state, restore_otel_context
from tracectrl._unit import (
    Entry,
    SpanRequest,
    enter,
    enter_into,
    finish_interrupted_exit,
    leave,
    leave_latest,
    resume,
    suspend,
)
from tracectrl._unit import (
    leave_extras as _leave_extras,
)
from tracectrl.session import current_session_id, validate_session_id

__all__ = ["AttributeValue", "SessionIdFactory", "session_scope", "with_session"]

# Bound once, here.  CPython 3.11+ compiles ``name.method(...)`` on a name bound by
# ``import`` as an attribute load that makes a new bound-method object on every
# call (the method-call fast path is kept for other names), which was a third of
# the cost of entering and exiting a scope.
_reset_session = session_var.reset
_reset_trace = reset_trace_state
_get_trace = get_trace_state
_restore_otel_context = restore_otel_context
_enter = enter
_enter_into = enter_into
_get_asyncgen_hooks = sys.get_asyncgen_hooks
_set_asyncgen_hooks = sys.set_asyncgen_hooks

_P = ParamSpec("_P")
_R = TypeVar("_R")

SessionIdFactory = Callable[..., Optional[str]]
"""A function of the decorated call's arguments that picks its session id.

Returning ``None`` joins the session in force, or starts one.
"""

#: The span attributes ``attributes=`` takes: OpenTelemetry's attribute values.
SpanAttributes = Mapping[str, AttributeValue]


class session_scope:
    """Put a session, and a trace for the unit of work, in force for a block, then restore both.

    ``session_id`` given: that id (validated now, so a bad id raises here, before
    the block).  Otherwise the block *joins* the session in force, or starts one
    like :func:`tracectrl.new_session` when there is none; ``new=True`` always
    starts one.  Entering returns the session id in force inside the block.

    The block is one unit of work, with one trace.  It starts a new trace when
    it starts a session (``new=True``) or changes the session in force (a
    trace belongs to one session); when its session is the one in force, it
    keeps the trace in force, or starts one for the block if there is none.
    ``new_trace=True`` / ``new_trace=False`` override both rules.  The trace's
    ids are made on the first read (a log line, an outgoing call, a span), so
    a block nobody reads a trace in makes none.

    ``span="name"`` starts an OpenTelemetry span (tracer ``tracectrl``, kind
    INTERNAL, ``session.id`` and ``attributes`` set) that is current for the
    block; a raise records the exception and sets ERROR status.  A span of a
    block that starts a new trace is a root, linked to the trace in force
    before.  Without ``opentelemetry-api`` installed, ``span=`` does nothing.

    Exit restores the session, the trace and OpenTelemetry's current span from
    before the entry, whether the block returns, raises or is cancelled, so a
    ``set_session_id`` inside the block is undone too.  One scope object may be
    entered nested or by many tasks at once: each entry keeps its own tokens.
    Exiting in a task or thread that never entered the object does not raise
    and changes nothing there: the exiting context keeps its own session and
    trace, the entering one keeps the scope's until it exits, and a
    :class:`RuntimeWarning` names the mistake.

    It is not a decorator: ``@with_session(...)`` is the decorator form, and
    using a ``session_scope`` as one raises a :class:`TypeError` that says so.

    Args:
        session_id: the session for the block; ``None`` joins the one in force,
            or starts one.
        new: always start a new session for each entry.
        new_trace: ``True`` always starts a new trace, ``False`` keeps the one
            in force; ``None`` follows the rules above.
        span: the name of an OpenTelemetry span for the block, if any.
        attributes: attributes for that span.

    Entering returns the session id in force inside the block.

    Raises:
        TypeError: ``session_id`` or ``span`` is not a ``str`` (a function: used
            as a decorator); ``new_trace`` is not a ``bool``; ``attributes`` is
            not a mapping.
        ValueError: ``session_id`` is invalid, or given together with
            ``new=True``; ``span`` is empty; ``attributes`` without ``span``;
            ``new=True`` with ``new_trace=False``.
    """

    __slots__ = ("_entries", "_new_trace", "_session_id", "_span")

    def __init__(
        self,
        session_id: str | None = None,
        *,
        new: bool = False,
        new_trace: bool | None = None,
        span: str | None = None,
        attributes: SpanAttributes | None = None,
    ) -> None:
        # The identity check skips re-validating the id the previous scope was built with,
        # which keeps `with session_scope(sid):` in a loop near the cost of a bare set/reset.
        # A joining scope (None) needs no check either.
        if (
            (session_id is _last_checked_id or session_id is None)
            and not new
            and new_trace is None
            and span is None
            and attributes is None
        ):
            self._session_id: str | object | None = session_id
            self._new_trace: bool | None = None
            self._span: SpanRequest | None = None
        else:
            self._session_id = _checked_scope_id(session_id, new)
            self._new_trace = _trace_rule(new, new_trace)
            self._span = _span_request(span, attributes)
        # One entry per open entry (session token, trace token, extras), newest
        # last, touched only by single list operations, each atomic (see
        # reset_latest): threads sharing the object never lose or take each
        # other's entry.
        self._entries: list[Entry] = []

    def __enter__(self) -> str:
        session_id = self._session_id
        if session_id.__class__ is not str:  # one call less for new=True: see _resolve_joined
            session_id = fresh_session_id() if session_id is _NEW else _resolve_joined(False)
        return _enter_into(self._entries, session_id, self._new_trace, self._span)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # An interrupt (KeyboardInterrupt, a signal handler's exception) landing
        # anywhere below finishes the exit in the handler; the outer try comes
        # first so that 3.9 and 3.10, which skip their signal check before it,
        # have no instruction outside it.
        try:
            try:
                entries = self._entries
                entry = entries[-1]
                session_token, trace_token, extras, otel, frame, owned = entry
                if _get_trace() is not frame:
                    # Not the trace the entry put in force: perhaps an exit out of
                    # order, which must change nothing; the slow path tells.
                    raise LookupError
                _reset_session(session_token)
            except (ValueError, RuntimeError, LookupError):  # IndexError is a LookupError
                pass  # another task's entry is newest, or none is open: the slow path below
            else:
                # By identity: other threads may have added theirs since.  Only the context
                # that made an entry removes it, so it is always there.
                entries.remove(entry)
                if extras is not None:
                    _leave_extras(extras, exc)
                if otel is not None:
                    bridge = _trace_module._bridge
                    if bridge is not None and bridge.get_context() is not otel:
                        _restore_otel_context(otel)
                # Made in this context with the session token just reset: never refused.
                _reset_trace(trace_token)
                if owned is not None:
                    owned.closed = True
                return
        except BaseException:
            finish_interrupted_exit(self._entries, locals().get("entry"), exc)
            raise
        leave_latest(self._entries, exc)

    # The async methods repeat the sync bodies rather than call them: one call less
    # keeps `async with` within the cost target of a hand-written manager.
    async def __aenter__(self) -> str:
        session_id = self._session_id
        if session_id.__class__ is not str:  # one call less for new=True: see _resolve_joined
            session_id = fresh_session_id() if session_id is _NEW else _resolve_joined(False)
        return _enter_into(self._entries, session_id, self._new_trace, self._span)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # An interrupt (KeyboardInterrupt, a signal handler's exception) landing
        # anywhere below finishes the exit in the handler; the outer try comes
        # first so that 3.9 and 3.10, which skip their signal check before it,
        # have no instruction outside it.
        try:
            try:
                entries = self._entries
                entry = entries[-1]
                session_token, trace_token, extras, otel, frame, owned = entry
                if _get_trace() is not frame:
                    raise LookupError  # see __exit__
                _reset_session(session_token)
            except (ValueError, RuntimeError, LookupError):
                pass
            else:
                entries.remove(entry)
                if extras is not None:
                    _leave_extras(extras, exc)
                if otel is not None:
                    bridge = _trace_module._bridge
                    if bridge is not None and bridge.get_context() is not otel:
                        _restore_otel_context(otel)
                # Made in this context with the session token just reset: never refused.
                _reset_trace(trace_token)
                if owned is not None:
                    owned.closed = True
                return
        except BaseException:
            finish_interrupted_exit(self._entries, locals().get("entry"), exc)
            raise
        leave_latest(self._entries, exc)

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


def _trace_rule(new: bool, new_trace: bool | None) -> bool | None:
    """Return what an entry does with the trace: ``True`` new, ``False`` keep, ``None``: rules."""
    if new_trace is None:
        return True if new else None
    if new_trace.__class__ is not bool:
        raise TypeError(f"new_trace must be a bool or None, got {type(new_trace).__name__}")
    if new and not new_trace:
        raise ValueError("new=True starts a new trace: new_trace=False contradicts it")
    return new_trace


def _span_request(name: object, attributes: SpanAttributes | None) -> SpanRequest | None:
    """Validate ``span=``'s name and ``attributes=``; ``None`` when no span is asked for."""
    if name is None:
        if attributes is not None:
            raise ValueError("attributes= are the span's: pass span= too")
        return None
    if not isinstance(name, str):
        raise TypeError(f"span must be a str naming the span, got {type(name).__name__}")
    if not name:
        raise ValueError("span must not be empty: it names the span")
    if attributes is not None and not isinstance(attributes, Mapping):
        raise TypeError(f"attributes must be a mapping, got {type(attributes).__name__}")
    return SpanRequest(name, attributes)


@overload
def with_session(func: Callable[_P, _R], /) -> Callable[_P, _R]: ...


@overload
def with_session(
    session_id: str | None = None,
    /,
    *,
    new: bool = False,
    new_trace: bool | None = None,
    span: str | bool | None = None,
    attributes: SpanAttributes | None = None,
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]: ...


@overload
def with_session(
    *,
    session_id: str | SessionIdFactory | None,
    new: bool = False,
    new_trace: bool | None = None,
    span: str | bool | None = None,
    attributes: SpanAttributes | None = None,
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]: ...


def with_session(
    func_or_id: Callable[..., Any] | str | None = None,
    /,
    *,
    session_id: str | SessionIdFactory | None = None,
    new: bool = False,
    new_trace: bool | None = None,
    span: str | bool | None = None,
    attributes: SpanAttributes | None = None,
) -> Any:
    """Run every call of the decorated function as a unit of work inside a session scope.

    Usable bare (``@with_session``: join the current session or start one) or
    called: ``@with_session("id")`` (always that id),
    ``@with_session(new=True)`` (a new session per call), or
    ``@with_session(session_id=lambda *args, **kwargs: ...)`` (an id picked from
    the call's arguments; returning ``None`` joins or starts one).  A fixed id is
    validated when decorating; an id from a factory is validated at each call.

    Each call is one unit of work with the trace rules of :class:`session_scope`
    (``new_trace=`` included): a new session or a changed one starts a trace,
    the session in force keeps its trace or starts one for the call.
    ``span="name"``, or ``span=True`` for the function's ``__qualname__``,
    with ``attributes=``, starts an OpenTelemetry span per call as
    :class:`session_scope` does; without ``opentelemetry-api``, nothing.

    Works on functions, coroutine functions, generators and async generators.
    Coroutines hold the session from start to finish.  Generators hold it only
    while their body runs: between items the caller sees its own session,
    trace and span, what the body sets (a scope it opens, ``set_session_id``)
    is in force again when it resumes, and ``close()``/``aclose()`` and
    exceptions thrown in run the body's cleanup under the decorated session.
    A generator picks its session when it starts (its first ``next()``), not
    when it is created; its span covers the body from the first step to its
    close.  Signatures, ``functools.wraps`` metadata and
    ``inspect.iscoroutinefunction`` & co. are kept.

    Args:
        func_or_id: the function, when used bare; or a fixed session id.
        session_id: a fixed session id, or a factory called with each call's
            arguments that returns one (``None``: join or start).
        new: a new session for every call.
        new_trace: ``True`` always starts a new trace per call, ``False`` keeps
            the one in force; ``None`` follows the rules above.
        span: a span name, or ``True`` for the function's ``__qualname__``.
        attributes: attributes for that span.

    Returns:
        Used bare, the decorated function; called with options, the decorator.

    Raises:
        TypeError: a fixed ``session_id`` is not a ``str``; ``span`` is not a
            ``str`` or ``bool``; ``new_trace`` is not a ``bool``; ``attributes``
            is not a mapping; at call time, a factory returned a non-``str``.
        ValueError: a fixed ``session_id`` is invalid or given with ``new=True``;
            ``span`` is empty; ``attributes`` without ``span``; ``new=True`` with
            ``new_trace=False``.
    """
    if (
        callable(func_or_id)
        and session_id is None
        and not new
        and new_trace is None
        and span is None
        and attributes is None
    ):
        return _decorate(func_or_id, _Unit(_resolver(None, new=False), None, None))
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
    rule = _trace_rule(new, new_trace)
    if span is None or span is False:
        return functools.partial(
            _decorate, unit=_Unit(resolve, rule, _span_request(None, attributes))
        )
    if span is True:
        return functools.partial(
            _decorate_with_span, resolve=resolve, rule=rule, attributes=attributes
        )
    return functools.partial(_decorate, unit=_Unit(resolve, rule, _span_request(span, attributes)))


_Resolver = Callable[[tuple[Any, ...], dict[str, Any]], str]


class _Unit:
    """How one call of a decorated function enters its unit of work."""

    __slots__ = ("resolve", "rule", "span")

    def __init__(self, resolve: _Resolver, rule: bool | None, span: SpanRequest | None) -> None:
        self.resolve = resolve
        self.rule = rule
        self.span = span

    def enter(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Entry:
        return _enter(self.resolve(args, kwargs), self.rule, self.span)


def _decorate_with_span(
    func: Callable[_P, _R],
    resolve: _Resolver,
    rule: bool | None,
    attributes: SpanAttributes | None,
) -> Callable[_P, _R]:
    """``span=True``: name the span after the decorated function."""
    return _decorate(func, _Unit(resolve, rule, _span_request(func.__qualname__, attributes)))


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


def _decorate(func: Callable[_P, _R], unit: _Unit) -> Callable[_P, _R]:
    """Wrap ``func`` so that each call runs as the unit of work ``unit`` describes."""
    if inspect.isasyncgenfunction(func):
        wrapper: Callable[..., Any] = _async_generator_wrapper(func, unit)
    elif inspect.iscoroutinefunction(func):
        wrapper = _coroutine_wrapper(func, unit)
    elif inspect.isgeneratorfunction(func):
        wrapper = _generator_wrapper(func, unit)
    else:
        wrapper = _function_wrapper(func, unit)
    return functools.wraps(func)(wrapper)


def _function_wrapper(func: Callable[..., _R], unit: _Unit) -> Callable[..., _R]:
    resolve, rule, span = unit.resolve, unit.rule, unit.span

    def call_in_session(*args: Any, **kwargs: Any) -> _R:
        entry = _enter(resolve(args, kwargs), rule, span)
        try:
            result = func(*args, **kwargs)
        except BaseException as error:
            leave(entry, error)
            raise
        leave(entry, None)
        return result

    return call_in_session


def _coroutine_wrapper(func: Callable[..., Any], unit: _Unit) -> Callable[..., Any]:
    resolve, rule, span = unit.resolve, unit.rule, unit.span

    async def await_in_session(*args: Any, **kwargs: Any) -> Any:
        entry = _enter(resolve(args, kwargs), rule, span)
        try:
            result = await func(*args, **kwargs)
        except BaseException as error:
            leave(entry, error)
            raise
        leave(entry, None)
        return result

    return await_in_session


def _generator_wrapper(
    func: Callable[..., Generator[Any, Any, Any]], unit: _Unit
) -> Callable[..., Generator[Any, Any, Any]]:
    def iterate_in_session(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        # The body is made before the unit is entered: making a generator runs no
        # code of its, and entering may allocate enough (the first entry imports
        # OpenTelemetry) to start a collection that moves this wrapper to an older
        # generation than the body.  The collector finalizes the objects of a
        # garbage cycle in list order, and merges the younger generations behind
        # the older: a body younger by a generation would be closed before its
        # wrapper, its cleanup outside the session.
        generator = func(*args, **kwargs)
        entry = unit.enter(args, kwargs)
        return (yield from _step_in_unit(generator, entry))

    return iterate_in_session


def _step_in_unit(generator: Generator[Any, Any, Any], entry: Entry) -> Generator[Any, Any, Any]:
    """Delegate to ``generator`` like ``yield from``, with its unit in force only while it runs.

    What the body leaves in force when it yields (a scope it opened, a
    ``set_session_id``) is what it finds again when it resumes.  ``entry`` is
    the unit's, entered for the first step.
    """
    resume_body: Callable[[Any], Any] = generator.send
    value: Any = None
    while True:
        try:
            item = resume_body(value)
        except StopIteration as stop:
            leave(entry, None)
            return stop.value
        except BaseException as error:
            leave(entry, error)
            raise
        suspended = suspend(entry)
        try:
            value = yield item
        except GeneratorExit:
            entry = resume(suspended)
            try:
                generator.close()
            except BaseException as error:
                leave(entry, error)
                raise
            leave(entry, None)
            raise
        except BaseException as exc:
            resume_body, value = generator.throw, exc
        else:
            resume_body = generator.send
        entry = resume(suspended)


def _ignore_finalization(generator: AsyncGenerator[Any, Any]) -> None:
    """Leave a decorated async generator's body to its wrapper, which closes it in its session."""


def _first_step_unhooked(generator: AsyncGenerator[Any, Any]) -> Awaitable[Any]:
    """Return the first ``asend(None)`` of the body, made with the event loop's hooks swapped.

    The event loop registers an async generator on its first step and, on
    shutdown or when the garbage collector finds it abandoned, closes it.  Only
    the wrapper may be registered: closed by the loop, it closes the body once,
    under the body's session.  Were the body registered too, the loop would also
    close it on its own, concurrently with the wrapper and outside the session.
    The finalizer given instead does nothing, so that a body collected in the
    same cycle as its wrapper is left for the wrapper's close.
    """
    hooks = _get_asyncgen_hooks()
    _set_asyncgen_hooks(None, _ignore_finalization)
    try:
        return generator.asend(None)
    finally:
        _set_asyncgen_hooks(*hooks)


def _async_generator_wrapper(
    func: Callable[..., AsyncGenerator[Any, Any]], unit: _Unit
) -> Callable[..., AsyncGenerator[Any, Any]]:
    async def iterate_in_session(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        entry = unit.enter(args, kwargs)
        try:
            generator = func(*args, **kwargs)
        except BaseException as error:
            leave(entry, error)
            raise
        resume_body: Callable[[Any], Any] = generator.asend
        value: Any = None
        started: Awaitable[Any] | None = _first_step_unhooked(generator)
        while True:
            try:
                if started is not None:
                    step, started = started, None
                    item = await step
                else:
                    item = await resume_body(value)
            except StopAsyncIteration:
                leave(entry, None)
                return
            except BaseException as error:
                leave(entry, error)
                raise
            suspended = suspend(entry)
            try:
                value = yield item
            except GeneratorExit:
                entry = resume(suspended)
                try:
                    await generator.aclose()
                except BaseException as error:
                    leave(entry, error)
                    raise
                leave(entry, None)
                raise
            except BaseException as exc:
                resume_body, value = generator.athrow, exc
            else:
                resume_body = generator.asend
            entry = resume(suspended)

    return iterate_in_session
