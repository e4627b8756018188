"""After instrument(), the threads and pools that other code starts carry the caller's context."""

from __future__ import annotations

import asyncio
import functools
import gc
import multiprocessing
import pickle
import queue
import threading
import weakref
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import process as process_pool
from concurrent.futures import thread as thread_pool
from contextvars import ContextVar, copy_context
from multiprocessing.pool import ThreadPool
from typing import Any, Optional

import pytest
import structlog

from _process_tasks import report
from _standin_library import Crawler
from tracectrl import (
    ContextThreadPoolExecutor,
    bind,
    current_session_id,
    current_trace,
    extract_trace_headers,
    session_scope,
    set_session_id,
    start_thread,
    submit,
)
from tracectrl._contextcopy import runs_in_own_context
from tracectrl._snapshot import ContextSnapshot, capture, run_with_snapshot
from tracectrl.integrations.threading import instrument, is_instrumented, uninstrument

pytestmark = pytest.mark.usefixtures("trace_backend")

SESSIONS = 50
TASKS_PER_SESSION = 20
START_METHODS = [
    method
    for method in ("fork", "spawn", "forkserver")
    if method in multiprocessing.get_all_start_methods()
]
THREAD_START = (
    "_start_joinable_thread"
    if hasattr(threading, "_start_joinable_thread")
    else "_start_new_thread"
)

DEADLOCK_GUARD = 30.0  # seconds; only reached when a test already fails

_payload: ContextVar[Optional[object]] = ContextVar("zero_code_payload", default=None)


class Payload:
    """A value a ContextVar holds that can be watched with a weak reference."""


@pytest.fixture
def instrumented() -> Iterator[None]:
    instrument()
    yield
    uninstrument()


def _trace_id(number: int) -> str:
    return f"{number + 1:032x}"


def _seen() -> tuple[Optional[str], Optional[str], object]:
    trace = current_trace()
    return (
        current_session_id(),
        None if trace is None else trace.trace_id,
        structlog.contextvars.get_contextvars().get("request"),
    )


