"""Isolation under load: thousands of tasks and many threads, each seeing only its own session."""

from __future__ import annotations

import asyncio
import sys
import threading
from contextvars import copy_context
from pathlib import Path
from types import FrameType
from typing import Any

import anyio
import pytest

from tracectrl import _unit as unit_module
from tracectrl import current_session_id, session_scope, set_session_id, with_session


def test_5000_tasks_under_with_session_new_each_see_one_unique_session() -> None:
    tasks = 5000

    async def main() -> None:
        set_session_id("caller")
        release = asyncio.Event()
        started = 0
        all_started = asyncio.Event()

        @with_session(new=True)
        async def agent() -> str:
            nonlocal started
            mine = current_session_id()
            assert mine is not None
            assert mine != "caller"
            started += 1
            if started == tasks:
                all_started.set()
            await release.wait()  # every agent is inside its scope at once
            for _ in range(3):
                assert current_session_id() == mine
                await asyncio.sleep(0)
            return mine

        async def request(index: int) -> tuple[str | None, str, str | None]:
            before = f"req-{index}"
            set_session_id(before)
            seen = await agent()
            return before, seen, current_session_id()

        pending = [asyncio.create_task(request(i)) for i in range(tasks)]
        await all_started.wait()
        assert current_session_id() == "caller"
        release.set()
        results = await asyncio.gather(*pending)
        assert len({seen for _, seen, _ in results}) == tasks
        assert all(before == after for before, _, after in results)
        assert current_session_id() == "caller"

    asyncio.run(main())


def test_32_threads_with_200_nested_scopes_never_see_another_threads_session() -> None:
    threads, depth = 32, 200
    barrier = threading.Barrier(threads)
    failures: list[str] = []

    def worker(index: int) -> None:
        try:
            assert current_session_id() is None
            barrier.wait()
            stack: list[session_scope] = []
            for level in range(depth):
                scope = session_scope(f"t{index}-l{level}")
                scope.__enter__()
                stack.append(scope)
                if current_session_id() != f"t{index}-l{level}":
                    failures.append(f"thread {index} level {level}: {current_session_id()}")
            barrier.wait()  # every thread is 200 scopes deep at once
            for level in reversed(range(depth)):
                if current_session_id() != f"t{index}-l{level}":
                    failures.append(f"thread {index} level {level}: {current_session_id()}")
                stack.pop().__exit__(None, None, None)
            if current_session_id() is not None:
                failures.append(f"thread {index} kept {current_session_id()}")
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(f"thread {index}: {exc!r}")
            barrier.abort()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert failures == []
    assert current_session_id() is None


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_async_scope_isolates_tasks_under_each_async_backend(backend: str) -> None:
    tasks = 200
    seen: dict[int, list[str | None]] = {}

    async def task(index: int, ready: anyio.Event, all_ready: list[int]) -> None:
        before = current_session_id()
        async with session_scope(f"{backend}-{index}") as sid:
            all_ready.append(index)
            if len(all_ready) == tasks:
                ready.set()
            await ready.wait()
            await anyio.sleep(0)
            inside = current_session_id()
        seen[index] = [before, sid, inside, current_session_id()]

    async def main() -> None:
        ready = anyio.Event()
        all_ready: list[int] = []
        async with session_scope("parent"):
            async with anyio.create_task_group() as group:
                for i in range(tasks):
                    group.start_soon(task, i, ready, all_ready)
            assert current_session_id() == "parent"
        assert current_session_id() is None

    anyio.run(main, backend=backend)
    assert seen == {
        i: ["parent", f"{backend}-{i}", f"{backend}-{i}", "parent"] for i in range(tasks)
    }


def test_async_scope_restores_after_trio_cancellation() -> None:
    after: list[str | None] = []

    async def main() -> None:
        with anyio.CancelScope() as cancel:
            try:
                async with session_scope("cancelled"):
                    cancel.cancel()
                    await anyio.sleep_forever()
            finally:
                after.append(current_session_id())

    anyio.run(main, backend="trio")
    assert after == [None]


@pytest.mark.parametrize("make_scope", ["session_scope", "continue_session"])
def test_one_scope_object_shared_by_8_threads_restores_each_threads_own_session(
    make_scope: str,
) -> None:
    from tracectrl import continue_session

    threads, rounds = 8, 3000
    shared = (
        session_scope("shared")
        if make_scope == "session_scope"
        else continue_session({"X-TraceCtrl-Session": "shared"})
    )
    barrier = threading.Barrier(threads)
    failures: list[str] = []

    def worker(index: int) -> None:
        try:
            set_session_id(f"own-{index}")
            barrier.wait()
            for _ in range(rounds):
                with shared:
                    if current_session_id() != "shared":
                        failures.append(f"thread {index} inside: {current_session_id()}")
                if current_session_id() != f"own-{index}":
                    failures.append(f"thread {index} after: {current_session_id()}")
                    return
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(f"thread {index}: {exc!r}")

    # Switch threads as often as possible so that enter and exit interleave.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []


def test_an_exit_whose_entry_another_thread_trimmed_meanwhile_still_restores_its_session() -> None:
    # A shared scope object drops its oldest open entries when too many pile up
    # (forget_oldest).  Another thread may do that between this exit's reset and
    # its removal of the entry: the exit still restores and does not raise.
    shared = session_scope("shared")
    set_session_id("caller")
    shared.__enter__()
    elsewhere = copy_context()
    elsewhere.run(shared.__enter__)  # newest: this exit takes the slow path
    code = unit_module.leave_latest.__code__
    lines = Path(unit_module.__file__).read_text(encoding="utf-8").splitlines()
    remove_line = next(
        number
        for number, line in enumerate(lines, 1)
        if number > code.co_firstlineno and line.strip() == "entries.remove(entry)"
    )
    trimmed: list[list[object]] = []

    def local(frame: FrameType, event: str, arg: object) -> Any:
        if event == "line" and frame.f_lineno == remove_line and not trimmed:
            trimmed.append(list(shared._entries))
            unit_module.forget_oldest(shared._entries)  # what the other thread does, here
        return local

    def calls(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code is code else None

    previous = sys.gettrace()
    sys.settrace(calls)
    try:
        shared.__exit__(None, None, None)
    finally:
        sys.settrace(previous)
    assert len(trimmed) == 1
    assert len(trimmed[0]) == 2
    assert current_session_id() == "caller"
    assert shared._entries == []
