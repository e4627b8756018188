"""The current trace kept in OpenTelemetry's context, used when ``opentelemetry-api`` imports.

:mod:`tracectrl._trace` hands its three functions to :data:`BRIDGE` the first
time a trace is read or written and ``opentelemetry-api`` is importable.  From
then on OpenTelemetry's current span *is* tracectrl's current trace, so a span
started after :func:`tracectrl.context.extract_trace_headers` is a child of the
remote parent, and :func:`tracectrl.context.inject_trace_headers` sends the id
of the local span in force as the parent-id.

A trace tracectrl attaches becomes a ``NonRecordingSpan`` (what
OpenTelemetry's own propagator makes of an incoming ``traceparent``) that keeps
the :class:`TraceContext` it came from.  Reading it back is lossless, so the
``tracestate`` tracectrl validated is sent on exactly as received, never
re-parsed by OpenTelemetry's regular expressions; OpenTelemetry's form of it is
built only if OpenTelemetry asks.
"""

from __future__ import annotations

import functools
from contextvars import ContextVar, Token
from typing import Any, Callable, Optional, cast

from opentelemetry import context as otel_context_module
from opentelemetry.context import Context, attach, get_current
from opentelemetry.trace import (
    INVALID_SPAN,
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    Span,
    SpanContext,
    TraceFlags,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.trace.span import DEFAULT_TRACE_STATE, TraceState

from tracectrl._tokens import reset
from tracectrl._trace import TraceContext, TraceValue, started_trace
from tracectrl._tracecontext import tracestate_items


class OpenTelemetryBridge:
    """Reads and writes tracectrl's current trace as OpenTelemetry's current span."""

    __slots__ = ("_last_converted", "get_context", "no_span", "span_key")

    #: OpenTelemetry's current context, read at C speed (set below, once the reader is known).
    get_context: Callable[[], Context]
    #: The context key of the current span, and the span that means none.
    span_key: str
    no_span: Span

    def __init__(self) -> None:
        # The last span read that tracectrl did not attach, and its conversion:
        # calls under one span repeat (an inject per outgoing request, a log
        # record per line), and a span's context never changes.
        self._last_converted: tuple[object, Optional[TraceContext]] = (None, None)

    def current_trace(self) -> TraceContext | None:
        """Return OpenTelemetry's current span context as a :class:`TraceContext`, or ``None``.

        The trace tracectrl attached comes back as the very object attached; a
        span started later (or extracted by OpenTelemetry's own propagators) is
        converted, ``is_remote`` false for a local span.  No valid span: ``None``.

        A local span the sampler dropped, inside a unit of work whose trace
        tracectrl started, comes back with the unit's trace id: the SDK gives
        such a span a trace id of its own without calling any span processor,
        and nothing exports it, so the unit's logs and outgoing calls keep the
        unit's trace id (with the span's id and its unsampled flags).
        """
        span = _current_context().get(_SPAN_KEY)
        if type(span) is _AttachedTraceSpan:
            return span.trace
        if span is None or span is INVALID_SPAN:
            return None
        last_span, last_trace = self._last_converted
        if span is last_span:
            return last_trace
        if not isinstance(span, Span):
            return None
        span_context = span.get_span_context()
        trace = _trace_of(span_context) if span_context.is_valid else None
        if type(span) is NonRecordingSpan and trace is not None and not trace.is_remote:
            return _in_started_unit(trace)  # not kept: the answer depends on the unit in force
        self._last_converted = (span, trace)
        return trace

    def hide_span(self) -> object | None:
        """Make no span current, for a unit of work that starts a new trace; return the token.

        ``None`` when no valid span is current: nothing to hide, nothing attached.
        """
        context = _current_context()
        span = context.get(_SPAN_KEY)
        if span is None or span is INVALID_SPAN:
            return None
        if type(span) is not _AttachedTraceSpan and not (
            isinstance(span, Span) and span.get_span_context().is_valid
        ):
            return None
        values = context.copy()
        values[_SPAN_KEY] = INVALID_SPAN
        return _set_current_context(Context(values))

    def stamp_session(self, session_id: str, names: tuple[str, ...]) -> None:
        """Set the session under ``names`` on the current local span where it lacks them."""
        span = _current_context().get(_SPAN_KEY)
        if span is None or type(span) is _AttachedTraceSpan or not isinstance(span, Span):
            return
        try:
            if not span.is_recording():
                return
            attributes = getattr(span, "attributes", None)
            for name in names:
                if attributes is None or name not in attributes:
                    span.set_attribute(name, session_id)
        except Exception:  # a span implementation that refuses: leave it as it is
            return

    def context(self) -> object:
        """Return OpenTelemetry's current context (what a unit of work restores on exit)."""
        return _current_context()

    def restore_context(self, saved: object) -> None:
        """Make ``saved`` current again unless it still is; no token is kept, none is needed."""
        if _current_context() is not saved:
            _set_current_context(saved)

    def restore_span(self, token: object) -> None:
        """Undo :meth:`hide_span`, safely even from another context (the exit warns, not this)."""
        context_token = cast("Token[Any]", token)
        reset(context_token.var, context_token, warn=False)

    def attach_trace(self, trace: TraceContext | None) -> Token[TraceValue]:
        """Make ``trace`` OpenTelemetry's current span context; return the token to detach it.

        ``None`` makes no span current, so the next span starts a new trace.
        When a *local* span is in force and ``trace`` is a remote parent in its
        trace, or that very span, the span stays current: it already continues
        the trace (OpenTelemetry's server instrumentation started it from the
        same headers), and replacing it would make later spans its siblings.
        """
        context = _current_context()
        if trace is None:
            span: Span = INVALID_SPAN
        else:
            current = context.get(_SPAN_KEY)
            if (
                current is not None
                and current is not INVALID_SPAN
                and type(current) is not _AttachedTraceSpan
                and _continues(get_current_span(context), trace)
            ):
                return _set_current_context(context)  # type: ignore[return-value]
            span = attached = _new_span(_AttachedTraceSpan)
            attached.trace = trace
        # One copy of the context instead of set_span_in_context's two: this runs per request.
        values = context.copy()
        values[_SPAN_KEY] = span
        # Tokens are opaque to tracectrl; this one resets OpenTelemetry's context variable.
        return _set_current_context(Context(values))  # type: ignore[return-value]


def _look_up_current_context() -> tuple[Callable[[], Context], Callable[[Any], object]]:
    # OpenTelemetry's context lives in one ContextVar in its default runtime
    # context; reading it directly skips two Python calls of get_current(),
    # which every unit of work makes, and setting it two of attach() (which
    # returns the same token), which every continued request makes.  Any other
    # runtime context is read and written through the public functions.
    runtime = getattr(otel_context_module, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    if isinstance(variable, ContextVar):
        return variable.get, variable.set
    return get_current, attach


_current_context, _set_current_context = _look_up_current_context()

#: The bridge :mod:`tracectrl._trace` delegates to.
BRIDGE = OpenTelemetryBridge()

# The key OpenTelemetry keeps the current span under, found through the public API
# (its own name for it is private).  Reading it directly skips get_current_span's
# isinstance check against the Span ABC, the slowest step of a lookup.
(_SPAN_KEY,) = set_span_in_context(INVALID_SPAN, Context())

# _AttachedTraceSpan(trace) runs a Python-level __init__ per request; object.__new__
# and one slot assignment make the same span without it.  (Bound here: looking
# __new__ up on ``object`` at each call costs about as much as the frame.)
_new_span = object.__new__


class _AttachedTraceSpan(NonRecordingSpan):
    """The span OpenTelemetry sees for a trace tracectrl attached.

    It keeps the :class:`TraceContext` itself, so the trace reads back exactly
    as attached, and builds OpenTelemetry's span context only when something
    asks for it (a span started below it, an OpenTelemetry propagator): most
    incoming traces are never looked at that way.
    """

    # A slot: attaching allocates no instance dict (the one inherited from Span
    # is made only if OpenTelemetry asks for _context).
    __slots__ = ("trace",)

    def __init__(self, trace: TraceContext) -> None:
        # NonRecordingSpan.__init__ is skipped on purpose: _context is built lazily.
        self.trace = trace

    @functools.cached_property
    def _context(self) -> SpanContext:  # type: ignore[override]
        trace = self.trace
        try:
            return SpanContext(
                int(trace.trace_id, 16),
                int(trace.span_id, 16),
                trace.is_remote,
                TraceFlags(trace.trace_flags),
                _trace_state(trace.tracestate),
            )
        except ValueError:  # not hex (never made by tracectrl): no parent for OpenTelemetry
            return INVALID_SPAN_CONTEXT


def _continues(span: Span, trace: TraceContext) -> bool:
    """Say whether local ``span`` already continues ``trace``: a remote parent in it, or itself."""
    current = span.get_span_context()
    if current.is_remote or not current.is_valid:
        return False
    try:
        if current.trace_id != int(trace.trace_id, 16):
            return False
        return trace.is_remote or current.span_id == int(trace.span_id, 16)
    except ValueError:
        return False


def _in_started_unit(dropped: TraceContext) -> TraceContext:
    """Return a dropped local span's position in the trace tracectrl started for the unit."""
    started = started_trace()
    return dropped if started is None else dropped._replace(trace_id=started.trace_id)


def _trace_of(span_context: SpanContext) -> TraceContext:
    """Convert a span context that tracectrl did not attach."""
    state = span_context.trace_state
    return TraceContext(
        f"{span_context.trace_id:032x}",
        f"{span_context.span_id:016x}",
        int(span_context.trace_flags),
        state.to_header() if state else "",
        span_context.is_remote,
    )


class _ValidatedTraceState(TraceState):
    """A ``TraceState`` over a ``tracestate`` value that tracectrl has already validated.

    OpenTelemetry's constructor checks every pair with regular expressions,
    which would double the cost of every extract; this one splits the value
    into pairs only if OpenTelemetry reads them, and sends it on unchanged.
    """

    def __init__(self, header: str) -> None:
        # TraceState.__init__ is skipped on purpose: it would validate again.
        self._header = header

    @functools.cached_property
    def _dict(self) -> dict[str, str]:  # type: ignore[override]
        return dict(tracestate_items(self._header))

    def to_header(self) -> str:
        """Return the ``tracestate`` value exactly as tracectrl validated it."""
        return self._header


def _lazy_trace_state_works() -> bool:
    # _ValidatedTraceState relies on TraceState reading its pairs from ``_dict``;
    # should a release change that, fall back to the public (slower) constructor.
    try:
        state = _ValidatedTraceState("k=v")
        return (
            state.get("k") == "v"
            and len(state) == 1
            and state.add("l", "w").to_header() == ("l=w,k=v")
        )
    except Exception:
        return False


_LAZY_TRACE_STATE = _lazy_trace_state_works()


def _trace_state(header: str) -> TraceState:
    """Return the OpenTelemetry ``TraceState`` for a validated ``tracestate`` value."""
    if not header:
        return DEFAULT_TRACE_STATE
    if _LAZY_TRACE_STATE:
        return _ValidatedTraceState(header)
    return TraceState.from_header([header])


# Every unit of work reads these; plain attributes spare it a Python-level call.
BRIDGE.get_context = _current_context
BRIDGE.span_key = _SPAN_KEY
BRIDGE.no_span = INVALID_SPAN
