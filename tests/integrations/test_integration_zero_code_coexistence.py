"""The zero-code patch next to OpenTelemetry's and Sentry's threading patches.

Each scenario runs in a fresh interpreter (``_coexistence_app.py``): Sentry's
integration stays installed for the life of its process.  Work runs in a
library's pool (4 tasks) and in its threads (2 threads and a Timer), each
starting one OpenTelemetry span.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

APP = Path(__file__).with_name("_coexistence_app.py")
WORK_ITEMS = 7
OUR_SEAMS = slice(3, 6)  # the work-item classes and the thread-start function


def run(*steps: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(APP), *steps], capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr
    report: dict[str, Any] = json.loads(completed.stdout)
    assert report["errors"] == []
    return report


def carries_everything(step: dict[str, Any]) -> bool:
    label = step["step"]
    return (
        step["sessions"] == [f"session-{label}"]
        and step["spans_are_callers"] == [True] * WORK_ITEMS
        and step["structlog"] == [f"request-{label}"]
        and step["sentry"] == [label]
        and step["openinference"] == [f"oi-{label}"]
        # Exactly one span per work item, each a child of the caller's: nothing doubled.
        and step["task_spans"] == WORK_ITEMS
        and step["task_spans_under_caller"] == WORK_ITEMS
    )


@pytest.mark.parametrize(
    "steps",
    [
        ("otel+", "ours+", "ours-", "otel-"),
        ("otel+", "ours+", "otel-", "ours-"),
        ("ours+", "otel+", "ours-", "otel-"),
        ("ours+", "otel+", "otel-", "ours-"),
    ],
)
def test_with_opentelemetry_instrumentor_in_any_order_nothing_is_lost_and_originals_come_back(
    steps: tuple[str, ...],
) -> None:
    report = run(*steps)
    both_installed = report["steps"][1]
    assert carries_everything(both_installed)
    last_removed = report["steps"][3]
    assert last_removed["sessions"] == [""]
    assert last_removed["spans_are_callers"] == [False] * WORK_ITEMS
    assert report["originals_back"] == [True] * 6


@pytest.mark.parametrize("steps", [("sentry+", "ours+", "ours-"), ("ours+", "sentry+", "ours-")])
def test_with_sentry_integration_in_any_order_nothing_is_lost_and_ours_comes_off(
    steps: tuple[str, ...],
) -> None:
    report = run(*steps)
    both_installed = report["steps"][1]
    assert carries_everything(both_installed)
    sentry_alone = report["steps"][2]
    assert sentry_alone["sentry"] == ["ours-"]  # Sentry's patch still works without ours
    assert sentry_alone["sessions"] == [""]
    # Sentry never removes its patch of submit and start; every seam of ours is back.
    assert report["originals_back"][OUR_SEAMS] == [True] * 3


def test_each_patch_alone_carries_only_its_own_state() -> None:
    """What the comparison table on the "Zero-code propagation" page states."""
    ours = run("ours+")["steps"][0]
    otel = run("otel+")["steps"][0]
    sentry = run("sentry+")["steps"][0]
    assert carries_everything(ours)
    assert otel["spans_are_callers"] == [True] * WORK_ITEMS
    assert otel["openinference"] == ["oi-otel+"]  # it lives in OpenTelemetry's context
    # tracectrl's own session is lost; what current_session_id() finds there
    # instead is OpenInference's, which OpenTelemetry's context carried.
    assert otel["sessions"] == ["oi-otel+"]
    assert (otel["structlog"], otel["sentry"]) == ([""], [""])
    assert sentry["sentry"] == ["sentry+"]
    assert sentry["spans_are_callers"] == [False] * WORK_ITEMS
    assert (sentry["sessions"], sentry["structlog"], sentry["openinference"]) == ([""], [""], [""])
