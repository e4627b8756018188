"""continue_session under 500 concurrent asyncio requests to a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any, Callable

import pytest
import uvicorn

from tracectrl._trace import current_trace
from tracectrl.context import continue_session, propagation_headers
from tracectrl.session import current_session_id, set_session_id

# Both places the current trace can live: tracectrl's ContextVar and OpenTelemetry's context.
pytestmark = pytest.mark.usefixtures("trace_backend")

REQUESTS = 500
# Handlers wait until this many are inside their scope at once, so the scopes
# really overlap; fewer than REQUESTS, so the gate always opens.
OVERLAP = 100
DEADLOCK_GUARD = 60.0  # only reached when a test already fails

Message = dict[str, Any]


def make_app() -> Callable[..., Any]:
    inside = 0
    gate = asyncio.Event()

    async def app(
        scope: Message,
        receive: Callable[[], Any],
        send: Callable[[Message], Any],
    ) -> None:
        nonlocal inside
        assert scope["type"] == "http"
        before = (current_session_id(), current_trace())
        async with continue_session(scope["headers"]) as session_id:
            inside += 1
            if inside >= OVERLAP:
                gate.set()
            await gate.wait()
            trace = current_trace()
            assert trace is not None
            seen = {
                "session": session_id,
                "current_session": current_session_id(),
                "trace_id": trace.trace_id,
                "parent_id": trace.span_id,
            }
            await asyncio.sleep(0)  # let other handlers run inside their scopes
            seen["session_after_yield"] = current_session_id()
        seen["restored"] = (current_session_id(), current_trace()) == before
        body = json.dumps(seen).encode()
        length = str(len(body)).encode()
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", length)],
        }
        await send(start)
        await send({"type": "http.response.body", "body": body})

    return app


async def call(port: int, index: int) -> tuple[str, dict[str, str], Any]:
    # Each caller task has its own context: its own session and, from
    # propagation_headers(), its own trace.
    session_id = f"caller {index} caf\u00e9"
    set_session_id(session_id)
    headers = propagation_headers()
    # A plain HTTP/1.1 exchange on a connection of its own: every request is
    # in flight at once, with no client pool queueing them.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        lines = ["GET / HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
        response = await reader.read()
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return session_id, headers, json.loads(body)


async def run_load() -> list[tuple[str, dict[str, str], Any]]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(2 * REQUESTS)  # connections wait here until the server accepts them
    port = listener.getsockname()[1]
    config = uvicorn.Config(make_app(), lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        calls = (call(port, index) for index in range(REQUESTS))
        results = await asyncio.wait_for(asyncio.gather(*calls), DEADLOCK_GUARD)
        # The callers ran in copies of this context: nothing came back here.
        assert current_session_id() is None
        assert current_trace() is None
        return results
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, DEADLOCK_GUARD)
        listener.close()


def test_500_concurrent_requests_each_see_only_their_callers_session_and_trace() -> None:
    results = asyncio.run(run_load())
    assert len(results) == REQUESTS
    trace_ids = set()
    for session_id, headers, seen in results:
        sent_trace_id, sent_parent_id = headers["traceparent"].split("-")[1:3]
        assert seen["session"] == session_id
        assert seen["current_session"] == session_id
        assert seen["session_after_yield"] == session_id
        assert seen["trace_id"] == sent_trace_id
        assert seen["parent_id"] == sent_parent_id
        assert seen["restored"] is True
        trace_ids.add(sent_trace_id)
    assert len(trace_ids) == REQUESTS  # every caller started its own trace
    assert current_session_id() is None
    assert current_trace() is None
