"""Exits in the wrong place: abandoned async generators, interrupted entries and exits.

Each case is one a real program runs into: an event loop that shuts down with
streams still open, a garbage collector that finds an abandoned stream, an
interrupt landing inside a scope's own bookkeeping.
"""

from __future__ import annotations

import ast
import asyncio
import contextvars
import dis
import gc
import subprocess
import sys
from collections.abc import AsyncIterator
from types import FrameType
from typing import Any, Callable

from tracectrl import _unit as unit_module
from tracectrl import (
    current_session_id,
    current_trace,
    session_scope,
    with_session,
)
from tracectrl import scope as scope_module
from tracectrl._unit import MAX_OPEN_ENTRIES

STREAMS = 50


class _Streams:
    """Streams that await in their cleanup, and what each cleanup saw."""

    def __init__(self) -> None:
        self.cleanups: list[tuple[int, str | None]] = []
        self.errors: list[str] = []

    def on_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.errors.append(repr(context.get("exception") or context.get("message")))

    def stream(self, index: int, box: list[object]) -> AsyncIterator[int]:
        @with_session(session_id=lambda index, box: f"stream-{index}")
        async def numbers(index: int, box: list[object]) -> AsyncIterator[int]:
            try:
                yield 1
                yield 2
            finally:
                await asyncio.sleep(0)  # a cleanup that awaits, like closing a connection
                self.cleanups.append((index, current_session_id()))

        return numbers(index, box)

    def assert_each_closed_once_in_its_session(self) -> None:
        assert self.errors == []
        assert sorted(self.cleanups) == [(i, f"stream-{i}") for i in range(STREAMS)]


def _run(main: Any, streams: _Streams) -> None:
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(streams.on_error)
    try:
        loop.run_until_complete(main())
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


def test_async_generators_left_open_at_shutdown_are_closed_once_in_their_session() -> None:
    streams = _Streams()
    kept: list[AsyncIterator[int]] = []

    async def main() -> None:
        for index in range(STREAMS):
            stream = streams.stream(index, [])
            assert await stream.__anext__() == 1
            kept.append(stream)
        assert current_session_id() is None

    _run(main, streams)
    streams.assert_each_closed_once_in_its_session()


def test_async_generators_collected_in_a_cycle_are_closed_once_in_their_session() -> None:
    streams = _Streams()

    async def main() -> None:
        for index in range(STREAMS):
            box: list[object] = []
            stream = streams.stream(index, box)
            assert await stream.__anext__() == 1
            box.append(stream)  # the stream is now in a reference cycle
            del stream, box
        with session_scope("collector"):
            gc.collect()
            assert current_session_id() == "collector"
        while len(streams.cleanups) < STREAMS:
            await asyncio.sleep(0)
        assert current_session_id() is None

    _run(main, streams)
    streams.assert_each_closed_once_in_its_session()


# Sync generators collected in a cycle ---------------------------------------------

_CYCLE_SCRIPT = """
import gc
from tracectrl import current_session_id, session_scope, with_session

seen = []

@with_session(session_id=lambda index, box: f"stream-{index}")
def numbers(index, box):
    try:
        yield 1
        yield 2
    finally:
        seen.append((index, current_session_id()))

for index in range(COUNT):
    box = []
    stream = numbers(index, box)
    next(stream)
    box.append(stream)  # the stream is now in a reference cycle
    del stream, box
    with session_scope("collector"):
        gc.collect()
        assert current_session_id() == "collector"
print(seen)
"""


