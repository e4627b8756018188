"""Benchmarks: tracectrl against the raw mechanism it wraps, OpenTelemetry and OpenInference.

Run from the repository root, with the dev venv's Python::

    python tests/benchmarks/run.py               # print the table, write results.json
    python tests/benchmarks/run.py --write-docs  # ... and update docs/pages/performance.md

Everything runs in one process.  Each case is a statement timed in a loop of
many iterations (one *sample*, about 4 ms); every *round* takes one sample of
every case of every row back to back, in an order shuffled from round to round,
so slow drift on a noisy machine hits all cases alike.  The table gives the
median and the minimum time per operation over the rounds, and each ratio is
the median of the per-round ratios, so it is computed within one round.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib.util
import itertools
import json
import os
import platform
import random
import statistics
import sys
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import Context, ContextVar, copy_context
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from tracectrl.session import _session_id

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).with_name("results.json")
PERFORMANCE_PAGE = ROOT / "docs" / "pages" / "performance.md"
TABLE_START = "<!-- benchmark-table:start -->"
TABLE_END = "<!-- benchmark-table:end -->"
TARGETS_START = "<!-- benchmark-targets:start -->"
TARGETS_END = "<!-- benchmark-targets:end -->"
CHART_SCRIPT = ROOT / "docs" / "scripts" / "benchmark_chart.py"
COMMAND = "python tests/benchmarks/run.py --write-docs"

SESSION_ID = "bench-session-0123456789"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7,vendor@tenant=opaque-1"
BAGGAGE = "session.id=bench-session-0123456789,user.id=alice"
OUTER_SESSION_ID = "bench-outer-session"
MEMORY_SESSIONS = 100_000
TIMES = "\N{MULTIPLICATION SIGN}"


# --------------------------------------------------------------------------- #
# The fair baselines: the least code that does the same job by hand.
# --------------------------------------------------------------------------- #

# The very ContextVar the library sets, so that both sides pay the same for
# ``set``/``reset`` (the cost depends on what the context already holds).
_minimal_var: ContextVar[Optional[str]] = _session_id


class MinimalScope:
    """The physical limit of a scope object: ``set`` on enter, ``reset`` on exit."""

    __slots__ = ("token", "value")

    def __init__(self, value: str) -> None:
        self.value = value

    def __enter__(self) -> str:
        self.token = _minimal_var.set(self.value)
        return self.value

    def __exit__(self, *exc_info: object) -> None:
        _minimal_var.reset(self.token)


class MinimalAsyncScope:
    """The physical limit of an async scope object."""

    __slots__ = ("token", "value")

    def __init__(self, value: str) -> None:
        self.value = value

    async def __aenter__(self) -> str:
        self.token = _minimal_var.set(self.value)
        return self.value

    async def __aexit__(self, *exc_info: object) -> None:
        _minimal_var.reset(self.token)


def minimal_decorator(value: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The physical limit of a session decorator: set, call, reset in ``finally``."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = _minimal_var.set(value)
            try:
                return fn(*args, **kwargs)
            finally:
                _minimal_var.reset(token)

        return wrapper

    return decorate


class MinimalNewSessionScope:
    """The least code doing a new session's job: the env variable or a uuid4, set, reset."""

    __slots__ = ("token",)

    def __enter__(self) -> str:
        value = os.environ.get("TRACECTRL_SESSION_ID") or str(uuid.uuid4())
        self.token = _minimal_var.set(value)
        return value

    def __exit__(self, *exc_info: object) -> None:
        _minimal_var.reset(self.token)


def noop() -> None:
    """The work inside every decorated call and every pool task: nothing."""


# --------------------------------------------------------------------------- #
# Rows, cases and targets.
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Target:
    """A bound on ``ours / theirs`` (``at_most``) or on ``theirs / ours`` (``faster_by``)."""

    at_most: float | None = None
    faster_by: float | None = None

    def met(self, ratio: float) -> bool:
        if self.at_most is not None:
            return ratio <= self.at_most
        assert self.faster_by is not None
        return 1 / ratio >= self.faster_by

    def describe(self) -> str:
        if self.at_most is not None:
            return f"≤ {self.at_most:g}{TIMES}"
        return f"≥ {self.faster_by:g}{TIMES} faster"


