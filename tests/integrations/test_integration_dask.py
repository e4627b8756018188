"""Dask distributed: work submitted through the helper runs under its caller's session and trace.

A real ``distributed.LocalCluster`` with two worker processes on 127.0.0.1.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest

pytest.importorskip("distributed", reason="Dask distributed is not installed for this interpreter")

from _services import child_environment
from distributed import Client, LocalCluster

from _process_tasks import (
    dask_worker_and_session,
    overwrite_then_fail,
    report,
    report_then_overwrite,
    report_with_value,
)
from tracectrl import (
    current_session_id,
    current_trace,
    inject_trace_headers,
    session_scope,
)
from tracectrl._snapshot import ContextSnapshot
from tracectrl.integrations.dask import submit, submit_map

pytestmark = pytest.mark.engines

NOTHING = ContextSnapshot(None, None)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """Two worker processes, one thread each, so consecutive tasks share a worker."""
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = child_environment()["PYTHONPATH"]  # the workers import the tasks
    try:
        with (
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as connected,
        ):
            yield connected
    finally:
        if previous is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = previous


def test_task_runs_under_the_caller_session_and_trace(client: Client) -> None:
    with session_scope("dask-session"):
        inject_trace_headers()  # a trace in force, to be carried
        future = submit(client, report)
        trace = current_trace()
    _, seen = future.result()
    assert seen.session_id == "dask-session"
    assert trace is not None
    assert seen.trace is not None
    assert seen.trace.trace_id == trace.trace_id


def test_keyword_arguments_go_to_the_function(client: Client) -> None:
    with session_scope("keywords"):
        _, seen = submit(client, report_then_overwrite, session_id="set-inside").result()
    assert seen.session_id == "keywords"


def test_futures_in_keyword_arguments_are_resolved_as_client_submit_resolves_them(
    client: Client,
) -> None:
    ten = client.submit(int, "10", pure=False)
    with session_scope("keyword-future"):
        value, seen = submit(client, report_with_value, value=ten).result()
        mapped = [future.result()[0] for future in submit_map(client, report_with_value, [ten])]
    assert value == 10
    assert seen.session_id == "keyword-future"
    assert mapped == [10]


def test_dasks_own_context_is_kept_for_get_worker_inside_the_task(client: Client) -> None:
    # get_worker() and worker_client() read a context variable Dask sets for each task.
    workers = set(client.scheduler_info()["workers"])
    with session_scope("on-a-worker"):
        address, seen = submit(client, dask_worker_and_session).result()
    assert address in workers
    assert seen.session_id == "on-a-worker"


def test_what_a_task_sets_stays_in_the_task(client: Client) -> None:
    with session_scope("overwriting"):
        futures = [submit(client, report_then_overwrite, f"leak-{i}") for i in range(8)]
    assert all(future.result()[1].session_id == "overwriting" for future in futures)
    with session_scope("failing"):
        failed = [submit(client, overwrite_then_fail, f"leak-{i}") for i in range(4)]
    for future in failed:
        with pytest.raises(LookupError, match="tool failed under leak-"):
            future.result()
    # No session here: the tasks must see none, on workers that ran the ones above.
    after = [submit(client, report) for _ in range(8)]
    assert [future.result()[1] for future in after] == [NOTHING] * 8
    assert current_session_id() is None


def test_200_tasks_from_20_sessions_each_see_their_caller(client: Client) -> None:
    sessions, per_session = 20, 10
    start = threading.Barrier(sessions)
    outcomes: dict[int, list[tuple[str | None, str | None, ContextSnapshot]]] = {}

    def agent(index: int) -> None:
        start.wait()
        with session_scope(f"dask-load-{index}"):
            inject_trace_headers()  # a trace in force, to be carried
            futures = [submit(client, report) for _ in range(per_session)]
            trace = current_trace()
            assert trace is not None
            expected = (f"dask-load-{index}", trace.trace_id)
        outcomes[index] = [(*expected, future.result()[1]) for future in futures]
        assert current_session_id() is None

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seen = [item for index in range(sessions) for item in outcomes[index]]
    assert len(seen) == sessions * per_session
    for session_id, trace_id, snapshot in seen:
        assert snapshot.session_id == session_id
        assert snapshot.trace is not None
        assert snapshot.trace.trace_id == trace_id
    assert len({snapshot.session_id for *_, snapshot in seen}) == sessions


def test_submit_map_runs_every_item_under_the_caller_session_and_trace(client: Client) -> None:
    with session_scope("dask-map"):
        inject_trace_headers()  # a trace in force, to be carried
        futures = submit_map(client, report_then_overwrite, [f"leak-{i}" for i in range(12)])
        trace = current_trace()
    assert trace is not None
    seen = [future.result()[1] for future in futures]
    assert len(seen) == 12
    assert {snapshot.session_id for snapshot in seen} == {"dask-map"}
    assert {snapshot.trace.trace_id for snapshot in seen if snapshot.trace} == {trace.trace_id}
    assert all(snapshot.trace is not None for snapshot in seen)
    # What each task set stayed in it: the workers now run tasks with no session.
    after = [submit(client, report) for _ in range(8)]
    assert [future.result()[1] for future in after] == [NOTHING] * 8


def test_submit_map_under_many_sessions_keeps_each_callers(client: Client) -> None:
    sessions = 10
    start = threading.Barrier(sessions)
    outcomes: dict[int, list[str | None]] = {}

    def agent(index: int) -> None:
        start.wait()
        with session_scope(f"dask-map-{index}"):
            futures = submit_map(client, report_then_overwrite, [f"x-{index}"] * 10)
        outcomes[index] = [future.result()[1].session_id for future in futures]

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == {index: [f"dask-map-{index}"] * 10 for index in range(sessions)}
