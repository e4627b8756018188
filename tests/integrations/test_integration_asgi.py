"""The ASGI middleware: every request and WebSocket connection runs in its own caller's session."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any, Optional

import fastapi
import httpx
import pytest
from _servers import ArrivalGate, serving_asgi
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tracectrl import current_session_id, session_scope
from tracectrl._trace import current_trace
from tracectrl.integrations.asgi import Message, Receive, Scope, Send, SessionMiddleware
from tracectrl.integrations.httpx import add_propagation_headers, add_propagation_headers_async

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
CONCURRENT_REQUESTS = 300
CLIENTS = 6


def _is_uuid(text: object) -> bool:
    try:
        return str(uuid.UUID(str(text))) == text
    except ValueError:
        return False


def _app(gate: ArrivalGate | None = None) -> Starlette:
    async def whoami(request: Request) -> JSONResponse:
        before = current_session_id()
        if gate is not None:
            await gate.arrive_and_wait()  # every other request is now in flight too
        trace = current_trace()
        return JSONResponse(
            {
                "before": before,
                "after": current_session_id(),
                "trace_id": None if trace is None else trace.trace_id,
            }
        )

    def whoami_in_thread_pool(request: Request) -> JSONResponse:
        return JSONResponse({"after": current_session_id()})

    return Starlette(
        routes=[Route("/", whoami), Route("/sync", whoami_in_thread_pool)],
        middleware=[Middleware(SessionMiddleware)],
    )


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """One server for the tests that need no server state of their own."""
    with serving_asgi(_app()) as base_url:
        yield base_url


def test_concurrent_requests_each_see_their_own_callers_session() -> None:
    gate = ArrivalGate(CONCURRENT_REQUESTS)

    async def call(client: httpx.AsyncClient, url: str, number: int) -> dict[str, Any]:
        async with session_scope(f"caller-{number}"):
            response = await client.get(url)
            assert current_session_id() == f"caller-{number}"
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def call_all(url: str) -> list[dict[str, Any]]:
        # httpcore's pool scans all its connections for every request, so 300 in
        # flight through one pool is quadratic: several small pools stay cheap.
        hooks = {"request": [add_propagation_headers_async]}
        limits = httpx.Limits(max_connections=CONCURRENT_REQUESTS // CLIENTS)
        clients = [httpx.AsyncClient(limits=limits, event_hooks=hooks) for _ in range(CLIENTS)]
        try:
            return await asyncio.gather(
                *(
                    call(clients[number % CLIENTS], url, number)
                    for number in range(CONCURRENT_REQUESTS)
                )
            )
        finally:
            for client in clients:
                await client.aclose()

    with serving_asgi(_app(gate)) as url:
        bodies = asyncio.run(call_all(url))

    assert gate.arrived == CONCURRENT_REQUESTS
    for number, body in enumerate(bodies):
        assert body["before"] == body["after"] == f"caller-{number}"
    assert current_session_id() is None


def test_request_without_headers_gets_a_fresh_session_and_trace(url: str) -> None:
    with httpx.Client() as client:
        first = client.get(url).json()
        second = client.get(url).json()
    assert _is_uuid(first["after"])
    assert _is_uuid(second["after"])
    assert first["after"] != second["after"]
    assert first["trace_id"] != second["trace_id"]


def test_sync_endpoint_in_the_thread_pool_sees_the_callers_session(url: str) -> None:
    with httpx.Client() as client:
        response = client.get(f"{url}/sync", headers={"X-TraceCtrl-Session": "from-caller"})
    assert response.json()["after"] == "from-caller"


def test_request_continues_the_callers_trace(url: str) -> None:
    with httpx.Client() as client:
        body = client.get(url, headers={"traceparent": TRACEPARENT}).json()
    assert body["trace_id"] == TRACE_ID


@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param(b"x" * 10_240, id="10-KB"),
        pytest.param(b"abc%0D%0AX-Injected: 1", id="encoded-CRLF"),
        pytest.param(b"abc%00def", id="encoded-NUL"),
        pytest.param(b"caf\xe9", id="obs-text"),
    ],
)
def test_hostile_session_header_over_the_wire_is_ignored_and_not_echoed(
    url: str, hostile: bytes
) -> None:
    with httpx.Client() as client:
        response = client.get(
            url, headers={"X-TraceCtrl-Session": hostile, "baggage": b"session.id=" + hostile}
        )
    assert response.status_code == 200
    assert _is_uuid(response.json()["after"])
    assert "X-Injected" not in response.headers
    assert all(hostile not in value for _, value in response.headers.raw)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"abc\r\nX-Injected: 1", id="CRLF"),
        pytest.param(b"abc\x00def", id="NUL"),
        pytest.param(b"x" * 10_240, id="10-KB"),
        pytest.param(b"\xff\xfe", id="not-UTF-8"),
    ],
)
def test_hostile_raw_header_bytes_are_ignored(raw: bytes) -> None:
    seen: list[str | None] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(current_session_id())

    scope: Scope = {
        "type": "http",
        "headers": [(b"x-tracectrl-session", raw), (b"traceparent", raw), (b"baggage", raw)],
    }
    asyncio.run(SessionMiddleware(app)(scope, _no_receive, _no_send))
    assert len(seen) == 1
    assert _is_uuid(seen[0])


def test_websocket_connection_runs_in_the_callers_session_until_it_closes() -> None:
    seen: list[str | None] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(current_session_id())
        await receive()  # the connection stays open across awaits
        seen.append(current_session_id())

    scope: Scope = {"type": "websocket", "headers": [(b"x-tracectrl-session", b"socket-caller")]}

    async def connect() -> None:
        await SessionMiddleware(app)(scope, _no_receive, _no_send)
        seen.append(current_session_id())

    asyncio.run(connect())
    assert seen == ["socket-caller", "socket-caller", None]


def test_lifespan_passes_through_untouched() -> None:
    received: list[tuple[Scope, Receive, Send, str | None]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append((scope, receive, send, current_session_id()))

    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    asyncio.run(SessionMiddleware(app)(scope, _no_receive, _no_send))
    assert received == [(scope, _no_receive, _no_send, None)]
    assert scope == {"type": "lifespan", "asgi": {"version": "3.0"}}


def test_session_is_restored_when_the_application_raises() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise LookupError(current_session_id())

    scope: Scope = {"type": "http", "headers": [(b"x-tracectrl-session", b"doomed")]}

    async def handle() -> None:
        async with session_scope("outer"):
            with pytest.raises(LookupError, match="doomed"):
                await SessionMiddleware(app)(scope, _no_receive, _no_send)
            assert current_session_id() == "outer"

    asyncio.run(handle())


def test_sync_httpx_hook_sends_the_session_of_the_calling_thread(url: str) -> None:
    hooks = {"request": [add_propagation_headers]}
    with httpx.Client(event_hooks=hooks) as client:
        with session_scope("sync-caller"):
            inside = client.get(url).json()
        outside = client.get(url).json()
    assert inside["after"] == "sync-caller"
    assert _is_uuid(outside["after"])


async def _no_receive() -> Message:
    return {"type": "websocket.disconnect"}


async def _no_send(message: Message) -> None:
    pass


def test_fastapi_app_with_added_middleware_sees_the_callers_session() -> None:
    api = fastapi.FastAPI()

    @api.get("/")
    async def whoami() -> dict[str, Optional[str]]:  # FastAPI evaluates it, on 3.9 too
        return {"session": current_session_id()}

    api.add_middleware(SessionMiddleware)

    async def call() -> Any:
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
            response = await client.get("/", headers={"X-TraceCtrl-Session": "fastapi-caller"})
            assert current_session_id() is None
            return response.json()

    assert asyncio.run(call()) == {"session": "fastapi-caller"}
