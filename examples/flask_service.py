"""Agent B as a Flask service behind the WSGI ``SessionMiddleware``, called over real HTTP.

Agent B runs on Werkzeug's threaded server on a free port of 127.0.0.1; agent A
calls it with tracectrl's ``PropagatingSession`` from several threads at once.
The script asserts that:

* every request, and every chunk of a streamed response, is handled in its
  own caller's session;
* a request with no session header gets a new session, never a previous one;
* a hostile session header is ignored and not echoed;
* nothing leaks into agent A's threads.

Run it with ``python examples/flask_service.py``; it exits non-zero on the
first failed check.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator

import flask
from werkzeug.serving import make_server

from tracectrl import current_session_id, session_scope
from tracectrl.executors import ContextThreadPoolExecutor
from tracectrl.integrations.requests import PropagatingSession
from tracectrl.integrations.wsgi import SessionMiddleware

CONVERSATIONS = 12

app = flask.Flask("agent_b")


@app.get("/answer")
def answer() -> dict[str, object]:
    """Agent B's endpoint: no tracectrl code, yet it knows the caller's session."""
    return {"session": current_session_id()}


@app.get("/stream")
def stream() -> flask.Response:
    """A streamed answer: each token is produced after the view returned."""

    def tokens() -> Iterator[str]:
        for token in ("thinking", "about", "it"):
            yield f"{token} {current_session_id()}\n"

    return flask.Response(tokens(), mimetype="text/plain")


app.wsgi_app = SessionMiddleware(app.wsgi_app)


def conversation(base_url: str, number: int) -> None:
    with PropagatingSession() as http, session_scope(f"conversation-{number}") as session_id:
        assert http.get(f"{base_url}/answer").json() == {"session": session_id}
        lines = http.get(f"{base_url}/stream").text.splitlines()
        assert lines == [f"{token} {session_id}" for token in ("thinking", "about", "it")]
    assert current_session_id() is None


def main() -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="agent-b", daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{server.server_port}"
    try:
        with ContextThreadPoolExecutor(max_workers=4) as pool:
            for future in [pool.submit(conversation, base_url, n) for n in range(CONVERSATIONS)]:
                future.result()

        with PropagatingSession() as http:
            first = http.get(f"{base_url}/answer").json()["session"]
            second = http.get(f"{base_url}/answer").json()["session"]
            assert None not in (first, second), (first, second)
            assert first != second, first
            assert not first.startswith("conversation-"), first

            hostile = http.get(f"{base_url}/answer", headers={"X-TraceCtrl-Session": "a%00b"})
            assert hostile.json()["session"] not in ("a%00b", "a\x00b"), hostile.json()
            assert "a%00b" not in str(hostile.headers)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(30)
    assert current_session_id() is None, "a session leaked into agent A"
    print(f"flask_service: ok ({CONVERSATIONS} conversations, each in its own session)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
