"""The library's context values as plain data, for crossing a process boundary.

Threads get a copy of the whole :class:`contextvars.Context`; a process cannot,
so :func:`capture` takes the session id and the trace as a picklable
:class:`ContextSnapshot` and :class:`applied` re-establishes both, for one unit
of work, on the other side.
"""

from __future__ import annotations

from types import TracebackType
from typing import NamedTuple, Optional

from tracectrl._tokens import reset
from tracectrl._trace import (
    TraceContext,
    attach_started_trace,
    attach_trace,
    current_trace,
    detach_trace,
    is_started,
)
from tracectrl.session import _session_id, current_session_id


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

    __slots__ = ("_session_token", "_snapshot", "_trace_token")

    def __init__(self, snapshot: ContextSnapshot) -> None:
        self._snapshot = snapshot

    def __enter__(self) -> ContextSnapshot:
        self._session_token = _session_id.set(self._snapshot.session_id)
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
        detach_trace(self._trace_token)
        reset(_session_id, self._session_token)
