"""SessionPropagator and SessionSpanProcessor: the session through OpenTelemetry's own plumbing."""

from __future__ import annotations

import pytest
from _tracing import Tracing
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tracectrl import current_session_id, session_scope, set_session_id
from tracectrl._trace import attach_trace, current_trace
from tracectrl.context import extract_trace_headers
from tracectrl.integrations.otel import SESSION_ID_ATTRIBUTE, SessionPropagator

PROPAGATOR = SessionPropagator()
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_inject_writes_the_session_header_and_merges_it_into_baggage() -> None:
    carrier = {"baggage": "team=blue"}
    with session_scope("user 42/é"):
        PROPAGATOR.inject(carrier)
    assert carrier == {
        "baggage": "session.id=user%2042%2F%C3%A9,team=blue",
        "X-TraceCtrl-Session": "user%2042%2F%C3%A9",
    }


def test_inject_without_a_session_writes_nothing() -> None:
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier)
    assert carrier == {}
    assert PROPAGATOR.fields == {"X-TraceCtrl-Session", "baggage"}


def test_injected_session_is_extracted_back_exactly() -> None:
    carrier: dict[str, str] = {}
    with session_scope("user 42/é"):
        PROPAGATOR.inject(carrier)
    token = otel_context.attach(PROPAGATOR.extract(carrier))
    try:
        assert current_session_id() == "user 42/é"
    finally:
        otel_context.detach(token)
    assert current_session_id() is None


@pytest.mark.parametrize(
    "carrier",
    [
        pytest.param({"x-tracectrl-session": "from-header"}, id="lowercase"),
        pytest.param({"X-TraceCtrl-Session": "from-header"}, id="as-sent"),
        pytest.param({"baggage": "k=v,session.id=from-header"}, id="baggage-only"),
        pytest.param(
            {"x-tracectrl-session": "from-header", "baggage": "session.id=other"},
            id="header-wins",
        ),
    ],
)
def test_extract_reads_the_header_then_the_baggage(carrier: dict[str, str]) -> None:
    token = otel_context.attach(PROPAGATOR.extract(carrier))
    try:
        assert current_session_id() == "from-header"
    finally:
        otel_context.detach(token)


@pytest.mark.parametrize(
    "value",
    ["", "x" * 10_240, "abc\r\nX-Injected: 1", "abc\x00", "abc%0D%0A", "%FF"],
)
def test_extract_ignores_invalid_sessions_and_the_request_has_none(value: str) -> None:
    set_session_id("left-by-an-earlier-request")
    base = Context({"kept": 1})
    extracted = PROPAGATOR.extract({"x-tracectrl-session": value}, base)
    assert extracted.get("kept") == 1
    token = otel_context.attach(extracted)
    try:
        assert current_session_id() is None
    finally:
        otel_context.detach(token)
    assert current_session_id() == "left-by-an-earlier-request"


def test_extract_survives_a_getter_that_fails() -> None:
    class Broken(Getter[dict[str, str]]):
        def get(self, carrier: dict[str, str], key: str) -> list[str] | None:
            raise RuntimeError("broken carrier")

        def keys(self, carrier: dict[str, str]) -> list[str]:
            return []

    base = Context()
    assert PROPAGATOR.extract({}, base, getter=Broken()) is base


def test_extracted_session_wins_over_the_one_in_force_around_the_request() -> None:
    set_session_id("set-at-start-up")
    token = otel_context.attach(PROPAGATOR.extract({"x-tracectrl-session": "caller"}))
    try:
        assert current_session_id() == "caller"
        with session_scope("set-in-the-handler"):
            assert current_session_id() == "set-in-the-handler"
        assert current_session_id() == "caller"
        with session_scope() as joined:
            assert joined == "caller"
    finally:
        otel_context.detach(token)
    assert current_session_id() == "set-at-start-up"


def test_composite_with_the_standard_propagators_round_trips_trace_and_session() -> None:
    composite = CompositePropagator(
        [TraceContextTextMapPropagator(), W3CBaggagePropagator(), SessionPropagator()]
    )
    carrier: dict[str, str] = {}
    with session_scope("round-trip"):
        extract_trace_headers({"traceparent": TRACEPARENT})
        composite.inject(carrier)
    attach_trace(None)
    token = otel_context.attach(composite.extract(carrier))
    try:
        assert current_session_id() == "round-trip"
        trace = current_trace()
        assert trace is not None
        assert trace.trace_id == TRACEPARENT[3:35]
    finally:
        otel_context.detach(token)


def test_span_processor_stamps_the_session_from_an_explicit_parent_context(
    tracing: Tracing,
) -> None:
    extracted = PROPAGATOR.extract({"x-tracectrl-session": "carried"})
    tracer = tracing.provider.get_tracer("t")
    tracer.start_span("explicit parent", context=extracted).end()
    with session_scope("in-force"):
        tracer.start_span("current session").end()
        tracer.start_span("own attribute", attributes={SESSION_ID_ATTRIBUTE: "mine"}).end()
    tracer.start_span("no session").end()
    assert _sessions(tracing) == {
        "explicit parent": "carried",
        "current session": "in-force",
        "own attribute": "mine",
        "no session": None,
    }


def _sessions(tracing: Tracing) -> dict[str, object]:
    spans: tuple[ReadableSpan, ...] = tracing.exporter.get_finished_spans()
    return {span.name: (span.attributes or {}).get(SESSION_ID_ATTRIBUTE) for span in spans}
