"""Spans of generator units and of scope objects shared by threads, under the real SDK.

Each test here pins a behaviour that a small change to the code (a mutant) broke
without any other test noticing; see ``tests/mutation/run.py``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from contextvars import copy_context
from typing import Any

import pytest
from _tracing import Tracing
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tracectrl import (
    _span,
    _trace,
    current_session_id,
    current_trace,
    propagation_headers,
    session_scope,
    set_session_id,
    with_session,
)
from tracectrl.integrations.otel import SESSION_ID_ATTRIBUTE

STEPS = 3


def span_id(span: Any) -> int:
    context = span.get_span_context() if hasattr(span, "get_span_context") else span.context
    assert context is not None
    return int(context.span_id)


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    named: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        named.setdefault(span.name, []).append(span)
    return named


def test_generator_span_is_current_at_every_step_and_the_caller_never_sees_it(
    global_tracing: Tracing,
) -> None:
    tracer = global_tracing.provider.get_tracer("agent")

    @with_session("stream", span="stream")
    def stream() -> Iterator[tuple[int, str | None]]:
        for _ in range(STEPS):
            with tracer.start_as_current_span("step"):
                pass
            yield span_id(trace.get_current_span()), current_session_id()

    between = []
    inside = []
    for step in stream():
        inside.append(step)
        between.append((current_session_id(), trace.get_current_span(), current_trace()))
    assert between == [(None, trace.INVALID_SPAN, None)] * STEPS
    spans = by_name(global_tracing.exporter.get_finished_spans())
    (unit,) = spans["stream"]
    assert inside == [(span_id(unit), "stream")] * STEPS
    assert [step.parent.span_id for step in spans["step"] if step.parent] == [span_id(unit)] * STEPS


def test_new_conversation_generator_inside_a_span_keeps_its_own_trace_at_every_step(
    global_tracing: Tracing,
) -> None:
    tracer = global_tracing.provider.get_tracer("caller")

    @with_session(new=True, span="conversation")
    def conversation() -> Iterator[tuple[int, str]]:
        for _ in range(STEPS):
            with tracer.start_as_current_span("turn"):
                pass
            trace_now = current_trace()
            assert trace_now is not None
            yield span_id(trace.get_current_span()), trace_now.trace_id

    with session_scope("outer"), tracer.start_as_current_span("caller") as caller:
        inside = []
        for step in conversation():
            inside.append(step)
            assert (current_session_id(), trace.get_current_span()) == ("outer", caller)
        assert trace.get_current_span() is caller
    spans = by_name(global_tracing.exporter.get_finished_spans())
    (unit,) = spans["conversation"]
    assert unit.parent is None
    assert unit.context is not None
    assert inside == [(span_id(unit), f"{unit.context.trace_id:032x}")] * STEPS
    # The link names the caller's span in the caller's trace: a dashboard leads back to it.
    caller_context = caller.get_span_context()
    assert [(link.context.trace_id, link.context.span_id) for link in unit.links] == [
        (caller_context.trace_id, caller_context.span_id)
    ]
    assert [turn.parent.span_id for turn in spans["turn"] if turn.parent] == [span_id(unit)] * STEPS


def test_new_conversation_generator_without_span_hides_the_callers_span_at_every_step(
    global_tracing: Tracing,
) -> None:
    tracer = global_tracing.provider.get_tracer("caller")

    @with_session(new=True)
    def conversation() -> Iterator[tuple[object, str]]:
        for _ in range(STEPS):
            trace_now = current_trace()
            assert trace_now is not None
            yield trace.get_current_span(), trace_now.trace_id

    with session_scope("outer"), tracer.start_as_current_span("caller") as caller:
        inside = []
        for step in conversation():
            inside.append(step)
            assert (current_session_id(), trace.get_current_span()) == ("outer", caller)
    caller_trace = f"{caller.get_span_context().trace_id:032x}"
    assert [span for span, _ in inside] == [trace.INVALID_SPAN] * STEPS
    assert len({trace_id for _, trace_id in inside} - {caller_trace}) == 1
    assert caller_trace not in {trace_id for _, trace_id in inside}


@pytest.mark.parametrize("hidden", [False, True], ids=["no-caller-span", "caller-span-hidden"])
def test_scope_object_shared_by_threads_ends_the_span_of_the_first_to_exit_with_its_error(
    global_tracing: Tracing, hidden: bool
) -> None:
    # The first thread leaves while the second thread's entry is the newest: the
    # slow exit, which must end its own span, record its error, and give the
    # thread its caller's span (hidden by the new trace) back.
    tracer = global_tracing.provider.get_tracer("caller")
    scope = session_scope("shared", span="shared")
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    def first() -> None:
        with ExitStack() as outside:
            if hidden:
                outside.enter_context(session_scope("outer"))
                outside.enter_context(tracer.start_as_current_span("caller"))
            before = (current_session_id(), trace.get_current_span())
            with pytest.raises(LookupError), scope:
                seen["first inside"] = trace.get_current_span()
                seen["first parent"] = seen["first inside"].parent
                first_in.set()
                second_in.wait(30)
                raise LookupError("first failed")
            seen["first restored"] = (current_session_id(), trace.get_current_span()) == before
        first_out.set()

    def second() -> None:
        first_in.wait(30)
        with scope:
            seen["second inside"] = trace.get_current_span()
            second_in.set()
            first_out.wait(30)
            seen["second after first left"] = trace.get_current_span()
        seen["second after"] = (current_session_id(), trace.get_current_span())

    threads = [threading.Thread(target=copy_context().run, args=(f,)) for f in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    shared = [s for s in global_tracing.exporter.get_finished_spans() if s.name == "shared"]
    assert len(shared) == 2
    failed = [span for span in shared if span.status.status_code is StatusCode.ERROR]
    assert [span_id(span) for span in failed] == [span_id(seen["first inside"])]
    assert [event.name for event in failed[0].events] == ["exception"]
    assert seen["first parent"] is None  # a new trace: the caller's span was hidden
    assert seen["first restored"] is True
    assert seen["second after first left"] is seen["second inside"]
    assert seen["second after"] == (None, trace.INVALID_SPAN)
    assert scope._entries == []


def test_unit_span_carries_the_session_id_without_a_session_span_processor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A deployment that never added SessionSpanProcessor still finds the
    # session on the span a unit starts.
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    api = _span._load()
    assert api is not None
    monkeypatch.setattr(api, "tracer", provider.get_tracer("tracectrl"))
    with session_scope("conversation", span="plan", attributes={"step": 1}):
        pass
    with session_scope("conversation", span="bare"):
        pass
    # A session.id the caller passes is the caller's, and wins.
    with session_scope("conversation", span="own", attributes={SESSION_ID_ATTRIBUTE: "mine"}):
        pass
    plan, bare, own = exporter.get_finished_spans()
    assert plan.attributes == {SESSION_ID_ATTRIBUTE: "conversation", "step": 1}
    assert bare.attributes == {SESSION_ID_ATTRIBUTE: "conversation"}
    assert own.attributes == {SESSION_ID_ATTRIBUTE: "mine"}
    provider.shutdown()


class _Undescribable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this error cannot be turned into text")


def test_unit_error_that_cannot_be_described_still_reaches_the_caller_and_is_logged(
    global_tracing: Tracing, caplog: pytest.LogCaptureFixture
) -> None:
    def fail_in_a_unit() -> None:
        with pytest.raises(_Undescribable), session_scope("conversation", span="plan"):
            raise _Undescribable

    with caplog.at_level(logging.DEBUG, logger="tracectrl"):
        fail_in_a_unit()
    assert (current_session_id(), trace.get_current_span()) == (None, trace.INVALID_SPAN)
    [record] = [r for r in caplog.records if "could not end" in r.getMessage()]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    # The span is ended all the same, so it is exported.
    assert [span.name for span in global_tracing.exporter.get_finished_spans()] == ["plan"]


@pytest.fixture
def bridge_unusable(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenTelemetry's API imports, but tracectrl could not use it for the trace.

    What ``_trace`` settles on when importing its OpenTelemetry bridge fails
    (it logs a warning): traces stay in tracectrl's own variable, and ``span=``
    still starts its spans through the API.
    """
    monkeypatch.setattr(_trace, "_bridge", None)


