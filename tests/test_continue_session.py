"""continue_session: which session and trace it continues, and that it always restores both."""

from __future__ import annotations

import asyncio
import threading
import uuid
import warnings

import pytest

from _shared_scope_generators import interleave
from tracectrl._trace import TraceContext, attach_trace, current_trace
from tracectrl._tracecontext import parse_traceparent
from tracectrl.context import (
    SESSION_HEADER,
    continue_session,
    extract_trace_headers,
    inject_trace_headers,
    propagation_headers,
)
from tracectrl.session import current_session_id, set_session_id

# Both places the current trace can live: tracectrl's ContextVar and OpenTelemetry's context.
pytestmark = pytest.mark.usefixtures("trace_backend")

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
DEADLOCK_GUARD = 30.0  # only reached when a test already fails


def sent_parent(headers: dict[str, str]) -> tuple[str, str, int]:
    parsed = parse_traceparent(headers["traceparent"])
    assert parsed is not None, headers
    return parsed


def test_continue_session_takes_the_session_header_first() -> None:
    headers = {SESSION_HEADER: "from-header", "baggage": "session.id=from-baggage"}
    with continue_session(headers) as session_id:
        assert session_id == "from-header"
        assert current_session_id() == "from-header"


def test_continue_session_falls_back_to_baggage_session_id() -> None:
    with continue_session({"baggage": "a=1,session.id=from%20baggage"}) as session_id:
        assert session_id == "from baggage"


def test_continue_session_falls_back_to_baggage_when_the_header_is_invalid() -> None:
    headers = {SESSION_HEADER: "bad\x00id", "baggage": "session.id=good"}
    with continue_session(headers) as session_id:
        assert session_id == "good"


def test_session_fields_joined_with_a_comma_count_as_two_and_are_ignored() -> None:
    # A WSGI server joins two X-TraceCtrl-Session fields into "one, two";
    # sent separately (a list) they are refused too: either way, baggage wins.
    for value in ("one, two", ["one", "two"]):
        headers = {SESSION_HEADER: value, "baggage": "session.id=from-baggage"}
        with continue_session(headers) as session_id:
            assert session_id == "from-baggage"


def test_a_comma_in_a_session_id_travels_encoded() -> None:
    from tracectrl import propagation_headers, session_scope

    with session_scope("a,b"):
        sent = propagation_headers()
    assert sent[SESSION_HEADER] == "a%2Cb"
    with continue_session(sent) as session_id:
        assert session_id == "a,b"


def test_continue_session_without_a_session_starts_a_uuid_one() -> None:
    with continue_session({}) as session_id:
        assert str(uuid.UUID(session_id)) == session_id
        assert current_session_id() == session_id


