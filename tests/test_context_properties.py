"""Properties: extraction never raises, emitted headers are clean, valid values round-trip."""

from __future__ import annotations

import itertools
import string
from typing import NamedTuple, Optional

import pytest
from hypothesis import HealthCheck, event, example, given, settings
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
from tracectrl.session import (
    _session_id,
    current_session_id,
    session_id_problem,
    validate_session_id,
)

# The properties about the current trace run under both backends.  The parsers
# and the session codec do not depend on where the trace is kept: they run once.
BOTH_TRACE_BACKENDS = pytest.mark.usefixtures("trace_backend")

# Modest example counts: the suite must stay fast.
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

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
# Built from non-zero numbers: a filter on hex text gives up on half the draws.
TRACE_IDS = st.integers(1, 2**128 - 1).map("{:032x}".format)
SPAN_IDS = st.integers(1, 2**64 - 1).map("{:016x}".format)
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

# Every code point, lone surrogates (category Cs) included: st.text() leaves them
# out, yet os.environ and surrogateescape-decoded input produce them.
ANY_CHARACTER = st.characters(codec=None, categories=None)
SURROGATES = st.characters(categories=["Cs"])
ANY_TEXT = st.text(ANY_CHARACTER, max_size=40)
SESSION_ID_CANDIDATES = (
    ANY_TEXT
    | st.builds("{}{}{}".format, ANY_TEXT, SURROGATES, ANY_TEXT)
    | st.integers(255, 257).flatmap(
        lambda length: st.text(ANY_CHARACTER, min_size=length, max_size=length)
    )
)

# traceparent: a valid value, then at most one mutation whose outcome is known.
TRACEPARENT_LENGTH = 55  # the version 00 value; later versions may add "-" and more
DASHES = (2, 35, 52)
FUTURE_VERSIONS = st.integers(0x01, 0xFE).map("{:02x}".format)
FUTURE_FIELDS = st.text(string.ascii_letters + string.digits + "-.", max_size=16).map("-".__add__)
SPACES_AND_TABS = st.text(" \t", max_size=3)
NOT_SPACE_OR_TAB = ANY_CHARACTER.filter(lambda character: character not in " \t")
NOT_HEX_OR_DASH = ANY_CHARACTER.filter(lambda character: character not in HEX + "-")
TRACEPARENT_MUTATIONS = [
    "unchanged",
    "unchanged",  # twice, as most mutations make the value invalid
    "spaces and tabs around",
    "space or tab inside",
    "one character's case flipped",
    "upper-cased",
    "character inserted",
    "character deleted",
    "character replaced",
    "truncated",
    "version ff",
    "version 00 with more fields",
    "more fields without a dash",
    "all-zero trace-id",
    "all-zero parent-id",
]


class TraceparentCase(NamedTuple):
    """A ``traceparent`` value, what the W3C rules make of it, and how it was made."""

    value: str
    expected: Optional[tuple[str, str, int]]
    how: str