def _cleanups_of_streams_collected_in_cycles(count: int) -> list[tuple[int, str | None]]:
    """Run the script in a fresh interpreter: its first entry imports what tracectrl uses."""
    completed = subprocess.run(
        [sys.executable, "-c", _CYCLE_SCRIPT.replace("COUNT", str(count))],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen: list[tuple[int, str | None]] = ast.literal_eval(completed.stdout)
    return seen


def test_sync_generators_collected_in_a_cycle_clean_up_in_their_own_session() -> None:
    # The first one included: its first step is the process's first entry, which
    # allocates enough to start a collection between the wrapper and its body.
    assert _cleanups_of_streams_collected_in_cycles(STREAMS) == [
        (index, f"stream-{index}") for index in range(STREAMS)
    ]


# Interrupts at scope entry and exit ----------------------------------------------


class _Interrupt(BaseException):
    """What a signal handler's exception, or KeyboardInterrupt, does to running code."""


_SCOPE_CODE = (scope_module.__file__, unit_module.__file__)


# CPython never runs a signal handler just before these: NOP does nothing (3.11+
# marks each "try:" with one), and 3.9 and 3.10 skip their check before SETUP_FINALLY.
_NO_SIGNAL_CHECK_BEFORE = {
    dis.opmap[name] for name in ("NOP", "SETUP_FINALLY") if name in dis.opmap
}


def _may_run_signal_handlers_before(frame: FrameType) -> bool:
    """Say whether an interrupt can land before the instruction ``frame`` is about to run."""
    return frame.f_code.co_code[frame.f_lasti] not in _NO_SIGNAL_CHECK_BEFORE


def _interrupt_at_line(target: int, block: Callable[[], None]) -> tuple[bool, str]:
    """Run ``block`` with an interrupt raised at the ``target``-th line tracectrl runs.

    Returns whether the interrupt was raised, and where.
    """
    seen = 0
    where = ""

    def local(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal seen, where
        if event == "line" and _may_run_signal_handlers_before(frame):
            seen += 1
            if seen == target:
                where = f"{frame.f_code.co_name}:{frame.f_lineno}"
                raise _Interrupt
        return local

    def calls(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code.co_filename in _SCOPE_CODE else None

    sys.settrace(calls)
    try:
        block()
    except _Interrupt:
        return True, where
    finally:
        sys.settrace(None)
    return False, where


def _assert_no_leak_at_any_line(enter_and_exit: Callable[[], None]) -> int:
    """Interrupt ``enter_and_exit`` at each line of the scope's code in turn; return how many."""
    leaks = []
    target = 0
    while True:
        target += 1
        with session_scope("outer"):
            before = (current_session_id(), current_trace())
            raised, where = _interrupt_at_line(target, enter_and_exit)
            if raised and (current_session_id(), current_trace()) != before:
                leaks.append(where)
        assert current_session_id() is None
        if not raised:
            break
    assert leaks == [], " ".join(leaks)
    return target - 1


def test_an_interrupt_at_any_line_of_scope_entry_or_exit_leaves_nothing_in_force() -> None:
    def job() -> None:
        with session_scope("job"):
            current_trace()

    assert _assert_no_leak_at_any_line(job) > 10


def test_an_interrupt_in_a_shared_scope_leaves_no_stale_entry() -> None:
    shared = session_scope("job")

    def job() -> None:
        with shared, shared:
            current_trace()

    assert _assert_no_leak_at_any_line(job) > 20
    assert shared._entries == []


def test_an_interrupt_in_an_async_scope_leaves_nothing_in_force() -> None:
    shared = session_scope("job")

    def job() -> None:
        async def main() -> None:
            async with shared:
                current_trace()

        coroutine = main()
        try:
            coroutine.send(None)
        except StopIteration:
            pass
        finally:
            coroutine.close()

    assert _assert_no_leak_at_any_line(job) > 10
    assert shared._entries == []


def test_a_shared_scope_forgets_entries_whose_exit_never_came() -> None:
    shared = session_scope("job")

    def abandon() -> None:
        for _ in range(3 * MAX_OPEN_ENTRIES):
            shared.__enter__()  # never exited, as after an interrupt at exit

    contextvars.copy_context().run(abandon)
    assert len(shared._entries) <= MAX_OPEN_ENTRIES
    with shared:
        assert current_session_id() == "job"
    assert current_session_id() is None
