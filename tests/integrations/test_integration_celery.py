"""Celery: tasks run under their publisher's session and trace, on a real Redis and worker.

A real ``redis-server`` is the broker and result backend; a real ``celery
worker`` subprocess runs the tasks of ``_celery_tasks`` with each pool.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

celery = pytest.importorskip("celery", reason="Celery is not installed for this interpreter")

import _celery_tasks as tasks  # noqa: E402
from _services import Worker, celery_worker, redis_server  # noqa: E402
from _tracing import Tracing  # noqa: E402
from celery import chain, chord, group  # noqa: E402
from celery.result import AsyncResult, ResultSet  # noqa: E402

from tracectrl import current_session_id, current_trace, session_scope  # noqa: E402
from tracectrl.integrations import celery as tracectrl_celery  # noqa: E402

pytestmark = pytest.mark.engines

RESULT_LIMIT = 120  # seconds a result may take before the test fails (a stuck worker)
POOLS = ["prefork", "threads", "solo"]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on 127.0.0.1, the broker and result backend of this module."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        tasks.app.conf.update(broker_url=url, result_backend=url)
        yield url
        # Results unsubscribe from Redis when collected: let them, while Redis is still up.
        gc.collect()
        tasks.app.backend.result_consumer.stop()
        tasks.app.pool.force_close_all()


@pytest.fixture(scope="module", params=POOLS)
def worker(
    request: pytest.FixtureRequest, broker: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    """A real ``celery worker`` with the pool named by the parameter."""
    with celery_worker(broker, request.param, tmp_path_factory.mktemp("worker")) as running:
        yield running


@pytest.fixture(scope="module")
def prefork_worker(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A prefork worker with two children, for the load and worker-loss tests."""
    with celery_worker(broker, "prefork", tmp_path_factory.mktemp("prefork")) as running:
        yield running


@pytest.fixture(autouse=True)
def _instrumented_publisher() -> Iterator[None]:
    """This process publishes through tracectrl's handlers unless a test says otherwise."""
    tracectrl_celery.instrument()
    yield
    tracectrl_celery.instrument()


def outcome(result: AsyncResult[Any], worker: Worker) -> Any:
    """The task's return value; the worker's log when it never comes."""
    try:
        return result.get(timeout=RESULT_LIMIT)
    except celery.exceptions.TimeoutError:  # pragma: no cover - a diagnosis aid
        pytest.fail(f"no result from the {worker.pool} worker:\n{worker.log.read_text()}")


def here() -> tuple[str | None, str | None]:
    trace = current_trace()
    return current_session_id(), None if trace is None else trace.trace_id


def assert_clean_before(seen: dict[str, Any]) -> None:
    """The worker had its own session, and no trace, when the task was entered."""
    assert seen["before_session"] == tasks.WORKER_SESSION
    assert seen["before_trace"] is None


def test_task_runs_under_publisher_session_and_trace(worker: Worker) -> None:
    with session_scope("publisher-session"):
        result = tasks.report.apply_async(("one",), queue=worker.queue)
        publisher = here()
    seen = outcome(result, worker)
    assert (seen["session"], seen["trace"]) == publisher
    assert_clean_before(seen)


def test_delay_carries_the_session(worker: Worker) -> None:
    with session_scope("delay-session"):
        result = tasks.report.s("delayed").set(queue=worker.queue).delay()
        publisher = here()
    assert (outcome(result, worker)["session"], outcome(result, worker)["trace"]) == publisher


def test_what_a_task_sets_does_not_reach_the_next_task(worker: Worker) -> None:
    observations = []
    for index in range(6):
        with session_scope(f"sequence-{index}"):
            result = tasks.report_then_overwrite.apply_async((str(index),), queue=worker.queue)
            publisher = here()
        seen = outcome(result, worker)
        observations.append(seen)
        assert (seen["session"], seen["trace"]) == publisher
    for seen in observations:
        assert_clean_before(seen)


def test_failed_task_restores_the_worker_context(worker: Worker) -> None:
    with session_scope("failing-session"):
        failed = tasks.overwrite_then_fail.apply_async(("f",), queue=worker.queue)
    with pytest.raises(LookupError, match="tool f failed"):
        failed.get(timeout=RESULT_LIMIT)
    # Enough tasks after the failure that one lands on the process or thread that failed.
    with session_scope("after-failure"):
        results = [tasks.report.apply_async(("a",), queue=worker.queue) for _ in range(4)]
    for result in results:
        seen = outcome(result, worker)
        assert seen["session"] == "after-failure"
        assert_clean_before(seen)


def test_retries_keep_the_session_and_trace(worker: Worker) -> None:
    with session_scope("retried-session"):
        result = tasks.retry_twice.apply_async(("r", []), queue=worker.queue)
        publisher = here()
    attempts = outcome(result, worker)
    assert [(seen["session"], seen["trace"]) for seen in attempts] == [publisher] * 3


