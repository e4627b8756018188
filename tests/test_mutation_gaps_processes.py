"""Crossing a process boundary: a trace tracectrl started stays out of OpenTelemetry's context.

Each test here pins a behaviour that a small change to the code (a mutant) broke
without any other test noticing; see ``tests/mutation/run.py``.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest

from _started_trace_tasks import report_trace_and_otel_span
from tracectrl._snapshot import ContextSnapshot, applied
from tracectrl._trace import TraceContext, current_trace
from tracectrl.context import propagation_headers
from tracectrl.executors import submit
from tracectrl.scope import session_scope
from tracectrl.session import current_session_id, set_session_id

START_METHODS = [
    method
    for method in ("fork", "spawn", "forkserver")
    if method in multiprocessing.get_all_start_methods()
]


@pytest.fixture(scope="module", params=START_METHODS)
def pool(request: pytest.FixtureRequest) -> Iterator[ProcessPoolExecutor]:
    context = multiprocessing.get_context(request.param)
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as executor:
        yield executor


@pytest.mark.parametrize("trace_backend", ["opentelemetry"], indirect=True)
def test_started_trace_in_a_process_task_is_not_opentelemetrys_current_span(
    pool: ProcessPoolExecutor, trace_backend: str
) -> None:
    # A trace that tracectrl started has a parent-id no service exports: made
    # OpenTelemetry's current span in the worker, it would parent the worker's spans.
    with session_scope("pool-session"):
        propagation_headers()  # starts the trace
        started = current_trace()
        assert started is not None
        seen, otel_span_is_valid = submit(pool, report_trace_and_otel_span).result(timeout=60)
    assert seen == started
    assert not otel_span_is_valid


@pytest.mark.parametrize("trace_backend", ["contextvar", "opentelemetry"], indirect=True)
@pytest.mark.parametrize("started", [False, True])
def test_applied_snapshot_restores_session_and_trace_after_the_block(
    trace_backend: str, started: bool
) -> None:
    set_session_id("before")
    trace = TraceContext("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 1, "", True)
    with applied(ContextSnapshot("snapshot-session", trace, started)):
        assert current_session_id() == "snapshot-session"
        assert current_trace() == trace
    assert current_session_id() == "before"
    assert current_trace() is None


@pytest.mark.parametrize("trace_backend", ["opentelemetry"], indirect=True)
def test_work_run_with_a_snapshot_leaves_no_extracted_trace_behind(trace_backend: str) -> None:
    """A task that extracts a trace (OpenTelemetry's context) gives it back when it ends.

    The eager Celery path runs tasks in the caller's own context through ``applied``:
    a trace the task took from headers must not become the caller's.
    """
    from tracectrl.context import extract_trace_headers

    started = TraceContext("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 1)
    before = current_trace()
    # A trace the caller's unit started lives in tracectrl's variable, not in
    # OpenTelemetry's context, so resetting it does not undo the extract.
    with applied(ContextSnapshot("snapshot-session", started, trace_started=True)):
        extract_trace_headers(
            {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
        )
        inside = current_trace()
    assert inside is not None
    assert inside.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert current_trace() == before
    assert current_session_id() is None
