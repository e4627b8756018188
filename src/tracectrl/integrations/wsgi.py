"""WSGI: continue the caller's session and trace for every request, in any WSGI application.

Wrap the WSGI callable::

    app.wsgi_app = SessionMiddleware(app.wsgi_app)    # Flask
    application = SessionMiddleware(get_wsgi_application())    # Django, in wsgi.py

Inside a view, :func:`tracectrl.current_session_id` is the caller's session
and :func:`tracectrl.context.propagation_headers` continues the caller's
trace.  Needs no extra: the middleware speaks plain WSGI (PEP 3333).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextvars import Context, copy_context
from typing import TYPE_CHECKING, Any, Callable, Optional

from tracectrl._trust import (
    SessionKeys,
    exact_paths,
    session_keys,
    trust_for_request,
    warn_if_session_env_set,
)
from tracectrl._wire import ALL_NAMES, SESSION_HEADER, encode_session_id
from tracectrl.context import continue_session
from tracectrl.integrations._server_order import move_inside_opentelemetry

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["SessionMiddleware"]

# The incoming fields continue_session reads, and where PEP 3333 puts them.
_ENVIRON_KEYS = tuple((name, "HTTP_" + name.upper().replace("-", "_")) for name in ALL_NAMES)


class SessionMiddleware:
    """Run each request inside :class:`~tracectrl.context.continue_session`, body included.

    The session comes from ``X-TraceCtrl-Session`` (else ``baggage``
    ``session.id``, else a new one) and the trace from ``traceparent`` and
    ``tracestate`` (else a new one); malformed, oversized or control-character
    values are ignored and never raise.  Nothing is added to the response
    unless ``echo_session`` asks for it.

    The session and trace are in force while the application is called and
    again, in the same context, for every step of a streamed response body
    and for its ``close()``, however late the server iterates it; between
    steps and after the request the worker thread holds none of them, so a
    thread the server reuses never carries one request's session into the
    next, even if the server forgets ``close()``.  A body that is a list or
    tuple runs no code while sent and is returned as it is.  The call and the
    body share one context of the request's own, so a middleware inside this
    one that attaches while called and detaches when the body closes
    (OpenTelemetry's WSGI middleware) finds its token where it left it.

    Options (all keyword-only, all off by default), as for the ASGI
    :class:`~tracectrl.integrations.asgi.SessionMiddleware`: ``trust``, a
    callable given the WSGI ``environ`` (``REMOTE_ADDR``, ``PATH_INFO``,
    ``HTTP_*``) that answers whether this caller may set the session (an
    untrusted caller gets a new session, and its trace is still continued
    unless ``continue_untrusted_trace=False``); ``key``, the session key(s)
    (else ``$TRACECTRL_SESSION_KEY``), with which only signed sessions are
    adopted; ``exclude_paths``, exact ``PATH_INFO`` values whose requests run
    with no continued session; ``echo_session``, which adds
    ``X-TraceCtrl-Session`` to every response.  A ``$TRACECTRL_SESSION_ID``
    set in the server process warns once (:class:`RuntimeWarning`).

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
        app: WSGIApplication,
        *,
        trust: Optional[Callable[[WSGIEnvironment], bool]] = None,
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
            self, "opentelemetry.instrumentation.wsgi", "wsgi"
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Call the application in the caller's session and trace; return its body, wrapped."""
        if self._moved_inside or environ.get("PATH_INFO") in self._exclude:
            return self.app(environ, start_response)
        headers = {name: environ[key] for name, key in _ENVIRON_KEYS if key in environ}
        trust = self._trust
        scope = continue_session(
            headers,
            trust=None if trust is None else trust_for_request(trust, environ),
            key=self._keys,
            continue_untrusted_trace=self._continue_untrusted_trace,
        )
        # One context of its own for the whole request, the call and every step of
        # the body: what the application attaches while called (OpenTelemetry's
        # WSGI middleware, inside this one) is detached in the same context when
        # the body closes, and the worker thread's own context is never touched.
        context = copy_context()
        body = context.run(_call_in_scope, scope, self.app, environ, start_response, self._echo)
        if isinstance(body, (list, tuple)):
            context.run(scope.__exit__, None, None, None)
            return body
        return _BodyInContext(body, context, scope)


def _call_in_scope(
    scope: continue_session,
    app: WSGIApplication,
    environ: WSGIEnvironment,
    start_response: StartResponse,
    echo: bool,
) -> Iterable[bytes]:
    """Enter ``scope`` and call the application; if it raises, leave the scope first."""
    session_id = scope.__enter__()
    if echo:
        start_response = _echoing(start_response, session_id)
    try:
        return app(environ, start_response)
    except BaseException as error:
        scope.__exit__(type(error), error, error.__traceback__)
        raise


def _echoing(start_response: StartResponse, session_id: str) -> StartResponse:
    """Return ``start_response`` with the session header added to the response's headers."""
    encoded = encode_session_id(session_id)
    if encoded is None:
        return start_response

    def start_with_session(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
        return start_response(status, [*headers, (SESSION_HEADER, encoded)], *args)

    return start_with_session


class _BodyInContext:
    """A response body whose every step, and ``close()``, runs in the request's context."""

    __slots__ = ("_body", "_context", "_iterator", "_scope")

    def __init__(self, body: Iterable[bytes], context: Context, scope: continue_session) -> None:
        self._body = body
        self._context = context
        self._scope: Optional[continue_session] = scope
        self._iterator: Optional[Iterator[bytes]] = None

    def __iter__(self) -> _BodyInContext:
        return self

    def __next__(self) -> bytes:
        iterator = self._iterator
        if iterator is None:
            iterator = self._iterator = self._context.run(iter, self._body)
        return self._context.run(next, iterator)

    def close(self) -> None:
        close: Optional[Callable[[], object]] = getattr(self._body, "close", None)
        try:
            if close is not None:
                self._context.run(close)
        finally:
            scope, self._scope = self._scope, None
            if scope is not None:  # the request ends here, in its own context
                self._context.run(scope.__exit__, None, None, None)