@dataclass
class Case:
    """One statement to time, with the names it uses; ``run(n)`` times ``n`` iterations."""

    label: str
    statement: str
    namespace: dict[str, Any]
    is_async: bool = False
    #: Run once, in the case's own context, before timing (e.g. make a trace current).
    setup: Optional[Callable[[], object]] = None
    number: int = 0
    samples: list[float] = field(default_factory=list)  # seconds per iteration
    context: Context = field(default_factory=copy_context)

    def prepare(self) -> Callable[[int], None]:
        """Give the case a context of its own, set up, and return its timing loop.

        Every case runs in its own copy of the caller's context, so what one
        case leaves current (a trace, an OpenTelemetry context) cannot change
        what another one costs.
        """
        self.context = copy_context()
        if self.setup is not None:
            self.context.run(self.setup)
        loop, context = self._compile(), self.context

        def run_in_context(number: int) -> None:
            context.run(loop, number)

        return run_in_context

    def _compile(self) -> Callable[[int], None]:
        body = f"    for _ in _repeat(None, _n):\n        {self.statement}\n"
        namespace = {**self.namespace, "_repeat": itertools.repeat}
        if not self.is_async:
            exec(f"def _loop(_n):\n{body}", namespace)
            loop: Callable[[int], None] = namespace["_loop"]
            return loop
        exec(f"async def _aloop(_n):\n{body}", namespace)
        make: Callable[[int], Any] = namespace["_aloop"]

        def drive(n: int) -> None:
            # No event loop: nothing awaited here suspends, so the coroutine
            # finishes on its first send and only the async protocol is timed.
            coroutine = make(n)
            try:
                coroutine.send(None)
            except StopIteration:
                return
            raise RuntimeError(f"{self.label}: the benchmark coroutine suspended")

        return drive


@dataclass
class Comparison:
    """``ours`` against ``theirs``, with the target the ratio must meet (``None``: context only)."""

    theirs: Case
    target: Target | None


@dataclass
class Row:
    operation: str
    ours: Case | None
    comparisons: list[Comparison]
    skipped: str = ""


def build_rows() -> list[Row]:
    """Every row of the table; a row whose code is missing says why and is skipped."""
    return [
        _guard("`with session_scope(id)` enter+exit", _scope_row),
        _guard("`async with session_scope(id)`", _async_scope_row),
        _guard("`@with_session` call on a no-op function", _decorator_row),
        _guard("`with session_scope(new=True)`, trace unread", _new_scope_row),
        _guard("`with session_scope(id, span=...)` (SDK, no processor)", _span_row),
        _guard("`extract_trace_headers` (traceparent + 3-member tracestate)", _extract_row),
        _guard("`inject_trace_headers`", _inject_row),
        _guard("baggage parse (2 members)", _baggage_row),
        _guard("`submit(pool, fn)` round trip", _submit_row),
        _guard("signed session: send + receive round trip", _signed_round_trip_row),
        _guard("Celery task: publish inject + worker extract/restore", _celery_row),
        _guard("zero-code: `pool.submit(fn).result()`, instrumented", _zero_code_row),
        _guard("zero-code vs OpenTelemetry's `ThreadingInstrumentor`", _zero_code_vs_otel_row),
    ]


def _guard(operation: str, build: Callable[[str], Row]) -> Row:
    try:
        return build(operation)
    except ImportError as error:
        return Row(operation, None, [], skipped=f"not measured: {error}")


