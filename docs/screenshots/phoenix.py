"""Remake the Phoenix screenshots of the "Seeing sessions" page.

    python3 docs/screenshots/phoenix.py

Starts Arize Phoenix on free ports of 127.0.0.1 (from the venv that
``tests/phoenix/setup_phoenix.sh`` makes, with a temporary working directory),
runs the demo with ``--otlp`` against it, waits until Phoenix shows its three
conversations, then saves two PNGs under ``docs/pages/images/`` with headless
Chromium from Debian's packages (``apt-get install -y chromium``): the
project's Sessions tab, and one session with its turns.  Phoenix is stopped
however the script ends.  Standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "pages" / "images"
PROJECT = "tracectrl-demo"  # the project examples/two_agents.py exports to
CONVERSATIONS, TURNS = 3, 2  # what the demo runs
CHROMIUM_FLAGS = [
    # As root in a container, with no GPU and no network beyond 127.0.0.1.
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1440,900",
    # Let the single-page app fetch and render before the picture is taken.
    "--virtual-time-budget=15000",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def answers(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bool(response.status == 200)


def wait_for(what: str, ready: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if ready():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"gave up waiting for {what} after {seconds:.0f} s")
        time.sleep(0.5)


def chromium() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "chromium"], check=True)
        return "chromium"
    sys.exit("needs Debian's chromium: apt-get install -y chromium")


def screenshot(browser: str, url: str, png: Path, profile: Path) -> None:
    subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}", url],
        check=True,
        capture_output=True,
        timeout=120,
    )
    print(f"saved {png.relative_to(ROOT)}")


def main() -> None:
    browser = chromium()
    setup = subprocess.run(
        ["bash", str(ROOT / "tests" / "phoenix" / "setup_phoenix.sh")],
        check=True,
        capture_output=True,
        text=True,
    )
    venv = Path(setup.stdout.strip().splitlines()[-1])
    with tempfile.TemporaryDirectory() as scratch:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PHOENIX_")}
        environment.update(
            PHOENIX_HOST="127.0.0.1",
            PHOENIX_PORT=str(port),
            PHOENIX_GRPC_PORT=str(free_port()),
            PHOENIX_WORKING_DIR=scratch,
            PHOENIX_TELEMETRY_ENABLED="false",
        )
        with open(Path(scratch) / "phoenix.log", "wb") as log:
            server = subprocess.Popen(
                [str(venv / "bin" / "python"), str(ROOT / "tests/phoenix/serve_on_loopback.py")],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for("Phoenix to start", lambda: answers(f"{url}/healthz"), 300)
            subprocess.run(
                ["bash", str(ROOT / "examples" / "run_demo.sh"), "--otlp", url], check=True
            )

            def all_turns_shown() -> bool:
                sessions = get(f"{url}/v1/projects/{PROJECT}/sessions")["data"]
                return len(sessions) == CONVERSATIONS and all(
                    len(s["traces"]) == TURNS for s in sessions
                )

            wait_for("Phoenix to show every turn", all_turns_shown, 60)
            project_id = get(f"{url}/v1/projects/{PROJECT}")["data"]["id"]
            first = get(f"{url}/v1/projects/{PROJECT}/sessions?limit=1")["data"][0]
            IMAGES.mkdir(parents=True, exist_ok=True)
            profile = Path(scratch) / "chromium"
            screenshot(
                browser,
                f"{url}/projects/{project_id}/sessions",
                IMAGES / "phoenix-sessions.png",
                profile,
            )
            screenshot(
                browser,
                f"{url}/projects/{project_id}/sessions/{first['id']}",
                IMAGES / "phoenix-session-turns.png",
                profile,
            )
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


if __name__ == "__main__":
    main()
