"""An agent fans three tools out through Celery; every tool runs in the agent's session and trace.

Run it from the repository root, with the ``celery`` extra installed and
Debian's ``redis-server`` on the PATH::

    python examples/celery_agents.py

The script starts its own ``redis-server`` (on a free 127.0.0.1 port, no
persistence) and a real ``celery worker`` (prefork, two children) for the tasks
in this file, then plays one agent: inside one session it sends three tools to
the worker with ``delay()``, one of which publishes a follow-up task itself.
Each tool reports the session and trace it ran under and its worker process.
The script prints them as a tree of one session, stops the worker and Redis,
and exits with status 1 if any tool saw another session or trace.
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from celery import Celery

from tracectrl import current_session_id, current_trace, inject_trace_headers, session_scope
from tracectrl.integrations.celery import instrument

BROKER = os.environ.get("CELERY_AGENTS_BROKER", "redis://127.0.0.1:1/0")
HERE = Path(__file__).resolve().parent

app = Celery("celery_agents", broker=BROKER, backend=BROKER)
app.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)
instrument()  # in the agent and in the worker: both import this module

Report = dict[str, Optional[str]]


def seen(tool: str) -> Report:
    """What a tool sees where it runs."""
    trace = current_trace()
    return {
        "tool": tool,
        "session": current_session_id(),
        "trace": None if trace is None else trace.trace_id,
        "pid": str(os.getpid()),
    }


@app.task
def search_flights(city: str) -> Report:
    return seen(f"search_flights({city!r})")


@app.task
def check_weather(city: str) -> Report:
    return seen(f"check_weather({city!r})")


@app.task
def book_hotel(city: str) -> tuple[Report, str]:
    # A tool that publishes another task: the follow-up keeps the session too.
    follow_up = send_confirmation.delay(city)
    return seen(f"book_hotel({city!r})"), str(follow_up.id)


@app.task
def send_confirmation(city: str) -> Report:
    return seen(f"send_confirmation({city!r})")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    executable = shutil.which("redis-server")
    if executable is None:
        sys.exit("redis-server is not installed: apt-get install -y redis-server")
    port = free_port()
    process = subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", directory],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                if connection.recv(16).startswith(b"+PONG"):
                    return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def start_worker(broker: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, CELERY_AGENTS_BROKER=broker)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), *sys.path[1:]])
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_agents", "worker", "--pool=prefork",
         "--concurrency=2", "--without-heartbeat", "--without-gossip", "--without-mingle",
         "--loglevel=WARNING"],
        env=env,
        cwd=HERE,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def stop(process: subprocess.Popen[bytes]) -> None:
    # SIGTERM to the main process alone: a Celery worker then stops its children itself.
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run_agent() -> int:
    with session_scope("trip-planner-7") as session_id:
        inject_trace_headers()  # start the agent's trace, which every tool must continue
        trace = current_trace()
        assert trace is not None
        flights = search_flights.delay("Lisbon")
        weather = check_weather.delay("Lisbon")
        hotel = book_hotel.delay("Lisbon")
        hotel_report, follow_up_id = hotel.get(timeout=30)
        reports = [
            flights.get(timeout=30),
            weather.get(timeout=30),
            hotel_report,
            app.AsyncResult(follow_up_id).get(timeout=30),
        ]
    print(f"session {session_id}")
    print(f"└── trace {trace.trace_id}")
    for index, report in enumerate(reports):
        branch = "└──" if index == len(reports) - 1 else "├──"
        print(
            f"    {branch} {report['tool']:<32} worker pid {report['pid']:>6}  "
            f"session {report['session']}  trace {report['trace']}"
        )
    wrong = [r for r in reports if (r["session"], r["trace"]) != (session_id, trace.trace_id)]
    if wrong:
        print(f"FAILED: {len(wrong)} tool(s) ran under another session or trace")
        return 1
    print("every tool ran in the agent's session and trace")
    return 0


def main() -> int:
    with tempfile.TemporaryDirectory() as directory:
        redis, broker = start_redis(directory)
        try:
            app.conf.update(broker_url=broker, result_backend=broker)
            log = Path(directory) / "worker.log"
            worker = start_worker(broker, log)
            try:
                status = run_agent()
            finally:
                stop(worker)
                # Results unsubscribe from Redis when collected: let them, while it is up.
                gc.collect()
                app.backend.result_consumer.stop()
            if status:
                print(log.read_text())
            return status
        finally:
            stop(redis)


if __name__ == "__main__":
    sys.exit(main())
