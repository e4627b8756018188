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
from tracectrl._trace import TraceContext, attach_trace, current_trace, detach_trace
from tracectrl.session import _session_id, current_session_id


class ContextSnapshot(NamedTuple):
    """The session id and trace in force when :func:`capture` ran."""

    session_id: Optional[str]
    trace: Optional[TraceContext]


def capture() -> ContextSnapshot:
    """Take the current session id and trace as picklable data."""
    return ContextSnapshot(current_session_id(), current_trace())


class applied:
    """Put a snapshot's session and trace in force for one ``with`` block, then restore both."""

    __slots__ = ("_session_token", "_snapshot", "_trace_token")

    def __init__(self, snapshot: ContextSnapshot) -> None:
        self._snapshot = snapshot

    def __enter__(self) -> ContextSnapshot:
        self._session_token = _session_id.set(self._snapshot.session_id)
        self._trace_token = attach_trace(self._snapshot.trace)
        return self._snapshot

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        detach_trace(self._trace_token)
        reset(_session_id, self._session_token)
