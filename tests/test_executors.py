"""Executors: each task runs in a fresh copy of its submitter's context, and nothing leaks."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeoutError

import pytest

from tracectrl import current_session_id, session_scope, set_session_id
from tracectrl._trace import TraceContext, attach_trace, current_trace
from tracectrl.executors import (
    ContextThreadPoolExecutor,
    bind,
    run_in_executor,
    start_thread,
    submit,
)

# Generous: only reached when a test is already failing (it would hang otherwise).
DEADLOCK_GUARD = 30.0
CALLER_TRACE = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1, "rojo=1")


def test_submit_runs_each_task_in_its_submitters_session_and_leaves_workers_clean() -> None:
    release = threading.Event()

    def see_then_overwrite(index: int) -> str | None:
        release.wait(DEADLOCK_GUARD)
        seen = current_session_id()
        set_session_id(f"overwritten-by-{index}")
        return seen

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = []
        for index in range(200):
            with session_scope(f"submitter-{index}"):
                futures.append(submit(pool, see_then_overwrite, index))
        # Every task was queued before any of them read its session.
        release.set()
        assert [f.result() for f in futures] == [f"submitter-{i}" for i in range(200)]

        both_workers = threading.Barrier(2, timeout=DEADLOCK_GUARD)

        def plain_task() -> tuple[str, str | None]:
            both_workers.wait()  # one task per worker thread
            return threading.current_thread().name, current_session_id()

        plain = [pool.submit(plain_task) for _ in range(2)]
        results = [f.result() for f in plain]
    assert len({name for name, _ in results}) == 2
    assert [session for _, session in results] == [None, None]
    assert current_session_id() is None


def test_submit_task_changes_never_reach_the_caller() -> None:
    with ThreadPoolExecutor(max_workers=1) as pool, session_scope("caller"):
        assert submit(pool, set_session_id, "task").result() is None
        assert current_session_id() == "caller"


def test_submit_without_session_runs_task_without_session() -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        with session_scope("earlier"):
            assert submit(pool, current_session_id).result() == "earlier"
        assert submit(pool, current_session_id).result() is None


def test_submit_exception_propagates_through_future_and_context_stays_clean() -> None:
    def set_then_fail() -> None:
        set_session_id("set-before-failing")
        raise LookupError("tool failed")

    with ThreadPoolExecutor(max_workers=1) as pool:
        with session_scope("caller"):
            future = submit(pool, set_then_fail)
            with pytest.raises(LookupError, match="tool failed"):
                future.result()
            assert current_session_id() == "caller"
        assert pool.submit(current_session_id).result() is None


def test_submit_passes_keyword_arguments_named_like_its_own_parameters() -> None:
    def echo(*, executor: str, fn: str) -> tuple[str, str]:
        return executor, fn

    with ThreadPoolExecutor(max_workers=1) as pool:
        assert submit(pool, echo, executor="e", fn="f").result() == ("e", "f")


def test_context_pool_submit_and_map_carry_the_scope_and_see_none_outside() -> None:
    def see_then_overwrite(index: int) -> str | None:
        seen = current_session_id()
        set_session_id(f"overwritten-by-{index}")
        return seen

    with ContextThreadPoolExecutor(max_workers=4) as pool:
        with session_scope("agent") as sid:
            submitted = [pool.submit(see_then_overwrite, i) for i in range(50)]
            assert [f.result() for f in submitted] == [sid] * 50
            assert list(pool.map(see_then_overwrite, range(50))) == [sid] * 50
            assert current_session_id() == sid
        assert [f.result() for f in [pool.submit(see_then_overwrite, i) for i in range(50)]] == [
            None
        ] * 50
        assert list(pool.map(see_then_overwrite, range(50))) == [None] * 50


def test_submit_to_a_context_pool_behaves_like_its_own_submit() -> None:
    with ContextThreadPoolExecutor(max_workers=1) as pool:
        with session_scope("caller"):
            assert submit(pool, current_session_id).result() == "caller"
            submit(pool, set_session_id, "task").result()
        assert submit(pool, current_session_id).result() is None


def test_context_pool_is_a_thread_pool_executor() -> None:
    with ContextThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-tools") as pool:
        assert isinstance(pool, ThreadPoolExecutor)
        name = pool.submit(lambda: threading.current_thread().name).result()
    assert name.startswith("agent-tools")


def test_context_pool_map_yields_results_lazily_and_honours_timeout() -> None:
    release = threading.Event()

    def wait_for_release(index: int) -> int:
        if index == 1:
            release.wait(DEADLOCK_GUARD)
        return index

    with ContextThreadPoolExecutor(max_workers=2) as pool:
        results = pool.map(wait_for_release, [0, 1], chunksize=4)
        assert next(results) == 0  # while item 1 is still blocked
        release.set()
        assert next(results) == 1

        release.clear()
        timed = pool.map(wait_for_release, [1], timeout=0)
        with pytest.raises(FuturesTimeoutError):
            next(timed)
        release.set()


def test_context_pool_map_reraises_the_task_exception_at_its_item() -> None:
    def fail_on_two(index: int) -> int:
        if index == 2:
            raise KeyError(index)
        return index

    with ContextThreadPoolExecutor(max_workers=2) as pool, session_scope("caller"):
        results = pool.map(fail_on_two, range(4))
        assert [next(results), next(results)] == [0, 1]
        with pytest.raises(KeyError):
            next(results)
        assert current_session_id() == "caller"


def test_no_two_tasks_share_a_context_under_load() -> None:
    def see_then_overwrite(index: int) -> str | None:
        seen = current_session_id()
        set_session_id(f"item-{index}")
        return seen

    with ContextThreadPoolExecutor(max_workers=8) as pool, session_scope("load") as sid:
        seen = list(pool.map(see_then_overwrite, range(10_000)))
    assert seen == [sid] * 10_000


def test_bind_snapshots_the_session_at_bind_time() -> None:
    with session_scope("bound"):
        bound = bind(current_session_id)
    assert bound() == "bound"

    seen: list[str | None] = []
    with session_scope("other"):
        thread = threading.Thread(target=lambda: seen.append(bound()))
        thread.start()
        thread.join()
        assert bound() == "bound"
        assert current_session_id() == "other"
    assert seen == ["bound"]


def test_bind_runs_each_call_in_its_own_copy() -> None:
    inside_together = threading.Barrier(2, timeout=DEADLOCK_GUARD)

    def see_then_overwrite(name: str) -> str | None:
        seen = current_session_id()
        set_session_id(name)
        inside_together.wait()  # both calls are inside the bound context at once
        return seen

    with session_scope("bound"):
        bound = bind(see_then_overwrite)

    def call_bound(name: str) -> str | None:
        try:
            return bound(name)
        except BaseException:
            inside_together.abort()  # fail now rather than leave the other call waiting
            raise

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(call_bound, name) for name in ("first", "second")]
        assert [f.result() for f in futures] == ["bound", "bound"]


def test_bind_propagates_exceptions_and_keeps_metadata() -> None:
    def tool(path: str) -> str:
        """Read a file."""
        raise FileNotFoundError(path)

    bound = bind(tool)
    assert bound.__name__ == "tool"
    assert bound.__doc__ == "Read a file."
    with pytest.raises(FileNotFoundError, match="missing"):
        bound("missing")


def test_start_thread_carries_the_callers_session_and_returns_the_started_thread() -> None:
    seen: list[str | None] = []

    def work(label: str) -> None:
        seen.append(current_session_id())
        set_session_id(label)

    with session_scope("caller"):
        thread = start_thread(work, "from-thread")
        thread.join()
        assert current_session_id() == "caller"
    start_thread(work, "no-session").join()
    assert seen == ["caller", None]
    assert isinstance(thread, threading.Thread)
    assert not thread.is_alive()


def test_start_thread_gives_every_keyword_to_the_target() -> None:
    received: dict[str, object] = {}

    def work(**kwargs: object) -> None:
        received.update(kwargs)

    start_thread(work, name="tool", daemon=True, target="x").join()
    assert received == {"name": "tool", "daemon": True, "target": "x"}


def test_run_in_executor_carries_the_session_with_an_explicit_pool_and_with_none() -> None:
    async def main(pool: ThreadPoolExecutor) -> list[str | None]:
        async with session_scope("async-caller"):
            explicit = await run_in_executor(pool, current_session_id)
            default = await run_in_executor(None, current_session_id)
            changed = await run_in_executor(pool, set_session_id, "task")
            assert changed is None
            assert current_session_id() == "async-caller"
        after = await run_in_executor(pool, current_session_id)
        return [explicit, default, after]

    with ThreadPoolExecutor(max_workers=1) as pool:
        assert asyncio.run(main(pool)) == ["async-caller", "async-caller", None]


def test_run_in_executor_keeps_concurrent_tasks_apart() -> None:
    async def one(pool: ThreadPoolExecutor, index: int) -> str | None:
        async with session_scope(f"task-{index}"):
            return await run_in_executor(pool, current_session_id)

    async def main(pool: ThreadPoolExecutor) -> list[str | None]:
        return list(await asyncio.gather(*(one(pool, i) for i in range(200))))

    with ThreadPoolExecutor(max_workers=2) as pool:
        assert asyncio.run(main(pool)) == [f"task-{i}" for i in range(200)]


def test_run_in_executor_propagates_exceptions() -> None:
    def fail() -> None:
        raise ArithmeticError("bad tool")

    async def main() -> None:
        async with session_scope("caller"):
            with pytest.raises(ArithmeticError, match="bad tool"):
                await run_in_executor(None, fail)
            assert current_session_id() == "caller"

    asyncio.run(main())


def test_run_in_executor_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError):
        run_in_executor(None, current_session_id)


@pytest.mark.usefixtures("trace_backend")
def test_every_helper_carries_the_callers_trace_and_none_of_the_tasks_changes_come_back() -> None:
    def see_then_drop() -> TraceContext | None:
        seen = current_trace()
        attach_trace(None)  # the task's own change, which must stay in the task
        return seen

    async def from_the_loop(pool: ThreadPoolExecutor) -> TraceContext | None:
        return await run_in_executor(pool, see_then_drop)

    attach_trace(CALLER_TRACE)
    in_thread: list[TraceContext | None] = []
    with ThreadPoolExecutor(max_workers=1) as plain, ContextThreadPoolExecutor(1) as pool:
        seen = [
            submit(plain, see_then_drop).result(),
            pool.submit(see_then_drop).result(),
            *pool.map(lambda _: see_then_drop(), [0]),
            bind(see_then_drop)(),
            asyncio.run(from_the_loop(plain)),
        ]
        start_thread(lambda: in_thread.append(see_then_drop())).join(DEADLOCK_GUARD)
        worker_afterwards = plain.submit(current_trace).result()
    assert [*seen, *in_thread] == [CALLER_TRACE] * 6
    assert worker_afterwards is None
    assert current_trace() == CALLER_TRACE
