"""Real servers on 127.0.0.1 on free ports, started and stopped by the test that uses them."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Optional

import uvicorn
from werkzeug.serving import BaseWSGIServer, make_server

from tracectrl.integrations.asgi import ASGIApp

# Safety nets only: a healthy run never waits this long, a broken one fails instead of hanging.
STARTUP_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 30.0


class _Server(uvicorn.Server):
    """A uvicorn server that reports, through an Event, when it is listening or has given up."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.settled = threading.Event()

    async def startup(self, sockets: Optional[list[socket.socket]] = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.settled.set()


@contextmanager
def serving_asgi(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port of 127.0.0.1; yield its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = _Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        assert server.settled.wait(STARTUP_TIMEOUT), "uvicorn did not start"
        assert server.started, "uvicorn failed to start"
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT)
        assert not thread.is_alive(), "uvicorn did not stop"


@contextmanager
def serving_wsgi(
    app: Callable[..., object], *, worker_threads: Optional[int] = None
) -> Iterator[str]:
    """Serve ``app`` with a Werkzeug server on a free port of 127.0.0.1; yield its base URL.

    By default it is ``make_server(threaded=True)``: a new thread per
    connection.  With ``worker_threads`` a fixed pool of that many threads
    serves every request, as production servers do (gunicorn's gthread,
    waitress, mod_wsgi), so one thread handles many requests in turn.
    """
    if worker_threads is None:
        server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    else:
        server = _PooledWSGIServer("127.0.0.1", 0, app, worker_threads)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="werkzeug", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(SHUTDOWN_TIMEOUT)
        assert not thread.is_alive(), "werkzeug did not stop"


class _PooledWSGIServer(BaseWSGIServer):
    """A Werkzeug server whose requests run on a fixed pool of reused threads.

    The pool's threads keep their own context from one request to the next
    (``ThreadPoolExecutor`` copies no context), so whatever a request leaves
    behind would be seen by the next one on that thread.
    """

    multithread = True

    def __init__(self, host: str, port: int, app: Callable[..., object], threads: int) -> None:
        super().__init__(host, port, app)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wsgi-worker")

    def process_request(self, request: Any, client_address: Any) -> None:
        self.pool.submit(self._serve, request, client_address)

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        self.pool.shutdown(wait=True)


class ArrivalGate:
    """Lets handlers wait, on the server's event loop, until ``expected`` requests are inside."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.arrived = 0
        self._all_in: Optional[asyncio.Event] = None

    async def arrive_and_wait(self) -> None:
        if self._all_in is None:
            self._all_in = asyncio.Event()  # created on the server's loop
        self.arrived += 1
        if self.arrived >= self.expected:
            self._all_in.set()
        await asyncio.wait_for(self._all_in.wait(), STARTUP_TIMEOUT)