def _scope_row(operation: str) -> Row:
    from openinference.instrumentation import using_session
    from opentelemetry.context import attach, detach, set_value

    from tracectrl import session_scope

    names = {
        "session_scope": session_scope,
        "MinimalScope": MinimalScope,
        "using_session": using_session,
        "attach": attach,
        "detach": detach,
        "set_value": set_value,
        "var": _minimal_var,
        "sid": SESSION_ID,
    }
    return Row(
        operation,
        Case("with session_scope(sid)", "with session_scope(sid): pass", names),
        [
            Comparison(
                Case("minimal class manager", "with MinimalScope(sid): pass", names),
                Target(at_most=1.2),
            ),
            Comparison(
                Case("OpenInference using_session", "with using_session(sid): pass", names),
                Target(faster_by=2.5),
            ),
            Comparison(
                Case(
                    "OpenTelemetry attach/detach",
                    "detach(attach(set_value('session.id', sid)))",
                    names,
                ),
                None,
            ),
            Comparison(Case("raw ContextVar set/reset", "var.reset(var.set(sid))", names), None),
        ],
    )


def _async_scope_row(operation: str) -> Row:
    from openinference.instrumentation import using_session

    from tracectrl import session_scope

    names = {
        "session_scope": session_scope,
        "MinimalAsyncScope": MinimalAsyncScope,
        "using_session": using_session,
        "sid": SESSION_ID,
    }
    return Row(
        operation,
        Case("async with session_scope(sid)", "async with session_scope(sid): pass", names, True),
        [
            Comparison(
                Case(
                    "minimal async manager", "async with MinimalAsyncScope(sid): pass", names, True
                ),
                Target(at_most=1.2),
            ),
            Comparison(
                Case(
                    "OpenInference async using_session",
                    "async with using_session(sid): pass",
                    names,
                    True,
                ),
                None,
            ),
        ],
    )


def _decorator_row(operation: str) -> Row:
    from openinference.instrumentation import using_session

    from tracectrl import with_session

    names = {
        "ours": with_session(SESSION_ID)(noop),
        "joined": with_session(noop),
        "minimal": minimal_decorator(SESSION_ID)(noop),
        "openinference": using_session(SESSION_ID)(noop),
        "plain": noop,
    }
    return Row(
        operation,
        Case('@with_session("id")', "ours()", names),
        [
            Comparison(
                Case("minimal set/reset decorator", "minimal()", names), Target(at_most=1.2)
            ),
            Comparison(Case("OpenInference @using_session", "openinference()", names), None),
            Comparison(Case("@with_session (bare: joins the caller's)", "joined()", names), None),
            Comparison(Case("the undecorated call", "plain()", names), None),
        ],
    )


def _extract_row(operation: str) -> Row:
    from opentelemetry import context as otel_context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from tracectrl.context import extract_trace_headers

    names = {
        "extract_trace_headers": extract_trace_headers,
        "attach": otel_context.attach,
        "propagator": TraceContextTextMapPropagator(),
        "carrier": {"traceparent": TRACEPARENT, "tracestate": TRACESTATE},
    }
    return Row(
        operation,
        Case("extract_trace_headers(carrier)", "extract_trace_headers(carrier)", names),
        [
            Comparison(
                Case(
                    "OpenTelemetry attach(extract())",
                    "attach(propagator.extract(carrier))",
                    names,
                ),
                Target(faster_by=4),
            )
        ],
    )


def _inject_row(operation: str) -> Row:
    from opentelemetry import context as otel_context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from tracectrl.context import extract_trace_headers, inject_trace_headers

    propagator = TraceContextTextMapPropagator()
    carrier = {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}
    names = {"inject_trace_headers": inject_trace_headers, "propagator": propagator}
    # Both sides continue the same remote parent, made current once, in their context.
    return Row(
        operation,
        Case(
            "inject_trace_headers()",
            "inject_trace_headers()",
            names,
            setup=lambda: extract_trace_headers(carrier),
        ),
        [
            Comparison(
                Case(
                    "OpenTelemetry inject",
                    "propagator.inject({})",
                    names,
                    setup=lambda: otel_context.attach(propagator.extract(carrier)),
                ),
                Target(faster_by=2.5),
            )
        ],
    )


