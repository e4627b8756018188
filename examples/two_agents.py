"""Two agents over HTTP on 127.0.0.1: each conversation one session, each turn one trace.

Agent A and Agent B are two real HTTP services, each in its own process on a
free port of 127.0.0.1. Three users talk to Agent A at once, two turns each. A
conversation's first turn goes to A's decorated entrypoint, which starts a new
session; the follow-up names that session and runs under it. Every turn calls
Agent B, which continues A's session and trace and fans a tool call out to a
thread pool and a process pool. Every hop reports the session and trace it ran
under; the demo prints them per conversation, then checks that each
conversation kept one session everywhere, that each turn kept one trace
everywhere and no two turns shared one, and that no conversation saw another's.

With ``--otlp URL`` both agents also export their spans over OTLP/HTTP to
``URL`` (``URL/v1/traces``), each span stamped with ``session.id``, so a
dashboard such as Arize Phoenix shows each conversation as a session of turns.

Run it with ``bash examples/run_demo.sh`` (or ``python examples/two_agents.py``
where tracectrl and requests are installed; ``--otlp`` also needs
``tracectrl[otel]`` and ``opentelemetry-exporter-otlp-proto-http``). It exits by
itself. ``--help`` lists the options.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager, contextmanager, nullcontext
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

import requests

from tracectrl import current_session_id, session_scope, with_session
from tracectrl.context import continue_session, current_trace, propagation_headers
from tracectrl.executors import submit

Report = dict[str, Any]

#: The conversations: each user's prompts, one turn each, sent one after the other.
CONVERSATIONS = [
    ["plan a trip to Lisbon", "add a day in Sintra"],
    ["summarise the Q3 report", "now in three bullet points"],
    ["draft a reply to Ana", "make it more formal"],
]
#: The project the spans go to in dashboards that group by it (Arize Phoenix does).
OTLP_PROJECT = "tracectrl-demo"


class _Spans:
    """This process's OpenTelemetry provider, once --otlp configured one."""

    provider: Any = None


def export_spans(otlp_url: str, service: str) -> None:
    """Send this process's spans to ``otlp_url`` over OTLP/HTTP, each stamped with the session."""
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from tracectrl.integrations.otel import SessionSpanProcessor
    except ImportError as error:
        sys.exit(
            f"--otlp needs the OpenTelemetry SDK and its OTLP/HTTP exporter ({error}): "
            'pip install ".[otel]" opentelemetry-exporter-otlp-proto-http'
        )
    resource = Resource.create(
        {"service.name": service, "openinference.project.name": OTLP_PROJECT}
    )
    provider = _Spans.provider = TracerProvider(resource=resource)
    provider.add_span_processor(SessionSpanProcessor())
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_url.rstrip('/')}/v1/traces"))
    )
    trace.set_tracer_provider(provider)


def flush_spans() -> None:
    """Export what is left of this process's spans before it exits (--otlp only)."""
    if _Spans.provider is not None:
        _Spans.provider.shutdown()


def span(name: str, kind: str, **attributes: str) -> AbstractContextManager[Any]:
    """A span for the block when --otlp is on in this process (``None`` otherwise).

    ``kind`` and ``attributes`` follow OpenInference, the convention Arize
    Phoenix reads: its Sessions tab shows a turn's ``input.value`` and
    ``output.value``.
    """
    if _Spans.provider is None:
        return nullcontext()
    tracer = _Spans.provider.get_tracer("two_agents")
    attributes["openinference.span.kind"] = kind
    started: AbstractContextManager[Any] = tracer.start_as_current_span(name, attributes=attributes)
    return started


def where(agent: str, step: str) -> Report:
    """What one step of work ran under: session, trace, agent, thread and process."""
    trace = current_trace()
    return {
        "agent": agent,
        "step": step,
        "session": current_session_id(),
        "trace": trace.trace_id if trace else None,
        "thread": threading.current_thread().name,
        "pid": os.getpid(),
    }


