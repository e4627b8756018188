"""Two agents over HTTP on 127.0.0.1 share one session and one W3C trace.

Agent A and Agent B are two real HTTP services, each in its own process on a
free port of 127.0.0.1. Users send prompts to Agent A; A's decorated entrypoint
starts a new session and calls Agent B; B continues A's session and trace and
fans a tool call out to a thread pool and a process pool. Every hop reports the
session and trace it ran under, and the demo prints them per conversation, then
checks that each conversation kept exactly one session and one trace everywhere,
and that no conversation saw another's.

Run it with ``bash examples/run_demo.sh`` (or ``python examples/two_agents.py``
where tracectrl and requests are installed). It exits by itself.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import requests

from tracectrl import current_session_id, with_session
from tracectrl.context import continue_session, current_trace, propagation_headers
from tracectrl.executors import submit

Report = dict[str, Any]


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
    return where("B", f"tool {query!r}")


class AgentB(BaseHTTPRequestHandler):
    """Agent B: continues the caller's session and trace, then fans out two tool calls."""

    threads: ThreadPoolExecutor
    processes: ProcessPoolExecutor

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with continue_session(self.headers):
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
    """Agent A: each prompt is a new conversation that asks Agent B for help."""

    agent_b_url: str

    def do_POST(self) -> None:
        prompt = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["prompt"]
        reply(self, {"reports": answer(prompt, self.agent_b_url)})

    def log_message(self, format: str, *args: object) -> None:
        pass


@with_session(new=True)
def answer(prompt: str, agent_b_url: str) -> list[Report]:
    """Agent A's entrypoint: a new session per conversation, carried to Agent B over HTTP."""
    # propagation_headers() starts the conversation's trace, as none is current yet.
    response = requests.post(agent_b_url, json={"prompt": prompt}, headers=propagation_headers())
    response.raise_for_status()
    return [where("A", "entrypoint, after calling B"), *response.json()["reports"]]


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


def run_agent_b() -> None:
    """Agent B's process: serve until the parent closes our stdin, print the URL first."""
    spawn = multiprocessing.get_context("spawn")  # a threaded server must not fork
    with (
        ThreadPoolExecutor(2, thread_name_prefix="tools") as threads,
        ProcessPoolExecutor(2, mp_context=spawn) as processes,
    ):
        AgentB.threads, AgentB.processes = threads, processes
        with serving(AgentB) as url:
            print(url, flush=True)
            sys.stdin.read()  # returns when the parent closes the pipe or exits


@contextmanager
def agent_b_process() -> Iterator[str]:
    """Start Agent B in a child process; yield its URL; stop it after."""
    child = subprocess.Popen(
        [sys.executable, __file__, "agent-b"],
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


def main() -> int:
    prompts = ["plan a trip to Lisbon", "summarise the Q3 report", "draft a reply to Ana"]
    with agent_b_process() as agent_b_url:
        AgentA.agent_b_url = agent_b_url
        with serving(AgentA) as agent_a_url, ThreadPoolExecutor(len(prompts)) as users:
            # All conversations at once: each must keep its own session and trace.
            asks = {
                users.submit(requests.post, agent_a_url, json={"prompt": p}): p for p in prompts
            }
            conversations = {asks[f]: f.result().json()["reports"] for f in as_completed(asks)}

    failures = []
    seen_sessions: set[str] = set()
    for prompt in prompts:
        reports = conversations[prompt]
        sessions = {r["session"] for r in reports}
        traces = {r["trace"] for r in reports}
        print(f"\nconversation {prompt!r}")
        print(f"  {'agent':<6}{'step':<46}{'session':<38}{'trace':<34}{'thread':<34}pid")
        for r in reports:
            print(
                f"  {r['agent']:<6}{r['step']:<46}{r['session']:<38}"
                f"{r['trace']:<34}{r['thread']:<34}{r['pid']}"
            )
        if len(sessions) != 1 or None in sessions:
            failures.append(f"{prompt!r} saw sessions {sessions}")
        if len(traces) != 1 or None in traces:
            failures.append(f"{prompt!r} saw traces {traces}")
        if sessions & seen_sessions:
            failures.append(f"{prompt!r} shares a session with another conversation")
        seen_sessions |= sessions
        if len({r["pid"] for r in reports}) < 3:
            failures.append(f"{prompt!r} did not cross into Agent B and its process pool")

    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    print(
        f"\nOK: {len(prompts)} concurrent conversations; each kept one session and one trace "
        "across Agent A, Agent B (another process), its thread pool and its process pool."
    )
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["agent-b"]:
        run_agent_b()
    else:
        sys.exit(main())
