"""The propagation fields on the wire: their names, and the session id's encoding in them.

Shared by :mod:`tracectrl.context` and every integration that reads or writes
these fields (OpenTelemetry's propagator, the server middlewares, the client
hooks), so that the names, the encoding and the rules for an incoming session
exist once.  Incoming values are untrusted: anything malformed, oversized or
invalid is ignored and logged at DEBUG, never raised.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from urllib.parse import unquote

from tracectrl._baggage import baggage_value, encode_baggage_value
from tracectrl._sessionvar import MAX_SESSION_ID_LENGTH, session_id_problem
from tracectrl._tracecontext import preview

SESSION_HEADER = "X-TraceCtrl-Session"
"""The header that carries the session id, percent-encoded."""
SIGNATURE_HEADER = "X-TraceCtrl-Session-Signature"
"""The header that carries the session's HMAC-SHA256 signature when a session key is set."""
BAGGAGE_SESSION_KEY = "session.id"
"""The W3C baggage key that carries the session id too, for OpenTelemetry peers."""
#: The longest session value read from the wire: every character of the longest
#: id as four UTF-8 bytes, each written ``%XX``.  Longer values are not decoded.
MAX_ENCODED_SESSION_ID_LENGTH = MAX_SESSION_ID_LENGTH * 4 * 3

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
BAGGAGE = "baggage"
#: The session header's name as incoming fields are looked up: lowercase.
SESSION_FIELD = SESSION_HEADER.lower()
SIGNATURE_FIELD = SIGNATURE_HEADER.lower()
TRACE_NAMES = frozenset((TRACEPARENT, TRACESTATE))
ALL_NAMES = frozenset((TRACEPARENT, TRACESTATE, BAGGAGE, SESSION_FIELD, SIGNATURE_FIELD))

_OWS = " \t"

_log = logging.getLogger("tracectrl.context")


def incoming_session_id(fields: dict[str, list[str]]) -> str | None:
    values = fields.get(SESSION_FIELD)
    if values:
        if len(values) == 1:
            session_id = decode_session_id(values[0], SESSION_HEADER)
            if session_id is not None:
                return session_id
        else:
            _log.debug("ignored %d %s fields: exactly one is valid", len(values), SESSION_HEADER)
    baggage = fields.get(BAGGAGE)
    if baggage:
        encoded = baggage_value(baggage, BAGGAGE_SESSION_KEY)
        if encoded is not None:
            return decode_session_id(encoded, f"baggage {BAGGAGE_SESSION_KEY}")
    return None


def decode_session_id(raw: str, source: str) -> str | None:
    text = raw.strip(_OWS)
    if len(text) > MAX_ENCODED_SESSION_ID_LENGTH:
        _log.debug(
            "ignored %s of %d characters: at most %d are read",
            source,
            len(text),
            MAX_ENCODED_SESSION_ID_LENGTH,
        )
        return None
    # Printable ASCII: visible characters and the space.  Senders encode a space
    # as %20, but a raw one inside the value is a space for HTTP and is read as one.
    if not (text.isascii() and text.isprintable()):
        _log.debug("ignored %s %s: only printable ASCII is read", source, preview(text))
        return None
    if "," in text:
        # A sender encodes a comma; a raw one is several fields joined into one
        # (as WSGI servers do), which is as ambiguous as two separate fields.
        _log.debug("ignored %s %s: several values", source, preview(text))
        return None
    if "%" in text:
        try:
            text = unquote(text, errors="strict")
        except UnicodeDecodeError:
            _log.debug("ignored %s %s: not percent-encoded UTF-8", source, preview(raw))
            return None
    elif 0 < len(text) <= MAX_SESSION_ID_LENGTH:
        # Printable and nothing decoded: the id rules below would only check
        # these again (one call fewer per continued request).
        return text
    problem = session_id_problem(text)
    if problem is not None:
        _log.debug("ignored %s %s: %s", source, preview(raw), problem)
        return None
    return text


@lru_cache(maxsize=256)
def encode_session_id(session_id: str) -> str | None:
    # Cached: one session makes many calls.  Only the unreserved URL
    # characters stay as they are, so the value is visible ASCII and fits both
    # the session header and a baggage value.
    problem = session_id_problem(session_id)
    if problem is not None:
        _log.debug("did not send the current session id: %s", problem)
        return None
    return encode_baggage_value(session_id)
