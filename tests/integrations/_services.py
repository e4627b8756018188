"""Real services for the engine tests: a redis-server and a celery worker, on 127.0.0.1 only.

Each is a subprocess in its own process group, started on a free port with a
temporary directory and stopped (SIGTERM, then SIGKILL of its group) when the
test or module that started it ends, even when it fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
HERE = Path(__file__).resolve().parent
# How long a service may take to come up or go down before the test fails.
STARTUP_LIMIT = 60.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_environment(**extra: str) -> dict[str, str]:
    """The environment for a worker: this checkout's source and the test helpers first."""
    env = dict(os.environ)
    path = [str(SRC), str(HERE), *[p for p in sys.path if p]]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
    env.update(extra)
    return env


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop ``process`` and everything in its process group."""
    # SIGTERM to the main process alone: a Celery worker then stops its own children.
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # prefork children left behind, if any
    process.wait()


@contextmanager
def redis_server(tmp_path: Path) -> Iterator[str]:
    """Run a redis-server without persistence on a free 127.0.0.1 port; yield its URL."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.fail("redis-server is not installed: apt-get install -y redis-server")
    port = free_port()
    process = subprocess.Popen(
        [
            executable,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(tmp_path),
            "--protected-mode", "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for_redis(port, process)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(process)


def _wait_for_redis(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_LIMIT
    while True:
        if process.poll() is not None:
            pytest.fail(f"redis-server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                if connection.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"redis-server did not answer on port {port}")
        time.sleep(0.05)  # a readiness poll, not a synchronisation between tests


class Worker(NamedTuple):
    """A running ``celery worker``: its pool, the queue it consumes and its process."""

    pool: str
    queue: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def celery_worker(broker: str, pool: str, tmp_path: Path, **environment: str) -> Iterator[Worker]:
    """Run ``celery worker`` for the tasks in ``_celery_tasks`` with ``pool``; stop it after."""
    queue = f"tracectrl-{pool}-{os.getpid()}-{free_port()}"
    concurrency = "1" if pool == "solo" else "2"
    log = tmp_path / f"worker-{pool}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "_celery_tasks", "worker",
                f"--pool={pool}", f"--concurrency={concurrency}", "-Q", queue,
                "-n", f"{queue}@127.0.0.1", "--without-heartbeat", "--without-gossip",
                "--without-mingle", "--loglevel=INFO",
            ],
            env=child_environment(
                TRACECTRL_TEST_BROKER=broker, TRACECTRL_TEST_WORKER_PROCESS="1", **environment
            ),
            cwd=HERE,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield Worker(pool, queue, process, log)
    finally:
        stop(process)
