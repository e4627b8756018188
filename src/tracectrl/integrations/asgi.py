"""ASGI: continue the caller's session and trace for every request, in any ASGI application.

Wrap the application, or add the middleware the framework's way::

    app = SessionMiddleware(app)                      # any ASGI app
    app.add_middleware(SessionMiddleware)             # Starlette, FastAPI

Inside a handler, :func:`tracectrl.current_session_id` is the caller's session
and :func:`tracectrl.context.propagation_headers` continues the caller's
trace.  Needs no extra: the middleware speaks plain ASGI 3.
"""

from __future__ import annotations

from collections.abc import Awaitable, MutableMapping
from typing import Any, Callable

from tracectrl.context import continue_session

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send", "SessionMiddleware"]

# The ASGI types as asgiref and Starlette spell them, so that applications and
# middleware typed against either fit here.  The values of a scope or message
# depend on its "type" key: the specification gives them no narrower type.
Scope = MutableMapping[str, Any]
"""The connection scope an ASGI server passes to the application."""
Message = MutableMapping[str, Any]
"""One event received from, or sent to, the ASGI server."""
Receive = Callable[[], Awaitable[Message]]
"""The awaitable callable that receives the next event."""
Send = Callable[[Message], Awaitable[None]]
"""The awaitable callable that sends an event."""
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI 3 application."""

_CONNECTIONS = frozenset(("http", "websocket"))


class SessionMiddleware:
    """Run each HTTP request and WebSocket connection in the caller's session and trace.

    Each runs inside :class:`~tracectrl.context.continue_session`: the
    session comes from ``X-TraceCtrl-Session`` (else ``baggage``
    ``session.id``, else a new one) and the trace from ``traceparent`` and
    ``tracestate`` (else a new one); malformed, oversized or control-character
    values are ignored and never raise.  Both are in force for the whole
    request or connection, in the handler and in everything it starts with
    its context (tasks, Starlette's thread pool for ``def`` endpoints), and are
    restored when the application returns or raises, so no request ever sees
    another's session.  Nothing is added to the response: no incoming value is
    echoed back.  ``lifespan`` and other scope types pass through untouched.
    """

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one connection: the application runs in the caller's session and trace."""
        if scope.get("type") not in _CONNECTIONS:
            await self.app(scope, receive, send)
            return
        with continue_session(scope.get("headers", ())):
            await self.app(scope, receive, send)
