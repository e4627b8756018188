"""A session kept in OpenTelemetry's context rather than in tracectrl's ContextVar.

Two kinds reach :func:`tracectrl.current_session_id` from there:

* a session that :class:`tracectrl.integrations.otel.SessionPropagator`
  extracted from an incoming request (:func:`carry` stores it);
* a session that OpenInference's ``using_session(...)`` or
  ``using_attributes(session_id=...)`` set, under its ``session.id`` key.

:mod:`tracectrl.session` imports this module the first time it finds no
tracectrl session in force, and only if ``opentelemetry-api`` imports, so
``import tracectrl`` stays free of OpenTelemetry's import time.  This is the
one seam between the session and OpenTelemetry's context; nothing switches it
on by being imported.
"""

from __future__ import annotations

import logging
from typing import NamedTuple, Optional

from opentelemetry.context import Context, create_key, get_current, set_value

from tracectrl import _sessionvar
from tracectrl._sessionvar import session_id_problem, session_var

#: The key OpenInference's ``using_session`` and ``using_attributes`` set in
#: OpenTelemetry's context (its ``SpanAttributes.SESSION_ID``).
OPENINFERENCE_SESSION_KEY = "session.id"

_log = logging.getLogger("tracectrl")


class CarriedSession(NamedTuple):
    """A session the ``tracectrl_session`` propagator extracted, in OpenTelemetry's context."""

    #: The request's session; ``None`` when it came with none (the request still
    #: shadows whatever session was in force around it).
    session_id: Optional[str]
    #: The session tracectrl had in force when this one was extracted.
    shadowed: Optional[str]


CARRIED_KEY = create_key("tracectrl-session")


def carry(session_id: str | None, context: Context) -> Context:
    """Return ``context`` carrying ``session_id``, extracted from a request, for the work under it.

    ``None`` marks a request that brought no session: under it, the session
    that was in force around the request is not in force either, so none that
    an earlier request left on a reused thread outlives that request.

    From the first call on, :func:`tracectrl.current_session_id` looks here
    even when a tracectrl session is in force, since a carried session wins over
    the one that was in force around its request (see :func:`choose`).
    """
    _sessionvar.carried_sessions_exist = True
    return set_value(CARRIED_KEY, CarriedSession(session_id, session_var.get()), context)


def session_in_current_context(local: str | None) -> str | None:
    """Return the session in force given tracectrl's own: what ``current_session_id`` returns."""
    values = get_current()
    carried = values.get(CARRIED_KEY)
    named = values.get(OPENINFERENCE_SESSION_KEY)
    if carried is None and named is None:  # the usual case: no second lookup
        return local
    return choose(local, carried, named)


def session_in(context: Context | None) -> str | None:
    """Return the session in force for work under ``context`` (``None``: the current context)."""
    current = get_current()
    carried = None if context is None else context.get(CARRIED_KEY)
    if carried is None:
        carried = current.get(CARRIED_KEY)
    named = None if context is None else context.get(OPENINFERENCE_SESSION_KEY)
    if named is None:
        named = current.get(OPENINFERENCE_SESSION_KEY)
    return choose(session_var.get(), carried, named)


def session_to_send(context: Context | None) -> str | None:
    """Return the session to write into a carrier for ``context`` (``None``: the current one).

    A context of the work running here (the current one, or one made from it:
    the same extracted and OpenInference sessions) sends what
    :func:`session_in` finds, tracectrl's session included.  Any other context
    (captured in another request, or an empty one) sends only the session it
    holds itself, so that a carrier never pairs that context's trace with the
    session of the code that happens to inject it.
    """
    current = get_current()
    if context is None:
        context = current
    carried = context.get(CARRIED_KEY)
    named = context.get(OPENINFERENCE_SESSION_KEY)
    here = carried is current.get(CARRIED_KEY) and named is current.get(OPENINFERENCE_SESSION_KEY)
    return choose(session_var.get() if here else None, carried, named)


def choose(local: str | None, carried: object, named: object) -> str | None:
    """Choose between tracectrl's session, a carried one and OpenInference's.

    Newest first: a session tracectrl code set is in force while its scope
    lasts; else one OpenInference's ``using_session`` set in this process;
    else one extracted for the request being handled.  The extracted one also
    wins over the tracectrl session that was in force around the request
    (``shadowed``: one set at start-up, say), since it is newer.  An
    OpenInference value that is not a valid session id is ignored.
    """
    extracted = carried if isinstance(carried, CarriedSession) else None
    if local is not None and (extracted is None or local is not extracted.shadowed):
        return local
    if named is not None:
        if type(named) is str and session_id_problem(named) is None:
            return named
        _log.debug("ignored an OpenInference session id that is not a valid session id")
    return local if extracted is None else extracted.session_id
