"""The library's context values as plain data, for crossing a process boundary.

Threads get a copy of the whole :class:`contextvars.Context`; a process cannot,
so :func:`capture` takes the session id and the trace as a picklable
:class:`ContextSnapshot` and :class:`applied` re-establishes both, for one unit
of work, on the other side.
"""

from __future__ import annotations

import functools
from contextvars import Context, copy_context
from types import TracebackType
from typing import Callable, NamedTuple, Optional, TypeVar

from typing_extensions import ParamSpec

from tracectrl._sessionvar import session_var
from tracectrl._tokens import reset
from tracectrl._trace import (
    TraceContext,
    attach_started_trace,
    attach_trace,
    current_trace,
    detach_trace,
    is_started,
    otel_context,
    restore_otel_context,
)
from tracectrl.session import current_session_id

_P = ParamSpec("_P")
_T = TypeVar("_T")


class ContextSnapshot(NamedTuple):
    """The session id and trace in force when :func:`capture` ran."""

    session_id: Optional[str]
    trace: Optional[TraceContext]
    #: The trace is one tracectrl started, never made an OpenTelemetry span.
    trace_started: bool = False


def capture() -> ContextSnapshot:
    """Take the current session id and trace as picklable data."""
    trace = current_trace()
    return ContextSnapshot(current_session_id(), trace, trace is not None and is_started(trace))


class applied:
    """Put a snapshot's session and trace in force for one ``with`` block, then restore both."""

    __slots__ = ("_otel", "_session_token", "_snapshot", "_trace_token")

    def __init__(self, snapshot: ContextSnapshot) -> None:
        self._snapshot = snapshot

    def __enter__(self) -> ContextSnapshot:
        # OpenTelemetry's context as it was, restored on exit like the scopes do: work
        # that extracts a trace inside (extract_trace_headers attaches to it) must not
        # leave it behind for whoever runs next in this context (an eager Celery caller).
        self._otel = otel_context()
        self._session_token = session_var.set(self._snapshot.session_id)
        trace = self._snapshot.trace
        if trace is not None and self._snapshot.trace_started:
            self._trace_token = attach_started_trace(trace)
        else:
            self._trace_token = attach_trace(trace)
        return self._snapshot

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        detach_trace(self._trace_token)  # the session's reset warns for both
        reset(session_var, self._session_token)
        if self._otel is not None:
            restore_otel_context(self._otel)


def run_with_snapshot(
    snapshot: ContextSnapshot, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
) -> _T:
    """In the worker process: run ``fn`` in an empty context with ``snapshot`` applied.

    The one way tracectrl runs work on the far side of a process boundary: the
    process-pool helpers and every engine integration send this function, the
    snapshot, ``fn`` and its arguments, and nothing else.
    """
    # Module level, so that every start method can unpickle it by name.  An empty
    # context, not a copy of the worker's: a worker forked by code that did not go
    # through submit() may hold its forker's values, and the task must see only its own.
    return Context().run(_call_applied, snapshot, functools.partial(fn, *args, **kwargs))


def run_in_task_with_snapshot(
    snapshot: ContextSnapshot, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
) -> _T:
    """In an engine's task: run ``fn`` in a copy of the task's context with ``snapshot`` applied.

    For engines that put values of their own in the context of the task they
    run (Dask's current worker, which ``get_worker()`` and ``worker_client()``
    read), and whose workers are started by the engine, never forked by code
    of the caller's: the task keeps the engine's values, and what ``fn`` sets
    stays in the copy.
    """
    return copy_context().run(_call_applied, snapshot, functools.partial(fn, *args, **kwargs))


def _call_applied(snapshot: ContextSnapshot, call: Callable[[], _T]) -> _T:
    """Run ``call()`` with the snapshot's session and trace in force."""
    with applied(snapshot):
        return call()
