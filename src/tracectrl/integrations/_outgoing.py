"""The propagation fields on an outgoing request's headers, for the client integrations."""

from __future__ import annotations

from collections.abc import MutableMapping

from tracectrl._headers import header_values
from tracectrl._wire import ALL_NAMES, BAGGAGE, SIGNATURE_FIELD
from tracectrl.context import propagation_headers

#: The fields whose caller-set values are removed when no current value replaces them.
_REPLACED = ALL_NAMES - {SIGNATURE_FIELD}


def set_propagation_headers(headers: MutableMapping[str, str]) -> None:
    """Replace the trace and session fields of case-insensitive ``headers`` with the current ones.

    ``headers`` is a client's own case-insensitive mapping (``requests``' or
    ``httpx``'s): only the propagation fields are touched, other fields (and
    their repeats) stay as they are.  Baggage members already there are kept,
    with ``session.id`` merged in; a stale field with nothing to replace it
    (a ``tracestate`` when the current trace has none) is removed.  A session
    signature the caller set is kept unless one is written here (with
    ``$TRACECTRL_SESSION_KEY`` set): one made with ``propagation_headers(key=...)``
    holds for the session and trace-id sent, and a receiver checks it anyway.
    """
    baggage = header_values(headers, BAGGAGE)
    fresh = propagation_headers({BAGGAGE: ",".join(baggage)} if baggage else None)
    for name, value in fresh.items():
        headers[name] = value
    for name in _REPLACED.difference(field.lower() for field in fresh):
        if name in headers:
            del headers[name]
