"""The Celery integration's worker-side handlers, in this process.

What a worker does around each task, without a broker: the task's request
holds the message headers the publisher wrote, the ``task_prerun`` handler
enters the publisher's session and trace, and the ``task_postrun`` one gives
the worker its own back.  The handlers are called directly, not through
Celery's signals: other test modules connect receivers of their own to those.
The real worker, on a real broker, is in ``test_integration_celery.py``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextvars import Context, copy_context
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from tracectrl import current_session_id, current_trace, session_scope, set_session_id
from tracectrl.context import extract_trace_headers, propagation_headers
from tracectrl.integrations import celery as celery_integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def task() -> Iterator[Any]:
    celery_integration.instrument()
    app = Celery("signals", set_as_current=False)

    @app.task
    def work() -> None:  # never run: only its request is used, as the worker's
        pass

    try:
        yield work
    finally:
        celery_integration.uninstrument()


def test_a_task_runs_under_its_publishers_session_and_the_worker_gets_its_own_back(
    task: Any,
) -> None:
    with session_scope("publisher"):
        extract_trace_headers({"traceparent": TRACEPARENT})
        headers = propagation_headers()
    set_session_id("worker-own")
    before = current_trace()
    task.push_request(id="task-1", task="work", **headers)
    try:
        celery_integration._on_prerun(task_id="task-1", task=task)
        inside = (current_session_id(), current_trace())
        celery_integration._on_postrun(task_id="task-1", task=task)
    finally:
        task.pop_request()
    assert inside[0] == "publisher"
    assert inside[1] is not None
    assert inside[1].trace_id == TRACE_ID
    assert (current_session_id(), current_trace()) == ("worker-own", before)


def _prerun_and_postrun_in_two_contexts(
    task: Any, task_id: str, **request: Any
) -> tuple[Context, Context, list[warnings.WarningMessage]]:
    """Run the task's prerun in one context and its postrun in a copy of it made after."""
    task.push_request(id=task_id, task="work", **request)
    try:
        prerun = copy_context()
        prerun.run(celery_integration._on_prerun, task_id=task_id, task=task)
        postrun = prerun.copy()
        postrun.run(set_session_id, "changed-by-the-task")
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            postrun.run(celery_integration._on_postrun, task_id=task_id, task=task)
    finally:
        task.pop_request()
    return prerun, postrun, warned


def test_a_postrun_in_another_context_than_its_prerun_restores_there_and_warns_once(
    task: Any,
) -> None:
    # The worker's handlers run in one thread, one context; should a pool run
    # them in two, the task's session is still taken out of the context the
    # postrun runs in, and one warning, naming the integration, says so.
    with session_scope("publisher"):
        headers = propagation_headers()
    prerun, postrun, warned = _prerun_and_postrun_in_two_contexts(task, "task-2", **headers)
    assert prerun.run(current_session_id) == "publisher"
    assert (postrun.run(current_session_id), postrun.run(current_trace)) == (None, None)
    assert [(w.category, Path(w.filename).name) for w in warned] == [(RuntimeWarning, "celery.py")]
    assert Path(warned[0].filename).parent.name == "integrations"
    assert "different thread or task" in str(warned[0].message)


def test_an_eager_tasks_postrun_in_another_context_restores_there_and_warns_once(
    task: Any,
) -> None:
    # Run inline by apply(), a task takes the caller's own session and trace.
    set_session_id("caller")
    _, postrun, warned = _prerun_and_postrun_in_two_contexts(task, "task-3", is_eager=True)
    assert postrun.run(current_session_id) == "caller"
    assert [w.category for w in warned] == [RuntimeWarning]
    assert "different thread or task" in str(warned[0].message)