@st.composite
def traceparent_cases(draw: st.DrawFn) -> TraceparentCase:
    """Draw a valid ``traceparent`` (any version but ff, any flags) and maybe break it.

    The expected result follows from the mutation, not from a second parser:
    each mutation either keeps the value valid or breaks one rule for certain.
    Character mutations touch only the first 55 characters, the part every
    version must follow; what a later version adds after a "-" is never read.
    """
    trace_id, parent_id, flags = draw(TRACE_IDS), draw(SPAN_IDS), draw(st.integers(0, 255))
    version = draw(st.just("00") | FUTURE_VERSIONS)
    more = "" if version == "00" else draw(st.just("") | FUTURE_FIELDS)
    valid = f"{version}-{trace_id}-{parent_id}-{flags:02x}{more}"
    parsed = (trace_id, parent_id, flags & 0x03)
    after_version = valid[2:TRACEPARENT_LENGTH]
    how = draw(st.sampled_from(TRACEPARENT_MUTATIONS))
    at = draw(st.integers(0, TRACEPARENT_LENGTH - 1))
    value: str
    expected: Optional[tuple[str, str, int]] = None
    if how == "unchanged":
        value, expected = valid, parsed
    elif how == "spaces and tabs around":  # optional whitespace, allowed around any field value
        value, expected = draw(SPACES_AND_TABS) + valid + draw(SPACES_AND_TABS), parsed
    elif how == "space or tab inside":
        inside = draw(st.integers(1, TRACEPARENT_LENGTH - 1))
        value = valid[:inside] + draw(st.sampled_from(" \t")) + valid[inside:]
    elif how == "one character's case flipped":  # digits and dashes have no case
        value = valid[:at] + valid[at].swapcase() + valid[at + 1 :]
        expected = None if valid[at] in "abcdef" else parsed
    elif how == "upper-cased":
        value = valid.upper()
        expected = None if any(c in "abcdef" for c in valid[:TRACEPARENT_LENGTH]) else parsed
    elif how == "character inserted":  # shifts a dash or a hex digit out of place
        value = valid[:at] + draw(NOT_SPACE_OR_TAB) + valid[at:]
    elif how == "character deleted":
        value = valid[:at] + valid[at + 1 :]
    elif how == "character replaced":
        value = valid[:at] + draw(NOT_HEX_OR_DASH) + valid[at + 1 :]
    elif how == "truncated":  # still valid when only a later version's extra fields are cut
        length = draw(st.integers(0, len(valid) - 1))
        value = valid[:length]
        expected = parsed if length >= TRACEPARENT_LENGTH else None
    elif how == "version ff":
        value = "ff" + after_version + more
    elif how == "version 00 with more fields":
        value = "00" + after_version + (more or draw(FUTURE_FIELDS))
    elif how == "more fields without a dash":  # a later version, else the length alone refuses it
        more = draw(st.sampled_from(string.ascii_letters + ".")) + more
        value = draw(FUTURE_VERSIONS) + after_version + more
    elif how == "all-zero trace-id":
        value = valid[: DASHES[0] + 1] + "0" * 32 + valid[DASHES[1] :]
    else:
        assert how == "all-zero parent-id"
        value = valid[: DASHES[1] + 1] + "0" * 16 + valid[DASHES[2] :]
    return TraceparentCase(value, expected, how)


# tracestate: valid members, written with the optional whitespace, empty members
# and field splits the specification allows, and at most one broken rule.
# The current Level 2 key grammar: a lowercase letter or a digit, then up to 255
# of the key characters, "@" among them, anywhere and any number of times.
AT_SIGN_KEYS = st.builds(
    "{}{}".format,
    st.sampled_from(string.ascii_lowercase + string.digits),
    st.text(KEY_CHARACTERS + "@", max_size=25),
)
LONGEST_KEYS = st.sampled_from(
    ["k" * 256, "t" * 241 + "@" + "s" * 14, "k" * 128 + "@" + "k" * 127, "1" + "@" * 255]
)
TRACESTATE_KEYS = SIMPLE_KEYS | AT_SIGN_KEYS | LONGEST_KEYS
LONGEST_VALUE = st.just("v" * 255 + "~")
TRACESTATE_MEMBERS = st.dictionaries(
    TRACESTATE_KEYS, TRACESTATE_VALUES | LONGEST_VALUE, max_size=8
).map(lambda members: list(members.items()))
INVALID_KEYS = (
    st.sampled_from(["", "_k", "*k", "/k", "-k", "k" * 257, "t" * 128 + "@" + "s" * 128, "@s", "@"])
    | TRACESTATE_KEYS.map(str.upper).filter(lambda key: key != key.lower())  # has a letter
    | st.builds(
        lambda key, at, bad: key[:at] + bad + key[at:],
        SIMPLE_KEYS | AT_SIGN_KEYS,
        st.integers(0, 40),
        st.sampled_from("AZ.!#$%&'+:;<>?[]^`{|}~\u00e9\x00\x7f"),
    )
)
INVALID_VALUES = st.sampled_from(["", "v" * 257]) | st.builds(
    lambda value, at, bad: value[:at] + bad + value[at:],
    TRACESTATE_VALUES,
    st.integers(0, 21),
    st.sampled_from("=\x00\x1f\x7f\x80\x85\u00e9\u2028\U0001f389"),
)
MAX_MEMBERS = 32
TRACESTATE_MUTATIONS = [
    "unchanged",
    "unchanged",  # twice, as most mutations make the value invalid
    "32 members",
    "33 members",
    "key repeated",
    "invalid key",
    "invalid value",
    "member without '='",
    "space before '='",
    "newline before a member",
]


