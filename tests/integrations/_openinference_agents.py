"""Two agents over HTTP on 127.0.0.1: the first sets its session with OpenInference only.

Run in a fresh interpreter by test_integration_openinference.py, so that
nothing but ``import tracectrl`` (and OpenInference, and the OpenTelemetry SDK)
is loaded.  Prints one JSON object with what each agent saw.
"""

from __future__ import annotations

import json
import sys
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import tracectrl

OPENTELEMETRY_IMPORTED_BY_TRACECTRL = "opentelemetry" in sys.modules

from openinference.instrumentation import using_attributes, using_session  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("agents")


class AgentB(BaseHTTPRequestHandler):
    """The second agent: continues the caller's session and trace, as any tracectrl server does."""

    def do_GET(self) -> None:
        with (
            tracectrl.continue_session(self.headers),
            tracer.start_as_current_span("agent-b") as span,
        ):
            body = json.dumps(
                {
                    "session": tracectrl.current_session_id(),
                    "trace_id": f"{span.get_span_context().trace_id:032x}",
                }
            ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test's output to the JSON report."""


def call_agent_b(port: int) -> dict[str, Any]:
    """Agent A's outgoing call: tracectrl's headers, and the trace of the span in force."""
    with tracer.start_as_current_span("agent-a") as span:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/", headers=tracectrl.propagation_headers()
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            seen: dict[str, Any] = json.load(response)
        seen["caller_trace_id"] = f"{span.get_span_context().trace_id:032x}"
        return seen


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), AgentB)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    report: dict[str, Any] = {"opentelemetry_imported": OPENTELEMETRY_IMPORTED_BY_TRACECTRL}
    try:
        report["before"] = tracectrl.current_session_id()
        with using_session("oi-session"):
            report["in_using_session"] = tracectrl.current_session_id()
            report["call"] = call_agent_b(port)
            with ThreadPoolExecutor(max_workers=1) as pool:
                report["submitted"] = tracectrl.submit(pool, tracectrl.current_session_id).result()
            with tracectrl.session_scope("tracectrl-session"):
                report["scope_inside_using_session"] = tracectrl.current_session_id()
                report["scope_call"] = call_agent_b(port)
            report["after_scope"] = tracectrl.current_session_id()
        with using_attributes(session_id="attributes-session", user_id="alice"):
            report["in_using_attributes"] = tracectrl.current_session_id()
            report["attributes_call"] = call_agent_b(port)
        report["after"] = tracectrl.current_session_id()
        report["otel_integration_imported"] = "tracectrl.integrations.otel" in sys.modules

        # With the span processor too: what each span is stamped with.
        from tracectrl.integrations.otel import SessionSpanProcessor

        provider.add_span_processor(SessionSpanProcessor())
        exporter.clear()
        with using_session("oi-stamped"):
            call_agent_b(port)
        report["stamped"] = sorted(
            [span.name, (span.attributes or {}).get("session.id")]
            for span in exporter.get_finished_spans()
        )
    finally:
        server.shutdown()
        server.server_close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
