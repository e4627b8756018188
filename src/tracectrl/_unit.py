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

import warnings
from collections.abc import Mapping
from contextlib import suppress
from contextvars import Token
from typing import Any, Optional

from tracectrl import _sessionvar
from tracectrl import _trace as _trace_module
from tracectrl._sessionvar import session_var
from tracectrl._span import AttributeValue, end_span, make_current, start_span, unmake_current
from tracectrl._tokens import reset, warn_foreign_exit
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
)

# Bound once, here: see the comment above _set_session in scope.py.
_set_session = session_var.set
_reset_session = session_var.reset
_get_session = session_var.get
_set_trace = set_trace_state
_reset_trace = reset_trace_state
_get_trace = get_trace_state
_Missing = Token.MISSING
_new_unit_trace = UnitTrace


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


#: One entry: its session token, its trace token, its extras (``None`` when none),
#: OpenTelemetry's context from before it (``None`` without OpenTelemetry), the trace
#: value it put in force, and that value again if the entry made it (``None`` if shared).
Entry = tuple[
    "Token[Optional[str]]",
    "Token[TraceValue]",
    Optional[Extras],
    object,
    TraceValue,
    Optional[UnitTrace],
]


def starts_new_trace(session_id: str, old: str | None) -> bool:
    """Say whether an entry that sets ``session_id`` over ``old`` changes the session in force."""
    if session_id == old:
        return False
    if not _sessionvar.carried_sessions_exist:
        return True
    # A session OpenTelemetry's propagator carried into this request is in force
    # too.  The flag is set by that module, so it is imported already: no
    # OpenTelemetry import happens here.
    from tracectrl._otel_session import session_in_current_context

    return session_id != session_in_current_context(old)


def enter(session_id: str, new_trace: bool | None, span: SpanRequest | None) -> Entry:
    """Put ``session_id``, the unit's trace and its span in force; return what undoes it.

    ``new_trace``: ``True`` always starts a trace, ``False`` keeps the one in
    force, ``None`` applies the rules in the module docstring.
    """
    entries: list[Entry] = []
    enter_into(entries, session_id, new_trace, span)
    return entries[0]


def enter_into(  # noqa: PLR0915 - one body: every call saved is on the hot path
    entries: list[Entry], session_id: str, new_trace: bool | None, span: SpanRequest | None
) -> str:
    """Do what :func:`enter` does, append the entry to ``entries``, and return ``session_id``.

    The form a scope object uses: the entry is recorded before the return, and
    the return is the caller's, so that no instruction where CPython runs a
    signal handler lies between the two on 3.11+.

    An exception raised part-way (an interrupt such as ``KeyboardInterrupt`` or
    a signal handler's, or a failing span start) undoes what was already put in
    force, from the values read before the first change rather than from
    tokens: a token is lost when the interrupt lands between the change and
    the store of its token.
    """
    # Measured on CPython 3.13, in one loop against a manager that only sets and
    # resets the session (the benchmark's "minimal class manager"), with the trace
    # left unread.  Alternatives: writing nothing on entry and keying the lazy
    # trace on the session id, about 1.0x; reading the trace variable on entry
    # and comparing on exit, 1.5x; a second ContextVar set/reset on a holder, as
    # here, 2x to 3x.  The cheaper two are wrong: without a holder set on entry a
    # joining scope cannot share the unread trace of the unit around it, and two
    # scopes of one session in a row (two turns) would share one trace.  The
    # second variable costs more than the first (in an empty context, set/reset
    # of one variable measured 0.9 us on a loaded machine, of two 2.8 us: the
    # context's mapping grows), which is why the scope rows miss their targets.
    # The rest is kept to C-level calls: OpenTelemetry's context is read through
    # the bridge's bound ContextVar getter (that read lets the exit undo an
    # extract_trace_headers made inside the unit), and the holder is made
    # without an __init__.  Its ids are made only when read.
    #
    # Everything is read before the first write, so that the handler below can
    # put the old values back whatever point an interrupt lands at (try costs
    # nothing on 3.11+, and one instruction on 3.9 and 3.10).
    if entries and len(entries) >= MAX_OPEN_ENTRIES:
        forget_oldest(entries)
    old = _get_session()
    old_trace = _get_trace()
    bridge = _trace_module._bridge
    otel = None if bridge is None else bridge.get_context()
    hidden = None
    try:
        session_token = _set_session(session_id)
        if new_trace is None:
            new_trace = session_id != old and (
                not _sessionvar.carried_sessions_exist or starts_new_trace(session_id, old)
            )
        if new_trace:
            link_to = None if span is None else current_trace()
            owned: UnitTrace | None = _new_unit_trace()
            frame: TraceValue = owned
            trace_token = _set_trace(owned)
            if otel:  # an empty context (the usual case) holds no span; never one without a bridge
                in_force = otel.get(bridge.span_key)  # type: ignore[union-attr]
                if in_force is not None and in_force is not bridge.no_span:  # type: ignore[union-attr]
                    hidden = hide_span()
        else:
            link_to = None
            frame = old_trace
            owned = None
            if frame is None:
                # No trace of tracectrl's: is there a span in OpenTelemetry's context?
                # Read from the context already in hand; asking the bridge for the
                # trace (trace_in_force) cost a sixth of a joining entry.
                in_force = otel.get(bridge.span_key) if otel else None  # type: ignore[union-attr]
                if (
                    in_force is None
                    or in_force is bridge.no_span  # type: ignore[union-attr]
                    or bridge.current_trace() is None  # type: ignore[union-attr]
                ):
                    frame = owned = _new_unit_trace()
            trace_token = _set_trace(frame)
        if owned is not None:  # what an exit out of order of a nested scope looks for
            owned.parent = old_trace
            owned.before = old
        if span is None:
            extras = None if hidden is None else Extras(hidden, None, None)
        else:
            started = start_span(span.name, span.attributes, session_id, link_to)
            span_token = None if started is None else make_current(started)
            extras = Extras(hidden, started, span_token)
        entry: Entry = (session_token, trace_token, extras, otel, frame, owned)
        entries.append(entry)
        return session_id
    except BaseException:
        # No context manager in these handlers: a Python-level call can raise again
        # (RecursionError near the limit on 3.9), so only C-level calls are made.
        try:  # noqa: SIM105 - see above
            entries.remove(entry)
        except (ValueError, UnboundLocalError):  # unbound: interrupted before it was made
            pass
        _set_session(old)
        _set_trace(old_trace)
        if otel is not None:
            restore_otel_context(otel)
        raise


