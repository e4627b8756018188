"""traceparent: the W3C Trace Context test-suite cases, parsing, formatting and new ids."""

from __future__ import annotations

import pytest

from tracectrl._trace import TraceContext, new_span_id, new_trace, new_trace_id
from tracectrl._tracecontext import (
    FLAG_RANDOM,
    FLAG_SAMPLED,
    format_traceparent,
    outgoing_traceparent,
    parse_traceparent,
    trace_from_fields,
)

TRACE_ID = "12345678901234567890123456789012"
PARENT_ID = "1234567890123456"
SPEC_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPEC_PARENT_ID = "00f067aa0ba902b7"

# (case, header, expected (trace_id, parent_id, flags))
VALID = [
    (
        "spec example, sampled",
        f"00-{SPEC_TRACE_ID}-{SPEC_PARENT_ID}-01",
        (SPEC_TRACE_ID, SPEC_PARENT_ID, 1),
    ),
    (
        "spec example, not sampled",
        f"00-{SPEC_TRACE_ID}-{SPEC_PARENT_ID}-00",
        (SPEC_TRACE_ID, SPEC_PARENT_ID, 0),
    ),
    ("random flag", f"00-{TRACE_ID}-{PARENT_ID}-02", (TRACE_ID, PARENT_ID, 2)),
    ("sampled and random", f"00-{TRACE_ID}-{PARENT_ID}-03", (TRACE_ID, PARENT_ID, 3)),
    ("reserved flag bits are dropped", f"00-{TRACE_ID}-{PARENT_ID}-ff", (TRACE_ID, PARENT_ID, 3)),
    ("reserved bit alone", f"00-{TRACE_ID}-{PARENT_ID}-08", (TRACE_ID, PARENT_ID, 0)),
    ("future version 0xcc", f"cc-{TRACE_ID}-{PARENT_ID}-01", (TRACE_ID, PARENT_ID, 1)),
    (
        "future version with more fields",
        f"cc-{TRACE_ID}-{PARENT_ID}-01-what-the-future-will-be-like",
        (TRACE_ID, PARENT_ID, 1),
    ),
    ("future version 0xfe", f"fe-{TRACE_ID}-{PARENT_ID}-00-x", (TRACE_ID, PARENT_ID, 0)),
    ("leading space", f" 00-{TRACE_ID}-{PARENT_ID}-01", (TRACE_ID, PARENT_ID, 1)),
    ("leading tab", f"\t00-{TRACE_ID}-{PARENT_ID}-01", (TRACE_ID, PARENT_ID, 1)),
    ("trailing space", f"00-{TRACE_ID}-{PARENT_ID}-01 ", (TRACE_ID, PARENT_ID, 1)),
    ("trailing tab", f"00-{TRACE_ID}-{PARENT_ID}-01\t", (TRACE_ID, PARENT_ID, 1)),
    ("spaces and tabs around", f"\t 00-{TRACE_ID}-{PARENT_ID}-01 \t", (TRACE_ID, PARENT_ID, 1)),
    ("all ones ids", f"00-{'f' * 32}-{'f' * 16}-01", ("f" * 32, "f" * 16, 1)),
]

