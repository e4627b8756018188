"""tracestate: the current W3C Level 2 grammar and its examples, combining fields, the 512 cut."""

from __future__ import annotations

import pytest

from tracectrl import extract_trace_headers, inject_trace_headers
from tracectrl._tracecontext import (
    MAX_TRACESTATE_MEMBERS,
    TRACESTATE_EMIT_LIMIT,
    outgoing_tracestate,
    parse_tracestate,
    tracestate_items,
)

KEY_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789_-*/@"
VALUE_CHARACTERS = (
    "".join(map(chr, range(0x20, 0x2B + 1)))
    + "".join(map(chr, range(0x2D, 0x3C + 1)))
    + "".join(map(chr, range(0x3E, 0x7E + 1)))
)


def members(count: int) -> list[str]:
    """The test suite's bar01=01,... members."""
    return [f"bar{index:02d}={index:02d}" for index in range(1, count + 1)]


# (case, fields, the combined value in normal form)
VALID = [
    ("one member", ["foo=1"], "foo=1"),
    ("two members", ["foo=1,bar=2"], "foo=1,bar=2"),
    (
        "spec example",
        ["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"],
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
    ),
    ("empty field", [""], ""),
    ("whitespace-only field", [" \t "], ""),
    ("empty members only", [" , ,\t,"], ""),
    ("empty field then a member", ["", "foo=1"], "foo=1"),
    ("a member then an empty field", ["foo=1", ""], "foo=1"),
    (
        "several fields are combined in order",
        ["foo=1,bar=2", "rojo=1,congo=2", "baz=3"],
        "foo=1,bar=2,rojo=1,congo=2,baz=3",
    ),
    ("spaces and tabs around members", ["foo=1 \t , \t bar=2, \t baz=3"], "foo=1,bar=2,baz=3"),
    ("tabs and spaces around commas", ["foo=1\t \t,\t \tbar=2,\t \tbaz=3"], "foo=1,bar=2,baz=3"),
    ("leading space", [" foo=1"], "foo=1"),
    ("leading tab", ["\tfoo=1"], "foo=1"),
    ("trailing space", ["foo=1 "], "foo=1"),
    ("trailing tab", ["foo=1\t"], "foo=1"),
    ("empty members between", ["foo=1,,bar=2, ,"], "foo=1,bar=2"),
    ("leading spaces are part of the value", ["foo=  1"], "foo=  1"),
    ("spaces inside the value", ["foo=a b"], "foo=a b"),
    (
        "all key and value characters",
        [f"{KEY_CHARACTERS}={VALUE_CHARACTERS}"],
        f"{KEY_CHARACTERS}={VALUE_CHARACTERS}",
    ),
    ("spec example, one vendor", ["rojo=00f067aa0ba902b7"], "rojo=00f067aa0ba902b7"),
    (
        "spec example, rewritten on re-entry",
        ["congo=congosSecondPosition,rojo=rojosFirstPosition"],
        "congo=congosSecondPosition,rojo=rojosFirstPosition",
    ),
    (
        "spec example of vendor names",
        ["vendorname1=opaqueValue1,vendorname2=opaqueValue2"],
        "vendorname1=opaqueValue1,vendorname2=opaqueValue2",
    ),
    (
        "key with an at sign and all characters",
        [f"{KEY_CHARACTERS}@a-z0-9_-*/={VALUE_CHARACTERS}"],
        f"{KEY_CHARACTERS}@a-z0-9_-*/={VALUE_CHARACTERS}",
    ),
    ("key may start with a digit", ["1foo=1"], "1foo=1"),
    ("at sign then a digit-led part", ["1tenant@system=1"], "1tenant@system=1"),
    ("at sign at the end of the key", ["foo@=1,bar=2"], "foo@=1,bar=2"),
    ("two at signs in a row", ["foo@@bar=1,bar=2"], "foo@@bar=1,bar=2"),
    ("two at signs apart", ["foo@bar@baz=1,bar=2"], "foo@bar@baz=1,bar=2"),
    ("digit after the at sign", ["foo@1bar=1"], "foo@1bar=1"),
    ("key of 256 characters", ["foo=1", "z" * 256 + "=1"], "foo=1," + "z" * 256 + "=1"),
    (
        "key of 256 characters with an at sign inside",
        ["foo=1", "t" * 128 + "@" + "v" * 127 + "=1"],
        "foo=1," + "t" * 128 + "@" + "v" * 127 + "=1",
    ),
    (
        "241 characters, an at sign and 14",
        ["foo=1", "t" * 241 + "@" + "v" * 14 + "=1"],
        "foo=1," + "t" * 241 + "@" + "v" * 14 + "=1",
    ),
    ("242 characters before the at sign", ["t" * 242 + "@v=1"], "t" * 242 + "@v=1"),
    ("15 characters after the at sign", ["t@" + "v" * 15 + "=1"], "t@" + "v" * 15 + "=1"),
    ("duplicated key keeps the first entry", ["foo=1,foo=1"], "foo=1"),
    ("duplicated key with another value keeps the first", ["foo=1,foo=2"], "foo=1"),
    ("same key in two fields keeps the first", ["foo=1", "foo=2"], "foo=1"),
    (
        "duplicated key keeps the other members in order",
        ["congo=congosFirstPosition,rojo=rojosFirstPosition,congo=congosSecondPosition"],
        "congo=congosFirstPosition,rojo=rojosFirstPosition",
    ),
    ("duplicated at-sign key", ["a@b=1,c=2", "a@b=3"], "a@b=1,c=2"),
    ("value of 256 characters", ["foo=" + "v" * 256], "foo=" + "v" * 256),
    (
        "32 members over four fields",
        [",".join(members(32)[i : i + 10]) for i in range(0, 32, 10)],
        ",".join(members(32)),
    ),
    ("32 members and empty ones", [",".join(members(32)) + ",,, ,"], ",".join(members(32))),
]

