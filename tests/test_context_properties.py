"""Properties: extraction never raises, emitted headers are clean, valid values round-trip."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracectrl._baggage import encode_baggage_value, parse_baggage
from tracectrl._trace import TraceContext, attach_trace, current_trace
from tracectrl._tracecontext import (
    format_traceparent,
    outgoing_tracestate,
    parse_traceparent,
    parse_tracestate,
)
from tracectrl.context import (
    SESSION_HEADER,
    continue_session,
    extract_trace_headers,
    propagation_headers,
)
from tracectrl.session import _session_id, current_session_id, session_id_problem

# Modest example counts: the suite must stay fast.
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

HEADER_NAMES = st.sampled_from(
    ["traceparent", "TraceParent", "tracestate", "TRACESTATE", "baggage", "Baggage",
     SESSION_HEADER, SESSION_HEADER.lower(), "x-other"]
)  # fmt: skip
TEXT = st.text(max_size=80) | st.sampled_from(
    [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        "session.id=a%20b;p,k=v",
        "foo=1,bar=2",
        "%ff%fe",
        "\r\n",
    ]
)
VALUE = TEXT | st.binary(max_size=40) | st.lists(TEXT, max_size=3) | st.integers() | st.none()
KEY = HEADER_NAMES | st.text(max_size=20) | st.binary(max_size=20) | st.integers()
HEADERS = st.dictionaries(KEY, VALUE, max_size=6) | st.lists(st.tuples(KEY, VALUE), max_size=6)

HEX = "0123456789abcdef"
TRACE_IDS = st.text(HEX, min_size=32, max_size=32).filter(lambda text: text != "0" * 32)
SPAN_IDS = st.text(HEX, min_size=16, max_size=16).filter(lambda text: text != "0" * 16)
KEY_CHARACTERS = string.ascii_lowercase + string.digits + "_-*/"
SIMPLE_KEYS = st.builds(
    str.__add__,
    st.sampled_from(string.ascii_lowercase),
    st.text(KEY_CHARACTERS, max_size=20),
)
VALUE_CHARACTERS = "".join(chr(code) for code in range(0x20, 0x7F) if chr(code) not in ",=")
TRACESTATE_VALUES = st.builds(
    str.__add__,
    st.text(VALUE_CHARACTERS, max_size=20),
    st.sampled_from(VALUE_CHARACTERS.replace(" ", "")),
)
TRACESTATES = st.dictionaries(SIMPLE_KEYS, TRACESTATE_VALUES, max_size=32).map(
    lambda members: ",".join(f"{key}={value}" for key, value in members.items())
)
SESSION_IDS = st.text(min_size=1, max_size=256).filter(
    lambda text: session_id_problem(text) is None
)


def assert_clean(headers: dict[str, str]) -> None:
    for name, value in headers.items():
        assert name.isascii()
        assert value.isascii(), (name, value)
        assert value.isprintable(), (name, value)
        assert "\r" not in value
        assert "\n" not in value


@PROPERTY
@given(HEADERS)
def test_extract_never_raises_and_returns_what_became_current(headers: object) -> None:
    trace = extract_trace_headers(headers)
    assert trace == current_trace()


@PROPERTY
@given(HEADERS)
def test_continue_session_never_raises_and_restores_everything(headers: object) -> None:
    before_session = current_session_id()
    before_trace = current_trace()
    with continue_session(headers) as session_id:
        assert session_id_problem(session_id) is None
        assert current_session_id() == session_id
        assert current_trace() is not None
        assert_clean(propagation_headers())
    assert current_session_id() == before_session
    assert current_trace() == before_trace


@PROPERTY
@given(HEADERS, st.dictionaries(st.text(string.ascii_letters, min_size=1), st.just("v")))
def test_headers_emitted_after_any_input_are_visible_ascii(
    incoming: object, outgoing: dict[str, str]
) -> None:
    extract_trace_headers(incoming)
    with continue_session(incoming):
        assert_clean(propagation_headers({**outgoing, "baggage": "k=v"}))


@PROPERTY
@given(SESSION_IDS)
def test_valid_session_ids_round_trip_through_the_wire(session_id: str) -> None:
    token = _session_id.set(session_id)
    try:
        headers = propagation_headers()
    finally:
        _session_id.reset(token)
    assert_clean(headers)
    with continue_session(headers) as seen:
        assert seen == session_id
    with continue_session({"Baggage": headers["baggage"]}) as seen_in_baggage:
        assert seen_in_baggage == session_id


@PROPERTY
@given(st.text(max_size=40))
def test_baggage_values_round_trip(value: str) -> None:
    encoded = encode_baggage_value(value)
    assert encoded.isascii()
    assert encoded.isprintable()
    assert parse_baggage([f"k={encoded}"]) == {"k": value}


@PROPERTY
@given(TRACE_IDS, SPAN_IDS, st.integers(0, 255), TRACESTATES)
def test_valid_trace_contexts_round_trip(
    trace_id: str, span_id: str, flags: int, tracestate: str
) -> None:
    header = format_traceparent(trace_id, span_id, flags)
    assert parse_traceparent(header) == (trace_id, span_id, flags & 0x03)
    assert parse_tracestate([tracestate]) == tracestate
    attach_trace(TraceContext(trace_id, span_id, flags & 0x03, tracestate, False))
    with continue_session(propagation_headers()):
        continued = current_trace()
        assert continued is not None
        assert continued[:3] == (trace_id, span_id, flags & 0x03)
        assert continued.tracestate == outgoing_tracestate(tracestate)


@PROPERTY
@given(st.text(max_size=120))
def test_traceparent_parser_accepts_only_what_it_would_send(value: str) -> None:
    parsed = parse_traceparent(value)
    if parsed is not None:
        trace_id, span_id, flags = parsed
        assert len(trace_id) == 32
        assert len(span_id) == 16
        assert set(trace_id + span_id) <= set(HEX)
        assert parse_traceparent(format_traceparent(trace_id, span_id, flags)) == parsed


@PROPERTY
@given(st.lists(st.text(max_size=60), min_size=1, max_size=4))
def test_tracestate_parser_output_is_clean_and_stable(fields: list[str]) -> None:
    combined = parse_tracestate(fields)
    if combined is not None:
        assert combined == "" or (combined.isascii() and combined.isprintable())
        assert parse_tracestate([combined]) == combined