def leave(entry: Entry, error: BaseException | None) -> None:
    """Undo :func:`enter`: end the span, then restore the trace and the session.

    Safe in another thread or task than the one that entered: the values from
    before are restored in the exiting context and a ``RuntimeWarning`` says so.
    """
    session_token, trace_token, extras, otel, frame, owned = entry
    trace_now = _get_trace()
    if trace_now is not frame and exited_out_of_order(entry, trace_now, _get_session()):
        finish_out_of_order(entry, error, stacklevel=4)  # at the decorated call
        return
    if extras is not None:
        leave_extras(extras, error)
    if otel is not None:
        bridge = _trace_module._bridge
        if bridge is not None and bridge.get_context() is not otel:
            restore_otel_context(otel)
    try:  # the usual case, without a call per token; see enter
        _reset_trace(trace_token)
        _reset_session(session_token)
    except (ValueError, RuntimeError):  # exited elsewhere: the safe, slow path
        # One warning for the exit, pointing past leave() and its caller (the
        # wrapper) at the code that finished the call in the wrong context.
        reset(trace_token.var, trace_token, warn=False)
        reset(session_var, session_token, stacklevel=5)
    if owned is not None:
        owned.closed = True


OUT_OF_ORDER_WARNING = (
    "a tracectrl scope was exited after a scope it was entered in had already exited "
    "(exits out of order); the session and trace from before the outer scope were "
    "left in force. Exit scopes in the reverse order of entering them, as `with` does."
)


def exited_out_of_order(entry: Entry, trace_now: TraceValue, session_now: str | None) -> bool:
    """Say whether a scope around ``entry`` exited before it, restoring what was before it.

    Then resetting this entry's tokens would bring back the outer scope's
    values, for good.  The evidence: a holder made by an entry around this one
    is closed, and the trace and session in force are exactly those from before
    it.  Only asked when the trace in force is not the one the entry put in force.
    """
    holder = entry[4]
    while holder.__class__ is _new_unit_trace:
        if (
            getattr(holder, "closed", False)
            and holder.parent is trace_now
            and holder.before == session_now
        ):
            return True
        holder = getattr(holder, "parent", None)
    return False


def finish_out_of_order(entry: Entry, error: BaseException | None, stacklevel: int) -> None:
    """Exit ``entry`` out of order: end its span, change nothing in force, and warn."""
    # Its holder is not marked closed: a scope nested in it that exits later
    # finds the closed holder of the scope that exited first further up.
    extras = entry[2]
    if extras is not None and extras.span is not None:
        end_span(extras.span, error)
    warnings.warn(OUT_OF_ORDER_WARNING, RuntimeWarning, stacklevel=stacklevel)


def leave_latest(entries: list[Entry], error: BaseException | None) -> None:
    """Leave the newest entry in ``entries`` that this context made; see ``reset_latest``.

    The slow path of a scope object entered by several tasks or threads, or
    exited elsewhere: entries of other contexts are skipped and kept for their
    own exits.  With none of this context's, nothing is changed here and a
    ``RuntimeWarning`` says so: an exit in the wrong place never damages the
    exiting context's session or trace.

    Entries that put the trace now in force are tried first: a decorated
    generator's body runs in its caller's context, so when the body and the
    caller both entered the object, the newest entry this context can reset
    may be the caller's while the body exits.
    """
    trace_now = _get_trace()
    session_now = _get_session()  # a refused reset below changes nothing
    ordered: list[Entry] = []
    others: list[Entry] = []
    for entry in reversed(entries[:]):  # a copy: other threads change the list meanwhile
        (ordered if entry[4] is trace_now else others).append(entry)
    ordered += others
    for entry in ordered:
        try:
            _reset_session(entry[0])
        except (ValueError, RuntimeError):
            continue
        try:  # noqa: SIM105 - a context manager is a Python-level call; see enter_into
            entries.remove(entry)
        except ValueError:  # never expected: only its own context removes an entry
            pass
        if trace_now is not entry[4] and exited_out_of_order(entry, trace_now, session_now):
            # The reset proved the entry this context's; an exit out of order must
            # change nothing, so the session goes back to what it was.
            _set_session(session_now)
            finish_out_of_order(entry, error, stacklevel=4)  # at the code calling __exit__
            return
        _leave_rest(entry, error)
        return
    if entries:
        warn_foreign_exit()


