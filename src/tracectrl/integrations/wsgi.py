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
from typing import TYPE_CHECKING, Callable, Optional

from tracectrl._wire import ALL_NAMES
from tracectrl.context import continue_session

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
    values are ignored and never raise.  Nothing is added to the response.

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
    """

    __slots__ = ("app",)

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Call the application in the caller's session and trace; return its body, wrapped."""
        headers = {name: environ[key] for name, key in _ENVIRON_KEYS if key in environ}
        # One context of its own for the whole request, the call and every step of
        # the body: what the application attaches while called (OpenTelemetry's
        # WSGI middleware, inside this one) is detached in the same context when
        # the body closes, and the worker thread's own context is never touched.
        context = copy_context()
        scope = continue_session(headers)
        body = context.run(_call_in_scope, scope, self.app, environ, start_response)
        if isinstance(body, (list, tuple)):
            context.run(scope.__exit__, None, None, None)
            return body
        return _BodyInContext(body, context, scope)


def _call_in_scope(
    scope: continue_session,
    app: WSGIApplication,
    environ: WSGIEnvironment,
    start_response: StartResponse,
) -> Iterable[bytes]:
    """Enter ``scope`` and call the application; if it raises, leave the scope first."""
    scope.__enter__()
    try:
        return app(environ, start_response)
    except BaseException as error:
        scope.__exit__(type(error), error, error.__traceback__)
        raise


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
