"""The wire path at its edges: limits at their exact values, bounded caches, odd carriers.

Each test here pins a behaviour that a small change to the code (a mutant) broke
without any other test noticing; see ``tests/mutation/run.py``.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from tracectrl import _baggage, _tracecontext
from tracectrl._trace import current_trace
from tracectrl.context import (
    SESSION_HEADER,
    continue_session,
    extract_trace_headers,
    propagation_headers,
)
from tracectrl.scope import session_scope
from tracectrl.session import current_session_id, set_session_id

pytestmark = pytest.mark.usefixtures("trace_backend")

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
OTHER_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_tracestate_in_the_specifications_comma_space_form_is_read_in_normal_form() -> None:
    trace = extract_trace_headers({"traceparent": TRACEPARENT, "tracestate": "gap=1, spec=2"})
    assert trace is not None
    assert trace.tracestate == "gap=1,spec=2"


def test_recent_tracestate_cache_never_holds_more_than_256_values() -> None:
    _tracecontext._recent_tracestates.clear()
    for index in range(600):
        fields = [f"bound{index}=v"]
        assert _tracecontext.parse_tracestate(fields) == fields[0]
        assert len(_tracecontext._recent_tracestates) <= 256
    assert len(_tracecontext._recent_tracestates) > 0


def test_recent_tracestate_cache_keeps_values_of_up_to_512_characters_only() -> None:
    _tracecontext._recent_tracestates.clear()
    at_limit = "limit=" + "v" * 250 + ",other=" + "w" * 249
    over_limit = at_limit + "x"
    assert len(at_limit) == 512
    assert _tracecontext.parse_tracestate([at_limit]) == at_limit
    assert _tracecontext.parse_tracestate([over_limit]) == over_limit
    assert at_limit in _tracecontext._recent_tracestates
    assert over_limit not in _tracecontext._recent_tracestates


def test_tracestate_key_cache_never_holds_more_than_1024_keys() -> None:
    _tracecontext._valid_keys.clear()
    for index in range(1100):
        assert _tracecontext.parse_tracestate([f"key{index}=v"]) == f"key{index}=v"
        assert len(_tracecontext._valid_keys) <= 1024
    assert len(_tracecontext._valid_keys) == 1024


def _key(index: int, length: int) -> str:
    return f"k{index:0{length - 1}d}"


def test_baggage_key_memory_fills_its_64_kib_budget_exactly_and_no_further(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_baggage, "_valid_keys", set())
    monkeypatch.setattr(_baggage, "_remembered_key_bytes", 0)
    # A key costs its length plus 80 bytes: 511 keys of 48 characters spend all
    # but 128 bytes of the 64 KiB, which a 49-character key overruns by one and a
    # 48-character key fills exactly.
    keys = [_key(index, 48) for index in range(511)]
    one_too_many, last = _key(511, 49), _key(512, 48)
    for key in [*keys, one_too_many, last, _key(513, 48)]:
        assert _baggage.parse_baggage([f"{key}=v"]) == {key: "v"}
        assert _baggage._remembered_key_bytes <= 64 * 1024
    assert _baggage._valid_keys == {*keys, last}
    assert _baggage._remembered_key_bytes == 64 * 1024
    # Once the budget is spent every key is still read, and bad ones refused.
    assert _baggage.parse_baggage(["bad key=v", "fresh=v"]) == {"fresh": "v"}


def test_baggage_key_memory_of_a_new_process_starts_with_its_whole_budget() -> None:
    fill = (
        "from tracectrl import _baggage\n"
        "keys = [f'k{index:047d}' for index in range(513)]\n"
        "for key in keys:\n"
        "    assert _baggage.parse_baggage([key + '=v']) == {key: 'v'}\n"
        "print(len(_baggage._valid_keys), _baggage._remembered_key_bytes)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", fill], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.split() == ["512", str(64 * 1024)]


def test_baggage_key_memory_keeps_keys_of_up_to_128_characters_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_baggage, "_valid_keys", set())
    monkeypatch.setattr(_baggage, "_remembered_key_bytes", 0)
    at_limit, over_limit = "a" * 128, "b" * 129
    assert _baggage.parse_baggage([f"{at_limit}=1,{over_limit}=2"]) == {
        at_limit: "1",
        over_limit: "2",
    }
    assert _baggage._valid_keys == {at_limit}
    assert _baggage._remembered_key_bytes == 128 + 80


def test_baggage_members_pass_on_unchanged_when_no_session_is_in_force() -> None:
    incoming = "first=1,second=two%20words;prop=x,third"
    sent = propagation_headers({"baggage": incoming})
    assert current_session_id() is None
    assert SESSION_HEADER not in sent
    assert sent["baggage"] == "first=1,second=two%20words;prop=x"


def test_traceparent_twice_in_different_case_among_three_fields_is_refused() -> None:
    carrier = {"traceparent": TRACEPARENT, "Traceparent": OTHER_TRACEPARENT, "tracestate": "a=1"}
    assert extract_trace_headers(carrier) is None
    with continue_session(carrier):
        trace = current_trace()
        assert trace is not None
        assert trace.trace_id not in (TRACE_ID, OTHER_TRACEPARENT.split("-")[1])


@pytest.mark.parametrize(
    "carrier",
    [
        {1: "one", b"X": "bytes", "traceparent": TRACEPARENT},
        [(1, "one"), (None, "none"), ("traceparent", TRACEPARENT)],
    ],
    ids=["dict", "pairs"],
)
def test_header_name_of_another_type_does_not_stop_the_scan(carrier: object) -> None:
    trace = extract_trace_headers(carrier)
    assert trace is not None
    assert trace.trace_id == TRACE_ID


class _KeyThatFailsToCompare:
    """A header name that collides with "traceparent" in a dict and raises when compared."""

    def __hash__(self) -> int:
        return hash("traceparent")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("cannot compare")


@pytest.mark.parametrize("size", [1, 2, 3])
def test_header_key_that_fails_to_compare_gives_no_trace_and_raises_nothing(size: int) -> None:
    carrier: dict[object, str] = {_KeyThatFailsToCompare(): "x"}
    if size > 1:
        carrier["tracestate"] = "a=1"
    if size > 2:
        carrier["baggage"] = "b=2"
    assert extract_trace_headers(carrier) is None
    with continue_session(carrier) as session_id:
        assert current_session_id() == session_id
        assert current_trace() is not None


def test_session_id_of_256_characters_is_valid_and_257_is_not() -> None:
    set_session_id("s" * 256)
    assert current_session_id() == "s" * 256
    set_session_id("s" * 255 + " ")  # the ASCII space is printable: the longest id may end in one
    assert current_session_id() == "s" * 255 + " "
    # Not printable (a no-break space, a zero-width space): at 256 characters the
    # character is the problem, at 257 the length is, and each error says which.
    for unusual in ("\u00a0", "\u200b"):
        with pytest.raises(ValueError, match=r"printable characters.*at index 255"):
            set_session_id("s" * 255 + unusual)
        with pytest.raises(ValueError, match="at most 256 characters, got 257"):
            set_session_id("s" * 256 + unusual)
    assert current_session_id() == "s" * 255 + " "
    with pytest.raises(ValueError, match="at most 256 characters, got 257"):
        set_session_id("s" * 257)
    with pytest.raises(ValueError, match="at most 256 characters, got 257"):
        session_scope("s" * 257)


def test_session_id_of_256_characters_crosses_the_wire_and_257_does_not() -> None:
    with session_scope("w" * 256):
        sent = propagation_headers()
    assert sent[SESSION_HEADER] == "w" * 256
    with continue_session(sent) as session_id:
        assert session_id == "w" * 256
    for header in ({SESSION_HEADER: "w" * 257}, {"baggage": "session.id=" + "w" * 257}):
        with continue_session(header) as session_id:
            assert session_id != "w" * 257
            assert len(session_id) == 36  # a new UUID instead


def test_encoded_session_value_is_read_up_to_its_length_limit_exactly() -> None:
    # 256 characters of four UTF-8 bytes each, every byte written %XX: 3072 characters.
    longest = "\U0001f600" * 256
    with session_scope(longest):
        sent = propagation_headers()
    assert len(sent[SESSION_HEADER]) == 3072
    with continue_session(sent) as session_id:
        assert session_id == longest
    with continue_session({SESSION_HEADER: sent[SESSION_HEADER] + "%"}) as session_id:
        assert session_id != longest


def _tracestate_of(length: int, large: int = 0) -> str:
    """A valid tracestate of exactly ``length`` characters, its first entry ``large`` long."""
    members = ["big=" + "b" * (large - 4)] if large else []
    index = 0
    # Entries of 31 characters, then one last entry of at least 4 ("z=vv") to make up the length.
    while len(",".join(members)) + 1 + 31 + 1 + 4 <= length:
        members.append(f"k{index:02d}=" + "v" * 27)
        index += 1
    rest = length - len(",".join(members)) - (1 if members else 0)
    members.append("z=" + "v" * (rest - 2))
    value = ",".join(members)
    assert len(value) == length
    assert len(members) <= 32
    return value


def _sent_tracestate(tracestate: str) -> str:
    extract_trace_headers({"traceparent": TRACEPARENT, "tracestate": tracestate})
    return propagation_headers().get("tracestate", "")


def test_tracestate_of_512_characters_is_sent_whole_and_513_is_cut() -> None:
    at_limit = _tracestate_of(512)
    assert _sent_tracestate(at_limit) == at_limit
    over = _tracestate_of(513)
    sent = _sent_tracestate(over)
    assert len(sent) <= 512
    assert over.startswith(sent)
    assert sent == over.rpartition(",")[0]  # only the last entry had to go


def test_tracestate_cut_removes_an_entry_of_129_characters_first_but_not_one_of_128() -> None:
    large = _tracestate_of(600, large=129)
    sent = _sent_tracestate(large)
    assert not sent.startswith("big=")
    assert sent == large.partition(",")[2]  # removing it was enough
    kept = _tracestate_of(600, large=128)
    sent = _sent_tracestate(kept)
    assert sent.startswith("big=")
    assert len(sent) <= 512


def _baggage_of(length: int) -> str:
    """Valid baggage members of 100 characters, then one member to make exactly ``length``."""
    members = [f"m{index:03d}=" + "v" * 95 for index in range((length - 200) // 101)]
    used = sum(map(len, members)) + len(members)
    members.append("last=" + "w" * (length - used - 5))
    value = ",".join(members)
    assert len(value) == length
    return value


def test_baggage_of_8192_characters_is_read_whole_and_8193_loses_its_last_member() -> None:
    at_limit = _baggage_of(8192)
    assert propagation_headers({"baggage": at_limit})["baggage"] == at_limit
    over = _baggage_of(8193)
    assert propagation_headers({"baggage": over})["baggage"] == over.rpartition(",")[0]
    # A member that ends exactly at the limit is kept; the one after it is dropped.
    assert propagation_headers({"baggage": at_limit + ",after=1"})["baggage"] == at_limit
    cut = over.rpartition(",")[0]
    assert propagation_headers({"baggage": over + ",after=1"})["baggage"] == cut


def test_baggage_written_with_the_session_is_at_most_8192_characters() -> None:
    with session_scope("s"):
        first = "session.id=s,"
        fits = _baggage_of(8192 - len(first))
        assert propagation_headers({"baggage": fits})["baggage"] == first + fits
        too_long = _baggage_of(8193 - len(first))
        sent = propagation_headers({"baggage": too_long})["baggage"]
        assert sent == first + too_long.rpartition(",")[0]


def _members(*sizes: int) -> list[str]:
    """Valid tracestate members of exactly the given sizes, with distinct keys."""
    members = []
    for index, size in enumerate(sizes):
        key = f"m{index:02d}" if size >= 5 else chr(ord("t") + index % 6)
        members.append(key + "=" + "v" * (size - len(key) - 1))
    assert [len(member) for member in members] == list(sizes)
    return members


# (members of the incoming tracestate, the members sent on), at the exact edges.
_CUTS = {
    "a large entry removed, then exactly 512": (_members(129, *[31] * 15, 32), slice(1, None)),
    "the last large entry removed first, then exactly 512": (
        _members(129, *[31] * 11, 30, 129),
        slice(None, -1),
    ),
    "a large entry next to last removed, then exactly 512": (
        _members(*[31] * 14, 129, 64),
        [*range(14), 15],
    ),
    "a large entry removed leaves 513, so one from the end too": (
        _members(129, *[31] * 15, 33),
        slice(1, -1),
    ),
    "one from the end, then exactly 512": (_members(*[31] * 15, 32, 4), slice(None, -1)),
    "one from the end leaves 513, so two": (_members(*[31] * 15, 28, 4, 4), slice(None, -2)),
    "one small from the end leaves 511": (_members(*[31] * 15, 31, 3), slice(None, -1)),
}


@pytest.mark.parametrize(("members", "kept"), _CUTS.values(), ids=_CUTS.keys())
def test_tracestate_cut_counts_every_character_and_stops_at_512(
    members: list[str], kept: slice | list[int]
) -> None:
    incoming = ",".join(members)
    assert len(incoming) > 512
    sent = _sent_tracestate(incoming)
    expected = members[kept] if isinstance(kept, slice) else [members[i] for i in kept]
    assert sent == ",".join(expected)
    assert len(sent) <= 512


def test_debug_log_of_a_refused_value_shows_at_most_its_first_64_characters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A hostile client must not be able to write long lines into the server's log.
    exactly_64 = "x" * 64
    with caplog.at_level(logging.DEBUG, logger="tracectrl"):
        extract_trace_headers({"traceparent": exactly_64})
        extract_trace_headers({"traceparent": "w" * 65})
        extract_trace_headers({"traceparent": "y" * 64 + "z" * 1000})
    messages = [r.getMessage() for r in caplog.records if "malformed traceparent" in r.getMessage()]
    assert messages == [
        f"ignored malformed traceparent {exactly_64!r}",
        f"ignored malformed traceparent {'w' * 64!r}...",
        f"ignored malformed traceparent {'y' * 64!r}...",
    ]


class _HeadersThatFailToList:
    def items(self) -> list[tuple[str, str]]:
        raise RuntimeError("connection reset while reading headers")


def test_unreadable_headers_are_logged_at_debug_with_the_error_that_stopped_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="tracectrl"):
        assert extract_trace_headers(_HeadersThatFailToList()) is None
    [record] = [r for r in caplog.records if "unreadable headers" in r.getMessage()]
    assert record.levelno == logging.DEBUG
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
