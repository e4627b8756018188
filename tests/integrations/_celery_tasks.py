"""The Celery app and tasks of the Celery tests, importable by the test process and the worker.

The broker and result backend come from ``$TRACECTRL_TEST_BROKER`` (the test's
redis-server).  In the worker, ``$TRACECTRL_TEST_WORKER`` chooses how the
process is instrumented: ``tracectrl`` (the default), ``tracectrl+otel``
(OpenTelemetry's Celery instrumentation too, spans kept in memory and read back
with :func:`exported_spans`), or ``otel-propagators`` (OpenTelemetry's alone,
with the propagators from ``$OTEL_PROPAGATORS``).

Every task reports what it saw as an :data:`Observation`: the session and trace
in force inside the task, and those in force in the worker just before the task
was entered (recorded by a ``task_prerun`` receiver connected before
tracectrl's), which is whatever the previous task on that process or thread left.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any, Optional

from celery import Celery, Task, signals

from tracectrl import current_session_id, current_trace, extract_trace_headers, set_session_id
from tracectrl.integrations import celery as tracectrl_celery

#: The session every worker process and thread starts with: tasks must leave it as it was.
WORKER_SESSION = "worker-own-session"
#: What tasks set inside themselves: it must never be seen outside them.
LEAKED_SESSION = "set-inside-a-task"
LEAKED_TRACEPARENT = "00-11111111111111111111111111111111-2222222222222222-01"

Observation = dict[str, Optional[str]]

MODE = os.environ.get("TRACECTRL_TEST_WORKER", "tracectrl")

app = Celery("tracectrl_tests")
app.conf.update(
    broker_url=os.environ.get("TRACECTRL_TEST_BROKER", "redis://127.0.0.1:1/0"),
    result_backend=os.environ.get("TRACECTRL_TEST_BROKER", "redis://127.0.0.1:1/0"),
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    task_track_started=False,
    result_expires=600,
)

_worker_thread_ready = threading.local()


def _context() -> tuple[Optional[str], Optional[str]]:
    trace = current_trace()
    return current_session_id(), None if trace is None else trace.trace_id


@signals.task_prerun.connect(weak=False)
def _record_before(task: Task[Any, Any], **_: object) -> None:
    """Note the context the worker had before the task was entered (connected before tracectrl)."""
    if not task.request.is_eager and not getattr(_worker_thread_ready, "done", False):
        # Every worker thread starts with the worker's own session, as a
        # service would set at start-up; the pool's threads begin empty.
        set_session_id(WORKER_SESSION)
        _worker_thread_ready.done = True
    task.request.tracectrl_before = _context()


if MODE in ("tracectrl", "tracectrl+otel"):
    tracectrl_celery.instrument()

if MODE in ("tracectrl+otel", "otel-propagators") and os.environ.get("TRACECTRL_TEST_BROKER"):
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tracectrl.integrations.otel import SessionSpanProcessor

    _exporter = InMemorySpanExporter()
    _provider = TracerProvider()
    _provider.add_span_processor(SessionSpanProcessor())
    _provider.add_span_processor(SimpleSpanProcessor(_exporter))
    if os.environ.get("TRACECTRL_TEST_WORKER_PROCESS"):  # only in the worker, not in pytest
        CeleryInstrumentor().instrument(tracer_provider=_provider)


def observe(task: Task[Any, Any], label: str) -> Observation:
    """What ``task`` sees now, and saw before it was entered."""
    session_id, trace_id = _context()
    before = getattr(task.request, "tracectrl_before", (None, None))
    return {
        "label": label,
        "session": session_id,
        "trace": trace_id,
        "before_session": before[0],
        "before_trace": before[1],
        "pid": str(os.getpid()),
    }


@app.task(bind=True)
def report(self: Task[Any, Any], label: str) -> Observation:
    """Report the session and trace this task runs under."""
    return observe(self, label)


@app.task(bind=True)
def report_then_overwrite(self: Task[Any, Any], label: str) -> Observation:
    """Report, then set a session and a trace that must not outlive the task."""
    seen = observe(self, label)
    set_session_id(LEAKED_SESSION)
    extract_trace_headers({"traceparent": LEAKED_TRACEPARENT})
    return seen


@app.task(bind=True)
def overwrite_then_fail(self: Task[Any, Any], label: str) -> None:
    """Set a session and a trace, then raise: none may outlive the task."""
    set_session_id(LEAKED_SESSION)
    extract_trace_headers({"traceparent": LEAKED_TRACEPARENT})
    raise LookupError(f"tool {label} failed")


@app.task(bind=True, max_retries=3)
def retry_twice(self: Task[Any, Any], label: str, seen: list[Observation]) -> list[Observation]:
    """Retry twice, carrying what each attempt saw; return all three observations."""
    seen = [*seen, observe(self, label)]
    if self.request.retries < 2:
        set_session_id(LEAKED_SESSION)  # must not reach the retry, which runs in a new context
        raise self.retry(args=(label, seen), countdown=0)
    return seen


@app.task(bind=True)
def publish_child(self: Task[Any, Any], label: str) -> str:
    """Publish :func:`report` from inside a task; return the child's id."""
    queue = self.request.delivery_info.get("routing_key") if self.request.delivery_info else None
    return str(report.apply_async((label,), queue=queue).id)


@app.task(bind=True)
def collect(self: Task[Any, Any], header: list[Observation]) -> dict[str, Any]:
    """A chord body: what the header tasks saw, and what this task sees."""
    return {"header": header, "body": observe(self, "body")}


@app.task(bind=True, acks_late=True, reject_on_worker_lost=True)
def die_once(self: Task[Any, Any], label: str, marker: str) -> Observation:
    """The first delivery kills its own prefork child with SIGKILL; the redelivery reports."""
    if not os.path.exists(marker):
        with open(marker, "w") as file:
            file.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return observe(self, label)


@app.task
def exported_spans() -> list[dict[str, Any]]:
    """The spans this worker's OpenTelemetry SDK has finished, oldest first."""
    spans = []
    for span in _exporter.get_finished_spans():
        context = span.context
        parent = span.parent
        spans.append(
            {
                "name": span.name,
                "trace": format(context.trace_id, "032x") if context else None,
                "span": format(context.span_id, "016x") if context else None,
                "parent": format(parent.span_id, "016x") if parent else None,
                "session": (span.attributes or {}).get("session.id"),
            }
        )
    return spans
