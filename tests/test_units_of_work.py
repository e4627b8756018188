"""Units of work: every scope entry has one trace, restored on exit; nothing lingers outside.

Each test runs under both trace backends (tracectrl's ContextVar, and
OpenTelemetry's context through the bridge).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from tracectrl import (
    continue_session,
    current_session_id,
    current_trace,
    extract_trace_headers,
    inject_trace_headers,
    propagation_headers,
    session_scope,
    set_session_id,
    start_thread,
    with_session,
)
from tracectrl._trace import UnitTrace, _trace_context

pytestmark = pytest.mark.usefixtures("trace_backend")

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def trace_id() -> str | None:
    trace = current_trace()
    return None if trace is None else trace.trace_id


def sent_trace_id(headers: dict[str, str]) -> str:
    return headers["traceparent"].split("-")[1]


# Finding 1: one trace across all conversations ------------------------------------


def test_each_new_conversation_gets_its_own_trace_even_after_a_start_up_call() -> None:
    propagation_headers()  # a call at start-up, outside any unit of work

    @with_session(new=True)
    def agent() -> tuple[str | None, str | None, str]:
        return current_session_id(), trace_id(), sent_trace_id(inject_trace_headers())

    runs = [agent() for _ in range(3)]
    assert len({session for session, _, _ in runs}) == 3
    assert len({trace for _, trace, _ in runs}) == 3
    for _, trace, sent in runs:
        assert trace is not None
        assert sent == trace
    assert current_trace() is None


def test_a_bare_outgoing_call_outside_any_unit_leaves_no_trace_in_force() -> None:
    first = sent_trace_id(propagation_headers())
    assert current_trace() is None
    with session_scope("conversation-1"):
        inside = trace_id()
    assert inside is not None
    assert inside != first
    assert current_trace() is None


def test_the_first_read_in_a_unit_already_has_the_trace_the_unit_sends() -> None:
    with session_scope(new=True):
        first_read = trace_id()
        assert first_read is not None
        assert sent_trace_id(inject_trace_headers()) == first_read
        assert trace_id() == first_read


# The trace rules ----------------------------------------------------------------------


def test_scope_restores_previous_trace_after_exception() -> None:
    with session_scope("outer"):
        outer = trace_id()
        with pytest.raises(RuntimeError, match="boom"), session_scope("inner"):
            assert trace_id() not in (None, outer)
            raise RuntimeError("boom")
        assert trace_id() == outer


def test_scope_restores_a_trace_extracted_inside_it() -> None:
    with session_scope("outer"):
        outer = trace_id()
        with session_scope():
            extract_trace_headers({"traceparent": TRACEPARENT})
            assert trace_id() == TRACE_ID
        assert trace_id() == outer


def test_a_joining_scope_keeps_the_trace_in_force() -> None:
    with session_scope("conversation") as session_id:
        outer = trace_id()
        with session_scope():
            assert trace_id() == outer
        with session_scope(session_id):
            assert trace_id() == outer

        @with_session
        def tool() -> str | None:
            return trace_id()

        assert tool() == outer


def test_a_joining_scope_shares_the_unread_trace_of_its_unit() -> None:
    @with_session
    def tool() -> str | None:
        return trace_id()

    with session_scope(new=True):
        seen_by_tool = tool()  # the outer unit's trace is read here first
        assert trace_id() == seen_by_tool


def test_each_call_under_a_known_session_with_no_trace_is_its_own_turn() -> None:
    set_session_id("conversation")

    @with_session
    def turn() -> str | None:
        return trace_id()

    turns = [turn() for _ in range(3)]
    assert None not in turns
    assert len(set(turns)) == 3
    assert current_trace() is None


def test_a_scope_that_changes_the_session_starts_a_new_trace() -> None:
    with session_scope("a"):
        a = trace_id()
        with session_scope("b"):
            assert trace_id() not in (None, a)
        assert trace_id() == a


def test_new_trace_overrides_the_rules_both_ways() -> None:
    with session_scope("a"):
        a = trace_id()
        with session_scope(new_trace=True):
            assert current_session_id() == "a"
            assert trace_id() not in (None, a)
        with session_scope("b", new_trace=False):
            assert current_session_id() == "b"
            assert trace_id() == a


def test_new_session_never_shares_the_callers_trace() -> None:
    with continue_session({"traceparent": TRACEPARENT, "X-TraceCtrl-Session": "caller"}):
        assert trace_id() == TRACE_ID
        with session_scope(new=True):
            assert trace_id() not in (None, TRACE_ID)
        assert trace_id() == TRACE_ID


def test_new_session_starts_a_new_trace_even_when_the_env_gives_the_same_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # $TRACECTRL_SESSION_ID makes every new session the same id: still a new turn.
    monkeypatch.setenv("TRACECTRL_SESSION_ID", "pinned")
    with session_scope("pinned"):
        outer = trace_id()
        with session_scope(new=True) as sid:
            assert sid == "pinned"
            assert trace_id() not in (None, outer)
        assert trace_id() == outer


def test_new_trace_false_with_new_session_is_refused() -> None:
    with pytest.raises(ValueError, match="new=True starts a new trace"):
        session_scope(new=True, new_trace=False)


def test_sibling_scopes_with_the_same_session_are_separate_turns() -> None:
    traces = []
    for _ in range(3):
        with session_scope("conversation"):
            traces.append(trace_id())
    assert len(set(traces)) == 3


def test_a_generators_unit_is_in_force_only_while_its_body_runs() -> None:
    @with_session(new=True)
    def stream() -> Iterator[str | None]:
        yield trace_id()
        yield trace_id()

    with session_scope("caller"):
        caller = trace_id()
        items = []
        for item in stream():
            assert trace_id() == caller
            assert current_session_id() == "caller"
            items.append(item)
    assert items[0] == items[1]
    assert items[0] not in (None, caller)


def test_threads_started_in_a_unit_share_its_trace() -> None:
    seen: list[str | None] = []
    with session_scope(new=True):
        thread = start_thread(lambda: seen.append(trace_id()))
        thread.join()
        assert seen == [trace_id()]


def test_concurrent_units_each_see_only_their_own_trace() -> None:
    async def unit(index: int, barrier: asyncio.Barrier) -> tuple[str | None, str | None]:
        assert current_trace() is None
        with session_scope(f"conversation-{index}"):
            first = trace_id()
            await barrier.wait()
            assert trace_id() == first
            assert current_session_id() == f"conversation-{index}"
            sent = sent_trace_id(inject_trace_headers())
        assert current_trace() is None
        return first, sent

    async def main() -> list[tuple[str | None, str | None]]:
        barrier = asyncio.Barrier(500)
        return await asyncio.gather(*(unit(index, barrier) for index in range(500)))

    if not hasattr(asyncio, "Barrier"):  # Python < 3.11: the same check, with threads
        _concurrent_units_with_threads()
        return
    results = asyncio.run(main())
    assert len({first for first, _ in results}) == 500
    assert all(first == sent for first, sent in results)


def _concurrent_units_with_threads() -> None:
    barrier = threading.Barrier(16)
    results: list[tuple[str | None, str | None]] = []

    def unit(index: int) -> None:
        with session_scope(f"conversation-{index}"):
            first = trace_id()
            barrier.wait()
            results.append((first, sent_trace_id(inject_trace_headers())))

    threads = [threading.Thread(target=unit, args=(index,)) for index in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({first for first, _ in results}) == 16
    assert all(first == sent for first, sent in results)


def test_a_unit_nobody_reads_a_trace_in_makes_no_ids() -> None:
    with session_scope("conversation"):
        state = _trace_context.get()
        assert isinstance(state, UnitTrace)
        assert state.peek() is None


# Finding 3: a stale trace survives ------------------------------------------------------


def test_a_request_without_traceparent_never_continues_a_stale_trace() -> None:
    extract_trace_headers({"traceparent": TRACEPARENT})  # left in force by earlier work
    with continue_session({"X-TraceCtrl-Session": "next-user"}):
        assert trace_id() not in (None, TRACE_ID)
        assert sent_trace_id(inject_trace_headers()) != TRACE_ID
    assert trace_id() == TRACE_ID
