"""The W3C trace context in force in the current thread or task.

Without OpenTelemetry the trace lives in the ``tracectrl_trace_context``
ContextVar below.  Every read and write of the current trace goes through
:func:`current_trace` and :func:`attach_trace`/:func:`detach_trace`, so the
OpenTelemetry bridge has one seam to hook: when ``opentelemetry-api`` is
importable, the three functions read and write OpenTelemetry's current span
instead (see :mod:`tracectrl._otel_bridge`).

A trace tracectrl *starts* (no ``traceparent`` came in) is the exception: it
always lives in the ContextVar.  Made OpenTelemetry's current span, its random
parent-id would become the parent of every span started below it, a parent
that no service ever exports.  With OpenTelemetry, a valid current span wins
over it.

A unit of work (a scope entry that starts a trace) puts a :class:`UnitTrace`
in the ContextVar: a holder whose ids are made on the first read, so that a
scope nobody reads a trace in pays for no ids.  Every reader in the unit,
child tasks and threads included, shares the holder and so the trace id.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token
from random import getrandbits
from typing import Any, NamedTuple, Optional, Protocol, Union

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


def new_trace() -> TraceContext:
    """Start a trace: random trace-id and parent-id, the sampled and random flags set."""
    # 0x03: sampled, and random (Level 2: the trace-id's right-most 7 bytes are random).
    return TraceContext(new_trace_id(), new_span_id(), 0x03, "", True)


def new_trace_id() -> str:
    """Return a random trace-id: 32 lowercase hex digits, never all zeros."""
    bits = getrandbits(128)
    while not bits:
        bits = getrandbits(128)
    return f"{bits:032x}"


def new_span_id() -> str:
    """Return a random parent-id: 16 lowercase hex digits, never all zeros."""
    bits = getrandbits(64)
    while not bits:
        bits = getrandbits(64)
    return f"{bits:016x}"


class UnitTrace:
    """The trace of one unit of work, started on its first read.

    ``trace`` is unset until :meth:`resolve` makes the ids.  Two threads
    reading at once may both make one; the assignment is atomic and the first
    one stored is kept, so every reader returns the same trace.
    """

    # No __init__: a class without one is made by a C-level call, and every
    # unit of work that starts a trace makes one (see _unit.enter).
    __slots__ = ("before", "closed", "parent", "trace")

    trace: TraceContext
    #: Set by a scope entry that made this holder: the trace value and the session
    #: in force before it, and, once the entry has exited, ``closed``.  They let a
    #: later exit of a scope nested in it tell that it is exited out of order.
    parent: TraceValue
    before: Optional[str]
    closed: bool

    def resolve(self) -> TraceContext:
        """Return the unit's trace, making its ids now if nobody has read it yet."""
        try:
            return self.trace
        except AttributeError:
            made = new_trace()
        # setdefault-like under the GIL: keep whichever trace was stored first.
        try:
            return self.trace
        except AttributeError:
            self.trace = made
            return made

    def peek(self) -> TraceContext | None:
        """Return the unit's trace if someone has read it, without making ids."""
        return getattr(self, "trace", None)


#: What the ContextVar holds: a trace, a unit's holder, or nothing.
TraceValue = Union[TraceContext, UnitTrace, None]

_trace_context: ContextVar[TraceValue] = ContextVar("tracectrl_trace_context", default=None)

# Bound once: each scope entry calls these (see the comment above _set_session in scope.py).
get_trace_state = _trace_context.get
set_trace_state = _trace_context.set
reset_trace_state = _trace_context.reset


def current_trace() -> TraceContext | None:
    """Return the trace in force in this context, or ``None``.

    With OpenTelemetry, a local span in force is the trace.  Inside a unit of
    work whose ids nobody has read yet, this read makes them.  It reads the
    current thread or task only; another thread sees its own trace.

    Returns:
        The current :class:`~tracectrl.context.TraceContext`, or ``None`` when no
        trace is in force (outside any unit of work, span or continued request).
    """
    bridge = _bridge
    if bridge is not None:
        trace = bridge.current_trace()
        if trace is not None:
            return trace
    state = _trace_context.get()
    if state is None or state.__class__ is TraceContext:
        return state
    return state.resolve()  # type: ignore[union-attr]


def attach_started_trace(trace: TraceContext) -> Token[TraceValue]:
    """Make a trace tracectrl started current, outside OpenTelemetry's context; see above."""
    return _trace_context.set(trace)


def is_started(trace: TraceContext) -> bool:
    """Say whether ``trace``, returned by :func:`current_trace`, is one tracectrl started."""
    if _bridge is None:
        return False
    state = _trace_context.get()
    return trace is state or (state.__class__ is UnitTrace and trace is state.peek())


def started_trace() -> TraceContext | None:
    """Return the trace tracectrl started for the unit of work in force, or ``None``.

    Makes the unit's ids if nobody has read them yet; a trace that came in
    (extracted) is not a started one.
    """
    state = _trace_context.get()
    if state is None:
        return None
    if state.__class__ is UnitTrace:
        return state.resolve()
    return None


