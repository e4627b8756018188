"""Regressions found in review: each test pins behaviour the contract promises (it once failed)."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from _process_tasks import report
from tracectrl import (
    SESSION_HEADER,
    continue_session,
    current_session_id,
    extract_trace_headers,
    inject_trace_headers,
    propagation_headers,
    session_scope,
    set_session_id,
    with_session,
)
from tracectrl.executors import submit
from tracectrl.integrations.otel import SessionPropagator

# A lone surrogate: what os.environ and os.fsdecode() give for an undecodable byte.
UNDECODABLE = "agent-\udcff"


def _assert_clean(headers: dict[str, str]) -> None:
    for name, value in headers.items():
        assert value.isascii(), (name, value)
        assert value.isprintable(), (name, value)


@pytest.fixture
def spans() -> Iterator[tuple[Tracer, InMemorySpanExporter]]:
    """A real SDK tracer (not the global provider) and the exporter its spans land in."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("review"), exporter
    provider.shutdown()


def _by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


# 1. An id the API accepts must be sendable: lone surrogates ---------------------------


@pytest.mark.parametrize("session_id", [UNDECODABLE, "\ud800"])
def test_session_id_accepted_by_set_session_id_can_always_be_sent(session_id: str) -> None:
    try:
        set_session_id(session_id)
    except ValueError:
        return  # refusing the id at the API is a fix too
    _assert_clean(propagation_headers())  # today: UnicodeEncodeError


def test_undecodable_environment_session_never_breaks_an_outgoing_call_in_a_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # TRACECTRL_SESSION_ID holding a non-UTF-8 byte arrives as a lone surrogate.
    monkeypatch.setenv("TRACECTRL_SESSION_ID", UNDECODABLE)
    with continue_session({}):  # the wire path: a request without a session header
        _assert_clean(propagation_headers())


def test_session_propagator_inject_never_raises_inside_an_instrumented_client() -> None:
    try:
        set_session_id(UNDECODABLE)
    except ValueError:
        return
    carrier: dict[str, str] = {}
    SessionPropagator().inject(carrier)  # today: UnicodeEncodeError out of the instrumentation
    _assert_clean(carrier)


# 2. Process pools: a forked worker must not inherit the caller's carried session -------


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="no fork start method"
)
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_worker_started_inside_a_propagated_request_does_not_keep_its_session() -> None:
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        # An OpenTelemetry-instrumented server extracted the caller's session.
        carried = SessionPropagator().extract({SESSION_HEADER: "request-1"})
        token = otel_context.attach(carried)
        try:
            assert current_session_id() == "request-1"
            assert submit(pool, report).result()[1].session_id == "request-1"
        finally:
            otel_context.detach(token)
        assert current_session_id() is None
        # Later work from outside any session, on the worker forked during request-1:
        assert submit(pool, report).result()[1].session_id is None
        assert pool.submit(report).result()[1].session_id is None


# 3. Generators: a scope the body opens must survive its own yields ----------------------


def test_scope_opened_inside_a_decorated_generator_holds_across_its_yields() -> None:
    @with_session("outer")
    def steps() -> Iterator[str | None]:
        with session_scope("inner"):
            yield current_session_id()
            yield current_session_id()
        yield current_session_id()

    assert list(steps()) == ["inner", "inner", "outer"]
    assert current_session_id() is None


def test_scope_opened_inside_a_decorated_async_generator_holds_across_its_yields() -> None:
    @with_session("outer")
    async def steps() -> AsyncIterator[str | None]:
        async with session_scope("inner"):
            yield current_session_id()
            yield current_session_id()
        yield current_session_id()

    async def consume() -> list[str | None]:
        return [item async for item in steps()]

    assert asyncio.run(consume()) == ["inner", "inner", "outer"]


def test_session_set_by_a_decorated_generator_body_is_still_its_own_after_a_yield() -> None:
    @with_session("outer")
    def steps() -> Iterator[str | None]:
        set_session_id("switched")
        yield current_session_id()
        yield current_session_id()

    assert list(steps()) == ["switched", "switched"]
    assert current_session_id() is None


# 4. OpenTelemetry: a trace tracectrl starts must not make spans orphans ----------------


def test_span_in_continue_session_without_traceparent_is_a_root_not_a_child_of_nothing(
    spans: tuple[Tracer, InMemorySpanExporter],
) -> None:
    tracer, exporter = spans
    no_traceparent = {SESSION_HEADER: "no-trace-caller"}
    with continue_session(no_traceparent), tracer.start_as_current_span("handler"):
        pass
    handler = _by_name(exporter)["handler"]
    # Today its parent is a random "remote" span id that no service ever exported.
    assert handler.parent is None


def test_span_started_after_inject_without_a_trace_is_not_a_child_of_an_unexported_span(
    spans: tuple[Tracer, InMemorySpanExporter],
) -> None:
    tracer, exporter = spans
    inject_trace_headers()  # no trace current: one is started
    with tracer.start_as_current_span("work"):
        pass
    assert _by_name(exporter)["work"].parent is None


def test_extract_without_traceparent_keeps_the_local_server_span_as_parent(
    spans: tuple[Tracer, InMemorySpanExporter],
) -> None:
    tracer, exporter = spans
    with tracer.start_as_current_span("server") as server:
        # The seed's agent B, behind OpenTelemetry's server instrumentation, called
        # by a client that sent no traceparent.
        extract_trace_headers({})
        with tracer.start_as_current_span("handler work"):
            pass
    work = _by_name(exporter)["handler work"]
    assert work.parent is not None
    assert work.parent.span_id == server.get_span_context().span_id
    assert work.context.trace_id == server.get_span_context().trace_id
