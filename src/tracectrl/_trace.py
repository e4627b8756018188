"""The W3C trace context in force in the current thread or task.

Without OpenTelemetry the trace lives in the ``tracectrl_trace_context``
ContextVar below.  Every read and write of the current trace goes through
:func:`current_trace` and :func:`attach_trace`/:func:`detach_trace`, so the
OpenTelemetry bridge has one seam to hook.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import NamedTuple, Optional

from tracectrl._tokens import reset_latest


class TraceContext(NamedTuple):
    """One W3C trace position: plain, immutable and picklable data.

    ``trace_id`` is 32 and ``span_id`` 16 lowercase hex digits, neither all zeros;
    ``trace_flags`` is the 8-bit flags field; ``tracestate`` is a validated
    ``tracestate`` header value ('' for none).  ``is_remote`` is true when the
    span id came from another process (extracted) rather than a local span.
    """

    trace_id: str
    span_id: str
    trace_flags: int
    tracestate: str = ""
    is_remote: bool = True


_trace_context: ContextVar[Optional[TraceContext]] = ContextVar(
    "tracectrl_trace_context", default=None
)


def current_trace() -> TraceContext | None:
    """Return the trace in force in this context, or ``None``."""
    return _trace_context.get()


def attach_trace(trace: TraceContext | None) -> Token[Optional[TraceContext]]:
    """Make ``trace`` current; return the token that :func:`detach_trace` takes."""
    return _trace_context.set(trace)


def detach_trace(token: Token[Optional[TraceContext]]) -> None:
    """Undo :func:`attach_trace` with its token, safely even from another context."""
    reset_latest(_trace_context, [token])