def _baggage_row(operation: str) -> Row:
    from opentelemetry.baggage.propagation import W3CBaggagePropagator

    from tracectrl._baggage import parse_baggage
    from tracectrl._headers import header_values

    names = {
        "parse_baggage": parse_baggage,
        "header_values": header_values,
        "propagator": W3CBaggagePropagator(),
        "carrier": {"baggage": BAGGAGE},
    }
    return Row(
        operation,
        Case(
            "read + parse the baggage header",
            "parse_baggage(header_values(carrier, 'baggage'))",
            names,
        ),
        [
            Comparison(
                Case(
                    "OpenTelemetry W3CBaggagePropagator.extract",
                    "propagator.extract(carrier)",
                    names,
                ),
                Target(faster_by=4),
            )
        ],
    )


def _new_scope_row(operation: str) -> Row:
    from tracectrl import session_scope

    names = {"scope": session_scope(new=True), "minimal": MinimalNewSessionScope()}
    return Row(
        operation,
        Case("with session_scope(new=True)", "with scope: pass", names),
        [
            Comparison(
                Case(
                    "minimal new-session manager (env, uuid4, set/reset)",
                    "with minimal: pass",
                    names,
                ),
                Target(at_most=1.3),
            )
        ],
    )


def _span_row(operation: str) -> Row:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from tracectrl import session_scope

    provider = TracerProvider()
    # span= starts its spans from the global provider; set it once, before any is made.
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("bench")
    names = {
        "scope": session_scope(SESSION_ID, span="unit"),
        "tracer": tracer,
        "session": {"session.id": SESSION_ID},
        "sid": SESSION_ID,
    }
    return Row(
        operation,
        Case('with session_scope(sid, span="unit")', "with scope: pass", names),
        [
            Comparison(
                Case(
                    "OpenTelemetry start_as_current_span alone",
                    "with tracer.start_as_current_span('unit'): pass",
                    names,
                ),
                Target(at_most=1.15),
            ),
            # The same span as span= makes, by hand, both ways of giving it the
            # session: the SDK's attribute handling is a large share of a span's cost.
            Comparison(
                Case(
                    "OpenTelemetry start_as_current_span, session.id in attributes=",
                    "with tracer.start_as_current_span('unit', attributes=session): pass",
                    names,
                ),
                None,
            ),
            Comparison(
                Case(
                    "OpenTelemetry start_as_current_span, then set_attribute('session.id')",
                    "with tracer.start_as_current_span('unit') as span:"
                    " span.set_attribute('session.id', sid)",
                    names,
                ),
                None,
            ),
        ],
    )


def _submit_row(operation: str) -> Row:
    from tracectrl.executors import submit

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench")
    pool.submit(noop).result()  # start the worker before timing
    names = {"submit": submit, "pool": pool, "noop": noop}
    return Row(
        operation,
        Case("submit(pool, fn).result()", "submit(pool, noop).result()", names),
        [
            Comparison(
                Case("pool.submit(fn).result()", "pool.submit(noop).result()", names),
                Target(at_most=1.05),
            )
        ],
    )


def _signed_round_trip_row(operation: str) -> Row:
    from tracectrl.context import continue_session, extract_trace_headers, propagation_headers
    from tracectrl.session import set_session_id

    carrier = {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}

    def in_a_session() -> None:
        set_session_id(SESSION_ID)
        extract_trace_headers(carrier)

    names = {
        "continue_session": continue_session,
        "propagation_headers": propagation_headers,
        "key": "bench-session-key-0123456789abcdef",
    }
    # One agent's outgoing headers, continued by the next: HMAC-SHA256 on each side.
    return Row(
        operation,
        Case(
            "signed: propagation_headers(key=) -> continue_session(key=)",
            "with continue_session(propagation_headers(key=key), key=key): pass",
            names,
            setup=in_a_session,
        ),
        [
            Comparison(
                Case(
                    "unsigned: propagation_headers() -> continue_session()",
                    "with continue_session(propagation_headers()): pass",
                    names,
                    setup=in_a_session,
                ),
                Target(at_most=1.5),
            )
        ],
    )


