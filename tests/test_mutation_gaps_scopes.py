"""Scopes: the async forms, and that an exited scope object holds nothing and undoes nothing more.

Each test here pins a behaviour that a small change to the code (a mutant) broke
without any other test noticing; see ``tests/mutation/run.py``.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator
from contextvars import Context, ContextVar, copy_context
from typing import cast

import pytest

from tracectrl import _tokens
from tracectrl._trace import current_trace
from tracectrl.context import continue_session, extract_trace_headers
from tracectrl.scope import session_scope, with_session
from tracectrl.session import current_session_id, set_session_id

pytestmark = pytest.mark.usefixtures("trace_backend")

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OTHER_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TASKS = 50


def test_async_scope_new_starts_a_session_per_entry_even_inside_one() -> None:
    async def conversation(outer: str) -> tuple[str, str | None]:
        async with session_scope(new=True) as inside:
            return inside, current_session_id()

    async def main() -> None:
        async with session_scope("outer"):
            results = await asyncio.gather(*(conversation("outer") for _ in range(TASKS)))
            assert current_session_id() == "outer"
        ids = {inside for inside, _ in results}
        assert len(ids) == TASKS, "two conversations shared one session id"
        assert "outer" not in ids
        assert all(inside == seen for inside, seen in results)
        assert current_session_id() is None

    asyncio.run(main())


def test_async_scope_without_id_joins_the_current_session_or_starts_one() -> None:
    async def joined() -> tuple[str, str | None]:
        async with session_scope() as inside:
            return inside, current_session_id()

    async def main() -> None:
        async with session_scope("caller"):
            results = await asyncio.gather(*(joined() for _ in range(TASKS)))
        assert results == [("caller", "caller")] * TASKS
        started = await asyncio.gather(*(joined() for _ in range(TASKS)))
        assert len({inside for inside, _ in started}) == TASKS
        assert all(inside == seen for inside, seen in started)
        assert current_session_id() is None

    asyncio.run(main())


def test_one_scope_object_nested_with_async_with_restores_each_level() -> None:
    scope = session_scope("nested")

    async def main() -> None:
        set_session_id("before")
        async with scope as outer:
            async with scope as inner:
                assert (outer, inner, current_session_id()) == ("nested", "nested", "nested")
                set_session_id("inside")
            assert current_session_id() == "nested"
        assert current_session_id() == "before"

    asyncio.run(main())


def test_exited_scope_object_holds_no_entry_and_a_spare_exit_changes_nothing() -> None:
    # One entry per open entry is the whole bookkeeping: a reused scope object that
    # kept one per past entry would grow for ever.  A spare exit shows it publicly:
    # with a stale entry left over, it would reset the session to the old value.
    scope = session_scope("kept")
    for _ in range(3):
        with scope, scope:
            pass
    assert scope._entries == []
    set_session_id("later")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scope.__exit__(None, None, None)
    assert current_session_id() == "later"


def test_async_exited_scope_object_holds_no_entry_and_a_spare_exit_changes_nothing() -> None:
    scope = session_scope("kept")

    async def main() -> None:
        for _ in range(3):
            async with scope, scope:
                pass
        assert scope._entries == []
        set_session_id("later")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            await scope.__aexit__(None, None, None)
        assert current_session_id() == "later"

    asyncio.run(main())


def test_exited_continue_session_holds_no_token_and_a_spare_exit_changes_nothing() -> None:
    carrier = {"traceparent": TRACEPARENT, "X-TraceCtrl-Session": "caller"}
    handler = continue_session(carrier)
    for _ in range(3):
        with handler, handler:
            pass
    assert handler._session_tokens == []
    assert handler._entries == {}
    set_session_id("later")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        handler.__exit__(None, None, None)
    assert current_session_id() == "later"


def test_scope_object_entered_in_two_threads_holds_no_entry_after_both_exit() -> None:
    # The first thread exits while the second's entry is the newest: the slow path,
    # which must drop the entry it undid too.
    scope = session_scope("shared")
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def first() -> None:
        with scope:
            # A trace taken from headers inside the unit goes with it on exit too.
            extract_trace_headers({"traceparent": TRACEPARENT})
            first_in.set()
            second_in.wait(30)
        first_out.set()
        seen["first"] = current_session_id()
        seen["first trace"] = current_trace()

    def second() -> None:
        first_in.wait(30)
        with scope:
            second_in.set()
            first_out.wait(30)
        seen["second"] = current_session_id()
        seen["second trace"] = current_trace()

    threads = [threading.Thread(target=copy_context().run, args=(f,)) for f in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"first": None, "second": None, "first trace": None, "second trace": None}
    assert scope._entries == []


def test_continue_session_exited_in_a_thread_that_never_entered_it_changes_nothing_there() -> None:
    handler = continue_session({"traceparent": TRACEPARENT, "X-TraceCtrl-Session": "caller"})
    handler.__enter__()
    assert current_session_id() == "caller"
    seen: dict[str, object] = {}

    def exit_here() -> None:
        with continue_session({"traceparent": OTHER_TRACEPARENT, "X-TraceCtrl-Session": "own"}):
            own_trace = current_trace()
            assert own_trace is not None
            with pytest.warns(RuntimeWarning, match="never entered it"):
                handler.__exit__(None, None, None)
            # This thread's own request keeps its session and trace: the entry
            # being exited is not this thread's to undo.
            seen["during"] = (current_session_id(), current_trace() == own_trace)
        seen["after"] = (current_session_id(), current_trace())

    thread = threading.Thread(target=exit_here)
    thread.start()
    thread.join()
    assert seen == {"during": ("own", True), "after": (None, None)}
    # The entering thread keeps the request's values, and its own exit undoes them.
    trace = current_trace()
    assert current_session_id() == "caller"
    assert trace is not None
    assert trace.trace_id == TRACEPARENT.split("-")[1]
    assert len(handler._session_tokens) == 1
    handler.__exit__(None, None, None)
    assert (current_session_id(), current_trace()) == (None, None)
    assert handler._session_tokens == []
    assert handler._entries == {}


def test_token_made_in_another_context_restores_a_variable_without_default_to_none() -> None:
    # restore_elsewhere serves any variable; one with no default reads as None.
    no_default: ContextVar[str | None] = ContextVar("no_default")
    token = copy_context().run(no_default.set, "elsewhere")
    no_default.set("here")
    with pytest.warns(RuntimeWarning):
        _tokens.restore_elsewhere(no_default, token)
    assert no_default.get() is None


class _YieldOnce:
    """An awaitable that suspends its coroutine once, like an await on I/O."""

    def __await__(self) -> Generator[None, None, None]:
        yield


def _finish(coroutine: Coroutine[object, None, str | None]) -> str | None:
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return cast("str | None", stop.value)
    raise AssertionError("the coroutine did not finish")


def _suspended_decorated_coroutine() -> tuple[Coroutine[object, None, str | None], Context]:
    """A coroutine of a ``with_session`` function, started in a context of its own and suspended."""

    @with_session("decorated")
    async def work() -> str | None:
        await _YieldOnce()
        return current_session_id()

    coroutine = work()
    started_in = copy_context()
    started_in.run(coroutine.send, None)
    assert started_in.run(current_session_id) == "decorated"
    return coroutine, started_in


def test_decorated_coroutine_finished_in_another_context_warns_and_restores_there() -> None:
    coroutine, started_in = _suspended_decorated_coroutine()
    finished_in = copy_context()
    finished_in.run(set_session_id, "finishing")
    finished_in.run(extract_trace_headers, {"traceparent": OTHER_TRACEPARENT})
    with pytest.warns(RuntimeWarning, match="different thread or task"):
        returned = finished_in.run(_finish, coroutine)
    assert returned == "finishing"
    # The value from before the call is restored where it finished, and nowhere else.
    assert finished_in.run(current_session_id) is None
    assert finished_in.run(current_trace) is None
    assert started_in.run(current_session_id) == "decorated"
    assert started_in.run(current_trace) is not None
    assert current_session_id() is None


def test_decorated_coroutine_finished_in_another_context_warns_at_the_code_that_finished_it() -> (
    None
):
    coroutine, _ = _suspended_decorated_coroutine()
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        copy_context().run(_finish, coroutine)
    assert [w.filename for w in warned] == [__file__]


def test_cross_thread_exit_warning_points_at_the_code_that_exited() -> None:
    scope = session_scope("pointed")
    scope.__enter__()
    warned: list[warnings.WarningMessage] = []

    def exit_here() -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scope.__exit__(None, None, None)
        warned.extend(caught)

    thread = threading.Thread(target=exit_here)
    thread.start()
    thread.join()
    assert [w.filename for w in warned] == [__file__]


def test_reset_with_a_token_already_used_does_nothing_and_raises_nothing() -> None:
    variable: ContextVar[str | None] = ContextVar("used_token", default=None)
    token = variable.set("first")
    _tokens.reset(variable, token)
    variable.set("after")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _tokens.reset(variable, token)
    assert variable.get() == "after"


def test_decorated_function_undoes_a_trace_taken_from_headers_inside_it() -> None:
    @with_session("handler")
    def handle() -> str | None:
        extract_trace_headers({"traceparent": TRACEPARENT})
        trace = current_trace()
        return None if trace is None else trace.trace_id

    @with_session("handler")
    async def handle_async() -> str | None:
        extract_trace_headers({"traceparent": TRACEPARENT})
        trace = current_trace()
        return None if trace is None else trace.trace_id

    async def main() -> tuple[str | None, str | None, object]:
        return await handle_async(), current_session_id(), current_trace()

    assert handle() == TRACEPARENT.split("-")[1]
    assert (current_session_id(), current_trace()) == (None, None)
    assert asyncio.run(main()) == (TRACEPARENT.split("-")[1], None, None)


def test_decorated_generator_hands_back_the_callers_trace_at_each_yield() -> None:
    @with_session("steps")
    def steps() -> Generator[str | None, None, None]:
        extract_trace_headers({"traceparent": TRACEPARENT})
        trace = current_trace()
        yield None if trace is None else trace.trace_id

    extract_trace_headers({"traceparent": OTHER_TRACEPARENT})
    for trace_id in steps():
        assert trace_id == TRACEPARENT.split("-")[1]
        caller = current_trace()
        assert caller is not None
        assert (current_session_id(), caller.trace_id) == (None, OTHER_TRACEPARENT.split("-")[1])
    caller = current_trace()
    assert caller is not None
    assert caller.trace_id == OTHER_TRACEPARENT.split("-")[1]


def test_decorated_generator_finds_its_trace_from_headers_again_when_it_resumes() -> None:
    @with_session("steps")
    def steps() -> Generator[str | None, None, None]:
        extract_trace_headers({"traceparent": TRACEPARENT})
        for _ in range(2):
            trace = current_trace()
            yield None if trace is None else trace.trace_id

    assert list(steps()) == [TRACEPARENT.split("-")[1]] * 2


def test_async_scope_exit_undoes_its_trace_and_one_taken_from_headers_inside() -> None:
    async def main() -> list[object]:
        seen: list[object] = []
        async with session_scope("plain"):
            seen.append(current_trace() is not None)
        seen.append(current_trace())
        async with session_scope("request"):
            extract_trace_headers({"traceparent": TRACEPARENT})
            trace = current_trace()
            seen.append(None if trace is None else trace.trace_id)
        seen.append(current_trace())
        return seen

    assert asyncio.run(main()) == [True, None, TRACEPARENT.split("-")[1], None]


def test_decorated_generators_called_with_wrong_arguments_restore_the_session() -> None:
    @with_session("steps")
    def steps() -> Generator[int, None, None]:
        yield 1

    @with_session("steps")
    async def async_steps() -> AsyncGenerator[int, None]:
        yield 1

    wrong = cast("Callable[[int], Generator[int, None, None]]", steps)
    with pytest.raises(TypeError):
        next(wrong(1))
    assert current_session_id() is None

    async def main() -> str | None:
        wrong_async = cast("Callable[[int], AsyncGenerator[int, None]]", async_steps)
        with pytest.raises(TypeError):
            await wrong_async(1).__anext__()
        return current_session_id()

    assert asyncio.run(main()) is None


def test_decorated_generators_whose_close_fails_restore_the_session() -> None:
    @with_session("steps")
    def steps() -> Generator[int, None, None]:
        try:
            yield 1
        finally:
            raise LookupError("cleanup failed")

    @with_session("steps")
    async def async_steps() -> AsyncGenerator[int, None]:
        try:
            yield 1
        finally:
            raise LookupError("cleanup failed")

    generator = steps()
    assert next(generator) == 1
    with pytest.raises(LookupError):
        generator.close()
    assert current_session_id() is None

    async def main() -> str | None:
        async_generator = async_steps()
        assert await async_generator.__anext__() == 1
        with pytest.raises(LookupError):
            await async_generator.aclose()
        return current_session_id()

    assert asyncio.run(main()) is None


def test_decorated_async_generator_that_raises_restores_the_session() -> None:
    @with_session("steps")
    async def async_steps() -> AsyncGenerator[int, None]:
        yield 1
        raise LookupError("step failed")

    async def main() -> tuple[list[int], str | None]:
        seen: list[int] = []
        with pytest.raises(LookupError):
            async for item in async_steps():
                seen.append(item)
        return seen, current_session_id()

    assert asyncio.run(main()) == ([1], None)
