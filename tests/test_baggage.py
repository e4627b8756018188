"""baggage: the W3C Baggage examples, percent-encoding, properties, limits, merging."""

from __future__ import annotations

import sys

import pytest

from tracectrl import _baggage
from tracectrl._baggage import (
    MAX_BAGGAGE_LENGTH,
    MAX_BAGGAGE_MEMBERS,
    BaggageMember,
    baggage_members,
    baggage_value,
    encode_baggage_value,
    merge_baggage,
    parse_baggage,
)

# (case, fields, expected decoded members)
VALID = [
    (
        "spec example with properties and whitespace",
        ["key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue"],
        {"key1": "value1", "key2": "value2", "key3": "value3"},
    ),
    (
        "spec example, single header",
        ["userId=alice,serverNode=DF%2028,isProduction=false"],
        {"userId": "alice", "serverNode": "DF 28", "isProduction": "false"},
    ),
    (
        "spec example, split over two headers",
        ["userId=alice", "serverNode=DF%2028,isProduction=false"],
        {"userId": "alice", "serverNode": "DF 28", "isProduction": "false"},
    ),
    (
        "spec example, spaces around names and values",
        ["userId =   alice", "serverNode = DF%2028, isProduction = false"],
        {"userId": "alice", "serverNode": "DF 28", "isProduction": "false"},
    ),
    ("equals signs inside the value", ["k=a=b=="], {"k": "a=b=="}),
    ("empty value", ["k="], {"k": ""}),
    ("percent-encoded UTF-8", ["k=%E2%82%AC%20caf%C3%A9"], {"k": "\u20ac caf\u00e9"}),
    ("plus stays a plus", ["k=a+b"], {"k": "a+b"}),
    ("invalid UTF-8 becomes U+FFFD", ["k=%FF"], {"k": "\ufffd"}),
    ("token characters in the key", ["!#$%&'*+-.^_`|~09AZaz=1"], {"!#$%&'*+-.^_`|~09AZaz": "1"}),
    ("the last of a repeated key wins", ["k=1,k=2"], {"k": "2"}),
    ("empty members are skipped", [",k=1,,"], {"k": "1"}),
    ("empty field", [""], {}),
]

# (case, fields, expected): malformed members are dropped, the rest kept.
DROPPED = [
    ("no equals sign", ["novalue,k=1"], {"k": "1"}),
    ("empty key", ["=v,k=1"], {"k": "1"}),
    ("space inside the key", ["a b=1,k=1"], {"k": "1"}),
    ("separator in the key", ["a/b=1,k=1"], {"k": "1"}),
    ("space inside the value", ["a=b c,k=1"], {"k": "1"}),
    ("double quote in the value", ['a="b",k=1'], {"k": "1"}),
    ("backslash in the value", ["a=b\\c,k=1"], {"k": "1"}),
    ("raw non-ASCII value", ["a=caf\u00e9,k=1"], {"k": "1"}),
    ("control character in the value", ["a=b\x00c,k=1"], {"k": "1"}),
    ("DEL in the value", ["a=b\x7f,k=1"], {"k": "1"}),
    ("CR LF in the value", ["a=b\r\nx: y,k=1"], {"k": "1"}),
    ("tab inside the value", ["a=b\tc,k=1"], {"k": "1"}),
    ("property with a bad key", ["a=1;b c=2,k=1"], {"k": "1"}),
    ("property with a bad value", ["a=1;p=x y,k=1"], {"k": "1"}),
    ("empty property", ["a=1;,k=1"], {"k": "1"}),
]


@pytest.mark.parametrize(("case", "fields", "expected"), VALID, ids=[case[0] for case in VALID])
def test_parse_baggage_reads_spec_examples(
    case: str, fields: list[str], expected: dict[str, str]
) -> None:
    assert parse_baggage(fields) == expected


@pytest.mark.parametrize(("case", "fields", "expected"), DROPPED, ids=[case[0] for case in DROPPED])
def test_parse_baggage_drops_malformed_members_and_keeps_the_rest(
    case: str, fields: list[str], expected: dict[str, str]
) -> None:
    assert parse_baggage(fields) == expected


def test_baggage_members_keep_encoded_values_and_normal_properties() -> None:
    assert baggage_members(["a = x%20y ; p1 ; p2 = v2 , b=2"]) == [
        BaggageMember("a", "x%20y", ";p1;p2=v2"),
        BaggageMember("b", "2", ""),
    ]
    assert BaggageMember("a", "x%20y", ";p1;p2=v2").header_text() == "a=x%20y;p1;p2=v2"


