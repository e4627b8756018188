"""Ray: tasks and actor methods that run under the caller's session and trace.

:func:`remote` makes a Ray task of a function; each ``.remote(...)`` call
sends the caller's session id and trace along, as the same picklable snapshot
that :func:`tracectrl.submit` sends to a process pool, and re-establishes them
on the worker for that call alone::

    from tracectrl.integrations.ray import remote

    @remote
    def search(query: str) -> list[str]: ...

    with session_scope("user-42"):
        hits = ray.get(search.remote("Lisbon hotels"))

For an actor, decorate the method with :func:`actor_method` and call it with
:func:`call`: ``ray.get(call(agent.act, "plan"))``.  Ray's workers must be
able to import ``tracectrl``.  Needs ``pip install ".[ray]"`` from a tracectrl checkout.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Callable, Generic, TypeVar, overload

try:
    import ray
except ImportError as error:
    raise ImportError(
        "tracectrl.integrations.ray needs Ray: "
        'pip install ".[ray]" from the root of a tracectrl checkout'
    ) from error

from typing_extensions import Concatenate, ParamSpec

from tracectrl._snapshot import ContextSnapshot, applied, capture, run_with_snapshot

if TYPE_CHECKING:
    from ray import ObjectRef

__all__ = ["TracedRemoteFunction", "actor_method", "call", "remote"]

_P = ParamSpec("_P")
_T = TypeVar("_T")
_Self = TypeVar("_Self")


class TracedRemoteFunction(Generic[_P, _T]):
    """A Ray task whose every call runs under the caller's session and trace."""

    __slots__ = ("_function",)

    def __init__(self, function: Any) -> None:
        self._function = function

    def remote(self, *args: _P.args, **kwargs: _P.kwargs) -> ObjectRef[_T]:
        """Submit the task, as Ray's ``.remote`` does, with the session and trace in force here.

        They are taken now, in the calling thread, and are in force on the
        worker for this call only: what the task sets never reaches the next
        task on that worker.  With no session here the task runs with none.
        """
        ref: ObjectRef[_T] = self._function.remote(capture(), *args, **kwargs)
        return ref

    def options(self, **options: Any) -> TracedRemoteFunction[_P, _T]:
        """Return this task with Ray's call options (``num_cpus``, ``name``, ...) changed."""
        return TracedRemoteFunction(self._function.options(**options))


@overload
def remote(fn: Callable[_P, _T], /) -> TracedRemoteFunction[_P, _T]: ...
@overload
def remote(
    **options: Any,
) -> Callable[[Callable[_P, _T]], TracedRemoteFunction[_P, _T]]: ...
def remote(
    fn: Callable[_P, _T] | None = None, /, **options: Any
) -> TracedRemoteFunction[_P, _T] | Callable[[Callable[_P, _T]], TracedRemoteFunction[_P, _T]]:
    """Make ``fn`` a Ray task that runs under its caller's session and trace.

    Use it as ``ray.remote`` is used: ``@remote`` or ``@remote(num_cpus=1)``
    (the options go to ``ray.remote``).  An exception raised by ``fn`` is
    raised by ``ray.get``, as for any Ray task.

    Args:
        fn: the function to run as a Ray task; omitted when options are given.
        **options: options for ``ray.remote`` (``num_cpus=1``...).

    Returns:
        A Ray remote function whose ``.remote(...)`` sends the caller's session
        and trace with the task; with options only, the decorator that makes one.
    """

    def decorate(function: Callable[_P, _T]) -> TracedRemoteFunction[_P, _T]:
        def traced(snapshot: ContextSnapshot, *args: Any, **kwargs: Any) -> _T:
            return run_with_snapshot(snapshot, function, *args, **kwargs)

        # Ray names the task after the function; keep the user's name, not "traced".
        traced.__name__ = getattr(function, "__name__", traced.__name__)
        traced.__qualname__ = getattr(function, "__qualname__", traced.__qualname__)
        traced.__module__ = function.__module__
        made = ray.remote(**options)(traced) if options else ray.remote(traced)
        return TracedRemoteFunction(made)

    return decorate if fn is None else decorate(fn)


def actor_method(
    method: Callable[Concatenate[_Self, _P], _T],
) -> Callable[Concatenate[_Self, ContextSnapshot, _P], _T]:
    """Decorate an actor's method so that :func:`call` runs it under the caller's session and trace.

    Inside a ``@ray.remote`` class.  The method then takes the snapshot
    :func:`call` sends before its own arguments; call it through :func:`call`
    only.  What the method sets does not outlive the call, in the actor too.

    Args:
        method: the actor's method, defined inside a ``@ray.remote`` class.

    Returns:
        The method, taking the caller's snapshot before its own arguments; call it
        with :func:`call`.
    """

    def traced(
        self: _Self, snapshot: ContextSnapshot, /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        return run_with_snapshot(snapshot, method, self, *args, **kwargs)

    if inspect.iscoroutinefunction(method):
        # An async actor runs each call as a task of its event loop: the snapshot
        # is applied in that task's own context for the whole await.
        async def traced_async(
            self: _Self, snapshot: ContextSnapshot, /, *args: _P.args, **kwargs: _P.kwargs
        ) -> Any:
            with applied(snapshot):
                return await method(self, *args, **kwargs)

        traced = traced_async  # type: ignore[assignment]

    # Not functools.wraps: Ray reads the signature through __wrapped__ and would
    # then refuse the snapshot argument.
    traced.__name__ = method.__name__
    traced.__qualname__ = method.__qualname__
    traced.__doc__ = method.__doc__
    return traced


def call(method: Any, /, *args: Any, **kwargs: Any) -> ObjectRef[Any]:
    """Call an :func:`actor_method` of an actor (``call(agent.act, "plan")``) under this session.

    Args:
        method: an :func:`actor_method` of an actor handle (``agent.act``).
        *args: positional arguments for the method.
        **kwargs: keyword arguments for the method.

    Returns:
        The ``ObjectRef`` of the call, as ``agent.act.remote(...)`` returns.
    """
    ref: ObjectRef[Any] = method.remote(capture(), *args, **kwargs)
    return ref
