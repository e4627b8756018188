"""Only FastAPI's split sync-generator dependency fails loudly; other exits elsewhere warn.

Each test here pins a behaviour that a small change to the code (a mutant) broke
without any other test noticing; see ``tests/mutation/run.py``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Generator, Iterator
from contextvars import copy_context

import anyio
import anyio.to_thread
import fastapi
import httpx
import pytest
from _servers import serving_asgi
from fastapi import Depends, Header

from tracectrl import current_session_id, session_scope, with_session
from tracectrl.integrations.asgi import Receive, Scope, Send


def test_context_manager_generator_exited_elsewhere_outside_a_thread_pool_warns() -> None:
    @contextlib.contextmanager
    def conversation() -> Iterator[None]:
        with session_scope("conversation"):
            yield

    manager = conversation()
    copy_context().run(manager.__enter__)
    with pytest.warns(RuntimeWarning, match="never entered it"):
        copy_context().run(manager.__exit__, None, None, None)
    assert current_session_id() is None


def test_generator_advanced_by_code_in_anyios_thread_pool_is_not_taken_for_a_dependency() -> None:
    # A generator resumed by the application's own function, which AnyIO's
    # worker runs, is not FastAPI's teardown: the exit elsewhere only warns.
    def steps() -> Iterator[None]:
        with session_scope("steps"):
            yield

    generator = steps()
    copy_context().run(next, generator)

    def finish() -> None:
        next(generator, None)

    async def main() -> None:
        await anyio.to_thread.run_sync(finish)

    with pytest.warns(RuntimeWarning, match="never entered it"):
        anyio.run(main)
    assert current_session_id() is None


def _request_with_dependency(
    dependency: Callable[..., Iterator[None]], headers: dict[str, str]
) -> tuple[object, list[BaseException], list[warnings.WarningMessage]]:
    """Serve a FastAPI endpoint guarded by ``dependency``; return its body, the app's errors
    and the warnings."""
    api = fastapi.FastAPI()
    errors: list[BaseException] = []

    @api.get("/sync", dependencies=[Depends(dependency)])
    async def endpoint() -> dict[str, object]:
        return {"session": current_session_id()}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await api(scope, receive, send)
        except Exception as error:
            errors.append(error)
            raise

    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        with serving_asgi(app) as url, httpx.Client(headers={"Connection": "close"}) as client:
            body = client.get(f"{url}/sync", headers=headers).json()
    return body, errors, warned


def _leave(scope: session_scope, calls: int) -> None:
    if calls > 1:
        _leave(scope, calls - 1)
    else:
        scope.__exit__(None, None, None)


@pytest.mark.parametrize(("calls", "fails"), [(1, True), (6, True), (7, False)])
def test_sync_generator_dependency_leaving_its_scope_through_helpers_fails_loudly_up_to_a_depth(
    calls: int, fails: bool
) -> None:
    # The check looks up to ten frames above it, past the application's own
    # functions: three are the scope's exit, so six helper calls still fail
    # loudly, and a seventh takes the dependency out of sight (it only warns).

    def sync_session(x_user: str = Header()) -> Iterator[None]:
        scope = session_scope(x_user)
        scope.__enter__()
        yield
        _leave(scope, calls)

    body, errors, warned = _request_with_dependency(sync_session, {"x-user": "bob"})
    assert body == {"session": None}
    if fails:
        assert [type(error) for error in errors] == [RuntimeError]
        assert "sync generator" in str(errors[0])
    else:
        assert errors == []
        assert any("never entered it" in str(w.message) for w in warned)


class _Pause:
    """An awaitable that suspends its coroutine once, with no event loop."""

    def __await__(self) -> Generator[None, None, None]:
        yield


def test_sync_generator_dependency_finishing_a_decorated_call_after_yield_fails_loudly() -> None:
    # The decorated coroutine is entered in the thread-pool call before the
    # yield and finished in the one after it, each in its own throwaway copy of
    # the request's context: the unit's exit is the teardown's, and fails loudly.
    @with_session("agent")
    async def agent() -> None:
        await _Pause()

    def sync_session() -> Iterator[None]:
        call = agent()
        call.send(None)  # inside the unit, paused
        yield
        with contextlib.suppress(StopIteration):
            call.send(None)

    body, errors, _ = _request_with_dependency(sync_session, {})
    assert body == {"session": None}
    assert [type(error) for error in errors] == [RuntimeError]
    assert "sync generator" in str(errors[0])
