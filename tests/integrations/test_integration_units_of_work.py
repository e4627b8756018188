"""Units of work under the real OpenTelemetry SDK: one trace id per unit, spans, server spans, logs.

Regression tests for the findings of the trace-lifecycle review (2, 4, 5 and 6)
and for ``span=``, ``attributes=``, the session attributes and ``instrument()``.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import flask
import httpx
import pytest
import requests
import structlog
from _servers import serving_asgi, serving_wsgi
from _tracing import Tracing
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware as OtelASGIMiddleware
from opentelemetry.instrumentation.logging import LoggingInstrumentor
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as OtelWSGIMiddleware
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tracectrl import (
    continue_session,
    current_session_id,
    current_trace,
    extract_trace_headers,
    inject_trace_headers,
    propagation_headers,
    session_scope,
    set_session_id,
    with_session,
)
from tracectrl.integrations import logging as session_logging
from tracectrl.integrations.asgi import SessionMiddleware as SessionASGIMiddleware
from tracectrl.integrations.otel import (
    CONVERSATION_ID_ATTRIBUTE,
    SESSION_ID_ATTRIBUTE,
    SessionSpanProcessor,
)
from tracectrl.integrations.structlog import add_session_context

FORMAT = "%(session_id)s %(trace_id)s %(span_id)s %(message)s"


@pytest.fixture
def instrumented_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger ``app`` whose handler formats the session fields, with ``instrument()`` on."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    parent = logging.getLogger("app")
    parent.addHandler(handler)
    parent.setLevel(logging.INFO)
    parent.propagate = False
    session_logging.instrument()
    try:
        yield parent, stream
    finally:
        session_logging.uninstrument()
        parent.removeHandler(handler)


def lines(stream: io.StringIO) -> list[list[str]]:
    return [line.split(" ", 3) for line in stream.getvalue().splitlines()]


def hex_trace(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.trace_id:032x}"


def agent_b_inside_opentelemetrys_middleware(tracing: Tracing) -> OtelASGIMiddleware:
    """An agent that answers with its session, tracectrl's middleware inside OpenTelemetry's."""

    async def agent_b(request: Request) -> JSONResponse:
        return JSONResponse({"session": current_session_id()})

    inner = Starlette(routes=[Route("/", agent_b)], middleware=[Middleware(SessionASGIMiddleware)])
    return OtelASGIMiddleware(inner, tracer_provider=tracing.provider)


# Finding 2: two trace ids in one request; orphan parents ------------------------------


def test_one_unit_logs_one_trace_id_before_and_inside_its_spans(tracing: Tracing) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(session_logging.SessionLogFilter())
    handler.setFormatter(logging.Formatter("%(session_id)s %(trace_id)s %(message)s"))
    log = logging.getLogger("agent-2")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    tracer = tracing.provider.get_tracer("agent")

    @with_session(new=True)
    def agent() -> str:
        log.info("before any span")
        with tracer.start_as_current_span("step"):
            log.getChild("tool").info("inside the span")
        log.info("after it")
        return inject_trace_headers()["traceparent"].split("-")[1]

    try:
        sent = [agent() for _ in range(2)]
    finally:
        log.removeHandler(handler)
    logged = [line.split(" ")[1] for line in stream.getvalue().splitlines()]
    spans = tracing.exporter.get_finished_spans()
    assert len(spans) == 2
    for index, span in enumerate(spans):
        assert set(logged[index * 3 : index * 3 + 3]) == {hex_trace(span)} == {sent[index]}
        assert span.parent is None  # a root of the unit's trace: no parent nobody exports
    assert sent[0] != sent[1]


def test_a_call_inside_a_span_names_that_exported_span_as_the_parent(tracing: Tracing) -> None:
    tracer = tracing.provider.get_tracer("agent-a")
    with session_scope(new=True), tracer.start_as_current_span("agent-a") as span:
        sent = propagation_headers()["traceparent"].split("-")
    (exported,) = tracing.exporter.get_finished_spans()
    assert exported.context is not None
    assert sent[1] == f"{exported.context.trace_id:032x}"
    assert sent[2] == f"{exported.context.span_id:016x}"
    assert span is not None


def test_a_call_outside_any_span_names_a_placeholder_parent_in_the_units_trace(
    tracing: Tracing,
) -> None:
    # The documented rule outside any span: the callee joins the unit's trace,
    # under a parent-id that stands for the caller's unit and that nobody exports.
    app = agent_b_inside_opentelemetrys_middleware(tracing)
    with serving_asgi(app) as url, session_scope("conversation-2"):
        unit = current_trace()
        headers = propagation_headers()
        body = httpx.get(url, headers=headers).json()
    assert unit is not None
    assert body == {"session": "conversation-2"}
    _, sent_trace, sent_parent, _ = headers["traceparent"].split("-")
    spans = tracing.exporter.get_finished_spans()
    (server,) = [span for span in spans if span.kind is SpanKind.SERVER]
    assert server.parent is not None
    assert (hex_trace(server), f"{server.parent.span_id:016x}") == (unit.trace_id, sent_parent)
    assert sent_trace == unit.trace_id
    assert sent_parent not in {f"{span.context.span_id:016x}" for span in spans if span.context}


@pytest.fixture
def sampling_nothing() -> Iterator[Tracing]:
    """Like ``tracing``, with a sampler that drops every span that has no sampled parent."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0)))
    provider.add_span_processor(SessionSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Tracing(provider, exporter)
    provider.shutdown()


def test_a_span_the_sampler_drops_keeps_the_units_trace_id(
    sampling_nothing: Tracing, instrumented_log: tuple[logging.Logger, io.StringIO]
) -> None:
    log, stream = instrumented_log
    tracer = sampling_nothing.provider.get_tracer("agent")
    with session_scope("conversation-sampled"):
        log.info("before the span")
        before = propagation_headers()["traceparent"].split("-")
        with tracer.start_as_current_span("tool call") as dropped:
            log.info("inside the dropped span")
            inside = propagation_headers()["traceparent"].split("-")
            in_span = current_trace()
        log.info("after it")
        after = propagation_headers()["traceparent"].split("-")
    assert not dropped.is_recording()
    own = dropped.get_span_context()
    unit = before[1]
    logged = lines(stream)
    assert [line[1] for line in logged] == [unit] * 3
    assert inside[1] == after[1] == unit != f"{own.trace_id:032x}"
    assert in_span is not None
    assert in_span.trace_id == unit
    # The dropped span's own position, unsampled, so that the callee drops its spans too.
    assert (inside[2], int(inside[3], 16) & 1) == (f"{own.span_id:016x}", 0)
    assert logged[1][2] == f"{own.span_id:016x}"
    assert current_trace() is None
    assert sampling_nothing.exporter.get_finished_spans() == ()


def test_one_dropped_span_shows_the_trace_of_each_unit_it_is_current_in(
    sampling_nothing: Tracing,
) -> None:
    dropped = sampling_nothing.provider.get_tracer("agent").start_span("kept open")
    assert not dropped.is_recording()
    seen = []
    for turn in ("turn-1", "turn-2"):
        with session_scope(turn), trace.use_span(dropped, end_on_exit=False):
            seen.append((propagation_headers()["traceparent"].split("-")[1], current_trace()))
    assert seen[0][0] != seen[1][0]
    assert [in_span.trace_id for _, in_span in seen if in_span is not None] == [
        sent for sent, _ in seen
    ]
    with trace.use_span(dropped, end_on_exit=True):  # outside any unit: the span's own trace
        outside = current_trace()
    assert outside is not None
    assert outside.trace_id == f"{dropped.get_span_context().trace_id:032x}"


def test_a_dropped_span_under_a_continued_trace_keeps_that_trace(
    sampling_nothing: Tracing,
) -> None:
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"  # not sampled
    tracer = sampling_nothing.provider.get_tracer("agent-b")
    continued = continue_session({"traceparent": incoming})
    with continued, tracer.start_as_current_span("handler") as dropped:
        sent = propagation_headers()["traceparent"].split("-")
    assert not dropped.is_recording()
    assert sent[1] == "0af7651916cd43dd8448eb211c80319c"
    assert sent[2] == f"{dropped.get_span_context().span_id:016x}"


# Finding 3: a stale trace in OpenTelemetry's context ----------------------------------------


def test_a_request_without_traceparent_never_joins_a_remote_span_left_in_opentelemetrys_context(
    tracing: Tracing,
) -> None:
    stale = trace.NonRecordingSpan(
        trace.SpanContext(
            int(CALLER_TRACE_ID, 16),
            int(CALLER_SPAN_ID, 16),
            is_remote=True,
            trace_flags=trace.TraceFlags(1),
        )
    )
    token = otel_context.attach(trace.set_span_in_context(stale))  # left by earlier work
    try:
        with continue_session({"X-TraceCtrl-Session": "next-user"}):
            inside = current_trace()
            sent = propagation_headers()["traceparent"].split("-")[1]
            assert trace.get_current_span() is not stale
        assert trace.get_current_span() is stale
    finally:
        otel_context.detach(token)
    assert inside is not None
    assert CALLER_TRACE_ID not in (inside.trace_id, sent)
    assert sent == inside.trace_id


# B: span= --------------------------------------------------------------------------------


def test_span_option_starts_an_internal_span_with_the_session_and_attributes(
    global_tracing: Tracing,
) -> None:
    with session_scope(
        "conversation", span="plan", attributes={"openinference.span.kind": "AGENT"}
    ):
        inside = current_trace()
    (span,) = global_tracing.exporter.get_finished_spans()
    assert span.name == "plan"
    assert span.kind is SpanKind.INTERNAL
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "tracectrl"
    assert span.attributes is not None
    assert span.attributes[SESSION_ID_ATTRIBUTE] == "conversation"
    assert span.attributes["openinference.span.kind"] == "AGENT"
    assert inside is not None
    assert span.context is not None
    assert inside.span_id == f"{span.context.span_id:016x}"
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_span_true_names_the_span_after_the_function_and_records_a_raise(
    global_tracing: Tracing,
) -> None:
    @with_session(new=True, span=True)
    def failing_agent() -> None:
        raise ValueError("no answer")

    with pytest.raises(ValueError, match="no answer"):
        failing_agent()
    (span,) = global_tracing.exporter.get_finished_spans()
    assert span.name == failing_agent.__qualname__
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]


