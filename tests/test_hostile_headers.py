"""Hostile callers: oversized, malformed and injected values are ignored, never raised or echoed."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tracectrl._trace import current_trace
from tracectrl.context import (
    SESSION_HEADER,
    continue_session,
    extract_trace_headers,
    propagation_headers,
)
from tracectrl.session import current_session_id

# Both places the current trace can live: tracectrl's ContextVar and OpenTelemetry's context.
pytestmark = pytest.mark.usefixtures("trace_backend")

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
DEADLOCK_GUARD = 30.0  # only reached when a test already fails

HOSTILE_SESSIONS = {
    "10 KB": "s" * 10_240,
    "10 KB percent-encoded": "%41" * 3_500,
    "CR LF injection": "abc\r\nX-Evil: planted",
    "LF injection": "abc\nX-Evil: planted",
    "encoded CR LF": "abc%0D%0AX-Evil:%20planted",
    "NUL": "abc\x00def",
    "encoded NUL": "abc%00def",
    "DEL": "abc\x7fdef",
    "encoded DEL": "abc%7Fdef",
    "C1 control": "abc\x85def",
    "empty": "",
    "spaces": "   ",
    "tabs": "\t\t",
    "raw non-ASCII": "caf\u00e9",
    "invalid UTF-8": "%C3%28",
    "encoded id over 256 characters": "%C3%A9" * 257,
}


def assert_clean(headers: dict[str, str]) -> None:
    for value in headers.values():
        assert value.isascii()
        assert value.isprintable()
        assert "planted" not in value


@pytest.mark.parametrize("value", HOSTILE_SESSIONS.values(), ids=HOSTILE_SESSIONS.keys())
def test_hostile_session_header_is_ignored_and_a_new_session_started(value: str) -> None:
    with continue_session({SESSION_HEADER: value, "traceparent": TRACEPARENT}) as session_id:
        assert str(uuid.UUID(session_id)) == session_id
        assert_clean(propagation_headers())
    assert current_session_id() is None


@pytest.mark.parametrize("value", HOSTILE_SESSIONS.values(), ids=HOSTILE_SESSIONS.keys())
def test_hostile_baggage_session_is_ignored(value: str) -> None:
    with continue_session({"baggage": f"session.id={value},k=v"}) as session_id:
        assert str(uuid.UUID(session_id)) == session_id
        assert_clean(propagation_headers())


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": TRACEPARENT + "\r\nX-Evil: planted"},
        {"traceparent": TRACEPARENT, "tracestate": "foo=1\r\nX-Evil: planted"},
        {"traceparent": TRACEPARENT, "tracestate": "foo=1,\x00=planted"},
        {"traceparent": TRACEPARENT, "tracestate": "a=1," * 10_000},
        {"traceparent": "\x00" * 55},
        {"traceparent": " " * 10_000},
        {"traceparent": TRACEPARENT, "baggage": "k=planted\r\nX-Evil: 1"},
        {"traceparent": TRACEPARENT, "baggage": "k=v," * 10_000},
        {"traceparent": TRACEPARENT, "baggage": "k" * 100_000 + "=v"},
    ],
    ids=[
        "traceparent CR LF",
        "tracestate CR LF",
        "tracestate NUL",
        "tracestate 40 KB",
        "traceparent NUL",
        "traceparent 10 KB of spaces",
        "baggage CR LF",
        "baggage 40 KB",
        "baggage 100 KB key",
    ],
)
def test_hostile_trace_and_baggage_values_never_reach_emitted_headers(
    headers: dict[str, str],
) -> None:
    extract_trace_headers(headers)
    assert_clean(propagation_headers())
    with continue_session(headers):
        assert_clean(propagation_headers(headers))


class EchoAgent(BaseHTTPRequestHandler):
    """Continues the caller's session and answers with what it saw and would send on."""

    def do_GET(self) -> None:
        with continue_session(self.headers) as session_id:
            onward = propagation_headers()
            trace = current_trace()
            assert trace is not None
            body = json.dumps({"session": session_id, "onward": onward}).encode()
            # Onward headers go back as response headers: they must not split a line.
            self.send_response(200)
            for name, value in onward.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def echo_agent() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoAgent)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(DEADLOCK_GUARD)


def raw_request(port: int, header_lines: bytes) -> tuple[list[bytes], dict[str, object]]:
    """Send one raw HTTP/1.0 request; return the response header lines and the JSON body."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLOCK_GUARD) as connection:
        connection.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n" + header_lines + b"\r\n")
        with connection.makefile("rb") as stream:
            response = stream.read()
    head, _, body = response.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), json.loads(body)


@pytest.mark.parametrize(
    "header_lines",
    [
        b"X-TraceCtrl-Session: " + b"s" * 10_240 + b"\r\n",
        b"X-TraceCtrl-Session: abc\r\n X-Evil: planted\r\n",  # obsolete line folding
        b"X-TraceCtrl-Session: abc\x00def\r\n",
        b"X-TraceCtrl-Session: abc\x7fdef\r\n",
        b"X-TraceCtrl-Session: \r\n",
        b"X-TraceCtrl-Session:    \t  \r\n",
        b"X-TraceCtrl-Session: one\r\nX-TraceCtrl-Session: two\r\n",
        b"Baggage: session.id=abc%0D%0AX-Evil:%20planted\r\n",
        b"traceparent: " + TRACEPARENT.encode() + b"\r\n tracestate: planted=1\r\n",
        b"tracestate: foo=1\r\n\tX-Evil: planted\r\ntraceparent: " + TRACEPARENT.encode() + b"\r\n",
    ],
    ids=[
        "10 KB session",
        "folded CR LF",
        "NUL",
        "DEL",
        "empty",
        "whitespace",
        "two session fields",
        "encoded CR LF in baggage",
        "folded traceparent",
        "folded tracestate",
    ],
)
def test_a_real_server_survives_hostile_requests_and_answers_clean_headers(
    echo_agent: int, header_lines: bytes
) -> None:
    lines, body = raw_request(echo_agent, header_lines)
    assert lines[0].startswith(b"HTTP/1.0 200")
    session_id = body["session"]
    assert isinstance(session_id, str)
    assert str(uuid.UUID(session_id)) == session_id
    onward = body["onward"]
    assert isinstance(onward, dict)
    assert_clean(onward)
    for line in lines[1:]:
        assert b"planted" not in line
        assert b"\x00" not in line
        assert b"\x7f" not in line