class _ZeroCodePatches:
    """Switches ``pool.submit`` between no patch, tracectrl's and OpenTelemetry's, per statement.

    Both patches are process-wide, while every round interleaves every case,
    so each statement puts its patch in place, submits, and puts the plain
    standard library back: every case pays the same two switches, and no
    other row ever runs patched.  tracectrl's patch on the submit path is the
    work-item class (its thread-start hook does not run once the worker
    exists); OpenTelemetry's is its wrapper of ``ThreadPoolExecutor.submit``.
    """

    def __init__(self) -> None:
        from concurrent.futures import thread as thread_pool

        from tracectrl.integrations.threading import instrument

        self.module = thread_pool
        self.plain = (ThreadPoolExecutor.submit, thread_pool._WorkItem)
        instrument()
        self.ours = (ThreadPoolExecutor.submit, thread_pool._WorkItem)
        self.otel: tuple[Any, Any] = self.plain
        self.use(self.plain)

    def add_opentelemetry(self) -> None:
        from opentelemetry.instrumentation.threading import ThreadingInstrumentor

        instrumentor = ThreadingInstrumentor()
        instrumentor.instrument()
        self.otel = (ThreadPoolExecutor.submit, self.plain[1])
        instrumentor.uninstrument()
        self.use(self.plain)

    def use(self, patch: tuple[Any, Any]) -> None:
        ThreadPoolExecutor.submit, self.module._WorkItem = patch  # type: ignore[method-assign]


def _zero_code_names() -> dict[str, Any]:
    patches = _ZeroCodePatches()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-zero-code")
    pool.submit(noop).result()  # start the worker before timing
    return {"pool": pool, "noop": noop, "patches": patches, "use": patches.use}


def _zero_code_row(operation: str) -> Row:
    names = _zero_code_names()
    patches = names["patches"]
    names.update(ours=patches.ours, plain=patches.plain)
    return Row(
        operation,
        Case(
            "instrumented pool.submit(fn).result()",
            "use(ours); pool.submit(noop).result(); use(plain)",
            names,
        ),
        [
            Comparison(
                Case(
                    "uninstrumented pool.submit(fn).result()",
                    "use(plain); pool.submit(noop).result(); use(plain)",
                    names,
                ),
                Target(at_most=1.05),
            )
        ],
    )


def _zero_code_vs_otel_row(operation: str) -> Row:
    names = _zero_code_names()
    patches = names["patches"]
    patches.add_opentelemetry()
    names.update(ours=patches.ours, otel=patches.otel, plain=patches.plain)
    return Row(
        operation,
        Case(
            "tracectrl instrument(): whole context",
            "use(ours); pool.submit(noop).result(); use(plain)",
            names,
        ),
        [
            Comparison(
                Case(
                    "ThreadingInstrumentor: OpenTelemetry context only",
                    "use(otel); pool.submit(noop).result(); use(plain)",
                    names,
                ),
                Target(faster_by=1.0),
            )
        ],
    )


# --------------------------------------------------------------------------- #
# Timing.
# --------------------------------------------------------------------------- #


def _calibrate(run: Callable[[int], None], sample_seconds: float) -> int:
    """Return the iterations per sample that take at least ``sample_seconds``."""
    number = 1
    while True:
        elapsed = _time(run, number)
        if elapsed >= sample_seconds / 4:
            return max(1, round(number * sample_seconds / elapsed))
        number *= 4


def _time(run: Callable[[int], None], number: int) -> float:
    gc_was_enabled = gc.isenabled()
    gc.disable()  # as timeit does: a collection would land on one case at random
    try:
        start = time.perf_counter()
        run(number)
        return time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()