def test_continue_session_without_a_session_uses_the_env_var(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRACECTRL_SESSION_ID", "from-env")
    with continue_session({}) as session_id:
        assert session_id == "from-env"


def test_continue_session_never_raises_on_an_invalid_env_var(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRACECTRL_SESSION_ID", "x" * 300)
    with continue_session({}) as session_id:
        assert str(uuid.UUID(session_id)) == session_id


def test_continue_session_continues_the_incoming_trace() -> None:
    with continue_session({"traceparent": TRACEPARENT, "tracestate": "rojo=1"}):
        assert current_trace() == TraceContext(TRACE_ID, PARENT_ID, 0x01, "rojo=1", True)
        trace_id, parent_id, _ = sent_parent(inject_trace_headers())
        assert trace_id == TRACE_ID
        assert parent_id != PARENT_ID


def test_continue_session_starts_a_trace_when_traceparent_is_invalid() -> None:
    with continue_session({"traceparent": TRACEPARENT.upper(), "tracestate": "foo=1"}):
        trace = current_trace()
        assert trace is not None
        assert trace.trace_id != TRACE_ID
        assert trace.tracestate == ""
        assert trace.trace_flags == 0x03


def test_continue_session_restores_session_and_trace_after_success() -> None:
    set_session_id("before")
    before = TraceContext("1" * 32, "2" * 16, 0x01, "", True)
    attach_trace(before)
    with continue_session({SESSION_HEADER: "inside", "traceparent": TRACEPARENT}):
        assert current_session_id() == "inside"
    assert current_session_id() == "before"
    assert current_trace() == before


def test_continue_session_restores_session_and_trace_after_an_exception() -> None:
    scope = continue_session({SESSION_HEADER: "inside", "traceparent": TRACEPARENT})
    with pytest.raises(KeyError), scope:
        raise KeyError("handler failed")
    assert current_session_id() is None
    assert current_trace() is None


def test_continue_session_restores_after_cancellation() -> None:
    async def main() -> None:
        entered = asyncio.Event()

        async def handler() -> None:
            async with continue_session({SESSION_HEADER: "inside", "traceparent": TRACEPARENT}):
                entered.set()
                await asyncio.Event().wait()  # until cancelled

        set_session_id("outer")
        task = asyncio.create_task(handler())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert current_session_id() == "outer"

    asyncio.run(main())


def test_continue_session_cancelled_inside_one_task_restores_that_tasks_values() -> None:
    async def main() -> tuple[str | None, TraceContext | None]:
        entered = asyncio.Event()
        after: list[tuple[str | None, TraceContext | None]] = []

        async def handler() -> None:
            set_session_id("task-own")
            try:
                async with continue_session({SESSION_HEADER: "inside"}):
                    entered.set()
                    await asyncio.Event().wait()
            finally:
                after.append((current_session_id(), current_trace()))

        task = asyncio.create_task(handler())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return after[0]

    assert asyncio.run(main()) == ("task-own", None)


def test_one_continue_session_object_entered_nested_restores_each_level() -> None:
    scope = continue_session({SESSION_HEADER: "inside", "traceparent": TRACEPARENT})
    with scope as outer:
        outer_trace = current_trace()
        with scope as inner:
            assert inner == outer == "inside"
            set_session_id("changed-inside")
        assert current_session_id() == "inside"
        assert current_trace() == outer_trace
    assert current_session_id() is None
    assert current_trace() is None


def test_one_continue_session_object_shared_by_many_tasks() -> None:
    scope = continue_session({"traceparent": TRACEPARENT})  # no session: one new per entry
    tasks_count = 50

    async def main() -> None:
        inside = 0
        all_inside = asyncio.Event()

        async def handler(index: int) -> tuple[str, str, str | None]:
            nonlocal inside
            set_session_id(f"task-{index}")
            async with scope as session_id:
                inside += 1
                if inside == tasks_count:
                    all_inside.set()
                await all_inside.wait()
                assert current_session_id() == session_id
                trace = current_trace()
                assert trace is not None
                seen = trace.trace_id
            return session_id, seen, current_session_id()

        results = await asyncio.gather(*(handler(index) for index in range(tasks_count)))
        assert len({session_id for session_id, _, _ in results}) == tasks_count
        assert {trace_id for _, trace_id, _ in results} == {TRACE_ID}
        assert [after for _, _, after in results] == [f"task-{i}" for i in range(tasks_count)]

    asyncio.run(main())
    assert current_session_id() is None


def test_continue_session_exited_in_another_thread_does_not_crash() -> None:
    scope = continue_session({SESSION_HEADER: "inside"})
    scope.__enter__()
    failures: list[BaseException] = []

    def exit_elsewhere() -> None:
        try:
            with pytest.warns(RuntimeWarning):
                scope.__exit__(None, None, None)
        except BaseException as error:  # reported to the main thread below
            failures.append(error)

    worker = threading.Thread(target=exit_elsewhere)
    worker.start()
    worker.join(DEADLOCK_GUARD)
    assert failures == []
    assert current_session_id() == "inside"  # this thread's entry was never exited here


def test_continue_session_exit_without_enter_is_a_no_op() -> None:
    scope = continue_session({})
    scope.__exit__(None, None, None)
    assert current_session_id() is None
    with pytest.warns(RuntimeWarning, match="never entered"):
        del scope  # freed at once on CPython, where the warning is given


def test_continue_session_in_a_thread_leaves_other_threads_alone() -> None:
    set_session_id("main")
    inside = threading.Event()
    release = threading.Event()

    def serve() -> None:
        with continue_session({SESSION_HEADER: "worker"}):
            inside.set()
            release.wait(DEADLOCK_GUARD)

    worker = threading.Thread(target=serve)
    worker.start()
    assert inside.wait(DEADLOCK_GUARD)
    assert current_session_id() == "main"
    release.set()
    worker.join(DEADLOCK_GUARD)


def test_one_object_entered_by_two_threads_is_left_first_by_the_first_entrant() -> None:
    # The first thread's entry is the older one: its exit must find it behind the newer.
    shared = continue_session({SESSION_HEADER: "incoming", "traceparent": TRACEPARENT})
    first_inside = threading.Event()
    second_inside = threading.Event()
    first_left = threading.Event()
    seen: dict[str, tuple[str | None, str | None]] = {}

    def state() -> tuple[str | None, str | None]:
        trace = current_trace()
        return current_session_id(), None if trace is None else trace.trace_id

    def enter_first() -> None:
        set_session_id("first-thread")
        with shared:
            first_inside.set()
            second_inside.wait(DEADLOCK_GUARD)  # both entries open: this one is the older
            # A trace taken inside: the exit cannot tell its entry by the trace in force.
            extract_trace_headers({"traceparent": f"00-{'1' * 32}-{PARENT_ID}-01"})
        seen["first after"] = state()
        first_left.set()

    def enter_second() -> None:
        set_session_id("second-thread")
        first_inside.wait(DEADLOCK_GUARD)
        with shared:
            second_inside.set()
            first_left.wait(DEADLOCK_GUARD)
            seen["second inside"] = state()
        seen["second after"] = state()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no exit may be taken for one made elsewhere
        first = threading.Thread(target=enter_first)
        second = threading.Thread(target=enter_second)
        first.start()
        second.start()
        first.join(DEADLOCK_GUARD)
        second.join(DEADLOCK_GUARD)
    assert seen == {
        "first after": ("first-thread", None),
        "second inside": ("incoming", TRACE_ID),
        "second after": ("second-thread", None),
    }


@pytest.mark.parametrize(
    "session_id",
    [
        "plain-uuid-like-0001",
        "with spaces",
        "50% off",
        "a,b",
        "a;b",
        "a=b",
        "a+b",
        "%41%42",
        "caf\u00e9",
        "\u65e5\u672c\u8a9e",
        "emoji \U0001f389",
        " leading and trailing ",
        "x" * 256,
        "\u00e9" * 256,
    ],
)
def test_session_ids_round_trip_exactly_through_headers(session_id: str) -> None:
    set_session_id(session_id)
    headers = propagation_headers()
    for value in headers.values():
        assert value.isascii()
        assert value.isprintable()
    with continue_session(headers) as seen:
        assert seen == session_id
    with continue_session({"baggage": headers["baggage"]}) as seen_in_baggage:
        assert seen_in_baggage == session_id


def test_continue_session_that_is_never_entered_warns_when_collected() -> None:
    with pytest.warns(RuntimeWarning, match=r"never entered.*with continue_session\(headers\)"):
        continue_session({"X-TraceCtrl-Session": "alice"})  # the mistake: no `with`
    assert current_session_id() is None


def test_continue_session_entered_once_does_not_warn_when_collected() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scope = continue_session({"X-TraceCtrl-Session": "alice"})
        with scope as session_id:
            assert session_id == "alice"
        del scope

        async def handler() -> str | None:
            async with continue_session({"X-TraceCtrl-Session": "bob"}):
                return current_session_id()

        assert asyncio.run(handler()) == "bob"


@pytest.mark.parametrize("incoming_trace", [TRACEPARENT, None])
def test_one_object_entered_by_a_generator_body_and_its_caller_restores_each_entry(
    incoming_trace: str | None,
) -> None:
    # A decorated generator's body runs in its caller's context: its exit must take
    # its own entry of the shared object, not the one its caller made since.
    headers = {SESSION_HEADER: "incoming"}
    if incoming_trace is not None:
        headers["traceparent"] = incoming_trace
    seen = interleave(continue_session(headers))
    assert seen["body before"][0] == "body"
    assert seen["body after"] == seen["body before"]
    assert seen["caller before"][0] == "caller"
    assert seen["caller after"] == seen["caller before"]
    assert seen["caller inside, after the body left"] == seen["caller inside"]
    assert seen["caller inside"][0] == "incoming"
    assert seen["outside"][0] is None
