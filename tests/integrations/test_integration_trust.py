"""The middlewares' trust boundary and options, on real servers on 127.0.0.1."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

import flask
import httpx
import pytest
from _servers import serving_asgi, serving_wsgi
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tracectrl import _trust, current_session_id, current_trace, session_scope
from tracectrl.context import (
    SESSION_HEADER,
    SESSION_KEY_ENV_VAR,
    SIGNATURE_HEADER,
    propagation_headers,
)
from tracectrl.integrations.asgi import SessionMiddleware
from tracectrl.integrations.httpx import add_propagation_headers
from tracectrl.integrations.requests import PropagatingSession
from tracectrl.integrations.wsgi import SessionMiddleware as WSGISessionMiddleware

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
KEY = "shared-agent-key"
PATHS = ["/", "/internal", "/health"]


def _is_uuid(text: object) -> bool:
    try:
        return str(uuid.UUID(str(text))) == text
    except ValueError:
        return False


def _state() -> dict[str, Any]:
    trace = current_trace()
    return {"session": current_session_id(), "trace_id": None if trace is None else trace.trace_id}


def _asgi_app(**options: Any) -> SessionMiddleware:
    async def handle(request: Request) -> JSONResponse:
        return JSONResponse(_state())

    app = Starlette(routes=[Route(path, handle) for path in PATHS])
    return SessionMiddleware(app, **options)


def _wsgi_app(**options: Any) -> WSGISessionMiddleware:
    app = flask.Flask("trusting")
    for path in PATHS:
        app.add_url_rule(path, path, _state)
    return WSGISessionMiddleware(app.wsgi_app, **options)


@contextmanager
def _serving(server: str, **options: Any) -> Iterator[str]:
    if server == "asgi":
        with serving_asgi(_asgi_app(**options)) as url:
            yield url
    else:
        with serving_wsgi(_wsgi_app(**options)) as url:
            yield url


SERVERS = pytest.mark.parametrize("server", ["asgi", "wsgi"])
CLAIM = {"traceparent": TRACEPARENT, SESSION_HEADER: "alice"}


def _get(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client() as client:
        response = client.get(url, headers=headers)
    response.raise_for_status()
    return response


@SERVERS
def test_trust_callable_sees_the_request_and_only_trusted_paths_set_the_session(
    server: str,
) -> None:
    requests: list[tuple[str, str]] = []

    def trusted(request: Any) -> bool:
        if server == "asgi":
            client, path = request["client"][0], request["path"]
        else:
            client, path = request["REMOTE_ADDR"], request["PATH_INFO"]
        requests.append((client, path))
        return bool(path == "/internal")

    with _serving(server, trust=trusted) as url:
        internal = _get(f"{url}/internal", CLAIM).json()
        public = _get(f"{url}/", CLAIM).json()
    assert requests == [("127.0.0.1", "/internal"), ("127.0.0.1", "/")]
    assert internal == {"session": "alice", "trace_id": TRACE_ID}
    assert _is_uuid(public["session"]), "an untrusted caller gets a new session"
    assert public["trace_id"] == TRACE_ID, "and still continues its trace"


@SERVERS
def test_untrusted_callers_start_a_new_trace_when_told_to(server: str) -> None:
    with _serving(server, trust=lambda request: False, continue_untrusted_trace=False) as url:
        body = _get(url, CLAIM).json()
    assert _is_uuid(body["session"])
    assert body["trace_id"] not in (None, TRACE_ID)


@SERVERS
def test_a_keyed_server_adopts_sessions_signed_by_the_client_hooks_only(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _serving(server, key=[KEY, "retired-key"]) as url:
        monkeypatch.setenv(SESSION_KEY_ENV_VAR, KEY)
        with (
            session_scope("alice"),
            httpx.Client(event_hooks={"request": [add_propagation_headers]}) as client,
        ):
            signed = client.get(url).json()
            # A stale signature set by the caller is replaced, not sent on.
            resigned = client.get(url, headers={SIGNATURE_HEADER: "sha256=" + "0" * 64}).json()
        monkeypatch.delenv(SESSION_KEY_ENV_VAR)
        forged = _get(url, CLAIM).json()
        wrong_signature = _get(url, {**CLAIM, SIGNATURE_HEADER: "sha256=" + "0" * 64}).json()
    assert signed["session"] == resigned["session"] == "alice"
    assert _is_uuid(forged["session"])
    assert forged["trace_id"] == TRACE_ID
    assert _is_uuid(wrong_signature["session"])


@pytest.mark.parametrize("client", ["httpx", "requests"])
def test_a_signature_the_caller_made_with_key_survives_the_client_integrations(
    client: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SESSION_KEY_ENV_VAR, raising=False)  # the hooks sign nothing themselves

    def send(url: str, headers: dict[str, str]) -> dict[str, Any]:
        if client == "httpx":
            with httpx.Client(event_hooks={"request": [add_propagation_headers]}) as http:
                return dict(http.get(url, headers=headers).json())
        with PropagatingSession() as session:
            return dict(session.get(url, headers=headers).json())

    with _serving("asgi", key=KEY) as url:
        with session_scope("alice"):
            signed = send(url, propagation_headers(key=KEY))
        with session_scope("bob"):
            bobs_signature = propagation_headers(key=KEY)[SIGNATURE_HEADER]
        with session_scope("alice"):
            # A signature made for another session is sent on too, and refused by the receiver.
            misplaced = send(url, {SIGNATURE_HEADER: bobs_signature})
    assert signed["session"] == "alice"
    assert _is_uuid(misplaced["session"])


@SERVERS
def test_the_server_reads_its_key_from_the_environment(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SESSION_KEY_ENV_VAR, KEY)
    with _serving(server) as url:
        with (
            session_scope("alice"),
            httpx.Client(event_hooks={"request": [add_propagation_headers]}) as client,
        ):
            signed = client.get(url).json()
        forged = _get(url, CLAIM).json()
    assert signed["session"] == "alice"
    assert _is_uuid(forged["session"])


@SERVERS
def test_excluded_paths_run_with_no_continued_session(server: str) -> None:
    with _serving(server, exclude_paths=["/health"]) as url:
        health = _get(f"{url}/health", CLAIM).json()
        other = _get(f"{url}/", CLAIM).json()
    assert health == {"session": None, "trace_id": None}
    assert other == {"session": "alice", "trace_id": TRACE_ID}


@SERVERS
def test_the_session_is_echoed_in_the_response_only_when_asked(server: str) -> None:
    with _serving(server, echo_session=True) as url:
        claimed = _get(url, {SESSION_HEADER: "caf%C3%A9 7"})
        fresh = _get(url)
    assert claimed.headers[SESSION_HEADER] == "caf%C3%A9%207"
    assert claimed.json()["session"] == "café 7"
    assert fresh.headers[SESSION_HEADER] == fresh.json()["session"]
    with _serving(server) as url:
        assert SESSION_HEADER not in _get(url, CLAIM).headers


@SERVERS
def test_an_untrusted_session_is_never_echoed(server: str) -> None:
    with _serving(server, echo_session=True, trust=lambda request: False) as url:
        response = _get(url, CLAIM)
    assert response.headers[SESSION_HEADER] == response.json()["session"]
    assert response.headers[SESSION_HEADER] != "alice"


@pytest.mark.parametrize("middleware", [SessionMiddleware, WSGISessionMiddleware])
def test_a_middleware_warns_once_when_the_session_env_var_is_set(
    middleware: Callable[..., object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_trust, "_checked_session_env", False)
    monkeypatch.setenv("TRACECTRL_SESSION_ID", "one-for-everyone")
    with pytest.warns(RuntimeWarning, match="TRACECTRL_SESSION_ID is set"):
        middleware(_state)


@pytest.mark.parametrize("middleware", [SessionMiddleware, WSGISessionMiddleware])
def test_a_single_string_as_exclude_paths_is_refused(middleware: Callable[..., object]) -> None:
    with pytest.raises(TypeError, match="list of paths, got the string '/health'"):
        middleware(_state, exclude_paths="/health")
