"""Exits in the wrong place: abandoned async generators, interrupted entries and exits.

Each case is one a real program runs into: an event loop that shuts down with
streams still open, a garbage collector that finds an abandoned stream, an
interrupt landing inside a scope's own bookkeeping.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

from tracectrl import current_session_id, session_scope, with_session

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
