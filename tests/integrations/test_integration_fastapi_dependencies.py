"""FastAPI dependencies with ``yield``: the async form works, the sync form fails loudly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import fastapi
import httpx
import pytest
from _servers import serving_asgi
from fastapi import Depends, Header

from tracectrl import current_session_id, session_scope
from tracectrl.integrations.asgi import Receive, Scope, Send

REQUESTS = 50


class _Recorded:
    """The application, with every exception it raises recorded before it reaches the server."""

    def __init__(self, app: fastapi.FastAPI) -> None:
        self.app = app
        self.errors: list[BaseException] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as error:
            self.errors.append(error)
            raise


def _api() -> fastapi.FastAPI:
    api = fastapi.FastAPI()

    async def async_session(x_user: str = Header()) -> AsyncIterator[None]:
        with session_scope(x_user):
            yield

    def sync_session(x_user: str = Header()) -> Iterator[None]:
        with session_scope(x_user):
            yield

    @api.get("/async", dependencies=[Depends(async_session)])
    async def with_async_dependency() -> dict[str, Any]:
        return {"session": current_session_id()}

    @api.get("/async-in-thread-pool", dependencies=[Depends(async_session)])
    def def_endpoint_with_async_dependency() -> dict[str, Any]:
        return {"session": current_session_id()}

    @api.get("/sync", dependencies=[Depends(sync_session)])
    async def with_sync_dependency() -> dict[str, Any]:
        return {"session": current_session_id()}

    return api


async def _call_all(url: str, path: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        responses = await asyncio.gather(
            *(client.get(url + path, headers={"x-user": f"user-{n}"}) for n in range(REQUESTS))
        )
    return [response.json() for response in responses]


@pytest.mark.parametrize("path", ["/async", "/async-in-thread-pool"])
def test_an_async_generator_dependency_puts_the_session_in_force_for_the_endpoint(
    path: str, recwarn: pytest.WarningsRecorder
) -> None:
    app = _Recorded(_api())
    with serving_asgi(app) as url:
        bodies = asyncio.run(_call_all(url, path))
    assert bodies == [{"session": f"user-{n}"} for n in range(REQUESTS)]
    assert app.errors == []
    assert not [warning for warning in recwarn if "tracectrl" in str(warning.message)]


def test_a_sync_generator_dependency_around_session_scope_fails_loudly() -> None:
    app = _Recorded(_api())
    with serving_asgi(app) as url, httpx.Client(headers={"Connection": "close"}) as client:
        body = client.get(f"{url}/sync", headers={"x-user": "bob"}).json()
    assert body == {"session": None}, "FastAPI ran the dependency in a throwaway context"
    assert len(app.errors) == 1
    error = app.errors[0]
    assert isinstance(error, RuntimeError)
    assert "sync generator" in str(error)
    assert "async def" in str(error)
