"""Two agents over real HTTP with the real OpenTelemetry SDK: one trace, one session, both sides.

Agent A is the test thread; agent B is a server on 127.0.0.1.  Either side
uses tracectrl's integrations, or only OpenTelemetry's own instrumentations
with ``OTEL_PROPAGATORS=tracecontext,baggage,tracectrl_session``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable

import flask
import httpx
import pytest
import requests
from _servers import serving_asgi, serving_wsgi
from _tracing import Tracing
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware as OtelASGIMiddleware
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as OtelWSGIMiddleware
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tracectrl import current_session_id, session_scope
from tracectrl.integrations.asgi import SessionMiddleware as SessionASGIMiddleware
from tracectrl.integrations.httpx import add_propagation_headers
from tracectrl.integrations.otel import CONVERSATION_ID_ATTRIBUTE, SESSION_ID_ATTRIBUTE
from tracectrl.integrations.requests import PropagatingSession
from tracectrl.integrations.wsgi import SessionMiddleware as SessionWSGIMiddleware


def test_agents_over_asgi_share_trace_and_session_on_their_spans(tracing: Tracing) -> None:
    tracer_b = tracing.provider.get_tracer("agent-b")

    async def agent_b(request: Request) -> JSONResponse:
        with tracer_b.start_as_current_span("agent-b"):
            return JSONResponse({"session": current_session_id()})

    app = Starlette(routes=[Route("/", agent_b)], middleware=[Middleware(SessionASGIMiddleware)])
    with serving_asgi(app) as url, PropagatingSession() as http:
        session_id, body = _call_as_agent_a(lambda: http.get(url).json(), tracing)

    spans = _by_name(tracing)
    a, b = spans["agent-a"], spans["agent-b"]
    assert a.context is not None
    assert b.context is not None
    assert b.parent is not None
    assert b.context.trace_id == a.context.trace_id
    assert b.parent.span_id == a.context.span_id
    assert b.parent.is_remote
    assert (
        a.attributes
        == b.attributes
        == {
            SESSION_ID_ATTRIBUTE: session_id,
            CONVERSATION_ID_ATTRIBUTE: session_id,
        }
    )
    assert body["session"] == session_id


def test_agents_over_wsgi_share_trace_and_session_on_their_spans(tracing: Tracing) -> None:
    tracer_b = tracing.provider.get_tracer("agent-b")
    flask_app = flask.Flask("agent_b")

    @flask_app.get("/")
    def agent_b() -> dict[str, object]:
        with tracer_b.start_as_current_span("agent-b"):
            return {"session": current_session_id()}

    flask_app.wsgi_app = SessionWSGIMiddleware(flask_app.wsgi_app)
    hooks = {"request": [add_propagation_headers]}
    with serving_wsgi(flask_app) as url, httpx.Client(event_hooks=hooks) as http:
        session_id, body = _call_as_agent_a(lambda: http.get(url).json(), tracing)

    spans = _by_name(tracing)
    a, b = spans["agent-a"], spans["agent-b"]
    assert a.context is not None
    assert b.context is not None
    assert b.parent is not None
    assert b.context.trace_id == a.context.trace_id
    assert b.parent.span_id == a.context.span_id
    assert (
        a.attributes
        == b.attributes
        == {
            SESSION_ID_ATTRIBUTE: session_id,
            CONVERSATION_ID_ATTRIBUTE: session_id,
        }
    )
    assert body["session"] == session_id


@pytest.mark.usefixtures("otel_propagators_from_environment")
def test_requests_to_asgi_carry_the_session_with_only_opentelemetry_instrumentation(
    tracing: Tracing,
) -> None:
    async def agent_b(request: Request) -> JSONResponse:
        return JSONResponse({"session": current_session_id()})

    app = OtelASGIMiddleware(
        Starlette(routes=[Route("/", agent_b)]), tracer_provider=tracing.provider
    )
    instrumentor = RequestsInstrumentor()
    instrumentor.instrument(tracer_provider=tracing.provider)
    try:
        with serving_asgi(app) as url, requests.Session() as http:
            with session_scope() as session_id:
                first = http.get(url).json()
            second = http.get(url).json()
    finally:
        instrumentor.uninstrument()

    assert first == {"session": session_id}
    assert second == {"session": None}
    _assert_client_parents_server(tracing, session_id)


@pytest.mark.usefixtures("otel_propagators_from_environment")
def test_httpx_to_wsgi_carry_the_session_with_only_opentelemetry_instrumentation(
    tracing: Tracing,
) -> None:
    flask_app = flask.Flask("agent_b")

    @flask_app.get("/")
    def agent_b() -> dict[str, object]:
        return {"session": current_session_id(), "thread": threading.get_ident()}

    flask_app.wsgi_app = OtelWSGIMiddleware(flask_app.wsgi_app, tracer_provider=tracing.provider)
    with serving_wsgi(flask_app, worker_threads=1) as url, httpx.Client() as http:
        HTTPXClientInstrumentor.instrument_client(http, tracer_provider=tracing.provider)
        with session_scope() as session_id:
            first = http.get(url).json()
        second = http.get(url).json()  # on the same, reused, server thread

    assert first["session"] == session_id
    assert second["thread"] == first["thread"]
    assert second["session"] is None
    _assert_client_parents_server(tracing, session_id)


@pytest.mark.parametrize(
    "traceparent",
    [None, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"],
    ids=["no-traceparent", "traceparent"],
)
def test_handler_spans_stay_children_of_opentelemetrys_server_span_under_both_middlewares(
    tracing: Tracing, traceparent: str | None
) -> None:
    tracer = tracing.provider.get_tracer("agent-b")

    async def agent_b(request: Request) -> JSONResponse:
        with tracer.start_as_current_span("handler"):
            return JSONResponse({"session": current_session_id()})

    inner = Starlette(routes=[Route("/", agent_b)], middleware=[Middleware(SessionASGIMiddleware)])
    app = OtelASGIMiddleware(inner, tracer_provider=tracing.provider)
    headers = {"X-TraceCtrl-Session": "both"}
    if traceparent is not None:
        headers["traceparent"] = traceparent

    async def call() -> Any:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://agent-b") as client:
            return (await client.get("/", headers=headers)).json()

    assert asyncio.run(call()) == {"session": "both"}
    spans = tracing.exporter.get_finished_spans()
    (server,) = [span for span in spans if span.kind is SpanKind.SERVER]
    handler = _by_name(tracing)["handler"]
    assert server.context is not None
    assert handler.context is not None
    assert handler.parent is not None
    assert handler.context.trace_id == server.context.trace_id
    assert handler.parent.span_id == server.context.span_id
    assert handler.attributes == {SESSION_ID_ATTRIBUTE: "both", CONVERSATION_ID_ATTRIBUTE: "both"}


def _call_as_agent_a(call: Callable[[], Any], tracing: Tracing) -> tuple[str, Any]:
    """Make the call in a new session, inside agent A's span; return the session and the result."""
    tracer = tracing.provider.get_tracer("agent-a")
    with session_scope() as session_id, tracer.start_as_current_span("agent-a"):
        return session_id, call()


def _assert_client_parents_server(tracing: Tracing, session_id: str) -> None:
    """The first request's client span is its server span's parent; both carry the session."""
    spans = tracing.exporter.get_finished_spans()
    clients = [span for span in spans if span.kind is SpanKind.CLIENT]
    servers = [span for span in spans if span.kind is SpanKind.SERVER]
    assert len(clients) == len(servers) == 2
    client, server = clients[0], servers[0]
    assert client.context is not None
    assert server.context is not None
    assert server.parent is not None
    assert server.context.trace_id == client.context.trace_id
    assert server.parent.span_id == client.context.span_id
    assert client.attributes is not None
    assert server.attributes is not None
    assert client.attributes[SESSION_ID_ATTRIBUTE] == session_id
    assert server.attributes[SESSION_ID_ATTRIBUTE] == session_id
    assert SESSION_ID_ATTRIBUTE not in (clients[1].attributes or {})
    assert SESSION_ID_ATTRIBUTE not in (servers[1].attributes or {})


def _by_name(tracing: Tracing) -> dict[str, ReadableSpan]:
    return {span.name: span for span in tracing.exporter.get_finished_spans()}
