"""Static checks of the public types: mypy --strict runs this file; it is never executed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any

from typing_extensions import assert_type

from tracectrl import (
    current_session_id,
    new_session,
    session_scope,
    set_session_id,
    with_session,
)

assert_type(new_session(), str)
assert_type(current_session_id(), "str | None")
assert_type(set_session_id("x"), None)

with session_scope() as sid:
    assert_type(sid, str)
with session_scope("id") as fixed:
    assert_type(fixed, str)


async def use_async_scope() -> None:
    async with session_scope(new=True) as started:
        assert_type(started, str)


@with_session
def bare(a: int, *, b: str = "") -> float:
    return float(a)


assert_type(bare(1, b="x"), float)
bare("not an int")  # type: ignore[arg-type]
bare(1, c=2)  # type: ignore[call-arg]


@with_session("fixed")
def called(a: int) -> list[int]:
    return [a]


assert_type(called(1), list[int])


@with_session(new=True)
async def coroutine(prompt: str) -> int:
    return len(prompt)


pending = coroutine("hi")
_ = assert_type(pending, Coroutine[Any, Any, int])
pending.close()


@with_session(session_id=lambda *args, **kwargs: str(kwargs["user_id"]))
def factory(*, user_id: int) -> str:
    return str(user_id)


assert_type(factory(user_id=3), str)


@with_session
def generator(n: int) -> Iterator[int]:
    yield n


assert_type(generator(2), Iterator[int])


@with_session("agen")
async def async_generator(n: int) -> AsyncIterator[int]:
    yield n


assert_type(async_generator(2), AsyncIterator[int])

session_scope(42)  # type: ignore[arg-type]
with_session(42)  # type: ignore[call-overload]


# Units of work: span=, attributes= and new_trace= keep the decorated signature.
with session_scope("id", span="plan", attributes={"openinference.span.kind": "AGENT"}) as spanned:
    assert_type(spanned, str)
with session_scope(new_trace=True) as retraced:
    assert_type(retraced, str)
session_scope(span=True)  # type: ignore[arg-type]
session_scope(attributes={"k": object()})  # type: ignore[dict-item]


@with_session(new=True, span=True, attributes={"openinference.span.kind": "AGENT"})
def agent_turn(prompt: str, *, retries: int = 0) -> bytes:
    return prompt.encode()


assert_type(agent_turn("hi", retries=1), bytes)
agent_turn(1)  # type: ignore[arg-type]


@with_session(new_trace=True, span="tool")
async def tool_call(name: str) -> int:
    return len(name)


tool_pending = tool_call("search")
_ = assert_type(tool_pending, Coroutine[Any, Any, int])
tool_pending.close()


@with_session(session_id=lambda user: user, span="stream")
def token_stream(user: str) -> Iterator[str]:
    yield user


assert_type(token_stream("u"), Iterator[str])