def search_tool(query: str) -> Report:
    """A tool call: runs in a pool worker, thread or process, and says what it saw."""
    with span("B: search tool", "TOOL", **{"input.value": query}):
        return where("B", f"tool {query!r}")


class AgentB(BaseHTTPRequestHandler):
    """Agent B: continues the caller's session and trace, then fans out two tool calls."""

    threads: ThreadPoolExecutor
    processes: ProcessPoolExecutor

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with continue_session(self.headers), span("B: answer", "CHAIN"):
            reports = [where("B", "handler")]
            calls = [
                submit(self.threads, search_tool, f"{body['prompt']} (thread pool)"),
                submit(self.processes, search_tool, f"{body['prompt']} (process pool)"),
            ]
            reports += [call.result() for call in calls]
        reply(self, {"reports": reports})

    def log_message(self, format: str, *args: object) -> None:
        pass


class AgentA(BaseHTTPRequestHandler):
    """Agent A: a prompt without a session opens a conversation; one with a session continues it."""

    agent_b_url: str

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("session"):
            reports = follow_up(body["session"], body["prompt"], self.agent_b_url)
        else:
            reports = answer(body["prompt"], self.agent_b_url)
        reply(self, {"reports": reports})

    def log_message(self, format: str, *args: object) -> None:
        pass


@with_session(new=True)
def answer(prompt: str, agent_b_url: str) -> list[Report]:
    """Agent A's entrypoint for a new conversation: a new session, carried to Agent B."""
    return ask_agent_b(prompt, agent_b_url)


def follow_up(session_id: str, prompt: str, agent_b_url: str) -> list[Report]:
    """A later turn of a conversation: the same session, a unit of work of its own."""
    with session_scope(session_id):
        return ask_agent_b(prompt, agent_b_url)


def ask_agent_b(prompt: str, agent_b_url: str) -> list[Report]:
    """One turn: ask Agent B over HTTP, carrying the session and the trace."""
    with span("A: turn", "AGENT", **{"input.value": prompt}) as turn:
        # propagation_headers() starts the turn's trace when none is current yet.
        response = requests.post(
            agent_b_url, json={"prompt": prompt}, headers=propagation_headers()
        )
        response.raise_for_status()
        reports: list[Report] = response.json()["reports"]
        if turn is not None:
            turn.set_attribute("output.value", f"Agent B answered after {len(reports) - 1} tools")
        return [where("A", "entrypoint, after calling B"), *reports]


def reply(handler: BaseHTTPRequestHandler, payload: object) -> None:
    data = json.dumps(payload).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


@contextmanager
def serving(handler: Callable[..., BaseHTTPRequestHandler]) -> Iterator[str]:
    """Run an HTTP service on a free port of 127.0.0.1; yield its URL; stop it after."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="http-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run_agent_b(otlp_url: Optional[str]) -> None:
    """Agent B's process: serve until the parent closes our stdin, print the URL first."""
    if otlp_url:
        export_spans(otlp_url, "agent-b")
    spawn = multiprocessing.get_context("spawn")  # a threaded server must not fork
    with (
        ThreadPoolExecutor(2, thread_name_prefix="tools") as threads,
        ProcessPoolExecutor(2, mp_context=spawn) as processes,
    ):
        AgentB.threads, AgentB.processes = threads, processes
        with serving(AgentB) as url:
            print(url, flush=True)
            sys.stdin.read()  # returns when the parent closes the pipe or exits
    flush_spans()


