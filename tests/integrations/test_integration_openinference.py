"""OpenInference's ``using_session`` is tracectrl's session too, with ``import tracectrl`` alone.

The agents run in a fresh interpreter (``_openinference_agents.py``) so that
nothing of tracectrl but ``import tracectrl`` is loaded: no integration module,
no span processor until the last step.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openinference.instrumentation import using_attributes, using_session

from tracectrl import current_session_id, session_scope, set_session_id

AGENTS = Path(__file__).with_name("_openinference_agents.py")


@pytest.fixture(scope="module")
def agents() -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(AGENTS)], capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr
    report: dict[str, Any] = json.loads(completed.stdout)
    return report


def test_import_tracectrl_does_not_import_opentelemetry(agents: dict[str, Any]) -> None:
    assert agents["opentelemetry_imported"] is False
    assert agents["otel_integration_imported"] is False


def test_using_session_is_the_current_session_and_reaches_the_second_agent(
    agents: dict[str, Any],
) -> None:
    assert agents["before"] is None
    assert agents["in_using_session"] == "oi-session"
    assert agents["call"]["session"] == "oi-session"
    assert agents["call"]["trace_id"] == agents["call"]["caller_trace_id"]
    assert agents["submitted"] == "oi-session"
    assert agents["after"] is None


def test_using_attributes_session_id_is_the_current_session(agents: dict[str, Any]) -> None:
    assert agents["in_using_attributes"] == "attributes-session"
    assert agents["attributes_call"]["session"] == "attributes-session"


def test_tracectrl_scope_inside_using_session_wins_while_in_force(agents: dict[str, Any]) -> None:
    assert agents["scope_inside_using_session"] == "tracectrl-session"
    assert agents["scope_call"]["session"] == "tracectrl-session"
    assert agents["after_scope"] == "oi-session"


def test_span_processor_stamps_the_openinference_session_on_both_agents(
    agents: dict[str, Any],
) -> None:
    assert agents["stamped"] == [["agent-a", "oi-stamped"], ["agent-b", "oi-stamped"]]


def test_invalid_openinference_session_id_is_ignored() -> None:
    with using_session("bad\nid"):
        assert current_session_id() is None
    with using_attributes(session_id="x" * 300):
        assert current_session_id() is None


def test_session_set_with_set_session_id_wins_over_using_session() -> None:
    with using_session("outer-oi"):
        assert current_session_id() == "outer-oi"
        with session_scope("inner"):
            set_session_id("set-inside")
            assert current_session_id() == "set-inside"
        assert current_session_id() == "outer-oi"