def test_a_new_conversation_inside_a_span_is_a_new_trace_linked_to_the_caller(
    global_tracing: Tracing,
) -> None:
    tracer = global_tracing.provider.get_tracer("caller")

    @with_session(new=True, span="conversation")
    def conversation() -> None:
        pass

    with session_scope("outer"), tracer.start_as_current_span("caller") as caller:
        conversation()
    spans = {span.name: span for span in global_tracing.exporter.get_finished_spans()}
    new = spans["conversation"]
    assert new.parent is None
    assert hex_trace(new) != hex_trace(spans["caller"])
    assert [link.context.span_id for link in new.links] == [caller.get_span_context().span_id]


def test_a_new_conversation_in_a_started_trace_links_to_that_trace(
    global_tracing: Tracing,
) -> None:
    @with_session(new=True, span="conversation")
    def conversation() -> None:
        pass

    with session_scope("outer"):  # a trace tracectrl started: no span of its own
        outer = current_trace()
        conversation()
    assert outer is not None
    (new,) = global_tracing.exporter.get_finished_spans()
    assert new.parent is None
    assert hex_trace(new) != outer.trace_id
    ((link_trace, link_span),) = [
        (f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}") for link in new.links
    ]
    assert (link_trace, link_span) == (outer.trace_id, outer.span_id)


