"""Ray: tasks and actor methods made with the helpers run under their caller's session and trace.

A real local Ray cluster (``ray.init`` on this machine, dashboard off).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

ray = pytest.importorskip("ray", reason="Ray has no wheel installed for this interpreter")

from _services import child_environment  # noqa: E402

from _process_tasks import overwrite_then_fail, report, report_then_overwrite  # noqa: E402
from tracectrl import (  # noqa: E402
    current_session_id,
    current_trace,
    inject_trace_headers,
    session_scope,
)
from tracectrl._snapshot import ContextSnapshot, capture  # noqa: E402
from tracectrl.integrations.ray import actor_method, call, remote  # noqa: E402
from tracectrl.session import set_session_id  # noqa: E402

pytestmark = pytest.mark.engines

NOTHING = ContextSnapshot(None, None)


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local Ray cluster with two CPUs; its workers import this checkout and the test tasks."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
        runtime_env={"env_vars": {"PYTHONPATH": child_environment()["PYTHONPATH"]}},
    )
    yield
    ray.shutdown()


remote_report = remote(report)
remote_overwrite = remote(report_then_overwrite)
remote_fail = remote(num_cpus=1)(overwrite_then_fail)


@ray.remote
class Agent:
    """An actor whose method reports the session it runs under, then overwrites it."""

    @actor_method
    def act(self, overwrite: str) -> ContextSnapshot:
        seen = capture()
        set_session_id(overwrite)
        return seen

    def untraced(self) -> ContextSnapshot:
        return capture()


@ray.remote
class AsyncAgent:
    """An async actor: each call runs as a task of its event loop."""

    @actor_method
    async def act(self, overwrite: str) -> ContextSnapshot:
        await asyncio.sleep(0.01)  # the calls interleave
        seen = capture()
        set_session_id(overwrite)
        await asyncio.sleep(0)
        return seen

    async def untraced(self) -> ContextSnapshot:
        return capture()


def test_task_runs_under_the_caller_session_and_trace(cluster: None) -> None:
    with session_scope("ray-session"):
        inject_trace_headers()  # a trace in force, to be carried
        ref = remote_report.remote()
        trace = current_trace()
    _, seen = ray.get(ref)
    assert seen.session_id == "ray-session"
    assert trace is not None
    assert seen.trace is not None
    assert seen.trace.trace_id == trace.trace_id


def test_what_a_task_sets_stays_in_the_task(cluster: None) -> None:
    with session_scope("overwriting"):
        refs = [remote_overwrite.remote(f"leak-{i}") for i in range(6)]
    assert all(seen.session_id == "overwriting" for _, seen in ray.get(refs))
    with session_scope("failing"):
        failed = remote_fail.remote("leak-fail")
    with pytest.raises(LookupError, match="tool failed under leak-fail"):
        ray.get(failed)
    after = ray.get([remote_report.options(num_cpus=1).remote() for _ in range(6)])
    assert [seen for _, seen in after] == [NOTHING] * 6


def test_actor_method_runs_under_the_caller_session_and_leaves_the_actor_clean(
    cluster: None,
) -> None:
    agent = Agent.remote()  # type: ignore[attr-defined]
    with session_scope("actor-session-1"):
        first = ray.get(call(agent.act, "set-in-actor"))
    with session_scope("actor-session-2"):
        second = ray.get(call(agent.act, "set-again"))
    assert (first.session_id, second.session_id) == ("actor-session-1", "actor-session-2")
    assert ray.get(agent.untraced.remote()).session_id is None


def test_an_async_actor_method_runs_under_the_caller_session_and_leaves_the_actor_clean(
    cluster: None,
) -> None:
    agent = AsyncAgent.remote()  # type: ignore[attr-defined]
    refs = []
    for number in range(8):
        with session_scope(f"async-caller-{number}"):
            refs.append(call(agent.act, f"set-in-actor-{number}"))
    seen = ray.get(refs)
    assert [snapshot.session_id for snapshot in seen] == [f"async-caller-{n}" for n in range(8)]
    assert ray.get(agent.untraced.remote()).session_id is None


def test_200_tasks_from_20_sessions_each_see_their_caller(cluster: None) -> None:
    sessions, per_session = 20, 10
    start = threading.Barrier(sessions)
    outcomes: dict[int, list[tuple[str, str, ContextSnapshot]]] = {}

    def agent(index: int) -> None:
        start.wait()
        with session_scope(f"ray-load-{index}"):
            inject_trace_headers()  # a trace in force, to be carried
            refs = [remote_report.remote() for _ in range(per_session)]
            trace = current_trace()
            assert trace is not None
            expected = (f"ray-load-{index}", trace.trace_id)
        outcomes[index] = [(*expected, seen) for _, seen in ray.get(refs)]
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