# (case, header): every one must be ignored.
INVALID = [
    ("empty", ""),
    ("version 00 with a trailing character", f"00-{TRACE_ID}-{PARENT_ID}-01."),
    ("version 00 with more fields", f"00-{TRACE_ID}-{PARENT_ID}-01-what-the-future-will-be-like"),
    (
        "future version, no dash after flags",
        f"cc-{TRACE_ID}-{PARENT_ID}-01.what-the-future-will-be-like",
    ),
    ("version ff", f"ff-{TRACE_ID}-{PARENT_ID}-01"),
    ("version ff with more fields", f"ff-{TRACE_ID}-{PARENT_ID}-01-more"),
    ("version with illegal first character", f".0-{TRACE_ID}-{PARENT_ID}-01"),
    ("version with illegal second character", f"0.-{TRACE_ID}-{PARENT_ID}-01"),
    ("version of three digits", f"000-{TRACE_ID}-{PARENT_ID}-01"),
    ("version of four digits", f"0000-{TRACE_ID}-{PARENT_ID}-01"),
    ("version of one digit", f"0-{TRACE_ID}-{PARENT_ID}-01"),
    ("uppercase version", f"CC-{TRACE_ID}-{PARENT_ID}-01"),
    ("all-zero trace-id", f"00-{'0' * 32}-{PARENT_ID}-01"),
    ("trace-id with illegal first character", f"00-.{TRACE_ID[1:]}-{PARENT_ID}-01"),
    ("trace-id with illegal last character", f"00-{TRACE_ID[:-1]}.-{PARENT_ID}-01"),
    ("trace-id of 33 digits", f"00-{TRACE_ID}3-{PARENT_ID}-01"),
    ("trace-id of 31 digits", f"00-{TRACE_ID[:-1]}-{PARENT_ID}-01"),
    ("uppercase trace-id", f"00-{SPEC_TRACE_ID.upper()}-{SPEC_PARENT_ID}-01"),
    (
        "one uppercase hex digit in the trace-id",
        f"00-4BF92f3577b34da6a3ce929d0e0e4736-{PARENT_ID}-01",
    ),
    ("all-zero parent-id", f"00-{TRACE_ID}-{'0' * 16}-01"),
    ("parent-id with illegal first character", f"00-{TRACE_ID}-.{PARENT_ID[1:]}-01"),
    ("parent-id with illegal last character", f"00-{TRACE_ID}-{PARENT_ID[:-1]}.-01"),
    ("parent-id of 17 digits", f"00-{TRACE_ID}-{PARENT_ID}7-01"),
    ("parent-id of 15 digits", f"00-{TRACE_ID}-{PARENT_ID[:-1]}-01"),
    ("uppercase parent-id", f"00-{SPEC_TRACE_ID}-00F067AA0BA902B7-01"),
    ("flags with illegal first character", f"00-{TRACE_ID}-{PARENT_ID}-.0"),
    ("flags with illegal second character", f"00-{TRACE_ID}-{PARENT_ID}-0."),
    ("flags of three digits", f"00-{TRACE_ID}-{PARENT_ID}-001"),
    ("flags of one digit", f"00-{TRACE_ID}-{PARENT_ID}-1"),
    ("uppercase flags", f"00-{TRACE_ID}-{PARENT_ID}-0A"),
    ("future version shorter than 55", f"cc-{TRACE_ID}-{PARENT_ID}-1"),
    ("dash inside the trace-id", f"00-1234567890123456-890123456789012-{PARENT_ID}-01"),
    ("underscores for dashes", f"00_{TRACE_ID}_{PARENT_ID}_01"),
    ("non-ASCII digit", f"00-{TRACE_ID[:-1]}\u0661-{PARENT_ID}-01"),
    ("NUL inside", f"00-{TRACE_ID}-{PARENT_ID}\x00-01"),
    ("CR LF appended", f"00-{TRACE_ID}-{PARENT_ID}-01\r\nx"),
    ("two values joined by a comma", f"00-{TRACE_ID}-{PARENT_ID}-01,00-{TRACE_ID}-{PARENT_ID}-01"),
    ("whitespace only", " \t "),
]


@pytest.mark.parametrize(("case", "header", "expected"), VALID, ids=[case[0] for case in VALID])
def test_parse_traceparent_accepts_spec_valid_values(
    case: str, header: str, expected: tuple[str, str, int]
) -> None:
    assert parse_traceparent(header) == expected


@pytest.mark.parametrize(("case", "header"), INVALID, ids=[case[0] for case in INVALID])
def test_parse_traceparent_ignores_spec_invalid_values(case: str, header: str) -> None:
    assert parse_traceparent(header) is None


def test_trace_from_fields_ignores_duplicated_traceparent_fields() -> None:
    header = f"00-{TRACE_ID}-{PARENT_ID}-01"
    assert trace_from_fields([header, header], ["foo=1"]) is None