class TracestateCase(NamedTuple):
    """``tracestate`` fields, what the W3C rules make of them, and how they were made."""

    fields: list[str]
    expected: Optional[str]
    how: str


@st.composite
def tracestate_cases(draw: st.DrawFn) -> TracestateCase:
    """Draw valid ``tracestate`` fields and maybe break one rule.

    As in :func:`traceparent_cases`, the expected value follows from the
    mutation: the normal form of the valid members, or ``None``.
    """
    pairs: list[tuple[str, str]] = draw(TRACESTATE_MEMBERS)
    how = draw(st.sampled_from(TRACESTATE_MUTATIONS))
    if how in ("32 members", "33 members"):
        wanted = MAX_MEMBERS if how == "32 members" else MAX_MEMBERS + 1
        keys = {key for key, _ in pairs}
        unused = (f"m{n}" for n in itertools.count() if f"m{n}" not in keys)
        pairs += [(next(unused), "v") for _ in range(wanted - len(pairs))]
    if not pairs and how not in ("unchanged", "32 members"):
        pairs = [("k", "v")]  # a member to break
    members = [f"{key}={value}" for key, value in pairs]
    expected: Optional[str] = ",".join(members)
    at = draw(st.integers(0, max(len(members) - 1, 0)))
    if how == "33 members":
        expected = None
    elif how == "key repeated":
        # Kept, with the first entry of the key: the later one is dropped.
        where = draw(st.integers(0, len(members)))
        members.insert(where, f"{pairs[at][0]}=again")
        first_by_key: dict[str, str] = {}
        for member in members:
            first_by_key.setdefault(member.partition("=")[0], member)
        expected = ",".join(first_by_key.values())
    elif how == "invalid key":
        members[at] = f"{draw(INVALID_KEYS)}={pairs[at][1]}"
        expected = None
    elif how == "invalid value":
        members[at] = f"{pairs[at][0]}={draw(INVALID_VALUES)}"
        expected = None
    elif how == "member without '='":
        members[at] = pairs[at][0]
        expected = None
    elif how == "space before '='":
        members[at] = f"{pairs[at][0]} ={pairs[at][1]}"
        expected = None
    elif how == "newline before a member":  # only spaces and tabs are optional whitespace
        members[at] = "\n" + members[at]
        expected = None
    return TracestateCase(draw(tracestate_fields(members)), expected, how)


@st.composite
def tracestate_fields(draw: st.DrawFn, members: list[str]) -> list[str]:
    """Write ``members`` as ``tracestate`` fields the way senders may.

    Spaces and tabs around members, empty and blank members, and the list
    split over several fields (which a receiver joins with ",").
    """
    written: list[str] = []
    for member in members:
        written += draw(st.lists(SPACES_AND_TABS, max_size=1))  # an empty or blank member
        written.append(draw(SPACES_AND_TABS) + member + draw(SPACES_AND_TABS))
    cuts = sorted(draw(st.sets(st.integers(1, max(len(written) - 1, 1)), max_size=3)))
    bounds = [0, *(cut for cut in cuts if cut < len(written)), len(written)]
    return [",".join(written[start:end]) for start, end in zip(bounds, bounds[1:])]


