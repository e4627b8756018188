"""Generator steps and exits elsewhere of units with OpenTelemetry spans in play.

A generator unit's body finds at each step what it had in OpenTelemetry's
context when it yielded, also when it has a span or hid its caller's; a unit
with a span, exited in another context, warns once, at the code that exited it.
"""

from __future__ import annotations

import warnings
from collections.abc import Coroutine, Generator, Iterator
from contextvars import copy_context
from typing import cast

from _tracing import Tracing

from tracectrl import current_session_id, current_trace, session_scope, with_session
from tracectrl.context import extract_trace_headers

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = TRACEPARENT.split("-")[1]
STEPS = 3


def _trace_ids_at_each_step() -> Iterator[str | None]:
    extract_trace_headers({"traceparent": TRACEPARENT})
    for _ in range(STEPS):
        trace = current_trace()
        yield None if trace is None else trace.trace_id


def test_generator_with_span_finds_its_trace_from_headers_again_when_it_resumes(
    global_tracing: Tracing,
) -> None:
    steps = with_session("steps", span="steps")(_trace_ids_at_each_step)
    assert list(steps()) == [TRACE_ID] * STEPS
    assert [span.name for span in global_tracing.exporter.get_finished_spans()] == ["steps"]


def test_new_conversation_generator_inside_a_span_finds_its_trace_from_headers_again(
    global_tracing: Tracing,
) -> None:
    steps = with_session(new=True)(_trace_ids_at_each_step)
    tracer = global_tracing.provider.get_tracer("caller")
    with session_scope("outer"), tracer.start_as_current_span("caller"):
        assert list(steps()) == [TRACE_ID] * STEPS


class _YieldOnce:
    """An awaitable that suspends its coroutine once, like an await on I/O."""

    def __await__(self) -> Generator[None, None, None]:
        yield


def _finish(coroutine: Coroutine[object, None, str | None]) -> str | None:
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return cast("str | None", stop.value)
    raise AssertionError("the coroutine did not finish")


def test_decorated_coroutine_with_span_finished_elsewhere_warns_once_where_it_finished(
    global_tracing: Tracing,
) -> None:
    @with_session("decorated", span="decorated")
    async def work() -> str | None:
        await _YieldOnce()
        return current_session_id()

    coroutine = work()
    copy_context().run(coroutine.send, None)
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        copy_context().run(_finish, coroutine)
    assert [w.filename for w in warned] == [__file__]
    assert [span.name for span in global_tracing.exporter.get_finished_spans()] == ["decorated"]


def test_new_conversation_coroutine_inside_a_span_finished_elsewhere_warns_once_where_it_finished(
    global_tracing: Tracing,
) -> None:
    @with_session(new=True)
    async def work() -> str | None:
        await _YieldOnce()
        return current_session_id()

    tracer = global_tracing.provider.get_tracer("caller")
    started_in = copy_context()
    coroutine = work()

    def start() -> None:
        with tracer.start_as_current_span("caller"):
            coroutine.send(None)

    started_in.run(start)
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        copy_context().run(_finish, coroutine)
    assert [w.filename for w in warned] == [__file__]
