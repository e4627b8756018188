"""SessionPropagator and SessionSpanProcessor: the session through OpenTelemetry's own plumbing."""

from __future__ import annotations

from typing import Optional

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
    assert PROPAGATOR.fields == {
        "X-TraceCtrl-Session",
        "X-TraceCtrl-Session-Signature",
        "baggage",
    }


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


def _injected(context: Optional[Context]) -> Optional[str]:
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=context)
    return carrier.get("X-TraceCtrl-Session")


def test_inject_with_a_context_from_another_request_sends_that_requests_session() -> None:
    request_a = PROPAGATOR.extract({"x-tracectrl-session": "request-a"})
    with session_scope("other-work"):
        # The context of another request: its session, as the trace propagator sends its trace.
        assert _injected(request_a) == "request-a"
        assert _injected(otel_context.set_value("unrelated", 1, request_a)) == "request-a"
        # No context, or the current one or one made from it: the session in force here.
        assert _injected(None) == "other-work"
        assert _injected(otel_context.get_current()) == "other-work"
        assert _injected(otel_context.set_value("unrelated", 1)) == "other-work"
    assert _injected(request_a) == "request-a"
    assert _injected(None) is None


def test_inject_with_a_context_made_in_the_current_request_sends_the_session_in_force() -> None:
    token = otel_context.attach(PROPAGATOR.extract({"x-tracectrl-session": "caller"}))
    try:
        made_here = otel_context.set_value("unrelated", 1)
        assert _injected(made_here) == "caller"
        with session_scope("set-in-the-handler"):
            assert _injected(made_here) == "set-in-the-handler"
    finally:
        otel_context.detach(token)


def test_inject_with_an_empty_context_sends_no_session_that_only_the_current_one_holds() -> None:
    token = otel_context.attach(otel_context.set_value("session.id", "openinference-session"))
    try:
        assert _injected(None) == "openinference-session"
        assert _injected(Context()) is None
    finally:
        otel_context.detach(token)
    named = otel_context.set_value("session.id", "openinference-session", Context())
    assert _injected(named) == "openinference-session"


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


def test_with_a_session_key_the_propagators_sign_and_adopt_only_signed_sessions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRACECTRL_SESSION_KEY", "agents-key")
    composite = CompositePropagator(
        [TraceContextTextMapPropagator(), W3CBaggagePropagator(), PROPAGATOR]
    )
    carrier: dict[str, str] = {}
    remote = otel_context.attach(
        TraceContextTextMapPropagator().extract({"traceparent": TRACEPARENT})
    )
    try:
        # new_trace=False: the unit keeps the remote trace, as a handler does, so
        # OpenTelemetry's tracecontext propagator has a traceparent to sign against.
        with session_scope("alice", new_trace=False):
            composite.inject(carrier)
    finally:
        otel_context.detach(remote)
    assert carrier["X-TraceCtrl-Session-Signature"].startswith("sha256=")

    def extracted(headers: dict[str, str]) -> Optional[str]:
        token = otel_context.attach(composite.extract(headers))
        try:
            return current_session_id()
        finally:
            otel_context.detach(token)

    assert extracted(carrier) == "alice"
    forged = {**carrier, "X-TraceCtrl-Session": "mallory", "baggage": "session.id=mallory"}
    assert extracted(forged) is None
    unsigned = {k: v for k, v in carrier.items() if k != "X-TraceCtrl-Session-Signature"}
    assert extracted(unsigned) is None
    assert extracted({**carrier, "traceparent": TRACEPARENT.replace("0af7", "1af7")}) is None
