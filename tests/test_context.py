"""tracectrl.context: inject_trace_headers, extract_trace_headers and propagation_headers."""

from __future__ import annotations

import logging
import threading

import pytest

from tracectrl import _trace, session_scope
from tracectrl._trace import TraceContext, attach_trace, current_trace
from tracectrl._tracecontext import parse_traceparent
from tracectrl.context import (
    BAGGAGE_SESSION_KEY,
    SESSION_HEADER,
    continue_session,
    extract_trace_headers,
    inject_trace_headers,
    propagation_headers,
)
from tracectrl.session import set_session_id

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


def test_the_trace_lives_where_the_backend_under_test_keeps_it(trace_backend: str) -> None:
    get_current_span = pytest.importorskip("opentelemetry.trace").get_current_span
    trace = extract_trace_headers({"traceparent": TRACEPARENT})
    assert trace is not None
    in_contextvar = _trace._trace_context.get()
    in_opentelemetry = get_current_span().get_span_context()
    if trace_backend == "contextvar":
        assert in_contextvar == trace
        assert not in_opentelemetry.is_valid
    else:
        assert in_contextvar is None
        assert f"{in_opentelemetry.trace_id:032x}" == TRACE_ID


# inject_trace_headers ------------------------------------------------------------


def test_inject_outside_any_unit_sends_a_trace_of_its_own_and_leaves_none() -> None:
    assert current_trace() is None
    first = sent_parent(inject_trace_headers())
    assert current_trace() is None
    assert first[2] == 0x03  # sampled and random
    second = sent_parent(inject_trace_headers())
    assert second[0] != first[0]
    assert current_trace() is None


def test_inject_inside_a_scope_sends_the_units_trace_with_a_new_parent_id_per_call() -> None:
    with session_scope("s-1"):
        first = sent_parent(inject_trace_headers())
        started = current_trace()
        assert started is not None
        assert started.trace_id == first[0]
        second = sent_parent(inject_trace_headers())
        assert second[0] == first[0]
        assert second[1] != first[1]
    assert current_trace() is None


def test_inject_keeps_trace_id_and_flags_with_a_new_parent_id_per_call() -> None:
    attach_trace(TraceContext(TRACE_ID, PARENT_ID, 0x00, "congo=t61rcWkgMzE", True))
    sent = [inject_trace_headers() for _ in range(20)]
    parents = {sent_parent(headers)[1] for headers in sent}
    assert len(parents) == 20
    assert PARENT_ID not in parents
    for headers in sent:
        assert sent_parent(headers)[0] == TRACE_ID
        assert sent_parent(headers)[2] == 0x00
        assert headers["tracestate"] == "congo=t61rcWkgMzE"


def test_inject_uses_the_span_id_of_a_local_span_as_parent_id() -> None:
    attach_trace(TraceContext(TRACE_ID, PARENT_ID, 0x01, "", False))
    assert inject_trace_headers() == {"traceparent": TRACEPARENT}


def test_inject_without_tracestate_sends_none() -> None:
    attach_trace(TraceContext(TRACE_ID, PARENT_ID, 0x01, "", True))
    assert "tracestate" not in inject_trace_headers()


def test_inject_cuts_a_long_tracestate_to_512_characters() -> None:
    entries = [f"k{index:02d}=" + "v" * 60 for index in range(12)]
    attach_trace(TraceContext(TRACE_ID, PARENT_ID, 0x01, ",".join(entries), True))
    assert inject_trace_headers()["tracestate"] == ",".join(entries[:7])


def test_inject_copies_headers_and_replaces_their_trace_fields_in_any_case() -> None:
    attach_trace(TraceContext(TRACE_ID, PARENT_ID, 0x01, "", True))
    given = {"TraceParent": "stale", "TRACESTATE": "stale=1", "Accept": "json"}
    headers = inject_trace_headers(given)
    assert set(headers) == {"Accept", "traceparent"}
    assert headers["Accept"] == "json"
    assert given == {"TraceParent": "stale", "TRACESTATE": "stale=1", "Accept": "json"}


def test_inject_in_another_thread_does_not_start_a_trace_here() -> None:
    seen: list[str] = []
    worker = threading.Thread(target=lambda: seen.append(inject_trace_headers()["traceparent"]))
    worker.start()
    worker.join(DEADLOCK_GUARD)
    assert len(seen) == 1
    assert current_trace() is None


# extract_trace_headers -----------------------------------------------------------


def test_extract_makes_the_incoming_trace_current_and_returns_it() -> None:
    trace = extract_trace_headers({"TraceParent": TRACEPARENT, "tracestate": "rojo=1 , congo=2"})
    assert trace == TraceContext(TRACE_ID, PARENT_ID, 0x01, "rojo=1,congo=2", True)
    assert current_trace() == trace


