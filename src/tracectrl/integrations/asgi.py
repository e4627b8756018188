"""ASGI: continue the caller's session and trace for every request, in any ASGI application.

Wrap the application, or add the middleware the framework's way::

    app = SessionMiddleware(app)                      # any ASGI app
    app.add_middleware(SessionMiddleware)             # Starlette, FastAPI

Inside a handler, :func:`tracectrl.current_session_id` is the caller's session
and :func:`tracectrl.context.propagation_headers` continues the caller's
trace.  Needs no extra: the middleware speaks plain ASGI 3.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, MutableMapping
from typing import Any, Callable, Optional

from tracectrl._trust import (
    SessionKeys,
    exact_paths,
    session_keys,
    trust_for_request,
    warn_if_session_env_set,
)
from tracectrl._wire import SESSION_FIELD, encode_session_id
from tracectrl.context import continue_session
from tracectrl.integrations._server_order import move_inside_opentelemetry

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
    another's session.  ``lifespan`` and other scope types pass through untouched.

    Options (all keyword-only, all off by default):

    * ``trust``: a callable given the ASGI ``scope`` (``scope["client"]``,
      ``scope["path"]``, ``scope["headers"]``) that answers whether this
      caller may set the session.  An untrusted caller's session is ignored
      (a new one is started); its trace is still continued unless
      ``continue_untrusted_trace=False``.
    * ``key``: the session key(s); without it ``$TRACECTRL_SESSION_KEY`` is
      used if set.  With a key, only sessions signed with it are adopted (see
      :class:`~tracectrl.context.continue_session`).
    * ``exclude_paths``: exact paths (``["/health"]``) whose requests run
      with no continued session and no trace of the caller's.
    * ``echo_session``: add ``X-TraceCtrl-Session`` (the session the request
      ran in, percent-encoded) to every HTTP response.  Off, nothing is added
      to the response, so no incoming value is echoed back.

    A ``$TRACECTRL_SESSION_ID`` set in the server process warns once
    (:class:`RuntimeWarning`): it would merge every request that brings no
    session into one.

    OpenTelemetry's server middleware, when this one wraps it (directly or
    through middleware that keep the application they wrap in ``.app``),
    would start its span as INTERNAL under the caller's trace put in force
    here: this middleware then does its work inside OpenTelemetry's instead,
    with the same options, so the server span stays SERVER.

    Raises:
        TypeError: ``key`` is not text, bytes or a sequence of them, or
            ``exclude_paths`` is a single string.
    """

    __slots__ = (
        "_continue_untrusted_trace",
        "_echo",
        "_exclude",
        "_keys",
        "_moved_inside",
        "_trust",
        "app",
    )

    def __init__(
        self,
        app: ASGIApp,
        *,
        trust: Optional[Callable[[Scope], bool]] = None,
        key: Optional[SessionKeys] = None,
        continue_untrusted_trace: bool = True,
        exclude_paths: Iterable[str] = (),
        echo_session: bool = False,
    ) -> None:
        self.app = app
        self._trust = trust
        self._keys = None if key is None else session_keys(key)
        self._continue_untrusted_trace = continue_untrusted_trace
        self._exclude = exact_paths(exclude_paths)
        self._echo = echo_session
        warn_if_session_env_set()
        # OpenTelemetry's server middleware below this one: do this one's work inside
        # it, so that its server span starts first and keeps its kind (see _server_order).
        self._moved_inside = False
        self._moved_inside = move_inside_opentelemetry(
            self, "opentelemetry.instrumentation.asgi", "app"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one connection: the application runs in the caller's session and trace."""
        if (
            self._moved_inside
            or scope.get("type") not in _CONNECTIONS
            or scope.get("path") in self._exclude
        ):
            await self.app(scope, receive, send)
            return
        trust = self._trust
        with continue_session(
            scope.get("headers", ()),
            trust=None if trust is None else trust_for_request(trust, scope),
            key=self._keys,
            continue_untrusted_trace=self._continue_untrusted_trace,
        ) as session_id:
            if self._echo and scope["type"] == "http":
                send = _echoing(send, session_id)
            await self.app(scope, receive, send)


def _echoing(send: Send, session_id: str) -> Send:
    """Return ``send`` with the session header added to the response's start."""
    encoded = encode_session_id(session_id)
    if encoded is None:
        return send
    field = (SESSION_FIELD.encode(), encoded.encode())

    async def send_with_session(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), field]}
        await send(message)

    return send_with_session