def _run_sessions(crawler: Crawler) -> dict[int, list[tuple[Optional[str], Optional[str], object]]]:
    """Run 50 sessions at once, each sending 20 items through the library; return what each saw."""
    seen: dict[int, list[tuple[Optional[str], Optional[str], object]]] = {}
    failures: list[BaseException] = []
    together = threading.Barrier(SESSIONS)

    def session(number: int) -> None:
        records: list[tuple[Optional[str], Optional[str], object]] = []
        seen[number] = records
        try:
            assert _seen() == (None, None, None)
            with session_scope(f"session-{number}"):
                extract_trace_headers({"traceparent": f"00-{_trace_id(number)}-{1:016x}-01"})
                structlog.contextvars.bind_contextvars(request=f"request-{number}")
                together.wait()  # every session is in force at once before any work starts
                items = list(range(number * TASKS_PER_SESSION, (number + 1) * TASKS_PER_SESSION))
                crawler.process(items, lambda item: records.append(_seen()))
                assert _seen() == (f"session-{number}", _trace_id(number), f"request-{number}")
                together.wait()
                structlog.contextvars.clear_contextvars()
            assert current_session_id() is None
        except BaseException as error:  # reported by the test, not by threading.excepthook
            failures.append(error)
            together.abort()

    threads = [threading.Thread(target=session, args=(number,)) for number in range(SESSIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    return seen


@pytest.mark.usefixtures("instrumented")
def test_third_party_pool_and_threads_see_each_callers_session_trace_and_structlog_context() -> (
    None
):
    crawler = Crawler()
    try:
        seen = _run_sessions(crawler)
    finally:
        crawler.close()
    assert sum(len(records) for records in seen.values()) == SESSIONS * TASKS_PER_SESSION
    for number, records in seen.items():
        expected = (f"session-{number}", _trace_id(number), f"request-{number}")
        assert records == [expected] * TASKS_PER_SESSION
    assert current_session_id() is None


def test_without_instrument_third_party_threads_see_no_session() -> None:
    crawler = Crawler(workers=2)
    try:
        with session_scope("lost"):
            records: list[Optional[str]] = []
            crawler.process(list(range(6)), lambda _: records.append(current_session_id()))
    finally:
        crawler.close()
    assert records == [None] * 6


@pytest.mark.usefixtures("instrumented")
def test_thread_runs_in_the_context_of_the_code_that_starts_it_not_the_one_that_creates_it() -> (
    None
):
    seen: list[Optional[str]] = []
    with session_scope("creator"):
        thread = threading.Thread(target=lambda: seen.append(current_session_id()))

    def starter() -> None:
        with session_scope("starter"):
            thread.start()
            thread.join()

    other = threading.Thread(target=starter)
    other.start()
    other.join()
    assert seen == ["starter"]


@pytest.mark.usefixtures("instrumented")
def test_what_a_thread_sets_never_reaches_the_code_that_started_it() -> None:
    with session_scope("caller"):
        inner: list[Optional[str]] = []

        def overwrite() -> None:
            set_session_id("thread-only")
            inner.append(current_session_id())

        thread = threading.Thread(target=overwrite)
        thread.start()
        thread.join()
        assert inner == ["thread-only"]
        assert current_session_id() == "caller"


@pytest.mark.usefixtures("instrumented")
def test_pool_worker_does_not_keep_the_context_of_the_submit_that_started_it() -> None:
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        payload = Payload()
        watched = weakref.ref(payload)
        token = _payload.set(payload)
        with session_scope("first-submitter"):
            # This submit starts the pool's only worker thread.
            assert pool.submit(current_session_id).result() == "first-submitter"
        _payload.reset(token)
        del payload
        assert pool.submit(current_session_id).result() is None
        assert pool.submit(_payload.get).result() is None
        gc.collect()
        assert watched() is None  # the live worker holds nothing of that submit's context
    finally:
        pool.shutdown()


@pytest.mark.usefixtures("instrumented")
def test_a_multiprocessing_thread_pool_made_in_a_session_never_hands_it_to_later_tasks() -> None:
    # Its workers and handler threads start in its constructor and serve every task.
    payload = Payload()
    watched = weakref.ref(payload)
    token = _payload.set(payload)
    with session_scope("request-a"):
        pool = ThreadPool(2)
    _payload.reset(token)
    del payload
    try:
        with session_scope("request-b"):
            assert pool.apply(current_session_id) is None
            assert pool.map(lambda _: current_session_id(), range(4)) == [None] * 4
            called_back: list[Optional[str]] = []
            pool.apply_async(
                current_session_id, callback=lambda _: called_back.append(current_session_id())
            ).get(timeout=DEADLOCK_GUARD)
        assert pool.apply(current_session_id) is None
        assert pool.apply(_payload.get) is None
    finally:
        pool.close()
        pool.join()
    assert called_back == [None]  # the result handler thread holds no session either
    gc.collect()
    assert watched() is None


@pytest.mark.usefixtures("instrumented")
def test_dasks_thread_pool_worker_does_not_keep_the_first_submitters_context() -> None:
    from distributed.threadpoolexecutor import ThreadPoolExecutor as DaskThreadPool

    pool = DaskThreadPool(max_workers=1)
    try:
        payload = Payload()
        watched = weakref.ref(payload)
        token = _payload.set(payload)
        with session_scope("request-a"):
            pool.submit(current_session_id).result(timeout=DEADLOCK_GUARD)  # starts the worker
        _payload.reset(token)
        del payload
        with session_scope("request-b"):
            assert pool.submit(current_session_id).result(timeout=DEADLOCK_GUARD) is None
        assert pool.submit(current_session_id).result(timeout=DEADLOCK_GUARD) is None
        gc.collect()
        assert watched() is None
    finally:
        pool.shutdown()


@pytest.mark.usefixtures("instrumented")
def test_a_thread_whose_target_is_unhashable_still_runs_in_the_starters_context() -> None:
    class Target:
        __hash__ = None  # type: ignore[assignment]

        def __init__(self) -> None:
            self.seen: Optional[str] = None

        def __call__(self) -> None:
            self.seen = current_session_id()

    target = Target()
    with session_scope("starter"):
        thread = threading.Thread(target=target)
        thread.start()
    thread.join(DEADLOCK_GUARD)
    assert target.seen == "starter"


@pytest.mark.usefixtures("instrumented")
def test_pool_worker_never_carries_a_task_session_into_the_next_task() -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        with session_scope("caller"):
            assert pool.submit(lambda: (set_session_id("task-only"), current_session_id())).result()
            assert current_session_id() == "caller"
        assert pool.submit(current_session_id).result() is None


@pytest.mark.usefixtures("instrumented")
def test_run_in_executor_carries_the_session_with_the_default_and_a_custom_pool() -> None:
    async def main() -> list[Optional[str]]:
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=2) as pool:
            async with session_scope("async-caller"):
                seen = [
                    await loop.run_in_executor(None, current_session_id),
                    await loop.run_in_executor(pool, current_session_id),
                    await asyncio.to_thread(current_session_id),
                ]
            seen.append(await loop.run_in_executor(pool, current_session_id))
        return seen

    assert asyncio.run(main()) == ["async-caller", "async-caller", "async-caller", None]


@pytest.fixture(scope="module", params=START_METHODS)
def process_pool_method(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.usefixtures("instrumented")
def test_process_pool_submit_and_map_ship_the_session_and_trace(process_pool_method: str) -> None:
    context = multiprocessing.get_context(process_pool_method)

    def in_session(pool: ProcessPoolExecutor) -> tuple[ContextSnapshot, ...]:
        with session_scope("process-caller"):
            extract_trace_headers({"traceparent": f"00-{_trace_id(7)}-{2:016x}-01"})
            submitted = pool.submit(report).result()[1]
            mapped = [seen for _, seen in pool.map(_report_item, range(3))]
            return (capture(), submitted, *mapped)

    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        # A context of its own, so that the extracted trace ends with it.
        expected, submitted, *mapped = copy_context().run(in_session, pool)
        after = pool.submit(report).result()[1]
    assert expected.session_id == "process-caller"
    assert submitted == expected
    assert mapped == [expected] * 3
    assert after == ContextSnapshot(None, None)


def _report_item(_: int) -> tuple[int, ContextSnapshot]:
    return report()


@pytest.mark.parametrize("instrumented_pool", [False, True])
def test_process_pool_rejects_an_unpicklable_callable_with_the_same_error(
    instrumented_pool: bool,
) -> None:
    def local_function() -> None:
        """Not picklable: defined inside a function."""

    context = multiprocessing.get_context(START_METHODS[0])
    with (
        pytest.raises((pickle.PicklingError, AttributeError, TypeError)) as plain,
        ProcessPoolExecutor(max_workers=1, mp_context=context) as pool,
    ):
        pool.submit(local_function).result()
    if instrumented_pool:
        instrument()
    try:
        with (
            pytest.raises(plain.type) as patched,
            ProcessPoolExecutor(max_workers=1, mp_context=context) as pool,
            session_scope("unpicklable"),
        ):
            pool.submit(local_function).result()
    finally:
        uninstrument()
    assert str(patched.value) == str(plain.value)


def test_work_that_copies_its_own_context_is_recognised() -> None:
    assert runs_in_own_context(copy_context().run)
    assert runs_in_own_context(bind(report))
    assert not runs_in_own_context(report)
    assert not runs_in_own_context(lambda: None)


def _queued_work_items(pool: ThreadPoolExecutor) -> list[Any]:
    """Return the work items waiting in ``pool``'s queue, leaving them queued in order."""
    work_queue = pool._work_queue  # type: ignore[attr-defined]
    items = []
    while True:
        try:
            items.append(work_queue.get_nowait())
        except queue.Empty:
            break
    for item in items:
        work_queue.put(item)
    return items


@pytest.mark.usefixtures("instrumented")
def test_tracectrl_helpers_and_to_thread_submit_one_copy_not_two() -> None:
    """The queued work item holds the helper's own ``Context.run``, not a second one around it."""
    for pool in (ThreadPoolExecutor(max_workers=1), ContextThreadPoolExecutor(max_workers=1)):
        release = threading.Event()
        with pool:
            pool.submit(release.wait)  # keeps the only worker busy, so later items stay queued
            try:
                with session_scope("one-copy"):
                    if type(pool) is ThreadPoolExecutor:
                        future = submit(pool, current_session_id)
                    else:
                        future = pool.submit(current_session_id)
                    (queued,) = _queued_work_items(pool)
            finally:
                release.set()
            assert future.result() == "one-copy"
        assert runs_in_own_context(queued.fn)
        assert queued.args[0] is current_session_id

    async def to_thread_work_item_function() -> Any:
        loop = asyncio.get_running_loop()
        blocked = threading.Event()
        with ThreadPoolExecutor(max_workers=1) as pool:
            loop.set_default_executor(pool)
            loop.run_in_executor(None, blocked.wait)
            waiting = asyncio.ensure_future(asyncio.to_thread(current_session_id))
            try:
                await asyncio.sleep(0)  # let to_thread submit its work item
                item = _queued_work_items(pool)[-1]
            finally:
                blocked.set()
            assert await waiting == "to-thread"
            return item.fn

    async def main() -> Any:
        async with session_scope("to-thread"):
            return await to_thread_work_item_function()

    submitted = asyncio.run(main())
    assert type(submitted) is functools.partial  # to_thread's own partial(Context.run, ...)
    assert runs_in_own_context(submitted)


@pytest.mark.usefixtures("instrumented")
def test_threads_started_by_tracectrl_helpers_are_not_copied_again() -> None:
    with session_scope("helper"):
        seen: list[Optional[str]] = []
        start_thread(lambda: seen.append(current_session_id())).join()
        thread = threading.Thread(target=bind(lambda: seen.append(current_session_id())))
        thread.start()
        thread.join()
    assert seen == ["helper", "helper"]


def test_instrument_is_idempotent_and_uninstrument_restores_the_standard_library() -> None:
    originals = (
        thread_pool._WorkItem,
        process_pool._WorkItem,
        getattr(threading, THREAD_START),
        ThreadPoolExecutor.submit,
        threading.Thread.start,
    )
    assert not is_instrumented()
    instrument()
    instrument()
    assert is_instrumented()
    patched = (thread_pool._WorkItem, process_pool._WorkItem, getattr(threading, THREAD_START))
    assert all(new is not old for new, old in zip(patched, originals))
    assert ThreadPoolExecutor.submit is originals[3]
    assert threading.Thread.start is originals[4]
    uninstrument()
    uninstrument()
    assert not is_instrumented()
    assert (
        thread_pool._WorkItem,
        process_pool._WorkItem,
        getattr(threading, THREAD_START),
        ThreadPoolExecutor.submit,
        threading.Thread.start,
    ) == originals
    with ThreadPoolExecutor(max_workers=1) as pool, session_scope("after-uninstrument"):
        assert pool.submit(current_session_id).result() is None


def test_run_with_snapshot_is_what_an_instrumented_process_pool_ships() -> None:
    """A task tracectrl.submit already wrapped keeps its snapshot and is not wrapped again."""
    instrument()
    try:
        with session_scope("shipped"):
            item = process_pool._WorkItem(None, run_with_snapshot, (capture(), report), {})
            plain = process_pool._WorkItem(None, report, (), {})
    finally:
        uninstrument()
    assert item.fn is run_with_snapshot
    assert item.args[1] is report
    assert plain.fn is run_with_snapshot
    assert plain.args[0].session_id == "shipped"
    assert plain.args[1] is report
