"""session_scope: join or start, restore on every exit path, per-entry tokens."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import warnings
from collections.abc import Iterator

import pytest

from tracectrl import current_session_id, current_trace, new_session, session_scope, set_session_id


def test_scope_with_id_sets_it_and_restores_none_after() -> None:
    with session_scope("abc") as sid:
        assert sid == "abc"
        assert current_session_id() == "abc"
    assert current_session_id() is None


def test_scope_restores_previous_session_after_exception() -> None:
    set_session_id("outer")
    with pytest.raises(RuntimeError, match="boom"), session_scope("inner"):
        assert current_session_id() == "inner"
        raise RuntimeError("boom")
    assert current_session_id() == "outer"


def test_scope_undoes_set_session_id_called_inside_it() -> None:
    set_session_id("outer")
    with session_scope():
        set_session_id("changed-inside")
    assert current_session_id() == "outer"


def test_scope_without_id_joins_the_current_session() -> None:
    set_session_id("running")
    with session_scope() as sid:
        assert sid == "running"
        assert current_session_id() == "running"
    assert current_session_id() == "running"


def test_scope_without_id_starts_a_session_when_there_is_none() -> None:
    with session_scope() as sid:
        assert sid
        assert current_session_id() == sid
    assert current_session_id() is None


def test_scope_new_starts_a_session_even_inside_one() -> None:
    set_session_id("running")
    with session_scope(new=True) as sid:
        assert sid != "running"
        assert current_session_id() == sid
    assert current_session_id() == "running"


def test_scope_new_uses_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACECTRL_SESSION_ID", "fixed-session-for-testing")
    with session_scope(new=True) as sid:
        assert sid == "fixed-session-for-testing"
    with session_scope("explicit") as sid:
        assert sid == "explicit", "an explicit id ignores the environment variable"


def test_nested_scopes_restore_each_level() -> None:
    seen = []
    with session_scope("a"):
        with session_scope("b"):
            with session_scope("c"):
                seen.append(current_session_id())
            seen.append(current_session_id())
        seen.append(current_session_id())
    seen.append(current_session_id())
    assert seen == ["c", "b", "a", None]


def test_one_scope_object_entered_nested_restores_each_level() -> None:
    scope = session_scope("same")
    set_session_id("outer")
    with scope:
        set_session_id("middle")
        with scope:
            assert current_session_id() == "same"
        assert current_session_id() == "middle"
    assert current_session_id() == "outer"


def test_one_scope_object_can_be_reused_after_exit() -> None:
    scope = session_scope(new=True)
    with scope as first:
        pass
    with scope as second:
        pass
    assert first != second
    assert current_session_id() is None


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((42,), {}, TypeError, "session id must be a str, got int"),
        (("",), {}, ValueError, "must not be empty"),
        (("x" * 300,), {}, ValueError, "at most 256 characters, got 300"),
        (("a\nb",), {}, ValueError, "control characters"),
        (("id",), {"new": True}, ValueError, "either a session_id or new=True"),
        ((), {"new_trace": 1}, TypeError, "new_trace must be a bool or None, got int"),
        ((), {"new": True, "new_trace": False}, ValueError, "new_trace=False contradicts it"),
        ((), {"span": 3}, TypeError, "span must be a str naming the span, got int"),
        ((), {"span": ""}, ValueError, "span must not be empty"),
        ((), {"span": "s", "attributes": [1]}, TypeError, "attributes must be a mapping, got list"),
        ((), {"attributes": {"a": 1}}, ValueError, "attributes= are the span's: pass span= too"),
        (("id",), {"attributes": {"a": 1}}, ValueError, "attributes= are the span's"),
    ],
)
def test_scope_rejects_bad_arguments_before_entering(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        session_scope(*args, **kwargs)  # type: ignore[arg-type]
    assert current_session_id() is None


def test_scope_rejects_attributes_without_a_span_for_the_id_it_checked_last() -> None:
    session_scope("checked")  # the next scope of this id skips validating it again
    with pytest.raises(ValueError, match="attributes= are the span's: pass span= too"):
        session_scope("checked", attributes={"a": 1})
    with pytest.raises(ValueError, match="attributes= are the span's: pass span= too"):
        session_scope(attributes={"a": 1})


def test_async_scope_restores_previous_session_after_exception() -> None:
    async def main() -> None:
        set_session_id("outer")
        with pytest.raises(KeyError):
            async with session_scope("inner") as sid:
                assert sid == "inner"
                await asyncio.sleep(0)
                assert current_session_id() == "inner"
                raise KeyError("boom")
        assert current_session_id() == "outer"

    asyncio.run(main())


def test_async_scope_restores_previous_session_after_cancellation() -> None:
    async def main() -> None:
        entered = asyncio.Event()
        seen_after: list[str | None] = []

        async def work() -> None:
            set_session_id("task-before")
            try:
                async with session_scope("inside"):
                    entered.set()
                    await asyncio.Event().wait()  # until cancelled
            finally:
                seen_after.append(current_session_id())

        task = asyncio.create_task(work())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert seen_after == ["task-before"]
        assert current_session_id() is None

    asyncio.run(main())


def test_one_scope_object_entered_by_300_tasks_gives_each_its_own_previous_session() -> None:
    async def main() -> None:
        scope = session_scope("shared")
        tasks = 300
        all_entered = asyncio.Event()
        # Exits go first-in first-out, so no exit is by the newest entry of the object.
        exited = [asyncio.Event() for _ in range(tasks)]
        entered = 0

        async def task(index: int) -> None:
            nonlocal entered
            set_session_id(f"before-{index}")
            assert current_session_id() == f"before-{index}"
            async with scope as sid:
                assert sid == "shared"
                entered += 1
                if entered == tasks:
                    all_entered.set()
                await all_entered.wait()  # every task is inside the same object at once
                assert current_session_id() == "shared"
                if index:
                    await exited[index - 1].wait()
            assert current_session_id() == f"before-{index}"
            exited[index].set()

        await asyncio.gather(*(task(i) for i in range(tasks)))
        assert current_session_id() is None

    asyncio.run(main())


def test_scope_exited_in_another_task_warns_and_changes_nothing_there() -> None:
    async def main() -> None:
        scope = session_scope("opened-in-a")
        entered = asyncio.Event()
        a_may_finish = asyncio.Event()
        a_seen: list[str | None] = []

        async def task_a() -> None:
            set_session_id("a-before")
            scope.__enter__()
            entered.set()
            await a_may_finish.wait()
            a_seen.append(current_session_id())

        async def task_b() -> str | None:
            set_session_id("b-own")
            await entered.wait()
            with pytest.warns(RuntimeWarning, match="never entered it"):
                scope.__exit__(None, None, None)
            return current_session_id()

        a = asyncio.create_task(task_a())
        b_after = await asyncio.create_task(task_b())
        a_may_finish.set()
        await a
        # The exiting task keeps its own session: A's previous one is not B's to
        # get.  The entering task, which no other task can change, keeps the
        # scope's value, and its own exit still restores its previous one.
        assert b_after == "b-own"
        assert a_seen == ["opened-in-a"]

    asyncio.run(main())


def test_scope_exited_in_another_thread_does_not_raise() -> None:
    scope = session_scope("main-thread-scope")
    scope.__enter__()
    errors: list[BaseException] = []

    def exit_elsewhere() -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                scope.__exit__(None, None, None)
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    thread = threading.Thread(target=exit_elsewhere)
    thread.start()
    thread.join()
    assert errors == []
    assert current_session_id() == "main-thread-scope"
    scope.__exit__(None, None, None)  # the correct exit still works, and does not raise
    assert current_session_id() is None


def test_an_exit_where_the_scope_was_never_entered_leaves_that_context_untouched() -> None:
    scope = session_scope("entered-in-main")
    scope.__enter__()
    seen: list[tuple[str | None, object]] = []

    def wrong_exit() -> None:
        with session_scope("bob") as bob:
            before = current_trace()
            with pytest.warns(RuntimeWarning, match="never entered it"):
                scope.__exit__(None, None, None)
            seen.append((current_session_id(), current_trace() == before))
            assert bob == "bob"

    thread = threading.Thread(target=wrong_exit)
    thread.start()
    thread.join()
    assert seen == [("bob", True)]
    assert current_session_id() == "entered-in-main"
    scope.__exit__(None, None, None)
    assert current_session_id() is None


def test_scope_repr_names_its_mode() -> None:
    assert repr(session_scope("abc")) == "session_scope('abc')"
    assert repr(session_scope()) == "session_scope()"
    assert repr(session_scope(new=True)) == "session_scope(new=True)"


def test_new_session_inside_a_scope_is_undone_on_exit() -> None:
    def body() -> str | None:
        with session_scope("outer"):
            new_session()
        return current_session_id()

    assert contextvars.copy_context().run(body) is None


def test_an_abandoned_generator_closed_during_another_request_leaves_its_session_alone() -> None:
    def stream() -> Iterator[str]:
        with session_scope("alice"):  # a scope spanning a yield: the mistake being survived
            yield "token"

    first_request = contextvars.copy_context()
    abandoned = first_request.run(stream)
    first_request.run(next, abandoned)

    def second_request() -> str | None:
        nonlocal abandoned
        with session_scope("bob"):
            with pytest.warns(RuntimeWarning):
                del abandoned  # the last reference: closed here, in bob's request
            return current_session_id()

    assert contextvars.copy_context().run(second_request) == "bob"


def test_session_scope_used_as_a_decorator_says_to_use_with_session() -> None:
    with pytest.raises(TypeError, match="not a decorator: use @with_session"):

        @session_scope("user-1")
        def handler() -> None: ...

    with pytest.raises(TypeError, match="not a decorator: use @with_session"):

        @session_scope  # type: ignore[arg-type]
        def bare_handler() -> None: ...

    with pytest.raises(TypeError, match=r"session_scope\(new=True\) is a context manager"):

        @session_scope(new=True)
        async def async_handler() -> None: ...

    assert current_session_id() is None