def measure(rows: list[Row], rounds: int, sample_seconds: float) -> None:
    """Fill every case's ``samples``: ``rounds`` rounds, every case once per round, interleaved."""
    cases = [case for row in rows if row.ours for case in _cases(row)]
    if not cases:
        return
    runners = [case.prepare() for case in cases]
    for case, run in zip(cases, runners):
        run(max(1, case.number or 100))  # warm up caches and specialisation
        case.number = _calibrate(run, sample_seconds)
    pairs = list(zip(cases, runners))
    for round_index in range(rounds):
        # A new order every round (seeded: runs are repeatable), so that no case
        # always follows the same neighbour or always comes first after a slow one.
        random.Random(round_index).shuffle(pairs)
        for case, run in pairs:
            case.samples.append(_time(run, case.number) / case.number)


def _cases(row: Row) -> Iterator[Case]:
    assert row.ours is not None
    yield row.ours
    for comparison in row.comparisons:
        yield comparison.theirs


def measure_memory(sessions: int) -> dict[str, Any]:
    """Create and exit ``sessions`` scopes and decorated calls; report traced memory growth."""
    from tracectrl import current_session_id, session_scope, with_session

    @with_session(new=True)
    def decorated() -> None:
        pass

    def churn(count: int) -> None:
        for index in range(count):
            with session_scope(f"session-{index}"):
                pass
            with session_scope(new=True):
                pass
            decorated()

    churn(1_000)  # warm up: interned strings, caches, allocator pools
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        churn(sessions)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert current_session_id() == OUTER_SESSION_ID
    growth = after - before
    return {
        "operation": f"{sessions:,} scoped sessions created and exited",
        "compared_with": "tracemalloc before/after",
        "sessions": sessions,
        "scopes_per_session": 3,
        "growth_bytes": growth,
        "target": "no growth",
        # A few hundred bytes of interpreter bookkeeping can appear; a leak of
        # even one byte per scope would be 300,000.
        "met": growth < 1024,
    }


# --------------------------------------------------------------------------- #
# Reporting.
# --------------------------------------------------------------------------- #


def summarise(rows: list[Row], memory: dict[str, Any], rounds: int) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for row in rows:
        if row.ours is None:
            results.append({"operation": row.operation, "skipped": row.skipped})
            continue
        ours = row.ours
        for comparison in row.comparisons:
            theirs = comparison.theirs
            paired = [a / b for a, b in zip(ours.samples, theirs.samples)]
            ratio = statistics.median(paired)
            target = comparison.target
            results.append(
                {
                    "operation": row.operation,
                    "ours": ours.label,
                    "compared_with": theirs.label,
                    "ours_ns": _stats(ours.samples),
                    "theirs_ns": _stats(theirs.samples),
                    "ratio": round(ratio, 3),
                    "ratio_of_minimums": round(min(ours.samples) / min(theirs.samples), 3),
                    "target": None if target is None else target.describe(),
                    "met": None if target is None else target.met(ratio),
                }
            )
    return {
        "command": COMMAND,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "rounds": rounds,
        "results": results,
        "memory": memory,
    }


def _stats(samples: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(samples) * 1e9, 1),
        "min": round(min(samples) * 1e9, 1),
    }


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from opentelemetry.version import __version__ as otel_version

    try:
        from importlib.metadata import version

        openinference_version = version("openinference-instrumentation")
    except Exception:
        openinference_version = "not installed"
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "opentelemetry_api": otel_version,
        "openinference_instrumentation": openinference_version,
    }


def _duration(ns: float) -> str:
    if ns >= 10_000:
        return f"{ns / 1000:,.1f} µs"
    if ns >= 1_000:
        return f"{ns / 1000:,.2f} µs"
    return f"{ns:,.0f} ns"


def _ratio_text(result: dict[str, Any]) -> str:
    ratio = result["ratio"]
    return f"{1 / ratio:.2f}{TIMES} faster" if ratio < 1 else f"{ratio:.2f}{TIMES}"


