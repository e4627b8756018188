"""Continuing an incoming session and trace, and restoring what was in force before.

The one implementation behind :class:`tracectrl.context.continue_session`,
which enters once per ``with`` and keeps each entry's tokens to undo it, and
the Celery integration, which enters once per task and undoes it in the
task's ``task_postrun``.  The fields are read by the one carrier reader
(:func:`~tracectrl._headers.header_fields`) and checked by the one trace
parser and session decoder, so every carrier is judged by the same rules.
Nothing here raises on bad input: it is ignored and logged at DEBUG.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, NamedTuple, Optional

from tracectrl._headers import header_fields
from tracectrl._sessionvar import fresh_session_id, session_var
from tracectrl._tokens import reset
from tracectrl._trace import (
    TraceContext,
    TraceValue,
    UnitTrace,
    attach_trace,
    current_trace,
    detach_trace,
    hide_span,
    restore_span,
    set_trace_state,
    stamp_session,
)
from tracectrl._tracecontext import trace_from_fields
from tracectrl._wire import ALL_NAMES, TRACEPARENT, TRACESTATE, incoming_session_id

if TYPE_CHECKING:
    from contextvars import Token

    from tracectrl._trust import Admission

_log = logging.getLogger("tracectrl.context")


class Continued(NamedTuple):
    """One entry: the session it put in force, and what undoes it."""

    session_id: str
    session_token: Token[Optional[str]]
    trace_token: Token[TraceValue]
    #: What :func:`~tracectrl._trace.hide_span` returned, when a new trace hid a span.
    hidden: object | None


def enter(headers: object, admission: Admission | None) -> Continued:
    """Put the session and trace of incoming ``headers`` in force; return what undoes it.

    The trace is the incoming one when ``traceparent`` is valid, else the
    local span in force (a server instrumentation's), else a new trace whose
    ids are made on first read; a remote span left in OpenTelemetry's context
    by earlier work is hidden then.  The session is the incoming one, else a
    new one.  ``admission`` (``None``: every caller is trusted) may refuse the
    incoming session, and the trace with it.  Never raises on bad input.
    """
    fields = header_fields(headers, ALL_NAMES)
    local = local_trace()
    trace = trace_from_fields(fields.get(TRACEPARENT), fields.get(TRACESTATE)) or local
    session_id = incoming_session_id(fields)
    if admission is not None:
        session_id, trace = admission.admit(fields, session_id, trace)
    hidden = None
    if trace is None:
        # No traceparent and no server span: a new unit of work.  A remote
        # span left in OpenTelemetry's context by earlier work is hidden,
        # so that this request never joins another request's trace.
        trace_token = set_trace_state(UnitTrace())
        hidden = hide_span()
    else:
        trace_token = attach_trace(trace)
    session_id = session_id or _new_session_id()
    if local is not None:
        # OpenTelemetry's server span started before this request's session was known.
        stamp_session(session_id)
    return Continued(session_id, session_var.set(session_id), trace_token, hidden)


def leave(entry: Continued) -> None:
    """Restore the session and trace from before :func:`enter`; see :func:`leave_trace`.

    Made for one entry that is left where it was entered (a task's prerun and
    postrun run in one thread); left in another context, the values from
    before are restored there, with a :class:`RuntimeWarning`.
    """
    reset(session_var, entry.session_token)
    leave_trace(entry)


def leave_trace(entry: Continued) -> None:
    """Restore the trace from before :func:`enter` (the session is the caller's to restore)."""
    if entry.hidden is not None:
        restore_span(entry.hidden)
    detach_trace(entry.trace_token)


def local_trace() -> TraceContext | None:
    """Return the local span in force, as a trace, or ``None`` (none, or a remote parent)."""
    # A local span in force (OpenTelemetry's server instrumentation started one
    # for this request) already continues the request: keep it, rather than
    # start a new trace beside it.
    trace = current_trace()
    return trace if trace is not None and not trace.is_remote else None


def _new_session_id() -> str:
    try:
        return fresh_session_id()
    except ValueError as error:
        # The wire path never raises: a bad $TRACECTRL_SESSION_ID gets a UUID here.
        _log.debug("started a UUID session instead: %s", error)
        return str(uuid.uuid4())
