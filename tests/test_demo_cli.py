"""The demo's command line: ``--help`` explains it and its options instead of running it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "two_agents.py"
RUN_DEMO = ROOT / "examples" / "run_demo.sh"


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_demo_help_lists_its_options_and_runs_nothing() -> None:
    for flag in ("--help", "-h"):
        shown = run([sys.executable, str(DEMO), flag])
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith("usage: two_agents.py [-h] [--otlp URL]")
        assert "--otlp URL" in shown.stdout
        assert "http://127.0.0.1:6006" in shown.stdout
        assert "OK:" not in shown.stdout  # no agent was started, no conversation run


def test_demo_refuses_an_unknown_option_with_its_usage() -> None:
    refused = run([sys.executable, str(DEMO), "--no-such-option"])
    assert refused.returncode == 2
    assert "usage: two_agents.py" in refused.stderr
    assert "unrecognized arguments: --no-such-option" in refused.stderr


def test_demo_script_help_lists_the_options_before_installing_anything() -> None:
    shown = run(["bash", str(RUN_DEMO), "--otlp", "http://127.0.0.1:6006", "--help"])
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("usage: bash examples/run_demo.sh [-h] [--otlp URL]")
    assert "--otlp URL" in shown.stdout
    assert "OK:" not in shown.stdout
