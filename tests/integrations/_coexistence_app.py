"""Run tracectrl's zero-code patch next to OpenTelemetry's and Sentry's, in the order given.

Run in a fresh interpreter by test_integration_zero_code_coexistence.py
(Sentry's integration cannot be removed once installed): ``python
_coexistence_app.py STEP...``, where each step is ``ours+``, ``ours-``,
``otel+``, ``otel-`` or ``sentry+``.  It prints one JSON object: what work
in a library's pool and thread saw after every step, and whether the
standard library's functions are the originals at the end.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import process as process_pool
from concurrent.futures import thread as thread_pool
from typing import Any

import sentry_sdk
import structlog
from openinference.instrumentation import using_session
from opentelemetry import context, trace
from opentelemetry.instrumentation.threading import ThreadingInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sentry_sdk.integrations.threading import ThreadingIntegration

from tracectrl import current_session_id, session_scope
from tracectrl.integrations.threading import instrument, uninstrument

THREAD_START = (
    "_start_joinable_thread"
    if hasattr(threading, "_start_joinable_thread")
    else "_start_new_thread"
)


def seams() -> list[object]:
    return [
        ThreadPoolExecutor.submit,
        threading.Thread.start,
        threading.Thread.run,
        thread_pool._WorkItem,
        process_pool._WorkItem,
        getattr(threading, THREAD_START),
    ]


class _Errors(logging.Handler):
    """Collects error records: OpenTelemetry logs a detach of the wrong context as one."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def observe(exporter: InMemorySpanExporter, tracer: trace.Tracer, label: str) -> dict[str, Any]:
    """Run work in a pool and threads under every library's context: what did the work see?"""
    exporter.clear()
    seen: list[dict[str, Any]] = []

    def work() -> None:
        with tracer.start_as_current_span("task"):
            pass
        seen.append(
            {
                "session": current_session_id(),
                "span": trace.get_current_span().get_span_context().span_id,
                "structlog": structlog.contextvars.get_contextvars().get("request"),
                "sentry": sentry_sdk.get_isolation_scope()._tags.get("caller"),
                "openinference": context.get_value("session.id"),
            }
        )

    with (
        session_scope(f"session-{label}"),
        using_session(f"oi-{label}"),
        tracer.start_as_current_span("caller") as caller,
    ):
        structlog.contextvars.bind_contextvars(request=f"request-{label}")
        sentry_sdk.set_tag("caller", label)
        with ThreadPoolExecutor(max_workers=2) as pool:
            for future in [pool.submit(work) for _ in range(4)]:
                future.result()
        threads = [threading.Thread(target=work) for _ in range(2)]
        threads.append(threading.Timer(0, work))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        structlog.contextvars.clear_contextvars()
        caller_span = caller.get_span_context().span_id
    task_parents = [
        span.parent.span_id if span.parent else None
        for span in exporter.get_finished_spans()
        if span.name == "task"
    ]
    return {
        "sessions": sorted({item["session"] or "" for item in seen}),
        "spans_are_callers": [item["span"] == caller_span for item in seen],
        "structlog": sorted({item["structlog"] or "" for item in seen}),
        "sentry": sorted({item["sentry"] or "" for item in seen}),
        "openinference": sorted({item["openinference"] or "" for item in seen}),
        "task_spans": len(task_parents),
        "task_spans_under_caller": sum(parent == caller_span for parent in task_parents),
    }


def main(steps: list[str]) -> None:
    errors = _Errors()
    logging.getLogger().addHandler(errors)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("coexistence")
    originals = seams()
    otel = ThreadingInstrumentor()
    report: dict[str, Any] = {"steps": []}
    for step in steps:
        if step == "ours+":
            instrument()
        elif step == "ours-":
            uninstrument()
        elif step == "otel+":
            otel.instrument()
        elif step == "otel-":
            otel.uninstrument()
        elif step == "sentry+":
            sentry_sdk.init(
                integrations=[ThreadingIntegration(propagate_scope=True)],
                default_integrations=False,
                auto_enabling_integrations=False,
            )
        else:
            raise SystemExit(f"unknown step {step!r}")
        report["steps"].append({"step": step, **observe(exporter, tracer, step)})
    report["originals_back"] = [now is before for now, before in zip(seams(), originals)]
    report["errors"] = errors.messages
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
