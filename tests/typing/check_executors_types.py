"""Static checks of the executor helpers' types: mypy --strict runs this file, never pytest."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor

from typing_extensions import assert_type

from tracectrl.executors import (
    ContextThreadPoolExecutor,
    bind,
    run_in_executor,
    start_thread,
    submit,
)


def tool(query: str, *, limit: int = 10) -> list[str]:
    return [query] * limit


pool = ThreadPoolExecutor()
processes = ProcessPoolExecutor()
context_pool = ContextThreadPoolExecutor()

assert_type(submit(pool, tool, "q"), "Future[list[str]]")
assert_type(submit(processes, tool, "q", limit=2), "Future[list[str]]")
submit(pool, tool, 1)  # type: ignore[arg-type]
submit(pool, tool, "q", lim=2)  # type: ignore[call-arg]

assert_type(context_pool.submit(tool, "q", limit=1), "Future[list[str]]")
assert_type(context_pool.map(len, ["a", "bc"], timeout=1.0, chunksize=2), Iterator[int])
context_pool.submit(tool, b"q")  # type: ignore[arg-type]
executor: ThreadPoolExecutor = context_pool

bound = bind(tool)
assert_type(bound("q", limit=3), "list[str]")
bound(3)  # type: ignore[arg-type]

assert_type(start_thread(tool, "q", limit=1), threading.Thread)
start_thread(tool, "q", limt=1)  # type: ignore[call-arg]


def count(text: str, times: int) -> int:
    return len(text) * times


async def use_run_in_executor() -> None:
    assert_type(run_in_executor(None, count, "q", 2), asyncio.Future[int])
    assert_type(await run_in_executor(pool, count, "q", 2), int)
    assert_type(await run_in_executor(processes, count, "q", 2), int)
    run_in_executor(pool, count, "q", "2")  # type: ignore[arg-type]


def accepts_future(future: Future[int]) -> None: ...


accepts_future(submit(pool, count, "q", 1))