def test_task_published_by_a_task_keeps_the_session(worker: Worker) -> None:
    with session_scope("nesting-session"):
        parent = tasks.publish_child.apply_async(("child",), queue=worker.queue)
        publisher = here()
    child = outcome(AsyncResult(outcome(parent, worker), app=tasks.app), worker)
    assert (child["session"], child["trace"]) == publisher


def test_chain_group_and_chord_carry_the_session(worker: Worker) -> None:
    queue = worker.queue
    with session_scope("canvas-session"):
        chained = chain(
            tasks.report.si("first").set(queue=queue), tasks.report.si("second").set(queue=queue)
        ).apply_async()
        grouped = group(tasks.report.si(f"g{i}").set(queue=queue) for i in range(4)).apply_async()
        chorded = chord(
            [tasks.report.si(f"c{i}").set(queue=queue) for i in range(3)],
            tasks.collect.s().set(queue=queue),
        ).apply_async()
        publisher = here()
    seen = [outcome(chained.parent, worker), outcome(chained, worker)]
    seen += grouped.get(timeout=RESULT_LIMIT)
    chord_result = outcome(chorded, worker)
    seen += [*chord_result["header"], chord_result["body"]]
    assert len(seen) == 2 + 4 + 4
    assert {(item["session"], item["trace"]) for item in seen} == {publisher}


