"""The session core: new_session, current_session_id, set_session_id and id validation."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from tracectrl import (
    MAX_SESSION_ID_LENGTH,
    current_session_id,
    new_session,
    set_session_id,
    validate_session_id,
)


def test_current_session_id_is_none_without_a_session() -> None:
    assert current_session_id() is None


def test_new_session_returns_distinct_ids_and_makes_the_latest_current() -> None:
    first = new_session()
    second = new_session()
    assert first != second
    assert current_session_id() == second


def test_new_session_reads_the_environment_variable_at_each_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRACECTRL_SESSION_ID", "from-env-1")
    assert new_session() == "from-env-1"
    monkeypatch.setenv("TRACECTRL_SESSION_ID", "from-env-2")
    assert new_session() == "from-env-2"
    assert current_session_id() == "from-env-2"


def test_invalid_environment_variable_is_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACECTRL_SESSION_ID", "x" * 300)
    with pytest.raises(ValueError, match=r"TRACECTRL_SESSION_ID.*at most 256 characters, got 300"):
        new_session()
    assert current_session_id() is None


def test_set_session_id_ignores_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACECTRL_SESSION_ID", "from-env")
    set_session_id("explicit")
    assert current_session_id() == "explicit"


@pytest.mark.parametrize(
    "valid",
    [
        "a",
        "user-session-abc123",
        "x" * MAX_SESSION_ID_LENGTH,
        "with spaces, commas; equals= and 100%",
        "Ünïcødé-セッション-🙂",
        "   ",
        "ascii space inside",
    ],
)
def test_valid_ids_are_accepted_unchanged(valid: str) -> None:
    assert validate_session_id(valid) is valid
    set_session_id(valid)
    assert current_session_id() == valid


@pytest.mark.parametrize("not_a_str", [None, 42, b"bytes", ["list"], 3.5])
def test_non_str_id_raises_type_error_naming_the_type(not_a_str: object) -> None:
    with pytest.raises(
        TypeError, match=f"session id must be a str, got {type(not_a_str).__name__}"
    ):
        set_session_id(not_a_str)  # type: ignore[arg-type]


def test_str_subclass_is_accepted_as_a_plain_str() -> None:
    class Tagged(str):
        pass

    set_session_id(Tagged("tagged"))
    assert type(current_session_id()) is str
    assert current_session_id() == "tagged"


@pytest.mark.parametrize(
    ("invalid", "rule"),
    [
        ("", "must not be empty"),
        (
            "lone\udcffsurrogate",
            "must not contain surrogate characters, got '\\\\udcff' at index 4",
        ),
        ("\t \n", "must not contain control characters"),
        ("x" * 257, "at most 256 characters, got 257"),
        ("a\r\nSet-Cookie: x", "must not contain control characters, got '\\\\r' at index 1"),
        ("nul\x00byte", "must not contain control characters"),
        ("del\x7f", "must not contain control characters"),
        ("c1\x85control", "must not contain control characters"),
        ("tab\tinside", "must not contain control characters"),
    ],
)
def test_invalid_id_raises_value_error_naming_the_rule(invalid: str, rule: str) -> None:
    set_session_id("before")
    with pytest.raises(ValueError, match=rule):
        set_session_id(invalid)
    assert current_session_id() == "before", "a rejected id must not be written"


# Characters that str.isprintable() refuses although they are not controls: each
# could forge a log line (a line break for str.splitlines()) or disguise one.
NOT_PRINTABLE = [
    ("\u2028", "line separator"),
    ("\u2029", "paragraph separator"),
    ("\u202e", "right-to-left override"),
    ("\u2066", "left-to-right isolate"),
    ("\u200b", "zero-width space"),
    ("\u200d", "zero-width joiner"),
    ("\ufeff", "byte order mark"),
    ("\U000e0041", "tag latin capital letter a"),
    ("\u00a0", "no-break space"),
    ("\u3000", "ideographic space"),
    ("\u00ad", "soft hyphen"),
    ("\U0010ffff", "noncharacter"),
    ("\u0378", "unassigned code point"),
]


@pytest.mark.parametrize(
    "character", [case[0] for case in NOT_PRINTABLE], ids=[case[1] for case in NOT_PRINTABLE]
)
def test_ids_with_a_character_that_is_not_printable_are_refused_by_set_and_validate(
    character: str,
) -> None:
    forged = f"victim{character}CRITICAL session=admin payment approved"
    set_session_id("before")
    with pytest.raises(ValueError, match=r"only printable characters .* at index 6"):
        set_session_id(forged)
    with pytest.raises(ValueError, match="only printable characters"):
        validate_session_id(forged)
    assert current_session_id() == "before", "a rejected id must not be written"


def test_environment_id_with_a_line_separator_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACECTRL_SESSION_ID", "victim\u2028CRITICAL session=admin")
    with pytest.raises(ValueError, match=r"TRACECTRL_SESSION_ID.*only printable characters"):
        new_session()
    assert current_session_id() is None


def test_refusal_names_the_character_escaped() -> None:
    with pytest.raises(ValueError, match="printable") as raised:
        validate_session_id("victim\u2028CRITICAL")
    message = str(raised.value)
    assert "'\\u2028' at index 6" in message
    assert message.isprintable()


def test_the_ascii_space_is_the_one_space_an_id_may_hold() -> None:
    assert validate_session_id("user 7") == "user 7"
    with pytest.raises(ValueError, match="printable"):
        validate_session_id("user\u20077")  # figure space


def test_session_is_isolated_between_threads() -> None:
    set_session_id("main-thread")
    seen: list[str | None] = []

    def worker() -> None:
        seen.append(current_session_id())
        set_session_id("worker-thread")
        seen.append(current_session_id())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [None, "worker-thread"]
    assert current_session_id() == "main-thread"


def test_session_set_in_a_task_does_not_leak_to_the_caller() -> None:
    async def main() -> tuple[str | None, str | None]:
        set_session_id("outer")

        async def child() -> str | None:
            set_session_id("inner")
            return current_session_id()

        inner = await asyncio.create_task(child())
        return inner, current_session_id()

    assert contextvars.copy_context().run(asyncio.run, main()) == ("inner", "outer")
