"""The WSGI middleware: each request, body included, runs in its caller's session, then none."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, Callable, Optional

import flask
import pytest
from _servers import serving_wsgi

from tracectrl import current_session_id, session_scope
from tracectrl._trace import current_trace
from tracectrl.integrations.requests import PropagatingSession
from tracectrl.integrations.wsgi import SessionMiddleware

Environ = dict[str, Any]
StartResponse = Callable[..., object]
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def _is_uuid(text: object) -> bool:
    try:
        return str(uuid.UUID(str(text))) == text
    except ValueError:
        return False


class _ThreadProbe:
    """Outermost WSGI layer: records the session the worker thread holds before each request."""

    def __init__(self, app: Callable[[Environ, StartResponse], Iterable[bytes]]) -> None:
        self.app = app
        self.seen: list[tuple[int, Optional[str]]] = []

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        self.seen.append((threading.get_ident(), current_session_id()))
        return self.app(environ, start_response)


def _flask_app() -> flask.Flask:
    app = flask.Flask("service")

    @app.get("/")
    def whoami() -> dict[str, object]:
        trace = current_trace()
        return {
            "session": current_session_id(),
            "trace_id": None if trace is None else trace.trace_id,
            "thread": threading.get_ident(),
        }

    @app.get("/stream")
    def stream() -> flask.Response:
        def body() -> Iterator[str]:
            for _ in range(3):
                yield f"{current_session_id()}\n"

        return flask.Response(body(), mimetype="text/plain")

    app.wsgi_app = SessionMiddleware(app.wsgi_app)
    return app


def test_flask_test_client_requests_see_their_session_and_leave_none_behind() -> None:
    client = _flask_app().test_client()
    first = client.get("/", headers={"X-TraceCtrl-Session": "caller-1"}).get_json()
    assert current_session_id() is None  # the test client runs the app in this thread
    second = client.get("/").get_json()
    assert current_session_id() is None
    third = client.get("/", headers={"traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-01"})

    assert first["session"] == "caller-1"
    assert _is_uuid(second["session"])
    assert third.get_json()["trace_id"] == TRACE_ID
    assert current_trace() is None


def test_flask_test_client_streams_the_body_in_the_callers_session() -> None:
    client = _flask_app().test_client()
    response = client.get("/stream", headers={"X-TraceCtrl-Session": "streamer"})
    assert response.get_data(as_text=True) == "streamer\nstreamer\nstreamer\n"
    assert current_session_id() is None


def test_threaded_server_requests_see_their_own_session() -> None:
    probe = _ThreadProbe(_flask_app())
    with serving_wsgi(probe) as url, PropagatingSession() as http:
        with session_scope("first-caller"):
            first = http.get(url).json()
        anonymous = http.get(url).json()
    assert [session for _, session in probe.seen] == [None, None]
    assert first["session"] == "first-caller"
    assert _is_uuid(anonymous["session"])


def test_reused_server_thread_carries_no_session_into_the_next_request() -> None:
    probe = _ThreadProbe(_flask_app())
    with serving_wsgi(probe, worker_threads=1) as url, PropagatingSession() as http:
        with session_scope("first-caller"):
            first = http.get(url).json()
        with session_scope("second-caller"):
            streamed = http.get(f"{url}/stream").text
        anonymous = http.get(url).json()

    # One worker thread served all three requests, one after the other.
    assert {thread for thread, _ in probe.seen} == {first["thread"], anonymous["thread"]}
    assert len(probe.seen) == 3
    assert [session for _, session in probe.seen] == [None, None, None]
    assert first["session"] == "first-caller"
    assert streamed == "second-caller\n" * 3
    assert _is_uuid(anonymous["session"])
    assert anonymous["session"] not in ("first-caller", "second-caller")


def test_body_steps_and_close_run_in_the_session_and_nothing_between() -> None:
    events: list[tuple[str, Optional[str]]] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            for step in ("one", "two"):
                events.append((step, current_session_id()))
                yield step.encode()
        finally:
            events.append(("close", current_session_id()))

    environ: Environ = {"HTTP_X_TRACECTRL_SESSION": "late-reader"}
    body = SessionMiddleware(app)(environ, lambda status, headers, exc_info=None: None)
    assert current_session_id() is None  # __call__ returned: the thread holds nothing
    iterator = iter(body)
    assert next(iterator) == b"one"
    assert current_session_id() is None
    assert next(iterator) == b"two"
    with session_scope("server-thread"):
        body.close()
        assert current_session_id() == "server-thread"

    assert events == [("one", "late-reader"), ("two", "late-reader"), ("close", "late-reader")]


def test_list_body_is_returned_as_it_is() -> None:
    response = [b"done"]

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        return response

    body = SessionMiddleware(app)({}, lambda status, headers, exc_info=None: None)
    assert body is response


def test_session_is_restored_when_the_application_raises() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        raise LookupError(current_session_id())

    with session_scope("outer"):
        with pytest.raises(LookupError, match="doomed"):
            SessionMiddleware(app)({"HTTP_X_TRACECTRL_SESSION": "doomed"}, print)
        assert current_session_id() == "outer"


@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param("abc\r\nX-Injected: 1", id="CRLF"),
        pytest.param("abc\x00def", id="NUL"),
        pytest.param("x" * 10_240, id="10-KB"),
        pytest.param("abc%0D%0Adef", id="encoded-CRLF"),
    ],
)
def test_hostile_session_values_are_ignored(hostile: str) -> None:
    client = _flask_app().test_client()
    environ = {"HTTP_X_TRACECTRL_SESSION": hostile, "HTTP_BAGGAGE": f"session.id={hostile}"}
    response = client.get("/", environ_overrides=environ)
    assert _is_uuid(response.get_json()["session"])
    assert all(hostile not in value for value in response.headers.values())


def test_requests_session_replaces_stale_fields_and_keeps_other_baggage() -> None:
    received: list[dict[str, str]] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        received.append({k: v for k, v in environ.items() if k.startswith("HTTP_")})
        start_response("200 OK", [])
        return [b""]

    with serving_wsgi(app) as url, PropagatingSession() as http, session_scope("sender"):
        http.get(url, headers={"Baggage": "team=blue", "TraceState": "stale=1"})

    headers = received[0]
    assert headers["HTTP_X_TRACECTRL_SESSION"] == "sender"
    assert headers["HTTP_BAGGAGE"] == "session.id=sender,team=blue"
    assert "HTTP_TRACESTATE" not in headers
    assert headers["HTTP_TRACEPARENT"].startswith("00-")