# (case, fields): the whole tracestate is invalid.
INVALID = [
    ("space inside the key", ["foo =1"]),
    ("uppercase key", ["FOO=1"]),
    ("dot in the key", ["foo.bar=1"]),
    ("key starting with an at sign", ["@foo=1,bar=2"]),
    ("key starting with an underscore", ["_foo=1,bar=2"]),
    ("key of 257 characters", ["foo=1", "z" * 257 + "=1"]),
    ("key of 257 characters with an at sign inside", ["foo=1", "t" * 128 + "@" + "v" * 128 + "=1"]),
    ("equals sign in the value", ["foo=bar=baz"]),
    ("empty value", ["foo=,bar=3"]),
    ("blank value", ["foo=   ,bar=3"]),
    ("no equals sign", ["foo"]),
    ("no key", ["=1"]),
    ("value of 257 characters", ["foo=" + "v" * 257]),
    ("tab inside the value", ["foo=a\tb"]),
    ("non-ASCII value", ["foo=caf\u00e9"]),
    ("control character in the value", ["foo=a\x01b"]),
    ("DEL in the value", ["foo=a\x7fb"]),
    ("CR LF in the value", ["foo=1\r\nx-evil: 1"]),
    ("33 members over four fields", [",".join(members(33)[i : i + 10]) for i in range(0, 33, 10)]),
    ("33 members in one field", [",".join(members(33))]),
    ("a huge value", ["foo=" + "v" * 100_000]),
]


@pytest.mark.parametrize(("case", "fields", "expected"), VALID, ids=[case[0] for case in VALID])
def test_parse_tracestate_accepts_spec_valid_values(
    case: str, fields: list[str], expected: str
) -> None:
    assert parse_tracestate(fields) == expected
    # A second time answers the same (the value may now come from memory).
    assert parse_tracestate(fields) == expected