def test_headers_written_by_another_publisher_are_continued(worker: Worker) -> None:
    # A publisher without tracectrl (another language, a hand-made message) that
    # writes the fields itself: the worker continues them as from tracectrl.
    tracectrl_celery.uninstrument()
    headers = {
        "X-TraceCtrl-Session": "tenant%2Fhand-made",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    result = tasks.report.apply_async(("raw",), queue=worker.queue, headers=headers)
    seen = outcome(result, worker)
    assert (seen["session"], seen["trace"]) == (
        "tenant/hand-made",
        "0af7651916cd43dd8448eb211c80319c",
    )


HOSTILE_HEADERS: list[dict[str, str]] = [
    {"X-TraceCtrl-Session": "evil\r\nSet-Cookie: x", "traceparent": "00-zz-zz-01"},
    {"X-TraceCtrl-Session": "a" * 5000, "baggage": "session.id=" + "b" * 5000},
    {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "TRACEPARENT": "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01",
        "X-TraceCtrl-Session": "one,two",
    },
    {"baggage": "session.id=%ff%fe", "tracestate": "=" * 600},
]


@pytest.mark.parametrize("headers", HOSTILE_HEADERS)
def test_hostile_message_headers_are_ignored(worker: Worker, headers: dict[str, str]) -> None:
    # Published as a process without tracectrl would, so the headers reach the worker as sent.
    tracectrl_celery.uninstrument()
    result = tasks.report.apply_async(("hostile",), queue=worker.queue, headers=headers)
    seen = outcome(result, worker)
    assert seen["session"] is not None
    assert seen["session"] not in {"one", "two", "one,two", tasks.WORKER_SESSION}
    assert "\n" not in seen["session"]
    assert len(seen["session"]) < 100
    assert seen["trace"] != "0af7651916cd43dd8448eb211c80319c"
    assert_clean_before(seen)


def test_task_published_without_tracectrl_runs_under_a_new_session(worker: Worker) -> None:
    tracectrl_celery.uninstrument()
    with session_scope("unsent-session"):
        results = [tasks.report.apply_async(("bare",), queue=worker.queue) for _ in range(3)]
    seen = [outcome(result, worker) for result in results]
    sessions = {item["session"] for item in seen}
    traces = {item["trace"] for item in seen}
    assert len(sessions) == len(traces) == 3
    assert not sessions & {None, "unsent-session", tasks.WORKER_SESSION}
    for item in seen:
        assert_clean_before(item)


@pytest.fixture
def eager() -> Iterator[None]:
    """``task_always_eager`` for one test: tasks run in the caller's thread."""
    tasks.app.conf.task_always_eager = True
    yield
    tasks.app.conf.task_always_eager = False


@pytest.mark.usefixtures("eager")
def test_eager_task_runs_under_caller_session_and_restores_it() -> None:
    with session_scope("eager-session"):
        before = here()
        seen = tasks.report_then_overwrite.delay("eager").get()
        assert (seen["session"], seen["trace"]) == before
        assert here() == before
        attempts = tasks.retry_twice.delay("eager-retry", []).get()
        assert [(item["session"], item["trace"]) for item in attempts] == [before] * 3
        assert here() == before


def test_uninstrument_stops_sending_and_instrument_is_idempotent() -> None:
    tracectrl_celery.instrument()
    tracectrl_celery.instrument()
    assert tracectrl_celery.is_instrumented()
    receivers = [key for (key, _), _ in celery.signals.before_task_publish.receivers]
    assert receivers.count("tracectrl.integrations.celery.before_task_publish") == 1
    tracectrl_celery.uninstrument()
    assert not tracectrl_celery.is_instrumented()
    headers: dict[str, object] = {}
    with session_scope("not-sent"):
        celery.signals.before_task_publish.send(sender="t", headers=headers, body=None)
    assert headers == {}


def test_500_tasks_from_50_sessions_each_see_their_publisher(prefork_worker: Worker) -> None:
    sessions, per_session = 50, 10
    start = threading.Barrier(sessions)
    published: list[tuple[AsyncResult[Any], tuple[str | None, str | None]]] = []
    lock = threading.Lock()

    def agent(index: int) -> None:
        start.wait()
        with session_scope(f"load-session-{index}"):
            mine = [
                tasks.report.apply_async((f"{index}-{n}",), queue=prefork_worker.queue)
                for n in range(per_session)
            ]
            publisher = here()
            assert publisher[0] == f"load-session-{index}"
        with lock:
            published.extend((result, publisher) for result in mine)
        assert here() == (None, None) or here()[0] is None

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(published) == sessions * per_session
    values = ResultSet([result for result, _ in published], app=tasks.app).join(
        timeout=RESULT_LIMIT
    )
    assert len(values) == sessions * per_session
    for seen, (_, publisher) in zip(values, published):
        assert (seen["session"], seen["trace"]) == publisher
        assert_clean_before(seen)
    assert len({seen["session"] for seen in values}) == sessions
    assert len({seen["pid"] for seen in values}) == 2  # both prefork children took tasks


def test_retried_task_keeps_its_session_after_its_worker_is_killed(
    prefork_worker: Worker, tmp_path: Path
) -> None:
    marker = tmp_path / "killed-once"
    with session_scope("survivor-session"):
        result = tasks.die_once.apply_async(("k", str(marker)), queue=prefork_worker.queue)
        publisher = here()
    seen = outcome(result, prefork_worker)
    killed_pid = marker.read_text()
    assert seen["pid"] != killed_pid  # a new child ran the redelivered message
    assert (seen["session"], seen["trace"]) == publisher
    assert_clean_before(seen)


@pytest.fixture(scope="module")
def otel_worker(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A solo worker instrumented by tracectrl and by OpenTelemetry's Celery instrumentation."""
    with celery_worker(
        broker, "solo", tmp_path_factory.mktemp("otel"), TRACECTRL_TEST_WORKER="tracectrl+otel"
    ) as running:
        yield running


@pytest.fixture(scope="module")
def propagator_worker(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A solo worker with OpenTelemetry's Celery instrumentation and propagators alone."""
    with celery_worker(
        broker,
        "solo",
        tmp_path_factory.mktemp("propagators"),
        TRACECTRL_TEST_WORKER="otel-propagators",
        OTEL_PROPAGATORS="tracecontext,baggage,tracectrl_session",
    ) as running:
        yield running


@pytest.fixture
def otel_celery(tracing: Tracing) -> Iterator[Tracing]:
    """OpenTelemetry's Celery instrumentation in this process, publishing to ``tracing``."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    instrumentor = CeleryInstrumentor()
    instrumentor.instrument(tracer_provider=tracing.provider)
    yield tracing
    instrumentor.uninstrument()


def test_opentelemetry_celery_instrumentation_shares_one_trace_with_session_on_its_span(
    otel_worker: Worker, otel_celery: Tracing
) -> None:
    tracer = otel_celery.provider.get_tracer("agent")
    with session_scope("otel-celery-session"), tracer.start_as_current_span("agent") as agent:
        result = tasks.report.apply_async(("otel",), queue=otel_worker.queue)
    trace_id = format(agent.get_span_context().trace_id, "032x")
    seen = outcome(result, otel_worker)
    after = outcome(tasks.report.apply_async(("after",), queue=otel_worker.queue), otel_worker)
    worker_spans = outcome(tasks.exported_spans.apply_async(queue=otel_worker.queue), otel_worker)

    assert (seen["session"], seen["trace"]) == ("otel-celery-session", trace_id)
    producer = next(
        span for span in otel_celery.exporter.get_finished_spans() if span.name.startswith("apply")
    )
    assert format(producer.context.trace_id, "032x") == trace_id
    consumer = next(span for span in worker_spans if span["name"] == "run/_celery_tasks.report")
    assert consumer["trace"] == trace_id
    assert consumer["parent"] == format(producer.context.span_id, "016x")
    assert consumer["session"] == "otel-celery-session"
    # Neither instrumentation's context outlives the task.
    assert_clean_before(after)


def test_opentelemetry_propagators_alone_carry_the_session_through_celery(
    propagator_worker: Worker, otel_propagators_from_environment: None, otel_celery: Tracing
) -> None:
    tracectrl_celery.uninstrument()
    tracer = otel_celery.provider.get_tracer("agent")
    with session_scope("propagated-session"), tracer.start_as_current_span("agent") as agent:
        result = tasks.report.apply_async(("env",), queue=propagator_worker.queue)
    seen = outcome(result, propagator_worker)
    assert seen["session"] == "propagated-session"
    assert seen["trace"] == format(agent.get_span_context().trace_id, "032x")