@contextmanager
def agent_b_process(otlp_url: Optional[str]) -> Iterator[str]:
    """Start Agent B in a child process; yield its URL; stop it after."""
    child = subprocess.Popen(
        [sys.executable, __file__, "agent-b", *([otlp_url] if otlp_url else [])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        yield child.stdout.readline().strip()
    finally:
        child.stdin.close()
        child.wait(timeout=30)


def converse(agent_a_url: str, prompts: list[str]) -> list[list[Report]]:
    """One user: the first prompt opens a conversation, the others continue its session."""
    turns: list[list[Report]] = []
    session_id = None
    for prompt in prompts:
        response = requests.post(agent_a_url, json={"prompt": prompt, "session": session_id})
        response.raise_for_status()
        turns.append(response.json()["reports"])
        session_id = turns[0][0]["session"]
    return turns


def check(conversations: dict[str, list[list[Report]]]) -> list[str]:
    """Print each conversation's hops; return what broke the session and trace rules."""
    failures = []
    seen_sessions: set[str] = set()
    seen_traces: set[str] = set()
    for opening, turns in conversations.items():
        sessions = {r["session"] for reports in turns for r in reports}
        print(f"\nconversation {opening!r}: {len(turns)} turns")
        print(f"  {'turn':<5}{'agent':<6}{'step':<50}{'session':<38}{'trace':<34}pid")
        for number, reports in enumerate(turns, 1):
            for r in reports:
                print(
                    f"  {number:<5}{r['agent']:<6}{r['step'][:48]:<50}{r['session']:<38}"
                    f"{r['trace']:<34}{r['pid']}"
                )
            traces = {r["trace"] for r in reports}
            if len(traces) != 1 or None in traces:
                failures.append(f"{opening!r} turn {number} saw traces {traces}")
            if traces & seen_traces:
                failures.append(f"{opening!r} turn {number} shares a trace with another turn")
            seen_traces |= traces
            if len({r["pid"] for r in reports}) < 3:
                failures.append(f"{opening!r} turn {number} did not reach B and its process pool")
        if len(sessions) != 1 or None in sessions:
            failures.append(f"{opening!r} saw sessions {sessions}")
        if sessions & seen_sessions:
            failures.append(f"{opening!r} shares a session with another conversation")
        seen_sessions |= sessions
    return failures


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=(
            "Two agents over HTTP on 127.0.0.1: three concurrent conversations of two turns "
            "each. Checks that each conversation keeps one session across both agents, a "
            "thread pool and a process pool, and that each turn is one trace of its own."
        ),
        epilog=(
            "example: start Arize Phoenix (phoenix serve), then run "
            "'bash examples/run_demo.sh --otlp http://127.0.0.1:6006' and open "
            "http://127.0.0.1:6006, project tracectrl-demo, tab Sessions."
        ),
    )
    parser.add_argument(
        "--otlp",
        metavar="URL",
        help=(
            "also export both agents' spans over OTLP/HTTP to URL (sent to URL/v1/traces), "
            "each stamped with session.id, in the project tracectrl-demo; "
            "e.g. --otlp http://127.0.0.1:6006 for a local Arize Phoenix"
        ),
    )
    options = parser.parse_args(argv)
    if options.otlp:
        export_spans(options.otlp, "agent-a")

    with agent_b_process(options.otlp) as agent_b_url:
        AgentA.agent_b_url = agent_b_url
        with serving(AgentA) as agent_a_url, ThreadPoolExecutor(len(CONVERSATIONS)) as users:
            # All users at once: each conversation must keep its own session and traces.
            talks = {users.submit(converse, agent_a_url, c): c[0] for c in CONVERSATIONS}
            done = {talks[f]: f.result() for f in as_completed(talks)}
    flush_spans()

    failures = check({c[0]: done[c[0]] for c in CONVERSATIONS})
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    print(
        f"\nOK: {len(CONVERSATIONS)} concurrent conversations; each kept one session across "
        "Agent A, Agent B (another process), its thread pool and its process pool, and each "
        "turn one trace of its own."
    )
    if options.otlp:
        print(f"Spans exported to {options.otlp} (project {OTLP_PROJECT}).")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["agent-b"]:
        run_agent_b(sys.argv[2] if len(sys.argv) > 2 else None)
    else:
        sys.exit(main())