def clear_trace() -> None:
    """Make no trace current, without a token: the next outgoing call starts one."""
    _trace_context.set(None)
    if _bridge is not None:
        _bridge.attach_trace(None)


def attach_trace(trace: TraceContext | None) -> Token[TraceValue]:
    """Make ``trace`` current; return the token that :func:`detach_trace` takes."""
    bridge = _bridge
    if bridge is None:
        return _trace_context.set(trace)
    return bridge.attach_trace(trace)


def detach_trace(token: Token[TraceValue]) -> None:
    """Undo :func:`attach_trace` with its token, safely even from another context.

    Every token is a :class:`contextvars.Token`, of tracectrl's variable or of
    OpenTelemetry's, so one reset serves both (OpenTelemetry's own ``detach``
    logs an error and restores nothing when the token is from elsewhere).
    It never warns: its callers undo the session too, whose reset warns once for
    both when the exit is in another context.
    """
    reset(token.var, token, warn=False)


def hide_span() -> object | None:
    """Take OpenTelemetry's current span out of force for a new trace; return what undoes it.

    ``None`` (nothing to undo) without OpenTelemetry or when no valid span is
    current, the usual case at the start of a unit of work.
    """
    bridge = _bridge
    return None if bridge is None else bridge.hide_span()


def restore_span(token: object) -> None:
    """Undo :func:`hide_span` with what it returned (not ``None``)."""
    bridge = _bridge
    if bridge is not None:
        bridge.restore_span(token)


#: The span attributes that hold the session: those of every ``SessionSpanProcessor`` made.
session_attributes: dict[str, None] = {}


def register_session_attributes(names: tuple[str, ...]) -> None:
    """Record the attribute names a ``SessionSpanProcessor`` stamps, for :func:`stamp_session`."""
    for name in names:
        session_attributes[name] = None


def stamp_session(session_id: str) -> None:
    """Give the local span in force (a server span that started before the session) the session.

    Only a recording span that lacks the attribute is changed, and only under
    the names a ``SessionSpanProcessor`` stamps; without one, nothing.
    """
    bridge = _bridge
    if bridge is not None and session_attributes:
        bridge.stamp_session(session_id, tuple(session_attributes))


def otel_context() -> object | None:
    """Return OpenTelemetry's current context to restore on exit; ``None`` without it."""
    bridge = _bridge
    return None if bridge is None else bridge.context()


def restore_otel_context(saved: object) -> None:
    """Make ``saved`` OpenTelemetry's current context again if something replaced it.

    What :func:`tracectrl.context.extract_trace_headers` attaches inside a
    unit of work has no token; this undoes it when the unit ends.
    """
    bridge = _bridge
    if bridge is not None:
        bridge.restore_context(saved)


class _Bridge(Protocol):
    """Where the current trace lives instead of the ContextVar: OpenTelemetry's context."""

    def get_context(self) -> Any: ...

    @property
    def span_key(self) -> str: ...

    @property
    def no_span(self) -> object: ...

    def current_trace(self) -> TraceContext | None: ...

    def attach_trace(self, trace: TraceContext | None) -> Token[TraceValue]: ...

    def hide_span(self) -> object | None: ...

    def restore_span(self, token: object) -> None: ...

    def context(self) -> object: ...

    def stamp_session(self, session_id: str, names: tuple[str, ...]) -> None: ...

    def restore_context(self, saved: object) -> None: ...


class _BridgeLookup:
    """Stands in for the bridge until the first call finds out whether OpenTelemetry imports.

    Looking it up lazily keeps ``import tracectrl`` free of OpenTelemetry's
    import time; no trace exists before the first call, so none is stranded.
    """

    __slots__ = ()

    def get_context(self) -> object | None:
        _look_up_bridge()
        return otel_context()

    @property
    def span_key(self) -> str:
        _look_up_bridge()
        return "" if _bridge is None else _bridge.span_key

    @property
    def no_span(self) -> object:
        _look_up_bridge()
        return None if _bridge is None else _bridge.no_span

    def current_trace(self) -> TraceContext | None:
        _look_up_bridge()
        return current_trace()

    def attach_trace(self, trace: TraceContext | None) -> Token[TraceValue]:
        _look_up_bridge()
        return attach_trace(trace)

    def hide_span(self) -> object | None:
        _look_up_bridge()
        return hide_span()

    def restore_span(self, token: object) -> None:
        _look_up_bridge()
        restore_span(token)

    def context(self) -> object:
        _look_up_bridge()
        return otel_context()

    def stamp_session(self, session_id: str, names: tuple[str, ...]) -> None:
        _look_up_bridge()
        stamp_session(session_id)

    def restore_context(self, saved: object) -> None:
        _look_up_bridge()
        if saved is not None:
            restore_otel_context(saved)


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
