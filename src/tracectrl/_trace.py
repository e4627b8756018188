"""The W3C trace context in force in the current thread or task.

Without OpenTelemetry the trace lives in the ``tracectrl_trace_context``
ContextVar below.  Every read and write of the current trace goes through
:func:`current_trace` and :func:`attach_trace`/:func:`detach_trace`, so the
OpenTelemetry bridge has one seam to hook: when ``opentelemetry-api`` is
importable, the three functions read and write OpenTelemetry's current span
instead (see :mod:`tracectrl._otel_bridge`).

A trace tracectrl *starts* (no ``traceparent`` came in) is the exception: it
always lives in the ContextVar, via :func:`attach_started_trace`.  Made
OpenTelemetry's current span, its random parent-id would become the parent of
every span started below it, a parent that no service ever exports.  With
OpenTelemetry, a valid current span wins over it.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token
from typing import NamedTuple, Optional, Protocol

from tracectrl._tokens import reset


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
    bridge = _bridge
    if bridge is None:
        return _trace_context.get()
    trace = bridge.current_trace()
    return _trace_context.get() if trace is None else trace


def attach_started_trace(trace: TraceContext) -> Token[Optional[TraceContext]]:
    """Make a trace tracectrl started current, outside OpenTelemetry's context; see above."""
    return _trace_context.set(trace)


def is_started(trace: TraceContext) -> bool:
    """Say whether ``trace``, returned by :func:`current_trace`, is one tracectrl started."""
    return _bridge is not None and trace is _trace_context.get()


def clear_trace() -> None:
    """Make no trace current, without a token: the next outgoing call starts one."""
    _trace_context.set(None)
    if _bridge is not None:
        _bridge.attach_trace(None)


def attach_trace(trace: TraceContext | None) -> Token[Optional[TraceContext]]:
    """Make ``trace`` current; return the token that :func:`detach_trace` takes."""
    bridge = _bridge
    if bridge is None:
        return _trace_context.set(trace)
    return bridge.attach_trace(trace)


def detach_trace(token: Token[Optional[TraceContext]]) -> None:
    """Undo :func:`attach_trace` with its token, safely even from another context.

    Every token is a :class:`contextvars.Token`, of tracectrl's variable or of
    OpenTelemetry's, so one reset serves both (OpenTelemetry's own ``detach``
    logs an error and restores nothing when the token is from elsewhere).
    """
    reset(token.var, token)


class _Bridge(Protocol):
    """Where the current trace lives instead of the ContextVar: OpenTelemetry's context."""

    def current_trace(self) -> TraceContext | None: ...

    def attach_trace(self, trace: TraceContext | None) -> Token[Optional[TraceContext]]: ...


class _BridgeLookup:
    """Stands in for the bridge until the first call finds out whether OpenTelemetry imports.

    Looking it up lazily keeps ``import tracectrl`` free of OpenTelemetry's
    import time; no trace exists before the first call, so none is stranded.
    """

    __slots__ = ()

    def current_trace(self) -> TraceContext | None:
        _look_up_bridge()
        return current_trace()

    def attach_trace(self, trace: TraceContext | None) -> Token[Optional[TraceContext]]:
        _look_up_bridge()
        return attach_trace(trace)


def _look_up_bridge() -> None:
    global _bridge  # noqa: PLW0603 - replaced once, by the first call
    try:
        from tracectrl._otel_bridge import BRIDGE
    except ImportError:
        _bridge = None  # opentelemetry-api is not installed
    except Exception:
        # An installation that fails otherwise must not break the host program:
        # the trace then lives in the ContextVar, unseen by OpenTelemetry.
        logging.getLogger("tracectrl").warning(
            "OpenTelemetry is installed but could not be used; traces stay in tracectrl only",
            exc_info=True,
        )
        _bridge = None
    else:
        _bridge = BRIDGE


_bridge: Optional[_Bridge] = _BridgeLookup()