def assert_clean(headers: dict[str, str]) -> None:
    for name, value in headers.items():
        assert name.isascii()
        assert value.isascii(), (name, value)
        assert value.isprintable(), (name, value)
        assert "\r" not in value
        assert "\n" not in value


@BOTH_TRACE_BACKENDS
@PROPERTY
@given(HEADERS)
def test_extract_never_raises_and_returns_what_became_current(headers: object) -> None:
    trace = extract_trace_headers(headers)
    assert trace == current_trace()


@BOTH_TRACE_BACKENDS
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


@BOTH_TRACE_BACKENDS
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


@BOTH_TRACE_BACKENDS
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
@given(traceparent_cases())
@example(TraceparentCase(f"00-{'1' * 32}-{'2' * 16}-ff", ("1" * 32, "2" * 16, 0x03), "unchanged"))
@example(TraceparentCase(f"00-{'a' * 32}-{'2' * 16}-01".upper(), None, "upper-cased"))
def test_traceparent_parser_accepts_valid_values_and_refuses_every_broken_rule(
    case: TraceparentCase,
) -> None:
    event(case.how)
    event("valid" if case.expected is not None else "invalid")
    assert parse_traceparent(case.value) == case.expected
    extracted = extract_trace_headers({"traceparent": case.value})
    assert (None if extracted is None else extracted[:3]) == case.expected
    if case.expected is not None:
        trace_id, parent_id, flags = case.expected
        canonical = f"00-{trace_id}-{parent_id}-{flags:02x}"
        assert format_traceparent(trace_id, parent_id, flags) == canonical
        assert parse_traceparent(canonical) == case.expected


@PROPERTY
@given(tracestate_cases())
@example(TracestateCase([" a=1 ,, b@c=2", "\t"], "a=1,b@c=2", "unchanged"))
@example(TracestateCase(["a=1", "a=2"], "a=1", "key repeated"))
@example(
    TracestateCase(["foo@=1", "k@" + "s" * 254 + "=2"], "foo@=1,k@" + "s" * 254 + "=2", "unchanged")
)
def test_tracestate_parser_keeps_valid_members_in_normal_form_and_refuses_broken_ones(
    case: TracestateCase,
) -> None:
    event(case.how)
    event("valid" if case.expected is not None else "invalid")
    combined = parse_tracestate(case.fields)
    assert combined == case.expected
    # An invalid tracestate is dropped; the traceparent beside it still counts.
    extracted = extract_trace_headers({"traceparent": TRACEPARENT, "tracestate": case.fields})
    assert extracted is not None
    assert extracted.tracestate == (combined or "")
    if combined is not None:
        assert combined == "" or (combined.isascii() and combined.isprintable())
        assert parse_tracestate([combined]) == combined


@PROPERTY
@given(SESSION_ID_CANDIDATES)
@example("a\ud800b")
@example("\udfff" * 256)
@example("x" * 257)
def test_any_text_is_refused_as_a_session_id_or_round_trips_through_the_wire_exactly(
    candidate: str,
) -> None:
    try:
        validate_session_id(candidate)
    except (ValueError, TypeError):
        valid = False
    else:
        valid = True
    event("valid" if valid else "refused")
    # Written straight into the ContextVar, past validation, as code that sets
    # it directly would: sending must still never raise, nor send a bad id.
    token = _session_id.set(candidate)
    try:
        headers = propagation_headers()
    finally:
        _session_id.reset(token)
    assert_clean(headers)
    if not valid:
        assert SESSION_HEADER not in headers
        assert "baggage" not in headers
        return
    with continue_session(headers) as seen:
        assert seen == candidate
    with continue_session({"baggage": headers["baggage"]}) as seen_in_baggage:
        assert seen_in_baggage == candidate