def test_parse_baggage_reads_at_most_180_members() -> None:
    assert MAX_BAGGAGE_MEMBERS == 180
    fields = [",".join(f"k{index}=1" for index in range(200))]
    parsed = parse_baggage(fields)
    assert list(parsed) == [f"k{index}" for index in range(180)]


def test_parse_baggage_skips_empty_members_before_counting() -> None:
    fields = [",".join(["", *(f"k{index}=1" for index in range(180)), ""])]
    assert len(parse_baggage(fields)) == 180


def test_parse_baggage_drops_members_past_8192_characters() -> None:
    assert MAX_BAGGAGE_LENGTH == 8192
    member = "k{:04d}=" + "v" * 94  # 100 characters
    fields = [",".join(member.format(index) for index in range(100))]  # 10099 characters
    parsed = parse_baggage(fields)
    # 81 members end within 8192 characters: 81 * 101 - 1 = 8180.
    assert len(parsed) == 81
    assert "k0080" in parsed
    assert "k0081" not in parsed


def test_parse_baggage_of_one_member_over_the_limit_is_empty() -> None:
    assert parse_baggage(["k=" + "v" * 9000]) == {}


def test_baggage_value_returns_the_last_valid_encoded_value() -> None:
    fields = ["session.id=first,other=1", "session.id=a%20b;p, session.id=bad value"]
    assert baggage_value(fields, "session.id") == "a%20b"
    assert baggage_value(fields, "missing") is None
    assert baggage_value(["xsession.id=1"], "session.id") is None


def test_merge_baggage_puts_the_member_first_and_replaces_the_old_one() -> None:
    existing = ["a=1;p, session.id=old ,b = 2", "bad key=3,c=%20"]
    assert merge_baggage(existing, "session.id", "new") == "session.id=new,a=1;p,b=2,c=%20"


def test_merge_baggage_into_nothing() -> None:
    assert merge_baggage([], "session.id", "s") == "session.id=s"


def test_merge_baggage_drops_members_that_would_pass_the_limits() -> None:
    many = [",".join(f"k{index}=1" for index in range(179))]
    merged = merge_baggage([*many, "last=1"], "session.id", "s")
    parts = merged.split(",")
    assert len(parts) == MAX_BAGGAGE_MEMBERS
    assert parts[0] == "session.id=s"
    assert "last=1" not in parts
    long_members = [",".join(f"k{index:03d}=" + "v" * 95 for index in range(100))]
    merged = merge_baggage(long_members, "session.id", "s")
    assert len(merged) <= MAX_BAGGAGE_LENGTH
    assert merged.startswith("session.id=s,k000=")


@pytest.mark.parametrize(
    "value",
    [
        "plain-id_1.2~3",
        "a b",
        "50%",
        "a,b;c=d",
        "a+b",
        'quote"back\\slash',
        "caf\u00e9 \U0001f389",
        "%20",
    ],
)
def test_encoded_values_are_visible_ascii_and_decode_back(value: str) -> None:
    encoded = encode_baggage_value(value)
    assert encoded.isascii()
    assert encoded.isprintable()
    assert " " not in encoded
    assert "+" not in encoded
    assert parse_baggage([f"k={encoded}"]) == {"k": value}


def test_unreserved_characters_are_not_encoded() -> None:
    assert encode_baggage_value("1f23ac10-ae84_4e9d.a93f~x") == "1f23ac10-ae84_4e9d.a93f~x"


def test_hostile_keys_pin_a_bounded_number_of_bytes_in_the_key_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_baggage, "_valid_keys", set())
    monkeypatch.setattr(_baggage, "_remembered_key_bytes", 0, raising=False)
    # As many distinct keys as an attacker likes, each as long as a header allows,
    # then a flood of short ones.
    for number in range(1500):
        key = f"k{number:04d}" + "x" * (MAX_BAGGAGE_LENGTH - 10)
        assert parse_baggage([f"{key}=1"]) == {key: "1"}
    for number in range(0, 30_000, 150):
        members = ",".join(f"{number + offset:x}=1" for offset in range(150))
        assert len(parse_baggage([members])) == 150
    pinned = sys.getsizeof(_baggage._valid_keys) + sum(
        sys.getsizeof(key) for key in _baggage._valid_keys
    )
    assert pinned <= 256 * 1024, f"{pinned} bytes pinned by remembered keys"
    # Every key is still read correctly once the memory is full.
    assert parse_baggage(["fresh.key=v"]) == {"fresh.key": "v"}
    assert parse_baggage(["bad key=v"]) == {}
