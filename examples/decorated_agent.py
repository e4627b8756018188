"""A decorated agent entry point: every form of ``@with_session``, checked as it runs.

An "agent" here answers questions with a planner, two tools and a streamed
answer.  Each piece records an event (as a span or a log line would) with the
session id in force when it happened.  The script asserts that:

* every event of one conversation carries that conversation's session;
* 50 conversations running at once never see each other's session;
* a streaming generator holds the session only while it produces a token, so
  the code consuming the stream stays in its own session between tokens;
* nothing leaks: the caller's session is the same before and after.

Run it with ``python examples/decorated_agent.py``; it exits non-zero on the
first failed check.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Optional

from tracectrl import current_session_id, session_scope, with_session


@dataclass
class Recorder:
    """Collects ``(session id, what happened)`` pairs, as a tracer or a log handler would."""

    events: list[tuple[Optional[str], str]] = field(default_factory=list)

    def record(self, what: str) -> None:
        self.events.append((current_session_id(), what))

    def sessions_of(self, prefix: str) -> set[Optional[str]]:
        return {session for session, what in self.events if what.startswith(prefix)}


recorder = Recorder()


# --- tools: they join whatever session their caller is in --------------------


@with_session  # bare: join the caller's session, or start one when called alone
def search_tool(query: str) -> list[str]:
    recorder.record(f"search:{query}")
    return [f"result for {query}"]


@with_session
async def summarise_tool(texts: list[str]) -> str:
    await asyncio.sleep(0)  # let other conversations run in between
    recorder.record("summarise")
    return " / ".join(texts)


# --- streaming: a session only while the body runs ---------------------------


@with_session(new=True)  # a streaming entry point: a session of its own per stream
def stream_tokens(answer: str) -> Iterator[str]:
    for token in answer.split():
        recorder.record(f"token:{token}")
        yield token


@with_session
async def astream_tokens(answer: str) -> AsyncIterator[str]:
    for token in answer.split():
        await asyncio.sleep(0)
        recorder.record(f"atoken:{token}")
        yield token


# --- entry points: each picks its session ------------------------------------


@with_session(session_id=lambda conversation_id, question: f"conversation-{conversation_id}")
async def answer(conversation_id: int, question: str) -> str:
    """The agent's entry point: the session comes from the request's conversation id."""
    recorder.record(f"plan:{conversation_id}")
    results = search_tool(question)
    summary = await summarise_tool(results)
    tokens = [token async for token in astream_tokens(summary)]
    return " ".join(tokens)


@with_session(new=True)  # a session of its own for every call, whoever calls it
def one_off_job() -> Optional[str]:
    recorder.record("job")
    return current_session_id()


@with_session("nightly-evaluation")  # always this id
def nightly_evaluation() -> Optional[str]:
    recorder.record("nightly")
    return current_session_id()


def check_concurrent_conversations() -> None:
    async def main() -> list[str]:
        return await asyncio.gather(*(answer(n, f"question {n}") for n in range(50)))

    replies = asyncio.run(main())
    assert replies == [f"result for question {n}" for n in range(50)], replies[:3]
    for n in range(50):
        session = f"conversation-{n}"
        mine = [what for sid, what in recorder.events if sid == session]
        assert mine[0] == f"plan:{n}", mine
        assert f"search:question {n}" in mine, mine
        assert "summarise" in mine, mine
        assert sum(what.startswith("atoken:") for what in mine) == 4, mine
    # Every event of the conversations ran under one of their sessions, no other.
    assert recorder.sessions_of("plan:") == {f"conversation-{n}" for n in range(50)}
    assert recorder.sessions_of("atoken:") == recorder.sessions_of("plan:")


def check_streaming_holds_the_session_only_inside_the_generator() -> None:
    with session_scope("consumer"):
        received = []
        for token in stream_tokens("tokens arrive one by one"):
            assert current_session_id() == "consumer"  # between tokens: the consumer's
            received.append(token)
        assert received == ["tokens", "arrive", "one", "by", "one"]
    (stream_session,) = recorder.sessions_of("token:")  # one session for the whole stream
    assert stream_session not in (None, "consumer"), stream_session


def check_a_stream_picks_its_session_when_it_starts() -> None:
    with session_scope("created-here"):
        stream = astream_tokens("late start")  # bare @with_session: joins, but not yet
    tokens: list[str] = []

    async def consume() -> None:
        with session_scope("started-here"):
            tokens.extend([token async for token in stream])

    asyncio.run(consume())
    assert tokens == ["late", "start"]
    assert recorder.sessions_of("atoken:late") == {"started-here"}


def check_fixed_and_new_sessions() -> None:
    with session_scope("caller"):
        first, second = one_off_job(), one_off_job()
        assert first not in (None, "caller")
        assert second not in (None, "caller", first)
        assert nightly_evaluation() == "nightly-evaluation"
        assert search_tool("joins") == ["result for joins"]
        assert current_session_id() == "caller"
    assert recorder.sessions_of("search:joins") == {"caller"}


def check_a_tool_called_alone_gets_a_session_for_the_call() -> None:
    assert current_session_id() is None
    search_tool("alone")
    (alone,) = recorder.sessions_of("search:alone")
    assert alone is not None
    assert current_session_id() is None  # and it ended with the call


def check_metadata_is_kept() -> None:
    import inspect

    assert answer.__name__ == "answer"
    assert answer.__doc__ is not None
    assert "conversation id" in answer.__doc__
    assert inspect.iscoroutinefunction(answer)
    assert inspect.isgeneratorfunction(stream_tokens)
    assert inspect.isasyncgenfunction(astream_tokens)


def main() -> int:
    check_concurrent_conversations()
    check_streaming_holds_the_session_only_inside_the_generator()
    check_a_stream_picks_its_session_when_it_starts()
    check_fixed_and_new_sessions()
    check_a_tool_called_alone_gets_a_session_for_the_call()
    check_metadata_is_kept()
    assert current_session_id() is None, "a session leaked into the caller"
    print(f"decorated_agent: ok ({len(recorder.events)} events, each in its own session)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
