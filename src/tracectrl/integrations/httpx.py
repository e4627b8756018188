"""httpx: request hooks that send the current trace and session with every request.

Register the hook that matches the client::

    httpx.Client(event_hooks={"request": [add_propagation_headers]})
    httpx.AsyncClient(event_hooks={"request": [add_propagation_headers_async]})

Needs ``pip install ".[httpx]"`` from a tracectrl checkout.
"""

from __future__ import annotations

try:
    import httpx
except ImportError as error:
    raise ImportError(
        "tracectrl.integrations.httpx needs httpx: "
        'pip install ".[httpx]" from the root of a tracectrl checkout'
    ) from error

from tracectrl.integrations._outgoing import set_propagation_headers

__all__ = ["add_propagation_headers", "add_propagation_headers_async"]


def add_propagation_headers(request: httpx.Request) -> None:
    """Add the current trace and session to ``request``: the hook for ``httpx.Client``.

    The fields are :func:`~tracectrl.context.propagation_headers`'.  httpx
    runs request hooks for every request it sends, redirects included,
    in the calling thread.  Each gets ``traceparent``/``tracestate`` for the
    current trace (a new parent-id per request unless a local span is
    current), ``X-TraceCtrl-Session`` and ``baggage`` ``session.id``.  Those
    fields, if set by the caller, are replaced; other baggage members are
    kept.  With no current trace one is started; with no session no session
    field is sent.

    Args:
        request: the request httpx is about to send; its headers are changed in
            place.

    Returns:
        ``None``; nothing is raised.
    """
    set_propagation_headers(request.headers)


async def add_propagation_headers_async(request: httpx.Request) -> None:
    """The same as :func:`add_propagation_headers`, as the coroutine ``httpx.AsyncClient`` awaits.

    It runs in the task that sends the request, so the session and trace are
    that task's.

    Args:
        request: the request httpx is about to send; its headers are changed in
            place.

    Returns:
        ``None``, once awaited; nothing is raised.
    """
    set_propagation_headers(request.headers)
