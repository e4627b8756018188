"""Two agents, written as users write them, that export their spans to Phoenix over OTLP/HTTP.

Each agent is its own process with its own ``TracerProvider`` (as two services
are), so OpenTelemetry's global state never leaks into the test process:

* ``agents.py agent-b OTLP PROJECT``: Agent B, a WSGI service on a free port of
  127.0.0.1, wrapped in OpenTelemetry's WSGI middleware with tracectrl's
  ``SessionMiddleware`` inside it (the documented order).  Its handler is a
  ``@with_session(span=...)`` function: it joins the caller's session and adds
  a span.  It prints its URL, serves until its stdin closes, then
  flushes its spans and exits.
* ``agents.py agent-a OTLP PROJECT B_URL K T``: Agent A runs K conversations at
  once, one thread each.  A conversation starts with ``@with_session(new=True)``;
  each of its T turns is a unit of work under that session, with a span
  (``session_scope(sid, span=...)``), and calls B through tracectrl's
  ``PropagatingSession`` with OpenTelemetry's ``requests`` instrumentation
  (whose client span is the parent of B's server span).  It prints, as JSON,
  each conversation's session and the trace id of each of its turns, after
  flushing its spans.

Every span carries ``agent`` (``"A"`` or ``"B"``), so the test can tell whose it is.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Optional
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tracectrl import current_session_id, session_scope, with_session
from tracectrl.context import current_trace
from tracectrl.integrations.otel import SessionSpanProcessor
from tracectrl.integrations.requests import PropagatingSession
from tracectrl.integrations.wsgi import SessionMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

#: The span attribute that names the agent a span belongs to.
AGENT_ATTRIBUTE = "agent"


class _AgentName(SpanProcessor):
    """Stamp every span with the name of the agent (process) that made it."""

    def __init__(self, agent: str) -> None:
        self.agent = agent

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        span.set_attribute(AGENT_ATTRIBUTE, self.agent)


def tracer_provider(agent: str, otlp: str, project: str) -> TracerProvider:
    """The global SDK provider of one agent: ``session.id`` on every span, exported to ``otlp``."""
    resource = Resource.create(
        {"service.name": f"agent-{agent.lower()}", "openinference.project.name": project}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SessionSpanProcessor())
    provider.add_span_processor(_AgentName(agent))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp.rstrip('/')}/v1/traces"))
    )
    trace.set_tracer_provider(provider)  # span= on tracectrl's scopes uses the global one
    return provider


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def agent_b(otlp: str, project: str) -> None:
    """Serve Agent B on a free port of 127.0.0.1 until stdin closes; print its URL first."""
    provider = tracer_provider("B", otlp, project)

    @with_session(span="agent B answers")
    def answer(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        body = json.dumps({"session": current_session_id()}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    app = OpenTelemetryMiddleware(SessionMiddleware(answer), tracer_provider=provider)
    server = make_server(
        "127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        print(f"http://127.0.0.1:{server.server_address[1]}/", flush=True)
        sys.stdin.read()  # returns when the test closes the pipe or exits
    finally:
        server.shutdown()
        server.server_close()
        provider.shutdown()


def agent_a(otlp: str, project: str, agent_b_url: str, conversations: int, turns: int) -> None:
    """Run the conversations against Agent B; print each one's session and turn traces."""
    provider = tracer_provider("A", otlp, project)
    RequestsInstrumentor().instrument(tracer_provider=provider)

    @with_session(new=True)
    def open_conversation() -> str:
        session_id = current_session_id()
        assert session_id is not None
        return session_id

    def turn(session_id: str, prompt: str, http: PropagatingSession) -> str:
        with session_scope(session_id, span="agent A turn"):
            response = http.post(agent_b_url, json={"prompt": prompt})
            response.raise_for_status()
            if response.json()["session"] != session_id:
                raise AssertionError(f"B answered under {response.json()['session']!r}")
            turn_trace = current_trace()
            assert turn_trace is not None
            return turn_trace.trace_id

    def converse(n: int) -> dict[str, object]:
        session_id = open_conversation()
        with PropagatingSession() as http:
            traces = [turn(session_id, f"conversation {n}, turn {t}", http) for t in range(turns)]
        return {"session": session_id, "traces": traces}

    try:
        with ThreadPoolExecutor(conversations) as users:
            results = list(users.map(converse, range(conversations)))
    finally:
        RequestsInstrumentor().uninstrument()
        provider.shutdown()
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    role, *arguments = sys.argv[1:]
    if role == "agent-b":
        agent_b(*arguments)
    elif role == "agent-a":
        otlp, project, url, k, t = arguments
        agent_a(otlp, project, url, int(k), int(t))
    else:
        sys.exit(f"unknown role {role!r}: agent-a or agent-b")