@pytest.mark.usefixtures("bridge_unusable")
def test_scope_span_stops_being_current_at_exit_when_traces_stay_in_tracectrl(
    global_tracing: Tracing,
) -> None:
    with session_scope("conversation", span="plan"):
        inside = trace.get_current_span()
    assert trace.get_current_span() is trace.INVALID_SPAN
    (span,) = global_tracing.exporter.get_finished_spans()
    assert span_id(inside) == span_id(span)


@pytest.mark.usefixtures("bridge_unusable")
def test_generator_span_is_current_only_in_its_steps_when_traces_stay_in_tracectrl(
    global_tracing: Tracing,
) -> None:
    @with_session("stream", span="stream")
    def stream() -> Iterator[int]:
        for _ in range(STEPS):
            yield span_id(trace.get_current_span())

    between = []
    inside = []
    for step in stream():
        inside.append(step)
        between.append(trace.get_current_span())
    assert between == [trace.INVALID_SPAN] * STEPS
    (unit,) = global_tracing.exporter.get_finished_spans()
    assert inside == [span_id(unit)] * STEPS


def test_joining_scope_inside_a_span_without_valid_ids_starts_a_trace_for_its_block() -> None:
    # A span over an invalid span context (what some instrumentations leave
    # for suppressed work) is no trace: the unit starts one, kept for its block.
    set_session_id("conversation")
    with trace.use_span(trace.NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)):
        with session_scope("conversation"):
            first = current_trace()
            again = current_trace()
            sent = propagation_headers()["traceparent"].split("-")[1]
        after = current_trace()
    assert first is not None
    assert again == first
    assert sent == first.trace_id
    assert after is None


def test_root_spans_started_in_a_unit_that_joined_a_callers_span_keep_their_own_traces(
    tracing: Tracing,
) -> None:
    # The unit joined the caller's span and started no trace of its own, so
    # spans started explicitly as new roots are not merged into one.
    tracer = tracing.provider.get_tracer("agent")
    set_session_id("conversation")
    with tracer.start_as_current_span("caller"), session_scope("conversation"):
        roots = [tracer.start_span("detached", context=Context()) for _ in range(2)]
    for root in roots:
        root.end()
    trace_ids = {root.get_span_context().trace_id for root in roots}
    assert len(trace_ids) == 2


class _FailingStart(SpanProcessor):
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        raise LookupError("span refused")


def test_span_that_fails_to_start_in_a_new_conversation_gives_the_caller_its_span_back(
    monkeypatch: pytest.MonkeyPatch, tracing: Tracing
) -> None:
    # The new conversation hid the caller's span before its own failed to start:
    # the entry undoes that too before the error reaches the caller.
    provider = TracerProvider()
    provider.add_span_processor(_FailingStart())
    api = _span._load()
    assert api is not None
    monkeypatch.setattr(api, "tracer", provider.get_tracer("tracectrl"))
    tracer = tracing.provider.get_tracer("caller")
    with session_scope("outer"), tracer.start_as_current_span("caller") as caller:
        with pytest.raises(LookupError, match="span refused"), session_scope(new=True, span="plan"):
            pass
        assert (current_session_id(), trace.get_current_span()) == ("outer", caller)