def test_a_generators_span_covers_its_body_and_the_caller_never_sees_it(
    global_tracing: Tracing,
) -> None:
    @with_session(new=True, span="stream")
    def stream() -> Iterator[int]:
        yield 1
        yield 2

    seen_between: list[Any] = []
    for _ in stream():
        seen_between.append((current_session_id(), trace.get_current_span()))
    assert seen_between == [(None, trace.INVALID_SPAN)] * 2
    (span,) = global_tracing.exporter.get_finished_spans()
    assert span.name == "stream"


def test_an_async_generators_span_ends_when_it_is_closed(global_tracing: Tracing) -> None:
    @with_session(new=True, span="astream")
    async def stream() -> AsyncIterator[int]:
        yield 1
        yield 2

    async def take_one() -> None:
        generator = stream()
        assert await generator.__anext__() == 1
        assert global_tracing.exporter.get_finished_spans() == ()
        await generator.aclose()

    asyncio.run(take_one())
    (span,) = global_tracing.exporter.get_finished_spans()
    assert span.name == "astream"
    assert span.status.status_code is StatusCode.UNSET


# C: session attributes --------------------------------------------------------------------


def test_span_processor_stamps_session_and_conversation_ids_by_default(tracing: Tracing) -> None:
    with session_scope("conversation"), tracing.provider.get_tracer("t").start_as_current_span("s"):
        pass
    (span,) = tracing.exporter.get_finished_spans()
    assert span.attributes == {
        SESSION_ID_ATTRIBUTE: "conversation",
        CONVERSATION_ID_ATTRIBUTE: "conversation",
    }


