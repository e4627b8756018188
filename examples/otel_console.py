"""OpenTelemetry spans of two agents, printed by ``ConsoleSpanExporter``, each with ``session.id``.

Agent A starts a span and calls agent B with ``propagation_headers()``; agent B
continues with ``continue_session()`` and starts its own span.  Both spans go
to the console (look for ``"session.id"`` in the printed JSON) and to an
in-memory exporter, and the script asserts that:

* both spans carry the conversation's ``session.id``;
* they share one trace-id, and agent B's span is a child of agent A's;
* a span started outside any session has no ``session.id``.

Run it with ``python examples/otel_console.py``; it exits non-zero on the first
failed check.
"""

from __future__ import annotations

import sys

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tracectrl import session_scope
from tracectrl.context import continue_session, propagation_headers
from tracectrl.integrations.otel import (
    CONVERSATION_ID_ATTRIBUTE,
    SESSION_ID_ATTRIBUTE,
    SessionSpanProcessor,
)

memory = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SessionSpanProcessor())
provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
provider.add_span_processor(SimpleSpanProcessor(memory))


def agent_b(headers: dict[str, str]) -> None:
    """The receiving side, as a server middleware would run it for one request."""
    tracer = provider.get_tracer("agent-b")
    with continue_session(headers), tracer.start_as_current_span("agent-b answers"):
        pass


def main() -> int:
    tracer = provider.get_tracer("agent-a")
    with session_scope("conversation-42"), tracer.start_as_current_span("agent-a asks"):
        agent_b(propagation_headers())  # over HTTP in real life
    with tracer.start_as_current_span("maintenance"):  # no session in force
        pass
    provider.shutdown()

    spans = {span.name: span for span in memory.get_finished_spans()}
    asks, answers = spans["agent-a asks"], spans["agent-b answers"]
    assert asks.attributes == {
        SESSION_ID_ATTRIBUTE: "conversation-42",
        CONVERSATION_ID_ATTRIBUTE: "conversation-42",
    }, asks.attributes
    assert answers.attributes == {
        SESSION_ID_ATTRIBUTE: "conversation-42",
        CONVERSATION_ID_ATTRIBUTE: "conversation-42",
    }, answers.attributes
    assert SESSION_ID_ATTRIBUTE not in (spans["maintenance"].attributes or {})
    assert asks.context is not None
    assert answers.context is not None
    assert answers.parent is not None
    assert answers.context.trace_id == asks.context.trace_id
    assert answers.parent.span_id == asks.context.span_id
    print("otel_console: ok (both agents' spans carry session.id, one trace)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
