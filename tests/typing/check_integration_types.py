"""Static checks of the integrations' public types: mypy --strict runs this file, never pytest."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import fastapi
import flask
import httpx
import requests
import structlog
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from starlette.applications import Starlette
from starlette.middleware import Middleware
from typing_extensions import assert_type

from tracectrl.integrations.asgi import ASGIApp, Receive, Scope, Send, SessionMiddleware
from tracectrl.integrations.httpx import add_propagation_headers, add_propagation_headers_async
from tracectrl.integrations.logging import SessionLogFilter
from tracectrl.integrations.otel import (
    SESSION_ID_ATTRIBUTE,
    SessionPropagator,
    SessionSpanProcessor,
)
from tracectrl.integrations.requests import PropagatingSession
from tracectrl.integrations.structlog import add_session_context
from tracectrl.integrations.wsgi import SessionMiddleware as WSGISessionMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

# OpenTelemetry
processor: SpanProcessor = SessionSpanProcessor()
TracerProvider().add_span_processor(SessionSpanProcessor())
propagator: TextMapPropagator = SessionPropagator()
assert_type(SessionPropagator().extract({"x-tracectrl-session": "s"}), Context)
assert_type(SessionPropagator().inject({}), None)
assert_type(SessionPropagator().fields, set[str])
assert_type(SESSION_ID_ATTRIBUTE, str)

# logging and structlog
log_filter: logging.Filter = SessionLogFilter()
assert_type(SessionLogFilter().filter(logging.makeLogRecord({})), bool)
structlog.configure(processors=[add_session_context, structlog.processors.JSONRenderer()])
assert_type(add_session_context(None, "info", {"event": "x"}), structlog.typing.EventDict)

# ASGI: any ASGI app in, an ASGI app out; Starlette and FastAPI take the class as is.
starlette_app = Starlette(middleware=[Middleware(SessionMiddleware)])
starlette_app.add_middleware(SessionMiddleware)
fastapi.FastAPI().add_middleware(SessionMiddleware)
wrapped: ASGIApp = SessionMiddleware(Starlette())
twice: ASGIApp = SessionMiddleware(SessionMiddleware(fastapi.FastAPI()))


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None: ...


assert_type(SessionMiddleware(raw_app).app, ASGIApp)
SessionMiddleware("not an app")  # type: ignore[arg-type]

# WSGI: any WSGI app in, a WSGI app out.
flask_app = flask.Flask(__name__)
wsgi_app: WSGIApplication = WSGISessionMiddleware(flask_app.wsgi_app)
wsgi_twice: WSGIApplication = WSGISessionMiddleware(WSGISessionMiddleware(flask_app))
WSGISessionMiddleware(raw_app)  # type: ignore[arg-type]

# The middlewares' options: trust gets the ASGI scope / WSGI environ.
starlette_app.add_middleware(
    SessionMiddleware,
    trust=lambda scope: scope["path"] != "/public",
    key=["new", b"old"],
    continue_untrusted_trace=False,
    exclude_paths=["/health"],
    echo_session=True,
)
WSGISessionMiddleware(
    flask_app.wsgi_app,
    trust=lambda environ: environ.get("REMOTE_ADDR") == "127.0.0.1",
    key="k",
    exclude_paths={"/health"},
    echo_session=True,
)
SessionMiddleware(raw_app, exclude_paths=[1])  # type: ignore[list-item]

# Clients
http: requests.Session = PropagatingSession()
assert_type(PropagatingSession().get("http://127.0.0.1"), requests.Response)
assert_type(add_propagation_headers(httpx.Request("GET", "http://127.0.0.1")), None)
httpx.Client(event_hooks={"request": [add_propagation_headers]})
httpx.AsyncClient(event_hooks={"request": [add_propagation_headers_async]})


async def async_hook_returns_none(request: httpx.Request) -> None:
    assert_type(await add_propagation_headers_async(request), None)