#: The most entries one scope object keeps open at once, over all threads and tasks.
MAX_OPEN_ENTRIES = 1024


def forget_oldest(entries: list[Entry]) -> None:
    """Drop the oldest quarter of ``entries``: entries whose exit never came, as a rule.

    An exit that never runs (an interrupt at the very start of ``__exit__``, a
    thread killed inside the block, a generator never closed) leaves its entry
    in the scope object's list for good.  The list is bounded so that such
    entries cannot pile up; an entry dropped while still open exits as one
    made elsewhere: nothing is changed and a ``RuntimeWarning`` says so.
    """
    with suppress(IndexError):  # other threads may be removing theirs meanwhile
        del entries[: MAX_OPEN_ENTRIES // 4]


def finish_interrupted_exit(
    entries: list[Entry], entry: Entry | None, error: BaseException | None
) -> None:
    """Finish an exit an exception (an interrupt) cut short; ``entry`` is the one it was leaving.

    Every step is one that may already have been done, so each tolerates
    that: a used token is skipped, an entry already removed is not removed
    again.  ``None``: the interrupt landed before the exit picked its entry,
    so nothing was undone yet and the usual search for this context's newest
    entry is right.  A span the entry started may be ended twice (OpenTelemetry
    warns) or, when the interrupt lands inside its ``end``, not at all.
    """
    if entry is None:
        leave_latest(entries, error)
        return
    try:
        _reset_session(entry[0])
    except RuntimeError:
        pass  # already reset: the interrupt landed after it
    except ValueError:
        leave_latest(entries, error)  # the newest entry was another context's
        return
    try:  # noqa: SIM105 - a context manager is a Python-level call; see enter_into
        entries.remove(entry)
    except ValueError:
        pass  # already removed: the interrupt landed after it
    try:  # noqa: SIM105 - before any Python-level call: those may raise again
        _reset_trace(entry[1])
    except (ValueError, RuntimeError):
        pass  # already reset, or left to _leave_rest's safe path
    _leave_rest(entry, error)


def _leave_rest(entry: Entry, error: BaseException | None) -> None:
    """Undo an entry whose session token is already reset.

    Ending the span runs OpenTelemetry's code; a second interrupt landing there
    still leaves OpenTelemetry's context and the trace as they were before the
    entry.
    """
    try:
        extras = entry[2]
        if extras is not None:
            leave_extras(extras, error)
    finally:
        if entry[3] is not None:
            restore_otel_context(entry[3])
        trace_token = entry[1]
        reset(trace_token.var, trace_token)
        owned = entry[5]
        if owned is not None:
            owned.closed = True


def leave_extras(extras: Extras, error: BaseException | None) -> None:
    if extras.span_token is not None:
        unmake_current(extras.span_token)
    if extras.span is not None:
        end_span(extras.span, error)
    if extras.hidden is not None:
        restore_span(extras.hidden)


class Suspended:
    """A generator unit between two steps: what its body had in force when it yielded."""

    __slots__ = ("frame", "otel", "owned", "session_id", "span", "trace")

    def __init__(self, entry: Entry) -> None:
        self.session_id = _get_session()
        self.trace = _get_trace()
        self.otel = otel_context()
        extras = entry[2]
        self.span = None if extras is None else extras.span
        self.frame = entry[4]
        self.owned = entry[5]


def suspend(entry: Entry) -> Suspended:
    """Keep what a generator's body has in force, then restore the caller's values."""
    suspended = Suspended(entry)
    session_token, trace_token, extras, otel, _, _ = entry
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
    """Put a suspended generator unit's values back in force for its next step.

    OpenTelemetry's context comes back whole, as the body left it when it
    yielded: the unit's span, the caller's span hidden for a new trace, or a
    trace the body took from headers since (``extract_trace_headers``).  No
    token is kept for it: the next suspend, and the exit, put the caller's
    context back whatever the body did meanwhile.
    """
    session_token = _set_session(suspended.session_id)
    trace_token = _set_trace(suspended.trace)
    otel = otel_context()
    span = suspended.span
    if suspended.otel is None:
        # No bridge to OpenTelemetry's context (its API loaded, the bridge not):
        # only the unit's span is made current again, with a token to undo it.
        span_token = None if span is None else make_current(span)
    else:
        span_token = None
        if suspended.otel is not otel:
            restore_otel_context(suspended.otel)
    extras = None if span is None else Extras(None, span, span_token)  # span ends at the exit
    return (session_token, trace_token, extras, otel, suspended.frame, suspended.owned)
