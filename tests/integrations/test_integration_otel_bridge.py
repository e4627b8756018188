"""With OpenTelemetry installed, tracectrl's trace is OpenTelemetry's current span, both ways."""

from __future__ import annotations

import contextvars
import warnings

from _tracing import Tracing
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NoOpTracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tracectrl import session_scope
from tracectrl._trace import TraceContext, attach_trace, current_trace, detach_trace
from tracectrl._tracecontext import parse_tracestate
from tracectrl.context import continue_session, extract_trace_headers, inject_trace_headers

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
TRACESTATE = "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE,\tvendor@sys=abc"


def _parent_id(headers: dict[str, str]) -> str:
    return headers["traceparent"][36:52]


def _trace_id(headers: dict[str, str]) -> str:
    return headers["traceparent"][3:35]


def test_spans_started_after_extract_are_children_of_the_remote_parent(tracing: Tracing) -> None:
    extract_trace_headers({"traceparent": TRACEPARENT})
    with tracing.provider.get_tracer("b").start_as_current_span("child") as span:
        pass
    assert span.get_span_context().trace_id == int(TRACE_ID, 16)
    assert span.parent is not None
    assert span.parent.span_id == int(PARENT_ID, 16)
    assert span.parent.is_remote


def test_continue_session_detaches_the_remote_parent_on_exit(tracing: Tracing) -> None:
    before = trace.get_current_span()
    with continue_session({"traceparent": TRACEPARENT}):
        inside = trace.get_current_span().get_span_context()
    assert inside.trace_id == int(TRACE_ID, 16)
    assert inside.span_id == int(PARENT_ID, 16)
    assert trace.get_current_span() is before
    with tracing.provider.get_tracer("b").start_as_current_span("after") as span:
        pass
    assert span.parent is None


def test_inject_under_a_local_span_sends_that_span_as_the_parent(tracing: Tracing) -> None:
    extract_trace_headers({"traceparent": TRACEPARENT})
    with tracing.provider.get_tracer("a").start_as_current_span("local") as span:
        first, second = inject_trace_headers(), inject_trace_headers()
    span_id = f"{span.get_span_context().span_id:016x}"
    assert _parent_id(first) == _parent_id(second) == span_id
    assert _trace_id(first) == TRACE_ID


def test_inject_with_only_the_remote_parent_sends_a_new_parent_id_per_call() -> None:
    extract_trace_headers({"traceparent": TRACEPARENT})
    first, second = inject_trace_headers(), inject_trace_headers()
    assert _trace_id(first) == _trace_id(second) == TRACE_ID
    assert len({_parent_id(first), _parent_id(second), PARENT_ID}) == 3


def test_api_without_sdk_injects_as_without_opentelemetry() -> None:
    extract_trace_headers({"traceparent": TRACEPARENT})
    with NoOpTracer().start_as_current_span("not recorded"):
        first, second = inject_trace_headers(), inject_trace_headers()
    assert _trace_id(first) == _trace_id(second) == TRACE_ID
    assert len({_parent_id(first), _parent_id(second), PARENT_ID}) == 3


def test_tracestate_is_sent_on_exactly_as_validated(tracing: Tracing) -> None:
    validated = parse_tracestate([TRACESTATE])
    assert validated is not None
    extract_trace_headers({"traceparent": TRACEPARENT, "tracestate": TRACESTATE})
    remote_only = inject_trace_headers()
    with tracing.provider.get_tracer("a").start_as_current_span("local") as span:
        under_span = inject_trace_headers()
        by_opentelemetry: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(by_opentelemetry)
    assert remote_only["tracestate"] == under_span["tracestate"] == validated
    assert by_opentelemetry["tracestate"] == validated
    state = span.get_span_context().trace_state
    assert dict(state) == {"rojo": "00f067aa0ba902b7", "congo": "t61rcWkgMzE", "vendor@sys": "abc"}
    assert state.update("rojo", "1").to_header() == "rojo=1,congo=t61rcWkgMzE,vendor@sys=abc"


def test_context_extracted_by_opentelemetry_is_read_as_the_current_remote_trace() -> None:
    carrier = {"traceparent": TRACEPARENT, "tracestate": "rojo=1"}
    token = otel_context.attach(TraceContextTextMapPropagator().extract(carrier))
    try:
        assert current_trace() == TraceContext(TRACE_ID, PARENT_ID, 1, "rojo=1", True)
        assert _parent_id(inject_trace_headers()) != PARENT_ID
    finally:
        otel_context.detach(token)


def test_remote_parent_of_the_current_local_spans_trace_keeps_that_span_current(
    tracing: Tracing,
) -> None:
    extract_trace_headers({"traceparent": TRACEPARENT})
    tracer = tracing.provider.get_tracer("server")
    with tracer.start_as_current_span("server span") as server_span:
        with continue_session({"traceparent": TRACEPARENT}):
            assert trace.get_current_span() is server_span
        with continue_session({"traceparent": f"00-{'1' * 32}-{PARENT_ID}-01"}):
            assert current_trace() == TraceContext("1" * 32, PARENT_ID, 1, "", True)
        assert trace.get_current_span() is server_span
        token = attach_trace(current_trace())  # the span itself, as plain data
        assert trace.get_current_span() is server_span
        detach_trace(token)


def test_attached_trace_reads_back_as_the_same_object_and_none_clears_it() -> None:
    attached = TraceContext(TRACE_ID, PARENT_ID, 0, "k=v", False)
    token = attach_trace(attached)
    assert current_trace() is attached
    cleared = attach_trace(None)
    assert current_trace() is None
    assert trace.get_current_span() is trace.INVALID_SPAN
    detach_trace(cleared)
    assert current_trace() is attached
    detach_trace(token)
    assert current_trace() is None


def test_detaching_in_another_context_restores_there_leaving_the_warning_to_the_session() -> None:
    # Every exit that detaches a trace restores the session too, and that reset
    # gives the one warning for the exit.
    token = attach_trace(TraceContext(TRACE_ID, PARENT_ID, 1))
    elsewhere = contextvars.copy_context()

    def detach_elsewhere() -> TraceContext | None:
        attach_trace(TraceContext("2" * 32, PARENT_ID, 1))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            detach_trace(token)
        return current_trace()

    assert elsewhere.run(detach_elsewhere) is None
    assert current_trace() == TraceContext(TRACE_ID, PARENT_ID, 1)
    detach_trace(token)


def test_session_scope_changes_nothing_in_opentelemetrys_context() -> None:
    before = otel_context.get_current()
    with session_scope("s"):
        assert otel_context.get_current() is before
