"""End to end: two agents over HTTP, exported to a real Phoenix, show up as sessions of turns.

Agent A and Agent B (``agents.py``) run in processes of their own on
127.0.0.1, each with the OpenTelemetry SDK and an OTLP/HTTP exporter pointed at
a fresh ``phoenix serve``.  What Phoenix then shows, read back through its REST
API, is what a user would see in its Sessions tab.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from _phoenix import Phoenix

pytestmark = pytest.mark.phoenix

AGENTS = str(Path(__file__).resolve().parent / "agents.py")
DEMO = str(Path(__file__).resolve().parents[2] / "examples" / "two_agents.py")
CONVERSATIONS = 4
TURNS = 3
#: Per turn: A's turn span and its client span; B's server span and its handler's span.
SPANS_PER_TURN = 4
#: How long Phoenix may take to make the exported spans readable (it inserts in batches).
INGEST_SECONDS = 60


def get(phoenix: Phoenix, path: str, **query: Any) -> Any:
    url = f"{phoenix.url}{path}?{urllib.parse.urlencode(query, doseq=True)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def every_page(phoenix: Phoenix, path: str, limit: int) -> list[dict[str, Any]]:
    """All items of a paged Phoenix listing, following ``next_cursor`` to the end."""
    items: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": limit}
    while True:
        page = get(phoenix, path, **query)
        items += page["data"]
        if not page["next_cursor"]:
            return items
        query["cursor"] = page["next_cursor"]


def spans_of(phoenix: Phoenix, project: str) -> list[dict[str, Any]]:
    """Every span of ``project``, in OTLP form, with its attributes as a plain dict."""
    try:
        spans = every_page(phoenix, f"/v1/projects/{project}/spans/otlpv1", limit=50)
    except urllib.error.HTTPError as error:
        if error.code == 404:  # Phoenix makes the project with the first span it inserts
            return []
        raise
    for span in spans:
        span["attributes"] = {
            pair["key"]: next(v for v in pair["value"].values() if v is not None)
            for pair in span.get("attributes") or []
        }
    return spans


def all_spans(phoenix: Phoenix, project: str, expected: int) -> list[dict[str, Any]]:
    """The spans of ``project`` once Phoenix holds ``expected`` of them.

    Phoenix inserts what it receives in batches, a moment after the exporter's
    request returned: poll until every span is readable.
    """
    deadline = time.monotonic() + INGEST_SECONDS
    while len(spans := spans_of(phoenix, project)) < expected:
        assert time.monotonic() < deadline, (
            f"Phoenix holds {len(spans)} of {expected} spans:\n{phoenix.log_tail()}"
        )
        time.sleep(0.5)  # polling an external server's batch insert; nothing to wait on
    return spans


def run_agents(phoenix: Phoenix, project: str) -> list[dict[str, Any]]:
    """Run Agent B, then Agent A's conversations against it; return what A reports."""
    agent_b = subprocess.Popen(
        [sys.executable, AGENTS, "agent-b", phoenix.url, project],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert agent_b.stdin is not None
    assert agent_b.stdout is not None
    try:
        agent_b_url = agent_b.stdout.readline().strip()
        assert agent_b_url.startswith("http://127.0.0.1:"), "Agent B did not start"
        counts = (str(CONVERSATIONS), str(TURNS))
        agent_a = subprocess.run(
            [sys.executable, AGENTS, "agent-a", phoenix.url, project, agent_b_url, *counts],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert agent_a.returncode == 0, agent_a.stderr
    finally:
        agent_b.stdin.close()  # B flushes its spans to Phoenix, then exits
        assert agent_b.wait(timeout=60) == 0
    reports: list[dict[str, Any]] = json.loads(agent_a.stdout)
    return reports


def test_phoenix_shows_each_conversation_as_one_session_of_one_trace_per_turn(
    phoenix: Phoenix,
) -> None:
    project = "tracectrl-two-agents"
    reports = run_agents(phoenix, project)

    expected_spans = CONVERSATIONS * TURNS * SPANS_PER_TURN
    spans = all_spans(phoenix, project, expected_spans)
    sessions = every_page(phoenix, f"/v1/projects/{project}/sessions", limit=2)

    # Exactly K sessions, each exactly the T traces of its conversation's turns.
    traces_per_session = sorted(len(session["traces"]) for session in sessions)
    assert traces_per_session == [TURNS] * CONVERSATIONS
    shown = {s["session_id"]: sorted(t["trace_id"] for t in s["traces"]) for s in sessions}
    assert shown == {report["session"]: sorted(report["traces"]) for report in reports}
    assert len({trace for traces in shown.values() for trace in traces}) == CONVERSATIONS * TURNS

    # Every span of a turn carries its conversation's session, in both agents.
    assert len(spans) == expected_spans
    session_of_trace = {t: r["session"] for r in reports for t in r["traces"]}
    unstamped = [
        (span["attributes"]["agent"], span["name"])
        for span in spans
        if span["attributes"].get("session.id") != session_of_trace[span["trace_id"]]
    ]
    assert unstamped == []

    # No span points to a parent that nobody exported: one root per trace, A's turn span.
    by_id = {span["span_id"]: span for span in spans}
    assert len(by_id) == len(spans)
    orphans = [s["name"] for s in spans if s["parent_span_id"] and s["parent_span_id"] not in by_id]
    assert orphans == []
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in spans:
        by_trace[span["trace_id"]].append(span)
    assert set(by_trace) == set(session_of_trace)

    for trace_id, trace_spans in by_trace.items():
        a = [s for s in trace_spans if s["attributes"]["agent"] == "A"]
        b = [s for s in trace_spans if s["attributes"]["agent"] == "B"]
        assert len(a) == 2, f"trace {trace_id}: A's spans {[s['name'] for s in a]}"
        assert len(b) == 2, f"trace {trace_id}: B's spans {[s['name'] for s in b]}"
        roots = [s for s in trace_spans if not s["parent_span_id"]]
        assert [s["name"] for s in roots] == ["agent A turn"], f"trace {trace_id}"
        # A's turn span -> A's client span -> B's server span -> B's handler span.
        (turn,) = roots
        (client,) = [s for s in a if s is not turn]
        (handler,) = [s for s in b if s["name"] == "agent B answers"]
        (server,) = [s for s in b if s is not handler]
        assert client["parent_span_id"] == turn["span_id"]
        assert server["parent_span_id"] == client["span_id"], f"trace {trace_id}"
        assert handler["parent_span_id"] == server["span_id"]


def test_demo_with_otlp_shows_each_conversation_as_a_session_of_its_turns_in_phoenix(
    phoenix: Phoenix,
) -> None:
    demo = subprocess.run(
        [sys.executable, DEMO, "--otlp", phoenix.url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr
    assert f"Spans exported to {phoenix.url}" in demo.stdout

    # The demo: 3 conversations of 2 turns; per turn, A's turn span, B's handler span
    # and B's thread-pool tool span (its process-pool workers export nothing).
    spans = all_spans(phoenix, "tracectrl-demo", expected=3 * 2 * 3)
    sessions = every_page(phoenix, "/v1/projects/tracectrl-demo/sessions", limit=100)
    assert sorted(len(session["traces"]) for session in sessions) == [2, 2, 2]
    session_of_trace = {t["trace_id"]: s["session_id"] for s in sessions for t in s["traces"]}
    assert len(session_of_trace) == 6
    assert {span["trace_id"] for span in spans} == set(session_of_trace)
    assert all(
        span["attributes"]["session.id"] == session_of_trace[span["trace_id"]] for span in spans
    )
    by_id = {span["span_id"]: span for span in spans}
    orphans = [s["name"] for s in spans if s["parent_span_id"] and s["parent_span_id"] not in by_id]
    assert orphans == []
    roots = sorted(
        span["attributes"]["input.value"] for span in spans if not span["parent_span_id"]
    )
    assert roots == sorted(
        [
            "plan a trip to Lisbon",
            "add a day in Sintra",
            "summarise the Q3 report",
            "now in three bullet points",
            "draft a reply to Ana",
            "make it more formal",
        ]
    )
