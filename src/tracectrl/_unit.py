"""Units of work: what entering a scope puts in force, and leaving it restores.

A unit of work is one entry of :class:`tracectrl.session_scope`, one call of a
function decorated with :func:`tracectrl.with_session`, or one run of a
decorated generator.  Entering sets the session, the trace and, with
``span=``, an OpenTelemetry span; leaving restores all of them, on every exit
path.  The trace follows these rules:

* a unit that starts a new session (``new=True``), or changes the session in
  force, starts a new trace: a trace belongs to one session;
* a unit whose session is the one in force keeps the trace in force, or
  starts one for its block when there is none;
* ``new_trace=True`` / ``new_trace=False`` override both.

A new trace is a :class:`~tracectrl._trace.UnitTrace`: its ids are made on
the first read, so a unit nobody reads a trace in makes none.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import Token
from typing import Any, Optional

from tracectrl import _sessionvar
from tracectrl._sessionvar import session_var
from tracectrl._span import AttributeValue, end_span, make_current, start_span, unmake_current
from tracectrl._tokens import reset, restore_elsewhere
from tracectrl._trace import (
    TraceValue,
    UnitTrace,
    current_trace,
    get_trace_state,
    hide_span,
    otel_context,
    reset_trace_state,
    restore_otel_context,
    restore_span,
    set_trace_state,
    trace_in_force,
)

# Bound once, here: see the comment above _set_session in scope.py.
_set_session = session_var.set
_reset_session = session_var.reset
_get_session = session_var.get
_set_trace = set_trace_state
_reset_trace = reset_trace_state
_get_trace = get_trace_state
_Missing = Token.MISSING


class SpanRequest:
    """What ``span=`` and ``attributes=`` asked for: the span's name and its attributes."""

    __slots__ = ("attributes", "name")

    def __init__(self, name: str, attributes: Mapping[str, AttributeValue] | None) -> None:
        self.name = name
        self.attributes = attributes


class Extras:
    """The rarer parts of an entry: a span it hid (new trace) and the span it started."""

    __slots__ = ("hidden", "span", "span_token")

    def __init__(self, hidden: object | None, span: Any, span_token: object | None) -> None:
        self.hidden = hidden
        self.span = span
        self.span_token = span_token


#: One entry: its session token, its trace token, its extras (``None`` when none), and
#: OpenTelemetry's context from before it (``None`` without OpenTelemetry).
Entry = tuple["Token[Optional[str]]", "Token[TraceValue]", Optional[Extras], object]


def starts_new_trace(session_id: str, session_token: Token[Optional[str]]) -> bool:
    """Say whether an entry that just set ``session_id`` changed the session in force."""
    old = session_token.old_value
    if session_id == old:
        return False
    carried = _sessionvar.carried_session
    if carried is None:
        return True
    # A session OpenTelemetry's propagator carried into this request is in force too.
    return session_id != carried(None if old is _Missing else old)


def enter(session_id: str, new_trace: bool | None, span: SpanRequest | None) -> Entry:
    """Put ``session_id``, the unit's trace and its span in force; return what undoes it.

    ``new_trace``: ``True`` always starts a trace, ``False`` keeps the one in
    force, ``None`` applies the rules in the module docstring.
    """
    session_token = _set_session(session_id)
    otel = otel_context()
    if new_trace is None:
        new_trace = starts_new_trace(session_id, session_token)
    hidden = None
    link_to = None
    if new_trace:
        if span is not None:
            link_to = current_trace()
        trace_token = _set_trace(UnitTrace())
        hidden = hide_span()
    else:
        state = _get_trace()
        if state is None and not trace_in_force():
            state = UnitTrace()
        trace_token = _set_trace(state)
    if span is None:
        if hidden is None:
            return (session_token, trace_token, None, otel)
        return (session_token, trace_token, Extras(hidden, None, None), otel)
    started = start_span(span.name, span.attributes, session_id, link_to)
    span_token = None if started is None else make_current(started)
    return (session_token, trace_token, Extras(hidden, started, span_token), otel)


def leave(entry: Entry, error: BaseException | None) -> None:
    """Undo :func:`enter`: end the span, then restore the trace and the session.

    Safe in another thread or task than the one that entered: the values from
    before are restored in the exiting context and a ``RuntimeWarning`` says so.
    """
    session_token, trace_token, extras, otel = entry
    if extras is not None:
        leave_extras(extras, error)
    if otel is not None:
        restore_otel_context(otel)
    reset(trace_token.var, trace_token)
    reset(session_var, session_token)


def leave_latest(entries: list[Entry], error: BaseException | None) -> None:
    """Leave the newest entry in ``entries`` that this context made; see ``reset_latest``.

    The slow path of a scope object entered by several tasks or threads, or
    exited elsewhere: tokens of other contexts' entries are skipped and kept
    for their own exits.  With none of this context's, the newest entry is
    restored here, with a ``RuntimeWarning``.
    """
    for entry in reversed(entries[:]):  # a copy: other threads change the list meanwhile
        try:
            _reset_session(entry[0])
        except (ValueError, RuntimeError):
            continue
        entries.remove(entry)
        _leave_rest(entry, error)
        return
    try:
        entry = entries.pop()
    except IndexError:
        return  # exited more often than entered
    restore_elsewhere(session_var, entry[0])
    _leave_rest(entry, error)


def _leave_rest(entry: Entry, error: BaseException | None) -> None:
    """Undo an entry whose session token is already reset."""
    extras = entry[2]
    if extras is not None:
        leave_extras(extras, error)
    if entry[3] is not None:
        restore_otel_context(entry[3])
    trace_token = entry[1]
    reset(trace_token.var, trace_token)


def leave_extras(extras: Extras, error: BaseException | None) -> None:
    if extras.span_token is not None:
        unmake_current(extras.span_token)
    if extras.span is not None:
        end_span(extras.span, error)
    if extras.hidden is not None:
        restore_span(extras.hidden)


class Suspended:
    """A generator unit between two steps: what its body had in force when it yielded."""

    __slots__ = ("hides", "otel", "session_id", "span", "trace")

    def __init__(self, entry: Entry) -> None:
        self.session_id = _get_session()
        self.trace = _get_trace()
        self.otel = otel_context()
        extras = entry[2]
        self.hides = extras is not None and extras.hidden is not None
        self.span = None if extras is None else extras.span


def suspend(entry: Entry) -> Suspended:
    """Keep what a generator's body has in force, then restore the caller's values."""
    suspended = Suspended(entry)
    session_token, trace_token, extras, otel = entry
    if extras is not None:
        if extras.span_token is not None:
            unmake_current(extras.span_token)
        if extras.hidden is not None:
            restore_span(extras.hidden)
    if otel is not None:
        restore_otel_context(otel)
    reset(trace_token.var, trace_token)
    reset(session_var, session_token)
    return suspended


def resume(suspended: Suspended) -> Entry:
    """Put a suspended generator unit's values back in force for its next step."""
    session_token = _set_session(suspended.session_id)
    trace_token = _set_trace(suspended.trace)
    otel = otel_context()
    if otel is not None and suspended.otel is not None and suspended.hides:
        hidden = hide_span()
    else:
        hidden = None
    span = suspended.span
    if span is None and hidden is None:
        return (session_token, trace_token, None, otel)
    span_token = None if span is None else make_current(span)
    return (session_token, trace_token, Extras(hidden, span, span_token), otel)
