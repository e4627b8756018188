"""``with`` / ``async with session_scope(...)`` around units of work, under heavy concurrency.

Four workloads, each checking that every unit of work sees only its own
session (and trace) before, during and after its scope:

* three conversations of three turns each: three sessions, and every turn
  its own trace, the same in its log lines and in its outgoing ``traceparent``,
  even after a call made at start-up outside any unit of work;
* a batch job that processes messages one by one, each message in the session
  it names, failures included;
* 8 threads processing 250 units each, all overlapping (a barrier makes them
  start together);
* 2,000 concurrent asyncio requests, each in its own session across many
  ``await`` points, a tenth of them cancelled half-way.

Run it with ``python examples/units_of_work.py``; it exits non-zero on the
first failed check.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from dataclasses import dataclass
from typing import Optional

from tracectrl import (
    current_session_id,
    current_trace,
    propagation_headers,
    session_scope,
    set_session_id,
    with_session,
)

THREADS = 8
UNITS_PER_THREAD = 250
REQUESTS = 2_000
CANCELLED_EVERY = 10


@dataclass(frozen=True)
class Message:
    session_id: str
    body: str


class UnitFailed(Exception):
    """A unit of work that fails on purpose, to show that its scope still ends."""


def process(message: Message) -> str:
    assert current_session_id() == message.session_id
    if message.body == "poison":
        raise UnitFailed(message.session_id)
    return message.body.upper()


CONVERSATIONS = 3
TURNS = 3


@with_session(new_trace=True)  # a turn of the conversation in force, with a trace of its own
def turn(question: str) -> tuple[str, str, str]:
    trace = current_trace()
    assert trace is not None
    sent = propagation_headers()  # what a call to another agent would carry
    assert sent["X-TraceCtrl-Session"] == current_session_id()
    return str(current_session_id()), trace.trace_id, sent["traceparent"].split("-")[1]


@with_session(new=True)  # a conversation: a session of its own
def conversation(number: int) -> list[tuple[str, str, str]]:
    return [turn(f"question {number}.{n}") for n in range(TURNS)]


def check_conversations_and_turns() -> None:
    propagation_headers()  # a call at start-up, outside any unit of work: it leaves nothing
    assert current_trace() is None
    turns = [result for number in range(CONVERSATIONS) for result in conversation(number)]
    sessions = {session for session, _, _ in turns}
    traces = {trace for _, trace, _ in turns}
    assert len(sessions) == CONVERSATIONS, sessions
    assert len(traces) == CONVERSATIONS * TURNS, traces
    assert all(trace == sent for _, trace, sent in turns)  # one trace id per turn
    assert current_trace() is None
    assert current_session_id() is None
    print(f"conversations: {len(sessions)} sessions, {len(traces)} traces (one per turn)")


def check_batch_job() -> None:
    messages = [Message(f"chat-{n % 3}", "poison" if n == 4 else f"hello {n}") for n in range(9)]
    set_session_id("batch-job")  # the job's own session, around the units
    done, failed = [], []
    for message in messages:
        try:
            with session_scope(message.session_id) as sid:
                assert sid == message.session_id
                done.append(process(message))
        except UnitFailed as error:
            failed.append(str(error))
        assert current_session_id() == "batch-job"  # restored after every unit
    assert len(done) == 8
    assert failed == ["chat-1"]

    # Nested units: join the unit's session, or start a sub-session on purpose.
    with session_scope("parent") as parent:
        with session_scope() as joined:
            assert joined == parent
        with session_scope(new=True) as child:
            assert child not in (parent, "batch-job")
            assert current_session_id() == child
        assert current_session_id() == parent
    assert current_session_id() == "batch-job"


def check_threads() -> None:
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def worker(thread_number: int) -> None:
        try:
            barrier.wait()  # every thread is running its units at the same time
            for unit in range(UNITS_PER_THREAD):
                assert current_session_id() is None  # a new thread has no session
                expected = f"thread-{thread_number}-unit-{unit}"
                with session_scope(expected):
                    assert current_session_id() == expected
                    with session_scope():  # a helper joining the unit's session
                        assert current_session_id() == expected
                    assert current_session_id() == expected
                assert current_session_id() is None
        except BaseException as error:  # reported by the main thread
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


async def handle_request(
    number: int, seen: dict[int, list[Optional[str]]], after: dict[int, Optional[str]]
) -> None:
    expected = f"request-{number}"
    log = seen.setdefault(number, [])
    try:
        async with session_scope(expected):
            for _ in range(5):
                log.append(current_session_id())
                await asyncio.sleep(0)  # every other request runs here
    finally:
        after[number] = current_session_id()  # the caller's again, cancelled or not


async def serve_requests() -> None:
    seen: dict[int, list[Optional[str]]] = {}
    after: dict[int, Optional[str]] = {}
    set_session_id("server")  # the server's own session, copied into every task
    tasks = [asyncio.create_task(handle_request(n, seen, after)) for n in range(REQUESTS)]
    await asyncio.sleep(0)  # let every request enter its scope and get half-way
    await asyncio.sleep(0)
    for task in tasks[::CANCELLED_EVERY]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)

    cancelled = sum(isinstance(result, asyncio.CancelledError) for result in results)
    assert cancelled == REQUESTS // CANCELLED_EVERY, cancelled
    for number, log in seen.items():
        assert set(log) == {f"request-{number}"}, (number, log)
        assert len(log) == (2 if number % CANCELLED_EVERY == 0 else 5), (number, log)
    assert set(after.values()) == {"server"}, set(after.values())
    assert len(after) == REQUESTS
    assert current_session_id() == "server"  # no task ever changed ours


def check_async_requests() -> None:
    asyncio.run(serve_requests())
    assert current_session_id() == "batch-job"  # asyncio.run ran in a copy


def main() -> int:
    check_conversations_and_turns()
    check_batch_job()
    check_threads()
    check_async_requests()
    units = THREADS * UNITS_PER_THREAD + REQUESTS
    print(f"units_of_work: ok ({units} concurrent units, each saw only its own session)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