def test_span_processor_attribute_names_replace_the_default() -> None:

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SessionSpanProcessor(attributes=("app.conversation",)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with session_scope("conversation"), provider.get_tracer("t").start_as_current_span("s"):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.attributes == {"app.conversation": "conversation"}
    provider.shutdown()


def test_span_processor_refuses_a_single_str_of_names() -> None:
    with pytest.raises(TypeError, match="not one str"):
        SessionSpanProcessor(attributes="session.id")


# Finding 4: the server span misses the session ------------------------------------------


def test_opentelemetrys_server_span_gets_the_session_from_the_middleware_inside_it(
    tracing: Tracing,
) -> None:
    app = agent_b_inside_opentelemetrys_middleware(tracing)
    with serving_asgi(app) as url:
        body = httpx.get(url, headers={"X-TraceCtrl-Session": "conversation-4"}).json()
    assert body == {"session": "conversation-4"}
    (server,) = [s for s in tracing.exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert server.attributes is not None
    assert server.attributes[SESSION_ID_ATTRIBUTE] == "conversation-4"
    assert server.attributes[CONVERSATION_ID_ATTRIBUTE] == "conversation-4"


CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
CALLER_HEADERS = {
    "traceparent": f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01",
    "X-TraceCtrl-Session": "conversation-4",
}


def assert_one_server_span_continues_the_caller(tracing: Tracing) -> None:
    """The server span is SERVER, the caller's span its parent, with the session; the
    handler's span is its child."""
    spans = {span.name: span for span in tracing.exporter.get_finished_spans()}
    handler = spans["handler"]
    (server,) = [span for span in spans.values() if span.kind is SpanKind.SERVER]
    assert server.parent is not None
    assert f"{server.parent.span_id:016x}" == CALLER_SPAN_ID
    assert hex_trace(server) == CALLER_TRACE_ID
    assert server.attributes is not None
    assert server.attributes[SESSION_ID_ATTRIBUTE] == "conversation-4"
    assert handler.parent is not None
    assert server.context is not None
    assert handler.parent.span_id == server.context.span_id


@pytest.mark.parametrize("assembled", ["starlette middleware list", "wrapped by hand"])
def test_opentelemetrys_server_span_stays_server_with_the_middleware_outside_it(
    tracing: Tracing, assembled: str
) -> None:
    async def agent_b(request: Request) -> JSONResponse:
        with tracing.provider.get_tracer("agent-b").start_as_current_span("handler"):
            return JSONResponse({"session": current_session_id()})

    app: Any
    if assembled == "wrapped by hand":
        inner = Starlette(routes=[Route("/", agent_b)])
        app = SessionASGIMiddleware(OtelASGIMiddleware(inner, tracer_provider=tracing.provider))
    else:
        app = Starlette(
            routes=[Route("/", agent_b)],
            middleware=[  # the first is the outermost
                Middleware(SessionASGIMiddleware),
                Middleware(OtelASGIMiddleware, tracer_provider=tracing.provider),
            ],
        )
    with serving_asgi(app) as url:
        bodies = [httpx.get(url, headers=CALLER_HEADERS).json() for _ in range(2)]
    assert bodies == [{"session": "conversation-4"}] * 2
    tracing.exporter.clear()
    with serving_asgi(app) as url:
        assert httpx.get(url, headers=CALLER_HEADERS).json() == {"session": "conversation-4"}
    assert_one_server_span_continues_the_caller(tracing)


def test_opentelemetrys_wsgi_server_span_stays_server_with_the_middleware_outside_it(
    tracing: Tracing,
) -> None:
    from tracectrl.integrations.wsgi import SessionMiddleware as SessionWSGIMiddleware

    flask_app = flask.Flask("agent-b")

    @flask_app.route("/")
    def handler() -> Any:
        with tracing.provider.get_tracer("agent-b").start_as_current_span("handler"):
            return {"session": current_session_id()}

    inner = OtelWSGIMiddleware(flask_app.wsgi_app, tracer_provider=tracing.provider)
    flask_app.wsgi_app = SessionWSGIMiddleware(inner)  # type: ignore[method-assign]
    with serving_wsgi(flask_app, worker_threads=1) as url:
        assert requests.get(url, headers=CALLER_HEADERS).json() == {"session": "conversation-4"}
    assert_one_server_span_continues_the_caller(tracing)


# Finding 5: a handler's session outlives its request -------------------------------------


@pytest.mark.usefixtures("otel_propagators_from_environment")
def test_a_session_set_in_a_sync_handler_never_reaches_a_later_request(tracing: Tracing) -> None:
    flask_app = flask.Flask("agent-b")

    @flask_app.route("/")
    def handler() -> Any:
        given = flask.request.args.get("set")
        seen = current_session_id()
        if given:
            set_session_id(given)  # no scope: stays in the worker thread's context
        return {"seen": seen}

    flask_app.wsgi_app = OtelWSGIMiddleware(  # type: ignore[method-assign]
        flask_app.wsgi_app, tracer_provider=tracing.provider
    )
    with serving_wsgi(flask_app, worker_threads=1) as url, requests.Session() as http:
        first = http.get(url, params={"set": "leaked"}).json()
        later = [http.get(url).json() for _ in range(20)]
        carried = http.get(url, headers={"X-TraceCtrl-Session": "carried"}).json()
    assert first == {"seen": None}
    assert later == [{"seen": None}] * 20
    assert carried == {"seen": "carried"}


# Finding 6 and D: logs -------------------------------------------------------------------


def test_instrument_gives_records_of_child_loggers_the_session_fields(
    instrumented_log: tuple[logging.Logger, io.StringIO], tracing: Tracing
) -> None:
    log, stream = instrumented_log
    with session_scope("conversation-6"):
        log.getChild("db").info("query")
        with tracing.provider.get_tracer("t").start_as_current_span("s") as span:
            log.getChild("db").info("in span")
    log.getChild("db").info("outside")
    query, in_span, outside = lines(stream)
    assert query[0] == "conversation-6"
    assert query[2] == "None"  # outside any span, span_id is empty
    assert in_span[1] == query[1]
    assert in_span[2] == f"{span.get_span_context().span_id:016x}"
    assert outside == ["None", "None", "None", "outside"]


def test_instrument_is_idempotent_and_uninstrument_restores_the_factory() -> None:
    before = logging.getLogRecordFactory()
    session_logging.instrument()
    installed = logging.getLogRecordFactory()
    session_logging.instrument()
    assert logging.getLogRecordFactory() is installed
    session_logging.uninstrument()
    session_logging.uninstrument()
    assert logging.getLogRecordFactory() is before


def make_record() -> logging.LogRecord:
    return logging.getLogger("x").makeRecord("x", logging.INFO, "f", 1, "m", (), None)


def test_instrument_chains_with_a_factory_installed_before_and_after_it() -> None:
    original = logging.getLogRecordFactory()

    def stamping(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = original(*args, **kwargs)
        record.stamped = True
        return record

    logging.setLogRecordFactory(stamping)
    try:
        session_logging.instrument()
        ours = logging.getLogRecordFactory()

        def after(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = ours(*args, **kwargs)
            record.after = True
            return record

        logging.setLogRecordFactory(after)
        with session_scope("chained"):
            record = make_record()
        assert (record.stamped, record.after, record.session_id) == (True, True, "chained")
        session_logging.uninstrument()  # wrapped by a later factory: stays, adds nothing
        record = make_record()
        assert record.after
        assert "session_id" not in record.__dict__
    finally:
        logging.setLogRecordFactory(original)
        session_logging._installed = None


@pytest.mark.parametrize("first", ["opentelemetry", "tracectrl"])
def test_instrument_chains_with_opentelemetrys_logging_instrumentor(
    tracing: Tracing, first: str
) -> None:
    original = logging.getLogRecordFactory()
    theirs = LoggingInstrumentor()
    tracer = tracing.provider.get_tracer("agent")

    def hook(span: trace.Span, record: logging.LogRecord) -> None:
        record.hooked = f"{span.get_span_context().span_id:016x}"

    def install(which: str) -> None:
        if which == "tracectrl":
            session_logging.instrument()
        else:  # its record factory, with the hook every version calls: no handler, no format
            theirs.instrument(
                set_logging_format=False, log_hook=hook, enable_log_auto_instrumentation=False
            )

    try:
        install(first)
        install("tracectrl" if first == "opentelemetry" else "opentelemetry")
        with session_scope("chained"), tracer.start_as_current_span("step") as span:
            record = make_record()
        span_id = f"{span.get_span_context().span_id:016x}"
        assert (record.session_id, record.span_id) == ("chained", span_id)
        assert record.hooked == span_id  # from OpenTelemetry's factory
        session_logging.uninstrument()
        theirs.uninstrument()
        with session_scope("after"), tracer.start_as_current_span("later"):
            record = make_record()
        assert not {"session_id", "hooked"} & set(record.__dict__)
        assert logging.getLogRecordFactory() in (original, session_logging._installed)
    finally:
        theirs.uninstrument()
        logging.setLogRecordFactory(original)
        session_logging._installed = None


@contextmanager
def filtered_logger(name: str) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose own handler has ``SessionLogFilter`` and formats the session fields."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(session_logging.SessionLogFilter())
    handler.setFormatter(logging.Formatter(FORMAT))
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def test_session_log_filter_on_a_handler_stamps_records_of_child_loggers() -> None:
    with filtered_logger("filtered") as (parent, stream), session_scope("conversation-f"):
        parent.getChild("child").info("hello")
    ((session_id, trace_id, span_id, message),) = lines(stream)
    assert (session_id, span_id, message) == ("conversation-f", "None", "hello")
    assert len(trace_id) == 32


def test_session_log_filter_and_structlog_give_the_span_in_force(global_tracing: Tracing) -> None:
    output = io.StringIO()
    events = structlog.wrap_logger(
        structlog.PrintLogger(output),
        processors=[add_session_context, structlog.processors.JSONRenderer()],
    )
    in_a_span = session_scope("conversation-s", span="step")
    with filtered_logger("filtered-in-a-span") as (logger, stream), in_a_span:
        span = trace.get_current_span()
        logger.info("in a span")
        events.info("in a span")
    context = span.get_span_context()
    ((session_id, trace_id, span_id, _message),) = lines(stream)
    (event,) = [json.loads(line) for line in output.getvalue().splitlines()]
    expected = ("conversation-s", f"{context.trace_id:032x}", f"{context.span_id:016x}")
    assert (session_id, trace_id, span_id) == expected
    assert (event["session_id"], event["trace_id"], event["span_id"]) == expected


# Issue 11: either middleware order is clean ----------------------------------------------


def test_wsgi_middleware_around_opentelemetrys_detaches_cleanly(
    tracing: Tracing, caplog: pytest.LogCaptureFixture
) -> None:
    from tracectrl.integrations.wsgi import SessionMiddleware as SessionWSGIMiddleware

    flask_app = flask.Flask("agent-b")

    @flask_app.route("/")
    def handler() -> Any:
        return {"seen": current_session_id()}

    inner = OtelWSGIMiddleware(flask_app.wsgi_app, tracer_provider=tracing.provider)
    flask_app.wsgi_app = SessionWSGIMiddleware(inner)  # type: ignore[method-assign]
    with (
        caplog.at_level(logging.ERROR, logger="opentelemetry.context"),
        serving_wsgi(flask_app, worker_threads=1) as url,
        requests.Session() as http,
    ):
        seen = [
            http.get(url, headers={"X-TraceCtrl-Session": f"conversation-{n}"}).json()
            for n in range(20)
        ]
    assert seen == [{"seen": f"conversation-{n}"} for n in range(20)]
    assert [record.getMessage() for record in caplog.records] == []
    assert len(tracing.exporter.get_finished_spans()) == 20


def test_a_span_scope_exited_after_its_outer_scope_ends_its_span_and_restores_nothing(
    global_tracing: Tracing,
) -> None:
    outer = session_scope("request", span="request")
    inner = session_scope("step", span="step")
    outer.__enter__()
    inner.__enter__()
    outer.__exit__(None, None, None)
    with pytest.warns(RuntimeWarning, match="out of order"):
        inner.__exit__(None, None, None)
    assert current_session_id() is None
    assert current_trace() is None
    assert trace.get_current_span() is trace.INVALID_SPAN
    names = sorted(span.name for span in global_tracing.exporter.get_finished_spans())
    assert names == ["request", "step"]


def test_the_middleware_moved_inside_opentelemetrys_keeps_its_options(tracing: Tracing) -> None:
    async def agent_b(request: Request) -> JSONResponse:
        return JSONResponse({"session": current_session_id()})

    inner = Starlette(routes=[Route("/", agent_b), Route("/health", agent_b)])
    app = SessionASGIMiddleware(
        OtelASGIMiddleware(inner, tracer_provider=tracing.provider),
        exclude_paths=["/health"],
        echo_session=True,
    )
    with serving_asgi(app) as url:
        answered = httpx.get(url, headers=CALLER_HEADERS)
        health = httpx.get(f"{url}/health", headers=CALLER_HEADERS)
    assert answered.json() == {"session": "conversation-4"}
    assert answered.headers["X-TraceCtrl-Session"] == "conversation-4"
    assert health.json() == {"session": None}
    assert "X-TraceCtrl-Session" not in health.headers
    servers = [s for s in tracing.exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert len(servers) == 2


def test_only_opentelemetrys_own_middleware_is_looked_inside() -> None:
    class OpenTelemetryMiddleware:  # the name alone, in another module
        def __init__(self, app: Any) -> None:
            self.app = app

    async def plain(scope: Any, receive: Any, send: Any) -> None:
        pass

    lookalike = OpenTelemetryMiddleware(plain)
    SessionASGIMiddleware(lookalike)
    assert lookalike.app is plain


@pytest.mark.parametrize(
    "options",
    [{"span": "steps"}, {"new": True}, {"new": True, "span": "steps"}],
    ids=["span", "new trace under a span", "new trace and span"],
)
def test_a_generator_unit_finds_its_trace_from_headers_again_when_it_resumes(
    global_tracing: Tracing, options: dict[str, Any]
) -> None:
    @with_session(**options)
    def steps() -> Iterator[str | None]:
        extract_trace_headers({"traceparent": f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01"})
        for _ in range(3):
            trace_now = current_trace()
            yield None if trace_now is None else trace_now.trace_id

    with global_tracing.provider.get_tracer("caller").start_as_current_span("caller") as caller:
        seen = list(steps())
        assert trace.get_current_span() is caller
    assert seen == [CALLER_TRACE_ID] * 3


@pytest.mark.parametrize(
    "options",
    [{"span": "steps"}, {"new": True}, {"new": True, "span": "steps"}],
    ids=["span", "new trace under a span", "new trace and span"],
)
def test_an_async_generator_unit_finds_its_trace_from_headers_again_when_it_resumes(
    global_tracing: Tracing, options: dict[str, Any]
) -> None:
    @with_session(**options)
    async def steps() -> AsyncIterator[str | None]:
        extract_trace_headers({"traceparent": f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01"})
        for _ in range(3):
            await asyncio.sleep(0)
            trace_now = current_trace()
            yield None if trace_now is None else trace_now.trace_id

    async def consume() -> list[str | None]:
        tracer = global_tracing.provider.get_tracer("caller")
        with tracer.start_as_current_span("caller") as caller:
            seen = [trace_id async for trace_id in steps()]
            assert trace.get_current_span() is caller
        return seen

    assert asyncio.run(consume()) == [CALLER_TRACE_ID] * 3
