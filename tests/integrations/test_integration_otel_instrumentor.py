"""``opentelemetry-instrument`` switches zero-code propagation on through the entry point.

The entry point comes from the installed metadata of tracectrl (it is
declared in ``pyproject.toml``), so these tests need the project installed,
editable or not, from a checkout that declares it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from tracectrl.integrations import threading as zero_code
from tracectrl.integrations.otel_threading import ContextPropagationInstrumentor

APP = Path(__file__).with_name("_auto_instrumented_app.py")
TESTS = Path(__file__).resolve().parents[1]
COMMAND = Path(sys.executable).with_name("opentelemetry-instrument")


def _instrumentors() -> dict[str, str]:
    group = entry_points()
    selected = (
        group.select(group="opentelemetry_instrumentor")  # type: ignore[attr-defined, unused-ignore]
        if hasattr(group, "select")
        else group.get("opentelemetry_instrumentor", [])  # type: ignore[attr-defined, unused-ignore]
    )
    return {entry_point.name: entry_point.value for entry_point in selected}


def run_app(**environment: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_PROPAGATORS": "tracecontext,baggage,tracectrl_session",
        "PYTHONPATH": os.pathsep.join([str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])]),
        **environment,
    }
    completed = subprocess.run(
        [str(COMMAND), sys.executable, str(APP)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return report


def test_tracectrl_threading_is_registered_as_an_opentelemetry_instrumentor() -> None:
    assert _instrumentors().get("tracectrl_threading") == (
        "tracectrl.integrations.otel_threading:ContextPropagationInstrumentor"
    ), "the installed tracectrl metadata lacks the entry point: reinstall the project"


def test_opentelemetry_instrument_carries_the_session_into_a_library_pool_and_threads() -> None:
    report = run_app()
    assert report == {"instrumented": True, "seen": ["auto-instrumented"]}


def test_disabling_the_instrumentor_leaves_library_threads_without_the_session() -> None:
    report = run_app(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="tracectrl_threading")
    assert report == {"instrumented": False, "seen": ["None"]}


def test_instrumentor_switches_the_patch_on_and_off() -> None:
    instrumentor = ContextPropagationInstrumentor()
    instrumentor.instrument()
    try:
        assert zero_code.is_instrumented()
    finally:
        instrumentor.uninstrument()
    assert not zero_code.is_instrumented()


@pytest.mark.parametrize("module", ["tracectrl", "tracectrl.integrations.threading"])
def test_core_modules_do_not_import_opentelemetry(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert completed.stdout.strip() == "[]"
