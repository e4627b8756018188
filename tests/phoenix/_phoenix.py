"""Starting a real Arize Phoenix server on 127.0.0.1, for the end-to-end session tests.

Phoenix lives in its own venv (``.venv/phoenix-<version>``), made on first use
by ``tests/phoenix/setup_phoenix.sh`` and reused after; ``$TRACECTRL_PHOENIX_VENV``
names another one.  :func:`serving_phoenix` starts ``phoenix serve`` on free
127.0.0.1 ports (HTTP and OTLP/gRPC) with a fresh working directory, waits
until it answers, and stops it after the test, whether the test passed or not.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
#: How long Phoenix may take to start: it runs its database migrations first.
STARTUP_SECONDS = 180


@dataclass(frozen=True)
class Phoenix:
    """A running Phoenix: its base URL (OTLP/HTTP and REST) and its log file."""

    url: str
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def phoenix_venv() -> Path:
    """The Phoenix venv: ``$TRACECTRL_PHOENIX_VENV``, else the cached one, made if missing."""
    configured = os.environ.get("TRACECTRL_PHOENIX_VENV")
    if configured:
        return Path(configured)
    setup = subprocess.run(
        ["bash", str(HERE / "setup_phoenix.sh")], capture_output=True, text=True, check=False
    )
    if setup.returncode != 0:
        pytest.fail(f"could not install Phoenix with {HERE / 'setup_phoenix.sh'}:\n{setup.stderr}")
    return Path(setup.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@contextmanager
def serving_phoenix(tmp_path: Path) -> Iterator[Phoenix]:
    """Run a fresh ``phoenix serve`` on 127.0.0.1, working in ``tmp_path``; stop it after."""
    venv = phoenix_venv()
    port, grpc_port = free_port(), free_port()
    working_dir = tmp_path / "phoenix"
    working_dir.mkdir()
    log = tmp_path / "phoenix.log"
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PHOENIX_", "OTEL_")) and key != "PYTHONPATH"
    }
    environment.update(
        PHOENIX_HOST="127.0.0.1",
        PHOENIX_PORT=str(port),
        PHOENIX_GRPC_PORT=str(grpc_port),
        PHOENIX_WORKING_DIR=str(working_dir),
        PHOENIX_TELEMETRY_ENABLED="false",
    )
    with log.open("wb") as output:
        server = subprocess.Popen(
            [str(venv / "bin" / "python"), str(HERE / "serve_on_loopback.py")],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    running = Phoenix(f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _answers(running.url):
            if server.poll() is not None:
                pytest.fail(f"phoenix serve exited with {server.returncode}:\n{running.log_tail()}")
            if time.monotonic() > deadline:
                late = f"phoenix serve did not answer in {STARTUP_SECONDS} s"
                pytest.fail(f"{late}:\n{running.log_tail()}")
            time.sleep(0.5)  # polling an external server's readiness; nothing to wait on
        yield running
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