def test_trace_from_fields_does_not_read_tracestate_when_traceparent_is_invalid() -> None:
    assert trace_from_fields([f"ff-{TRACE_ID}-{PARENT_ID}-01"], ["foo=1"]) is None


def test_trace_from_fields_returns_a_remote_trace_with_its_tracestate() -> None:
    trace = trace_from_fields([f"00-{TRACE_ID}-{PARENT_ID}-01"], ["foo=1", "bar=2"])
    assert trace == TraceContext(TRACE_ID, PARENT_ID, 1, "foo=1,bar=2", True)
    assert type(trace) is TraceContext


def test_trace_from_fields_keeps_traceparent_when_tracestate_is_invalid() -> None:
    trace = trace_from_fields([f"00-{TRACE_ID}-{PARENT_ID}-01"], ["foo=1,foo=2"])
    assert trace == TraceContext(TRACE_ID, PARENT_ID, 1, "", True)


def test_trace_from_fields_without_traceparent_is_none() -> None:
    assert trace_from_fields(None, ["foo=1"]) is None
    assert trace_from_fields([], None) is None


def test_format_traceparent_writes_version_00_and_drops_reserved_flags() -> None:
    assert format_traceparent(TRACE_ID, PARENT_ID, 0x01) == f"00-{TRACE_ID}-{PARENT_ID}-01"
    assert format_traceparent(TRACE_ID, PARENT_ID, 0xFF) == f"00-{TRACE_ID}-{PARENT_ID}-03"


def test_future_version_is_sent_on_as_version_00() -> None:
    parsed = parse_traceparent(f"cc-{TRACE_ID}-{PARENT_ID}-01-extra")
    assert parsed is not None
    assert format_traceparent(*parsed) == f"00-{TRACE_ID}-{PARENT_ID}-01"


def test_outgoing_traceparent_of_a_remote_trace_has_a_new_parent_id_per_call() -> None:
    trace = TraceContext(TRACE_ID, PARENT_ID, 0x03, "", True)
    sent = {outgoing_traceparent(trace) for _ in range(50)}
    assert len(sent) == 50
    for header in sent:
        parsed = parse_traceparent(header)
        assert parsed is not None
        assert parsed[0] == TRACE_ID
        assert parsed[1] != PARENT_ID
        assert parsed[2] == 0x03


def test_outgoing_traceparent_of_a_local_span_uses_its_span_id() -> None:
    trace = TraceContext(TRACE_ID, PARENT_ID, 0x01, "", False)
    assert outgoing_traceparent(trace) == f"00-{TRACE_ID}-{PARENT_ID}-01"


def test_new_ids_are_lowercase_hex_of_the_right_length() -> None:
    for _ in range(100):
        trace_id = new_trace_id()
        span_id = new_span_id()
        assert len(trace_id) == 32
        assert len(span_id) == 16
        assert set(trace_id + span_id) <= set("0123456789abcdef")


def test_new_ids_are_never_all_zeros(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([0, 5, 0, 7])
    monkeypatch.setattr("tracectrl._trace.getrandbits", lambda bits: next(draws))
    assert new_trace_id() == f"{5:032x}"
    assert new_span_id() == f"{7:016x}"


def test_new_outgoing_parent_id_is_never_all_zeros(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([0, 0, 9])
    monkeypatch.setattr("tracectrl._tracecontext.getrandbits", lambda bits: next(draws))
    trace = TraceContext(TRACE_ID, PARENT_ID, 1, "", True)
    assert outgoing_traceparent(trace) == f"00-{TRACE_ID}-{9:016x}-01"


def test_new_trace_is_sampled_random_and_remote() -> None:
    trace = new_trace()
    assert trace.trace_flags == FLAG_SAMPLED | FLAG_RANDOM == 0x03
    assert trace.tracestate == ""
    assert trace.is_remote
    assert parse_traceparent(format_traceparent(*trace[:3])) == trace[:3]


def test_new_traces_differ() -> None:
    assert len({new_trace().trace_id for _ in range(100)}) == 100
