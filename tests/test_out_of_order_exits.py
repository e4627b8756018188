"""Scopes exited out of order: the values from before the outermost one stay, and a warning says so.

``with`` blocks always exit in the reverse order of entering.  Scopes driven by
hand (``__enter__``/``__exit__`` called from framework hooks, ``ExitStack``
misuse, two callbacks that fire in the wrong order) can exit the outer one
first.  Resetting the inner one's tokens afterwards would bring the outer
scope's session back, for good: the inner exit changes nothing instead, and
warns.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from typing import Optional

import pytest

from tracectrl import (
    current_session_id,
    current_trace,
    session_scope,
    set_session_id,
    with_session,
)
from tracectrl.context import TraceContext, extract_trace_headers

OUT_OF_ORDER = "out of order"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _state() -> tuple[Optional[str], Optional[TraceContext]]:
    return current_session_id(), current_trace()


def test_inner_scope_exited_after_its_outer_scope_leaves_what_was_before_both() -> None:
    before = _state()
    outer, inner = session_scope("alice"), session_scope("bob")
    outer.__enter__()
    outer_trace = current_trace()
    inner.__enter__()
    outer.__exit__(None, None, None)
    assert _state() == before
    with pytest.warns(RuntimeWarning, match=OUT_OF_ORDER) as caught:
        inner.__exit__(None, None, None)
    assert caught[0].filename == __file__  # it points at the exit that came too late
    assert _state() == before
    assert current_trace() != outer_trace
    assert outer._entries == []
    assert inner._entries == []


def test_a_joining_scope_exited_after_the_scope_it_joined_leaves_nothing_behind() -> None:
    set_session_id("before")
    before = _state()
    outer, joining = session_scope("alice"), session_scope()
    outer.__enter__()
    assert joining.__enter__() == "alice"
    outer.__exit__(None, None, None)
    with pytest.warns(RuntimeWarning, match=OUT_OF_ORDER):
        joining.__exit__(None, None, None)
    assert _state() == before


def test_three_scopes_exited_outermost_first_leave_what_was_before_the_outermost() -> None:
    before = _state()
    scopes = [session_scope("a"), session_scope("b"), session_scope("c")]
    for scope in scopes:
        scope.__enter__()
    scopes[0].__exit__(None, None, None)
    with pytest.warns(RuntimeWarning, match=OUT_OF_ORDER):
        scopes[1].__exit__(None, None, None)
    with pytest.warns(RuntimeWarning, match=OUT_OF_ORDER):
        scopes[2].__exit__(None, None, None)
    assert _state() == before


def test_the_middle_scope_exited_first_leaves_the_outer_scope_in_force() -> None:
    with session_scope("a"):
        outer = _state()
        middle, inner = session_scope("b"), session_scope("c")
        middle.__enter__()
        inner.__enter__()
        middle.__exit__(None, None, None)
        assert _state() == outer
        with pytest.warns(RuntimeWarning, match=OUT_OF_ORDER):
            inner.__exit__(None, None, None)
        assert _state() == outer
    assert _state() == (None, None)


def test_async_scopes_exited_out_of_order_leave_what_was_before_both() -> None:
    async def main() -> None:
        before = _state()
        outer, inner = session_scope("alice"), session_scope(new=True)
        await outer.__aenter__()
        await inner.__aenter__()
        await outer.__aexit__(None, None, None)
        with pytest.warns(RuntimeWarning, match=OUT_OF_ORDER):
            await inner.__aexit__(None, None, None)
        assert _state() == before

    asyncio.run(main())


def test_async_joining_scope_exited_after_the_scope_it_joined_leaves_nothing_behind() -> None:
    async def main() -> None:
        before = _state()
        outer, joining = session_scope("alice"), session_scope()
        await outer.__aenter__()
        assert await joining.__aenter__() == "alice"
        await outer.__aexit__(None, None, None)
        with pytest.warns(RuntimeWarning, match=OUT_OF_ORDER):
            await joining.__aexit__(None, None, None)
        assert _state() == before

    asyncio.run(main())


def test_scopes_exited_in_order_never_warn_even_when_the_block_changed_the_trace() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with session_scope("a"):
            extract_trace_headers({})  # no traceparent: no trace in force
            assert current_trace() is None
            with session_scope("b"):
                extract_trace_headers({})
            assert current_session_id() == "a"
        assert _state() == (None, None)


def test_a_task_outliving_its_parents_scope_exits_its_own_scope_normally() -> None:
    asyncio.run(_task_outliving_its_parents_scope())


async def _task_outliving_its_parents_scope() -> None:
    entered, parent_left = asyncio.Event(), asyncio.Event()
    seen: list[tuple[Optional[str], bool]] = []

    async def child() -> None:
        with session_scope("child"):
            entered.set()
            await parent_left.wait()
            extract_trace_headers({})  # the trace now in force is not the scope's
        seen.append((current_session_id(), current_trace() is not None))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with session_scope("parent"):
            task = asyncio.ensure_future(child())
            await entered.wait()
        parent_left.set()
        await task
    # The child's context was copied inside the parent's scope: it goes back to that.
    assert seen == [("parent", True)]
    assert _state() == (None, None)


def test_out_of_order_exits_in_many_threads_stay_in_their_own_thread() -> None:
    threads, rounds = 16, 50
    barrier = threading.Barrier(threads)
    failures: list[str] = []

    def work(index: int) -> None:
        mine = f"thread-{index}"
        set_session_id(mine)
        barrier.wait()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for number in range(rounds):
                outer = session_scope(f"{mine}-outer-{number}")
                inner = session_scope(f"{mine}-inner-{number}")
                outer.__enter__()
                inner.__enter__()
                if current_session_id() != f"{mine}-inner-{number}":
                    failures.append(f"{mine}: inside {current_session_id()}")
                outer.__exit__(None, None, None)
                inner.__exit__(None, None, None)
                if current_session_id() != mine:
                    failures.append(f"{mine}: after {current_session_id()}")
                with session_scope(f"{mine}-in-order"):
                    pass
                if current_session_id() != mine:
                    failures.append(f"{mine}: in order {current_session_id()}")

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []


def test_a_decorated_call_whose_body_exits_an_outer_scope_leaves_what_was_before_it() -> None:
    before = _state()
    outer = session_scope("alice")

    @with_session("bob")
    def handler() -> None:
        outer.__exit__(None, None, None)  # a hook that ends the request's scope too early

    outer.__enter__()
    with pytest.warns(RuntimeWarning, match=OUT_OF_ORDER) as caught:
        handler()
    assert caught[0].filename == __file__
    assert _state() == before


def test_a_scope_left_open_by_a_decorated_call_changes_nothing_when_exited_after_it() -> None:
    before = _state()
    step = session_scope("step")

    @with_session("request")
    def handler() -> None:
        step.__enter__()  # never exited inside: a hook that fires after the request

    handler()
    assert _state() == before
    with pytest.warns(RuntimeWarning, match=OUT_OF_ORDER):
        step.__exit__(None, None, None)
    assert _state() == before


def test_a_new_trace_scope_whose_block_cleared_the_trace_exits_in_order_without_warning() -> None:
    set_session_id("conversation")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with session_scope(new_trace=True):  # the same session, a trace of its own
            extract_trace_headers({})  # no traceparent: no trace in force
    assert _state() == ("conversation", None)


def test_a_decorated_call_that_took_a_trace_from_headers_restores_what_was_before_it() -> None:
    before = _state()

    @with_session("request")
    def handler() -> Optional[str]:
        extract_trace_headers({"traceparent": TRACEPARENT})
        trace = current_trace()
        return None if trace is None else trace.trace_id

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert handler() == TRACEPARENT.split("-")[1]
    assert _state() == before
