"""requests: a ``Session`` that sends the current trace and session with every request.

Use it wherever a :class:`requests.Session` is used::

    with PropagatingSession() as http:
        http.post("http://agent-b/api", json=payload)

Needs ``pip install ".[requests]"`` from a tracectrl checkout.
"""

from __future__ import annotations

from typing import Any

try:
    import requests
except ImportError as error:
    raise ImportError(
        "tracectrl.integrations.requests needs requests: "
        'pip install ".[requests]" from the root of a tracectrl checkout'
    ) from error

from tracectrl.integrations._outgoing import set_propagation_headers

__all__ = ["PropagatingSession"]


class PropagatingSession(requests.Session):
    """A :class:`requests.Session` that sends the current trace and session with every request.

    The fields are :func:`~tracectrl.context.propagation_headers`'.  Each
    request, redirects included, gets ``traceparent``/``tracestate`` for
    the current trace (a new parent-id per request unless a local span is
    current), ``X-TraceCtrl-Session`` and ``baggage`` ``session.id``, read in
    the thread that sends it.  Those fields, if set by the caller, are
    replaced; other baggage members are kept.  With no current trace one is
    started; with no session no session field is sent.  Everything else
    (adapters, retries, auth) is :class:`requests.Session`'s.
    """

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Add the propagation fields to ``request``, then send it as the base class does."""
        set_propagation_headers(request.headers)
        return super().send(request, **kwargs)
