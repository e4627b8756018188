"""Agent B as a Starlette service behind ``SessionMiddleware``, called by agent A over real HTTP.

Agent B runs under uvicorn on a free port of 127.0.0.1; agent A calls it with
``httpx.AsyncClient`` and tracectrl's request hook, from many conversations at
once.  The script asserts that:

* every request is handled in its own caller's session and trace, even with
  all of them in flight together;
* a call from outside any session gets a new session on the server;
* a hostile session header is ignored, never echoed;
* nothing leaks into agent A's context.

Run it with ``python examples/starlette_service.py``; it exits non-zero on the
first failed check.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from typing import Optional

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tracectrl import current_session_id, session_scope
from tracectrl.context import inject_trace_headers
from tracectrl.integrations.asgi import SessionMiddleware
from tracectrl.integrations.httpx import add_propagation_headers_async

CONVERSATIONS = 40


async def answer(request: Request) -> JSONResponse:
    """Agent B's endpoint: no tracectrl code, yet it knows the caller's session and trace."""
    session_before = current_session_id()
    await asyncio.sleep(0)  # let other requests run in between
    outgoing = inject_trace_headers()  # what agent B would send on to agent C
    return JSONResponse(
        {
            "session": session_before,
            "session_after_await": current_session_id(),
            "trace_id": outgoing["traceparent"].split("-")[1],
        }
    )


app = Starlette(routes=[Route("/answer", answer)], middleware=[Middleware(SessionMiddleware)])


class Server(uvicorn.Server):
    """uvicorn, reporting through an Event when it is listening (or failed to start)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.settled = threading.Event()

    async def startup(self, sockets: Optional[list[socket.socket]] = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.settled.set()


async def agent_a(base_url: str) -> None:
    hooks = {"request": [add_propagation_headers_async]}
    async with httpx.AsyncClient(base_url=base_url, event_hooks=hooks) as client:

        async def conversation(number: int) -> None:
            async with session_scope(f"conversation-{number}") as session_id:
                sent = inject_trace_headers()["traceparent"].split("-")[1]
                body = (await client.get("/answer")).json()
            assert body["session"] == body["session_after_await"] == session_id, body
            assert body["trace_id"] == sent, body

        await asyncio.gather(*(conversation(n) for n in range(CONVERSATIONS)))

        outside = (await client.get("/answer")).json()
        assert outside["session"] is not None, outside

        hostile = await client.get("/answer", headers={"X-TraceCtrl-Session": "a%0D%0Ab"})
        assert hostile.json()["session"] not in ("a%0D%0Ab", "a\r\nb"), hostile.json()
        assert "a%0D%0Ab" not in str(hostile.headers)
    assert current_session_id() is None, "a session leaked into agent A"


def main() -> int:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = Server(config)
    thread = threading.Thread(target=server.run, name="agent-b", daemon=True)
    thread.start()
    try:
        if not server.settled.wait(30) or not server.started:
            print("starlette_service: uvicorn did not start", file=sys.stderr)
            return 1
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        asyncio.run(agent_a(f"http://{host}:{port}"))
    finally:
        server.should_exit = True
        thread.join(30)
    print(f"starlette_service: ok ({CONVERSATIONS} conversations, each in its own session)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