def table_lines(summary: dict[str, Any]) -> list[str]:
    """The results as a Markdown table (also readable as plain text)."""
    lines = [
        "| operation | compared with | tracectrl median / min | compared median / min "
        "| ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    previous = None
    for result in summary["results"]:
        operation = result["operation"] if result["operation"] != previous else ""
        previous = result["operation"]
        if "skipped" in result:
            lines.append(f"| {operation} | {result['skipped']} | | | | | |")
            continue
        ours, theirs = result["ours_ns"], result["theirs_ns"]
        met = {True: "yes", False: "**no**", None: "—"}[result["met"]]
        lines.append(
            f"| {operation} | {result['compared_with']} "
            f"| {_duration(ours['median'])} / {_duration(ours['min'])} "
            f"| {_duration(theirs['median'])} / {_duration(theirs['min'])} "
            f"| {_ratio_text(result)} | {result['target'] or '(context)'} | {met} |"
        )
    memory = summary["memory"]
    lines.append(
        f"| {memory['operation']} | {memory['compared_with']} "
        f"| {memory['growth_bytes']:+,} bytes | | | {memory['target']} "
        f"| {'yes' if memory['met'] else '**no**'} |"
    )
    return lines


def machine_line(summary: dict[str, Any]) -> str:
    m = summary["machine"]
    return (
        f"{m['python']} on {m['cpu']} ({m['cores']} cores), {m['platform']}; "
        f"opentelemetry-api {m['opentelemetry_api']}, "
        f"openinference-instrumentation {m['openinference_instrumentation']}; "
        f"{summary['rounds']} rounds, {summary['date']}."
    )


def docs_table_lines(summary: dict[str, Any]) -> list[str]:
    """The Performance page's table: four columns, every ratio as a speed-up."""
    lines = [
        f"| operation | tracectrl | alternative | speed-up ({TIMES} faster) |",
        "|---|---|---|---|",
    ]
    previous = None
    for result in summary["results"]:
        operation = result["operation"] if result["operation"] != previous else ""
        previous = result["operation"]
        if "skipped" in result:
            lines.append(f"| {operation} | skipped: {result['skipped']} | | |")
            continue
        ours, theirs = result["ours_ns"]["median"], result["theirs_ns"]["median"]
        ours_text = _duration(ours) if operation else ""
        lines.append(
            f"| {operation} | {ours_text} | {result['compared_with']}: "
            f"{_duration(theirs)} | {1 / result['ratio']:.2f}{TIMES} |"
        )
    return lines


def targets_lines(summary: dict[str, Any]) -> list[str]:
    """The targets, each measured ratio in its target's own terms, and the memory check."""
    lines = [
        "| operation | compared with | target | measured | minimums | met |",
        "|---|---|---|---|---|---|",
    ]
    for result in summary["results"]:
        if "skipped" in result or result["target"] is None:
            continue
        faster = "faster" in result["target"]
        measured, minimums = result["ratio"], result["ratio_of_minimums"]
        if faster:
            text = f"{1 / measured:.2f}{TIMES} faster"
            minimum_text = f"{1 / minimums:.2f}{TIMES} faster"
        else:
            text, minimum_text = f"{measured:.2f}{TIMES}", f"{minimums:.2f}{TIMES}"
        lines.append(
            f"| {result['operation']} | {result['compared_with']} | {result['target']} "
            f"| {text} | {minimum_text} | {'met' if result['met'] else 'missed'} |"
        )
    memory = summary["memory"]
    lines.append(
        f"| {memory['operation']} | {memory['compared_with']} | {memory['target']} "
        f"| {memory['growth_bytes']:+,} bytes | | {'met' if memory['met'] else 'missed'} |"
    )
    return lines


def _replace_between(page: str, start_marker: str, end_marker: str, lines: list[str]) -> str:
    """Put ``lines`` between the markers, indented as the start marker is (in a box)."""
    start = page.index(start_marker)
    line_start = page.rindex("\n", 0, start) + 1
    indent = page[line_start:start]
    block = "\n".join(["", *(f"{indent}{line}" if line else "" for line in lines), indent])
    return page[: start + len(start_marker)] + block + page[page.index(end_marker) :]


def write_docs(summary: dict[str, Any]) -> None:
    """Update the table, the targets box and the chart of docs/pages/performance.md."""
    page = PERFORMANCE_PAGE.read_text(encoding="utf-8")
    measured = f"Measured with `{summary['command']}`: {machine_line(summary)}"
    page = _replace_between(
        page, TABLE_START, TABLE_END, [*docs_table_lines(summary), "", measured, ""]
    )
    page = _replace_between(page, TARGETS_START, TARGETS_END, ["", *targets_lines(summary), ""])
    PERFORMANCE_PAGE.write_text(page, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("benchmark_chart", CHART_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    chart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(chart)
    print(f"wrote {chart.write(summary)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=41, help="samples per case (default 41)")
    parser.add_argument(
        "--sample-ms", type=float, default=4.0, help="time per sample in ms (default 4)"
    )
    parser.add_argument("--quick", action="store_true", help="9 rounds of 1 ms: a smoke test")
    parser.add_argument(
        "--only", default="", help="measure only the rows whose operation contains this text"
    )
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the results")
    parser.add_argument(
        "--write-docs", action="store_true", help="update the table in docs/pages/performance.md"
    )
    args = parser.parse_args(argv)
    rounds, sample_ms = (9, 1.0) if args.quick else (args.rounds, args.sample_ms)

    from tracectrl import set_session_id

    # As inside a request: a session is in force, so the bare decorator joins it.
    set_session_id(OUTER_SESSION_ID)
    rows = [row for row in build_rows() if args.only in row.operation]
    measure(rows, rounds, sample_ms / 1000)
    memory = measure_memory(MEMORY_SESSIONS)
    summary = summarise(rows, memory, rounds)

    print("\n".join(table_lines(summary)))
    print(f"\n{machine_line(summary)}")
    args.json.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    if args.write_docs:
        write_docs(summary)
        print(f"wrote {PERFORMANCE_PAGE}")
    missed = [r for r in summary["results"] if r.get("met") is False]
    if not memory["met"]:
        missed.append(memory)
    return 1 if missed else 0


def _celery_row(operation: str) -> Row:
    from celery import Celery
    from opentelemetry import context as otel_context
    from opentelemetry import propagate
    from opentelemetry.instrumentation.celery import celery_getter

    from tracectrl import session_scope
    from tracectrl.context import extract_trace_headers
    from tracectrl.integrations import celery as integration

    integration.instrument()  # as in a worker: the handlers are connected
    app = Celery("bench", set_as_current=False)

    @app.task
    def work() -> None:  # never run: its request stack holds the message being handled
        pass

    # One message as both sides write it: every field of both, on one request.
    message: dict[str, Any] = {"id": "bench-task", "task": "work"}
    with session_scope(SESSION_ID):
        extract_trace_headers({"traceparent": TRACEPARENT, "tracestate": TRACESTATE})
        integration._on_publish(headers=message)
        propagate.inject(message)
    work.push_request(**message)
    publish, prerun, postrun = (
        integration._on_publish,
        integration._on_prerun,
        integration._on_postrun,
    )
    names = {
        "publish": publish,
        "prerun": prerun,
        "postrun": postrun,
        "task": work,
        "inject": propagate.inject,
        "extract": propagate.extract,
        "attach": otel_context.attach,
        "detach": otel_context.detach,
        "getter": celery_getter,
    }

    def in_session() -> None:
        # The publisher's state on both sides: a session and a remote parent in force.
        from tracectrl.session import set_session_id

        set_session_id(SESSION_ID)
        extract_trace_headers({"traceparent": TRACEPARENT, "tracestate": TRACESTATE})

    ours = (
        "headers = {}; publish(headers=headers); "
        "prerun(task_id='bench-task', task=task); postrun(task_id='bench-task')"
    )
    theirs = "headers = {}; inject(headers); detach(attach(extract(task.request, getter=getter)))"
    return Row(
        operation,
        Case("tracectrl inject + extract + restore", ours, names, setup=in_session),
        [
            Comparison(
                Case(
                    "opentelemetry-instrumentation-celery's inject + extract + attach/detach",
                    theirs,
                    names,
                    setup=in_session,
                ),
                Target(at_most=0.5),
            )
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
