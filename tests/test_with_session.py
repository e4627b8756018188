"""@with_session on functions, coroutines, generators and async generators."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Iterator

import pytest

from _shared_scope_generators import State, interleave, state
from tracectrl import current_session_id, session_scope, set_session_id, with_session


def test_bare_decorator_starts_a_session_per_call_when_there_is_none() -> None:
    @with_session
    def agent() -> str | None:
        return current_session_id()

    first, second = agent(), agent()
    assert first
    assert second
    assert first != second
    assert current_session_id() is None


def test_bare_decorator_joins_the_callers_session() -> None:
    @with_session
    def agent() -> str | None:
        return current_session_id()

    with session_scope("caller"):
        assert agent() == "caller"


def test_called_without_arguments_behaves_like_bare() -> None:
    @with_session()
    def agent() -> str | None:
        return current_session_id()

    with session_scope("caller"):
        assert agent() == "caller"
    assert agent() != agent()


def test_fixed_id_is_used_for_every_call_and_restored_after() -> None:
    @with_session("fixed")
    def agent() -> str | None:
        set_session_id("overwritten-inside")
        return current_session_id()

    set_session_id("outer")
    assert agent() == "overwritten-inside"
    assert current_session_id() == "outer"


def test_new_true_starts_a_session_per_call_even_inside_one() -> None:
    @with_session(new=True)
    def agent() -> str | None:
        return current_session_id()

    with session_scope("caller"):
        ids = {agent() for _ in range(5)}
        assert current_session_id() == "caller"
    assert len(ids) == 5
    assert "caller" not in ids


def test_factory_picks_the_id_from_the_call_arguments() -> None:
    @with_session(session_id=lambda *a, **kw: kw["user_id"])
    def agent(prompt: str, *, user_id: str) -> str:
        return f"{prompt}:{current_session_id()}"

    assert agent("hi", user_id="u-1") == "hi:u-1"
    assert agent("yo", user_id="u-2") == "yo:u-2"
    assert current_session_id() is None


def test_factory_returning_none_joins_the_current_session() -> None:
    @with_session(session_id=lambda *a, **kw: None)
    def agent() -> str | None:
        return current_session_id()

    with session_scope("caller"):
        assert agent() == "caller"


def test_factory_returning_an_invalid_id_raises_at_call_time_and_sets_nothing() -> None:
    calls = []

    @with_session(session_id=lambda value: value)
    def agent(value: object) -> None:
        calls.append(value)

    with pytest.raises(ValueError, match="control characters"):
        agent("bad\nid")
    with pytest.raises(TypeError, match="must be a str, got int"):
        agent(7)
    assert calls == []
    assert current_session_id() is None


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (("",), {}, ValueError, "must not be empty"),
        ((b"bytes",), {}, TypeError, "pass a callable as session_id=..., got bytes"),
        (("id",), {"new": True}, ValueError, "either a session_id or new=True"),
        ((), {"session_id": "id", "new": True}, ValueError, "either a session_id or new=True"),
        (("id",), {"session_id": "other"}, TypeError, "got the session id twice"),
        ((), {"session_id": 12}, TypeError, "must be a str or a callable, got int"),
        ((), {"new_trace": "yes"}, TypeError, "new_trace must be a bool or None, got str"),
        ((), {"new": True, "new_trace": False}, ValueError, "new_trace=False contradicts it"),
        ((), {"span": 3}, TypeError, "span must be a str naming the span, got int"),
        ((), {"span": ""}, ValueError, "span must not be empty"),
        ((), {"span": "s", "attributes": [1]}, TypeError, "attributes must be a mapping, got list"),
        ((), {"attributes": {"a": 1}}, ValueError, "attributes= are the span's: pass span= too"),
        ((), {"span": False, "attributes": {"a": 1}}, ValueError, "pass span= too"),
    ],
)
def test_bad_decorator_arguments_raise_when_decorating(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        with_session(*args, **kwargs)  # type: ignore[call-overload]


def test_exception_in_the_function_restores_the_session() -> None:
    @with_session("inside")
    def agent() -> None:
        raise LookupError("tool failed")

    set_session_id("outer")
    with pytest.raises(LookupError, match="tool failed"):
        agent()
    assert current_session_id() == "outer"


def test_coroutine_holds_the_session_across_awaits_and_restores_after() -> None:
    @with_session("async-agent")
    async def agent() -> list[str | None]:
        seen = [current_session_id()]
        await asyncio.sleep(0)
        seen.append(current_session_id())
        return seen

    async def main() -> None:
        set_session_id("outer")
        assert await agent() == ["async-agent", "async-agent"]
        assert current_session_id() == "outer"

    asyncio.run(main())


def test_coroutine_cancelled_restores_the_session() -> None:
    async def main() -> None:
        started = asyncio.Event()

        @with_session("doomed")
        async def agent() -> None:
            started.set()
            await asyncio.Event().wait()

        set_session_id("outer")
        task = asyncio.create_task(agent())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert current_session_id() == "outer"

    asyncio.run(main())


def test_coroutine_wrapper_restores_even_when_awaited_in_the_callers_task() -> None:
    @with_session("inner")
    async def agent() -> None:
        raise ValueError("inner failure")

    async def main() -> None:
        set_session_id("outer")
        with pytest.raises(ValueError, match="inner failure"):
            await agent()
        assert current_session_id() == "outer"

    asyncio.run(main())


def test_generator_body_sees_the_session_and_the_caller_does_not_between_items() -> None:
    @with_session("gen-session")
    def numbers() -> Iterator[tuple[int, str | None]]:
        for i in range(3):
            yield i, current_session_id()

    set_session_id("caller")
    seen_by_caller = []
    items = []
    for item in numbers():
        items.append(item)
        seen_by_caller.append(current_session_id())
    assert items == [(0, "gen-session"), (1, "gen-session"), (2, "gen-session")]
    assert seen_by_caller == ["caller"] * 3
    assert current_session_id() == "caller"


def test_generator_send_and_return_value_pass_through() -> None:
    @with_session("echo")
    def echo() -> Iterator[str]:
        received = yield "ready"
        while received != "stop":
            received = yield f"{received}@{current_session_id()}"
        return "done"

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send("a") == "a@echo"
    assert gen.send("b") == "b@echo"
    with pytest.raises(StopIteration) as stop:
        gen.send("stop")
    assert stop.value.value == "done"
    assert current_session_id() is None


def test_generator_close_runs_cleanup_under_the_session_and_restores() -> None:
    cleanup_saw: list[str | None] = []

    @with_session("closing")
    def stream() -> Iterator[int]:
        try:
            yield 1
            yield 2
        finally:
            cleanup_saw.append(current_session_id())

    set_session_id("caller")
    gen = stream()
    assert next(gen) == 1
    gen.close()
    assert cleanup_saw == ["closing"]
    assert current_session_id() == "caller"


def test_exception_thrown_into_generator_is_seen_by_the_body_under_the_session() -> None:
    handled: list[tuple[str, str | None]] = []

    @with_session("thrown")
    def resilient() -> Iterator[str]:
        while True:
            try:
                yield "item"
            except KeyError as exc:
                handled.append((str(exc), current_session_id()))

    set_session_id("caller")
    gen = resilient()
    next(gen)
    assert gen.throw(KeyError("k")) == "item"
    assert handled == [("'k'", "thrown")]
    assert current_session_id() == "caller"
    gen.close()
    assert current_session_id() == "caller"


def test_exception_thrown_into_generator_propagates_when_unhandled() -> None:
    @with_session("thrown")
    def fragile() -> Iterator[int]:
        yield 1

    gen = fragile()
    next(gen)
    with pytest.raises(ZeroDivisionError):
        gen.throw(ZeroDivisionError())
    assert current_session_id() is None


def test_async_generator_body_sees_the_session_and_the_caller_does_not() -> None:
    @with_session("agen-session")
    async def tokens() -> AsyncIterator[str | None]:
        for _ in range(3):
            await asyncio.sleep(0)
            yield current_session_id()

    async def main() -> None:
        set_session_id("caller")
        items, between = [], []
        async for item in tokens():
            items.append(item)
            between.append(current_session_id())
        assert items == ["agen-session"] * 3
        assert between == ["caller"] * 3

    asyncio.run(main())


def test_async_generator_aclose_and_athrow_restore_correctly() -> None:
    cleanup_saw: list[str | None] = []
    handled: list[str | None] = []

    @with_session("agen")
    async def stream() -> AsyncIterator[int]:
        try:
            while True:
                try:
                    yield 1
                except KeyError:
                    handled.append(current_session_id())
        finally:
            cleanup_saw.append(current_session_id())

    async def main() -> None:
        set_session_id("caller")
        agen = stream()
        assert await agen.__anext__() == 1
        assert await agen.athrow(KeyError("k")) == 1
        assert current_session_id() == "caller"
        await agen.aclose()
        assert current_session_id() == "caller"

    asyncio.run(main())
    assert handled == ["agen"]
    assert cleanup_saw == ["agen"]


def test_async_generator_asend_passes_values() -> None:
    @with_session("agen")
    async def doubler() -> AsyncIterator[int]:
        value = yield 0
        while True:
            value = yield value * 2

    async def main() -> None:
        agen = doubler()
        assert await agen.asend(None) == 0
        assert await agen.asend(21) == 42
        await agen.aclose()

    asyncio.run(main())


def test_new_true_generator_keeps_one_session_for_its_whole_life() -> None:
    @with_session(new=True)
    def stream() -> Iterator[str | None]:
        yield current_session_id()
        yield current_session_id()

    first, second = stream()
    assert first == second
    assert first is not None


@pytest.mark.parametrize("shared_rule", [None, False])
def test_a_scope_object_shared_by_a_generator_body_and_its_caller_restores_each_entry(
    shared_rule: bool | None,
) -> None:
    # The body runs in its caller's context: its exit must take its own entry of the
    # shared object, not the one its caller made since, and the caller's exit the other.
    seen = interleave(session_scope("shared", new_trace=shared_rule))
    assert seen["body inside, resumed"] == seen["body inside"]
    assert seen["body after"] == seen["body before"]
    assert seen["caller between"] == seen["caller after"] == seen["caller before"]
    assert seen["caller inside, after the body left"] == seen["caller inside"]
    assert seen["body before"][0] == "body"
    assert seen["caller before"][0] == "caller"
    assert seen["body inside"][0] == seen["caller inside"][0] == "shared"
    assert seen["outside"] == (None, None)


@pytest.mark.parametrize("shared_rule", [None, False])
def test_a_scope_object_shared_by_an_async_generator_body_and_its_caller(
    shared_rule: bool | None,
) -> None:
    shared = session_scope("shared", new_trace=shared_rule)
    seen: dict[str, State] = {}

    @with_session("body")
    async def body() -> AsyncIterator[None]:
        seen["body before"] = state()
        async with shared:
            yield
        seen["body after"] = state()
        yield

    async def caller() -> None:
        async with session_scope("caller"):
            seen["caller before"] = state()
            steps = body()
            await steps.__anext__()
            async with shared:
                await steps.__anext__()
                seen["caller inside"] = state()
            seen["caller after"] = state()
            await steps.aclose()

    asyncio.run(caller())
    assert seen["body after"] == seen["body before"]
    assert seen["body before"][0] == "body"
    assert seen["caller after"] == seen["caller before"]
    assert seen["caller before"][0] == "caller"
    assert seen["caller inside"][0] == "shared"


def plain(a: int, b: str = "x") -> str:
    """Plain docstring."""
    return f"{a}{b}"


async def coroutine(a: int) -> int:
    """Coroutine docstring."""
    return a


def generator(n: int) -> Iterator[int]:
    """Generator docstring."""
    yield from range(n)


async def async_generator(n: int) -> AsyncIterator[int]:
    """Async generator docstring."""
    for i in range(n):
        yield i


@pytest.mark.parametrize(
    ("func", "check"),
    [
        (plain, inspect.isfunction),
        (coroutine, inspect.iscoroutinefunction),
        (generator, inspect.isgeneratorfunction),
        (async_generator, inspect.isasyncgenfunction),
    ],
)
@pytest.mark.parametrize(
    "decorate", [with_session, with_session("id"), with_session(new=True)], ids=str
)
def test_decorated_function_keeps_its_kind_metadata_and_signature(
    func: object, check: object, decorate: object
) -> None:
    decorated = decorate(func)  # type: ignore[operator]
    assert check(decorated)  # type: ignore[operator]
    assert decorated.__name__ == func.__name__  # type: ignore[attr-defined]
    assert decorated.__doc__ == func.__doc__
    assert decorated.__qualname__ == func.__qualname__  # type: ignore[attr-defined]
    assert decorated.__wrapped__ is func
    assert inspect.signature(decorated) == inspect.signature(func)  # type: ignore[arg-type]


def test_decorator_works_on_methods() -> None:
    class Agent:
        def __init__(self, user: str) -> None:
            self.user = user

        @with_session(session_id=lambda self: f"user-{self.user}")
        def run(self) -> str | None:
            return current_session_id()

    assert Agent("ann").run() == "user-ann"
    assert Agent("bob").run() == "user-bob"


def test_decorator_stacks_with_functools_partial_objects() -> None:
    def add(a: int, b: int) -> tuple[int, str | None]:
        return a + b, current_session_id()

    decorated = with_session("partial")(functools.partial(add, 1))
    assert decorated(2) == (3, "partial")
