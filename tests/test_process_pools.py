"""Process pools: the session and trace travel as data, for one task, under every start method."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest

from _process_tasks import overwrite_then_fail, report, report_then_overwrite
from tracectrl import current_session_id, session_scope
from tracectrl._snapshot import ContextSnapshot, applied, capture
from tracectrl._trace import TraceContext
from tracectrl.executors import run_in_executor, submit

# Both places the current trace can live: tracectrl's ContextVar and OpenTelemetry's context.
pytestmark = pytest.mark.usefixtures("trace_backend")

START_METHODS = [
    method
    for method in ("fork", "spawn", "forkserver")
    if method in multiprocessing.get_all_start_methods()
]

NOTHING = ContextSnapshot(None, None)
SUBMITTER = ContextSnapshot(
    "submitter-session",
    TraceContext("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 1, "vendor=x", False),
)


@pytest.fixture(scope="module", params=START_METHODS)
def pool(request: pytest.FixtureRequest) -> Iterator[ProcessPoolExecutor]:
    """One single-worker pool per start method, so consecutive tasks share a worker."""
    context = multiprocessing.get_context(request.param)
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as executor:
        yield executor


def test_process_task_sees_the_submitters_context_and_the_next_plain_task_sees_none(
    pool: ProcessPoolExecutor,
) -> None:
    with applied(SUBMITTER):
        pid, seen = submit(pool, report_then_overwrite, session_id="overwritten").result()
        assert capture() == SUBMITTER
    assert seen == SUBMITTER

    plain_pid, plain_seen = pool.submit(report).result()
    assert plain_pid == pid
    assert plain_seen == NOTHING


def test_process_task_without_session_sees_none(pool: ProcessPoolExecutor) -> None:
    with session_scope("earlier"):
        assert submit(pool, report).result()[1].session_id == "earlier"
    assert submit(pool, report).result()[1] == NOTHING


def test_process_task_exception_propagates_and_the_worker_stays_clean(
    pool: ProcessPoolExecutor,
) -> None:
    with session_scope("caller"):
        future = submit(pool, overwrite_then_fail, "set-before-failing")
        with pytest.raises(LookupError, match="tool failed under set-before-failing"):
            future.result()
        assert current_session_id() == "caller"
    assert pool.submit(report).result()[1] == NOTHING


def test_process_run_in_executor_carries_the_session(pool: ProcessPoolExecutor) -> None:
    async def main() -> tuple[ContextSnapshot, ContextSnapshot]:
        async with session_scope("async-caller"):
            _, seen = await run_in_executor(pool, report_then_overwrite, "overwritten")
            assert current_session_id() == "async-caller"
        _, after = await asyncio.get_running_loop().run_in_executor(pool, report)
        return seen, after

    seen, after = asyncio.run(main())
    assert seen.session_id == "async-caller"
    assert after == NOTHING


def test_process_submit_of_unpicklable_work_fails_with_the_executors_own_error(
    pool: ProcessPoolExecutor,
) -> None:
    def local_function() -> None: ...

    lock = threading.Lock()
    with session_scope("caller"):
        for fn, args in ((local_function, ()), (report_then_overwrite, (lock,))):
            ours = submit(pool, fn, *args).exception()
            theirs = pool.submit(fn, *args).exception()
            assert ours is not None
            assert theirs is not None
            assert type(ours) is type(theirs)
            assert str(ours) == str(theirs)
    assert pool.submit(report).result()[1] == NOTHING


@pytest.mark.skipif("fork" not in START_METHODS, reason="no fork start method on this platform")
# The module's other pools may still have their manager threads running (3.12+ warns).
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_worker_started_by_submit_does_not_inherit_the_session() -> None:
    # A forked worker keeps the context of the thread that forked it, and the
    # pool forks inside the first submit(): here, inside the caller's scope.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as fresh_pool:
        with applied(SUBMITTER):
            assert submit(fresh_pool, report).result()[1] == SUBMITTER
        assert fresh_pool.submit(report).result()[1] == NOTHING
