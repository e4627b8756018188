"""The seed's Agent A / Agent B snippets, as written, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tracectrl import session_scope
from tracectrl._trace import current_trace
from tracectrl.context import (
    continue_session,
    extract_trace_headers,
    inject_trace_headers,
    propagation_headers,
)
from tracectrl.session import current_session_id, new_session, set_session_id

# Both places the current trace can live: tracectrl's ContextVar and OpenTelemetry's context.
pytestmark = pytest.mark.usefixtures("trace_backend")

DEADLOCK_GUARD = 30.0  # only reached when a test already fails


def report() -> bytes:
    """What agent B sees while handling a request, as JSON."""
    trace = current_trace()
    assert trace is not None
    onward = inject_trace_headers()["traceparent"]
    return json.dumps(
        {
            "session": current_session_id(),
            "trace_id": trace.trace_id,
            "parent_id": trace.span_id,
            "onward_traceparent": onward,
        }
    ).encode()


class SeedAgentB(BaseHTTPRequestHandler):
    """Agent B written exactly as the seed shows it."""

    def do_POST(self) -> None:
        request = self  # the seed's `request`: its .headers are the incoming headers
        # Agent B — incoming request
        extract_trace_headers(request.headers)
        set_session_id(request.headers["X-TraceCtrl-Session"])
        # All spans now share the same session and trace
        self.reply(report())

    def reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


class ScopedAgentB(SeedAgentB):
    """Agent B with the one-call scope, which restores the handler thread afterwards."""

    def do_POST(self) -> None:
        with continue_session(self.headers):
            body = report()
        assert current_session_id() is None
        self.reply(body)


def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(DEADLOCK_GUARD)


@pytest.fixture
def seed_agent_b() -> Iterator[str]:
    yield from serve(SeedAgentB)


@pytest.fixture
def scoped_agent_b() -> Iterator[str]:
    yield from serve(ScopedAgentB)


def test_seed_snippets_carry_session_and_trace_from_agent_a_to_agent_b(
    seed_agent_b: str,
) -> None:
    url = seed_agent_b
    new_session()

    # Agent A — outgoing request
    headers = inject_trace_headers()
    headers["X-TraceCtrl-Session"] = current_session_id()
    response = requests.post(url, headers=headers)

    seen = response.json()
    _, sent_trace_id, sent_parent_id, _ = headers["traceparent"].split("-")
    assert seen["session"] == current_session_id()
    assert seen["trace_id"] == sent_trace_id
    # B continues A's trace with the parent-id A sent for this call.
    assert seen["parent_id"] == sent_parent_id
    # B's own onward calls stay in the trace, each with a parent-id of its own.
    onward = seen["onward_traceparent"].split("-")
    assert onward[1] == sent_trace_id
    assert onward[2] != sent_parent_id
    # A's call was made outside any unit of work: its trace is not left in force.
    assert current_trace() is None


def test_seed_calls_outside_any_unit_each_get_their_own_trace(seed_agent_b: str) -> None:
    new_session()
    seen = []
    for _ in range(3):
        headers = inject_trace_headers()
        headers["X-TraceCtrl-Session"] = current_session_id()
        seen.append(requests.post(seed_agent_b, headers=headers, timeout=DEADLOCK_GUARD).json())
    assert len({reply["trace_id"] for reply in seen}) == 3
    assert {reply["session"] for reply in seen} == {current_session_id()}


def test_each_call_of_one_unit_has_the_same_trace_and_a_new_parent_id(seed_agent_b: str) -> None:
    seen = []
    with session_scope(new=True):
        for _ in range(3):
            headers = inject_trace_headers()
            headers["X-TraceCtrl-Session"] = current_session_id()
            seen.append(requests.post(seed_agent_b, headers=headers, timeout=DEADLOCK_GUARD).json())
        trace = current_trace()
        session_id = current_session_id()
    assert trace is not None
    assert {reply["trace_id"] for reply in seen} == {trace.trace_id}
    assert len({reply["parent_id"] for reply in seen}) == 3
    assert {reply["session"] for reply in seen} == {session_id}


@pytest.mark.parametrize(
    "session_id",
    ["conversation-7", "user 7, 50% off; a=b", "caf\u00e9 \u65e5\u672c \U0001f389"],
)
def test_propagation_headers_and_continue_session_over_http(
    scoped_agent_b: str, session_id: str
) -> None:
    with session_scope(session_id):
        headers = propagation_headers()
        seen = requests.post(scoped_agent_b, headers=headers, timeout=DEADLOCK_GUARD).json()
        trace = current_trace()
    assert trace is not None
    assert seen["session"] == session_id
    assert seen["trace_id"] == trace.trace_id
    assert seen["parent_id"] == headers["traceparent"].split("-")[2]


def test_agent_b_continues_the_session_from_baggage_alone(scoped_agent_b: str) -> None:
    set_session_id("only in baggage")
    headers = propagation_headers()
    del headers["X-TraceCtrl-Session"]
    seen = requests.post(scoped_agent_b, headers=headers, timeout=DEADLOCK_GUARD).json()
    assert seen["session"] == "only in baggage"