def test_extract_then_inject_continues_the_trace_with_a_new_parent_id() -> None:
    extract_trace_headers({"traceparent": TRACEPARENT, "tracestate": "rojo=1"})
    headers = inject_trace_headers()
    trace_id, parent_id, flags = sent_parent(headers)
    assert (trace_id, flags) == (TRACE_ID, 0x01)
    assert parent_id != PARENT_ID
    assert headers["tracestate"] == "rojo=1"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"traceparent": TRACEPARENT.upper()},
        {"traceparent": f"00-{'0' * 32}-{PARENT_ID}-01"},
        {"traceparent": f"ff-{TRACE_ID}-{PARENT_ID}-01"},
        {"traceparent": [TRACEPARENT, TRACEPARENT]},
        {"traceparent": TRACEPARENT, "TraceParent": TRACEPARENT},
        {"tracestate": "foo=1"},
        {"trace-parent": TRACEPARENT},
    ],
    ids=[
        "none",
        "uppercase",
        "zero-trace-id",
        "ff",
        "two-fields",
        "two-keys",
        "state-only",
        "name",
    ],
)
def test_extract_ignores_missing_or_invalid_traceparent(headers: dict[str, object]) -> None:
    attach_trace(TraceContext("1" * 32, "2" * 16, 0x01, "", True))
    assert extract_trace_headers(headers) is None
    assert current_trace() is None
    restarted = sent_parent(inject_trace_headers())
    assert restarted[0] not in {TRACE_ID, "1" * 32}


def test_extract_ignores_traceparent_with_uppercase_hex() -> None:
    assert extract_trace_headers({"traceparent": f"00-{TRACE_ID.upper()}-{PARENT_ID}-01"}) is None


def test_extract_drops_an_invalid_tracestate_and_keeps_the_traceparent() -> None:
    trace = extract_trace_headers({"traceparent": TRACEPARENT, "tracestate": "foo=1,foo=2"})
    assert trace == TraceContext(TRACE_ID, PARENT_ID, 0x01, "", True)


def test_extract_in_another_thread_leaves_this_thread_alone() -> None:
    done = threading.Event()

    def serve() -> None:
        extract_trace_headers({"traceparent": TRACEPARENT})
        done.set()

    threading.Thread(target=serve).start()
    assert done.wait(DEADLOCK_GUARD)
    assert current_trace() is None


def test_extract_logs_ignored_values_at_debug_without_raw_control_characters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="tracectrl"):
        extract_trace_headers({"traceparent": "00-evil\r\nX-Injected: 1"})
    messages = [record.getMessage() for record in caplog.records]
    assert messages
    assert all("\r" not in message and "\n" not in message for message in messages)


# propagation_headers --------------------------------------------------------------


def test_propagation_headers_carry_trace_session_header_and_baggage() -> None:
    with session_scope(new=True) as session_id:
        headers = propagation_headers()
        trace = current_trace()
    assert set(headers) == {"traceparent", SESSION_HEADER, "baggage"}
    assert headers[SESSION_HEADER] == session_id
    assert headers["baggage"] == f"{BAGGAGE_SESSION_KEY}={session_id}"
    assert trace is not None
    assert sent_parent(headers)[0] == trace.trace_id


def test_propagation_headers_merge_the_session_into_existing_baggage() -> None:
    set_session_id("s-1")
    given = {"Baggage": "userId=alice;p, session.id=stale,bad key=1", "X-TraceCtrl-Session": "old"}
    headers = propagation_headers(given)
    assert headers["baggage"] == "session.id=s-1,userId=alice;p"
    assert headers[SESSION_HEADER] == "s-1"
    assert "Baggage" not in headers
    assert "X-TraceCtrl-Session" in given


def test_propagation_headers_without_a_session_pass_valid_baggage_on() -> None:
    headers = propagation_headers({"baggage": "userId=alice, bad value=a b"})
    assert SESSION_HEADER not in headers
    assert headers["baggage"] == "userId=alice"
    assert "baggage" not in propagation_headers({"baggage": "only bad=a b"})


def test_propagation_headers_percent_encode_the_session_id() -> None:
    set_session_id("user 7, 50% off; a=b caf\u00e9")
    headers = propagation_headers()
    encoded = "user%207%2C%2050%25%20off%3B%20a%3Db%20caf%C3%A9"
    assert headers[SESSION_HEADER] == encoded
    assert headers["baggage"] == f"session.id={encoded}"


def test_whitespace_only_session_id_round_trips_percent_encoded() -> None:
    from tracectrl import session_scope

    with session_scope("   "):
        sent = propagation_headers()
    assert sent[SESSION_HEADER] == "%20%20%20"
    with continue_session(sent) as received:
        assert received == "   "
