"""No session id from a request can forge a log line: real servers, a real log handler."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import flask
import httpx
import pytest
from _servers import serving_asgi, serving_wsgi
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tracectrl import current_session_id
from tracectrl.integrations.asgi import SessionMiddleware
from tracectrl.integrations.logging import SessionLogFilter
from tracectrl.integrations.wsgi import SessionMiddleware as WSGISessionMiddleware

FORGED_TAIL = "CRITICAL session=admin payment approved"
# Each would make one log line read as two, or as something it does not hold.
HOSTILE_CHARACTERS = ["\u2028", "\u2029", "\u0085", "\u202e", "\u200b", "\ufeff", "\U000e0041"]


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """A logger whose handler writes ``session=<id> <message>`` lines into a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SessionLogFilter())
    handler.setFormatter(logging.Formatter("session=%(session_id)s %(message)s"))
    logger = logging.getLogger("tracectrl.tests.audit")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def _log_one_line() -> str:
    logging.getLogger("tracectrl.tests.audit").info("handled request")
    return str(current_session_id())


def _starlette_app() -> Starlette:
    async def handle(request: Request) -> PlainTextResponse:
        return PlainTextResponse(_log_one_line())

    return Starlette(routes=[Route("/", handle)], middleware=[Middleware(SessionMiddleware)])


def _flask_app() -> flask.Flask:
    app = flask.Flask("audited")
    app.get("/")(_log_one_line)
    app.wsgi_app = WSGISessionMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    return app


def _hostile_requests() -> list[dict[str, str]]:
    requests = []
    for character in HOSTILE_CHARACTERS:
        encoded = quote(f"victim{character}{FORGED_TAIL}", safe="")
        requests.append({"X-TraceCtrl-Session": encoded})
        requests.append({"baggage": f"session.id={encoded}"})
    return requests


def _assert_one_clean_line_per_request(output: str, sessions: list[str], count: int) -> None:
    lines = output.splitlines()  # splits on U+2028, U+2029 and U+0085 too
    assert len(lines) == count, lines
    assert all(line.isprintable() for line in lines), lines
    assert not any(FORGED_TAIL in line for line in lines), lines
    for session in sessions:
        assert str(uuid.UUID(session)) == session  # a new session in place of the forged one


@pytest.mark.parametrize("server", ["asgi", "wsgi"])
def test_session_ids_with_line_separators_or_invisible_characters_never_reach_a_log_line(
    server: str, log_lines: io.StringIO
) -> None:
    hostile = _hostile_requests()
    serving = serving_asgi(_starlette_app()) if server == "asgi" else serving_wsgi(_flask_app())
    with serving as url, httpx.Client() as client:
        sessions = [client.get(url, headers=headers).text for headers in hostile]
    _assert_one_clean_line_per_request(log_lines.getvalue(), sessions, len(hostile))


def test_a_raw_space_inside_the_session_header_is_read_as_a_space(log_lines: io.StringIO) -> None:
    with serving_asgi(_starlette_app()) as url, httpx.Client() as client:
        session = client.get(url, headers={"X-TraceCtrl-Session": "user 7"}).text
    assert session == "user 7"
    assert log_lines.getvalue() == "session=user 7 handled request\n"