@pytest.mark.parametrize(("case", "fields"), INVALID, ids=[case[0] for case in INVALID])
def test_parse_tracestate_ignores_spec_invalid_values(case: str, fields: list[str]) -> None:
    assert parse_tracestate(fields) is None
    assert parse_tracestate(fields) is None


def test_extract_keeps_tracestate_with_at_sign_keys_and_repeated_keys() -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    fields = ["foo@=1,vendor@tenant=2", "foo@=3," + "k" * 200 + "@" + "s" * 55 + "=4"]
    trace = extract_trace_headers({"traceparent": traceparent, "tracestate": fields})
    assert trace is not None
    assert trace.tracestate == "foo@=1,vendor@tenant=2," + "k" * 200 + "@" + "s" * 55 + "=4"
    sent = inject_trace_headers()
    assert sent["tracestate"] == trace.tracestate


def test_tracestate_allows_32_members_but_not_33() -> None:
    assert MAX_TRACESTATE_MEMBERS == 32
    assert parse_tracestate([",".join(members(32))]) is not None
    assert parse_tracestate([",".join(members(33))]) is None


def test_tracestate_items_lists_keys_and_values_in_order() -> None:
    combined = parse_tracestate(["rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE", "foo=  1"])
    assert combined is not None
    assert tracestate_items(combined) == [
        ("rojo", "00f067aa0ba902b7"),
        ("congo", "t61rcWkgMzE"),
        ("foo", "  1"),
    ]
    assert tracestate_items("") == []


def test_outgoing_tracestate_keeps_values_up_to_512_characters() -> None:
    value = ",".join(f"k{index:02d}=" + "v" * 27 for index in range(16))  # 16 * 31 + 15 = 511
    assert len(value) == 511
    assert outgoing_tracestate(value) is value
    exactly = value + "v"
    assert outgoing_tracestate(exactly) == exactly


def test_outgoing_tracestate_removes_entries_over_128_characters_first() -> None:
    small = [f"s{index}=" + "v" * 60 for index in range(6)]  # 63 characters each
    large = "big=" + "v" * 200  # 204 characters
    value = ",".join([small[0], large, *small[1:]])
    assert len(value) > TRACESTATE_EMIT_LIMIT
    assert outgoing_tracestate(value) == ",".join(small)


def test_outgoing_tracestate_then_removes_entries_from_the_end() -> None:
    entries = [f"k{index:02d}=" + "v" * 60 for index in range(12)]  # 64 characters each
    value = ",".join(entries)
    cut = outgoing_tracestate(value)
    assert cut == ",".join(entries[:7])  # 7 * 64 + 6 = 454; 8 entries would be 519
    assert len(cut) <= TRACESTATE_EMIT_LIMIT


def test_outgoing_tracestate_removes_only_as_many_large_entries_as_needed() -> None:
    first_large = "a=" + "x" * 129
    last_large = "b=" + "y" * 129
    value = ",".join([first_large, "c=" + "z" * 100, last_large, "d=" + "w" * 100, "e=" + "e" * 60])
    assert len(value) == 532
    # Dropping the last large entry is enough: the first one stays.
    cut = outgoing_tracestate(value)
    assert cut == ",".join([first_large, "c=" + "z" * 100, "d=" + "w" * 100, "e=" + "e" * 60])
    assert len(cut) == 400


def test_outgoing_tracestate_of_one_oversized_member_is_empty() -> None:
    member = "k" * 256 + "=" + "v" * 256
    assert outgoing_tracestate(",".join([member, "a" * 256 + "=" + "b" * 256])) == ""


def test_many_distinct_values_are_each_parsed_correctly() -> None:
    # More distinct values than the memory of recent values holds.
    for index in range(1000):
        assert parse_tracestate([f"foo={index},bar=2"]) == f"foo={index},bar=2"
        assert parse_tracestate([f"foo={index},foo=2"]) == f"foo={index}"
