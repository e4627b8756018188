"""An agent fans tool calls out to a thread pool and a process pool; each call reports its session.

Run it from the repository root, with tracectrl installed::

    python examples/fan_out_tools.py

Two conversations are handled at the same time, each on its own thread and in
its own session.  Each one sends I/O-bound tools to a shared thread pool and a
CPU-bound tool to a shared process pool (started with ``spawn``, the strictest
start method), all through :func:`tracectrl.executors.submit`.  Every tool
reports the session, process and thread it ran under.  Afterwards plain
``executor.submit`` calls on the same workers must see no session at all.

The script prints a report and exits with status 1 if any tool saw the wrong
session or a session leaked.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sys
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import NamedTuple, Optional

from tracectrl import current_session_id, session_scope
from tracectrl.executors import start_thread, submit

CONVERSATIONS = {"alice": "chat-alice-42", "bob": "chat-bob-7"}


class ToolReport(NamedTuple):
    """What one tool call saw: its name, session, process and thread."""

    tool: str
    session_id: Optional[str]
    pid: int
    thread: str


def _report(tool: str) -> ToolReport:
    return ToolReport(tool, current_session_id(), os.getpid(), threading.current_thread().name)


# The tools.  They are module-level functions so that spawned workers can import them.


def search_web(query: str) -> ToolReport:
    """Pretend to search the web (I/O bound: thread pool)."""
    return _report(f"search_web({query!r})")


def read_calendar(day: str) -> ToolReport:
    """Pretend to read a calendar (I/O bound: thread pool)."""
    return _report(f"read_calendar({day!r})")


def crunch_numbers(rounds: int) -> ToolReport:
    """Do some real CPU work (CPU bound: process pool)."""
    digest = b"tracectrl"
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return _report(f"crunch_numbers({rounds})")


def run_agent(user: str, threads: Executor, processes: Executor) -> list[ToolReport]:
    """Handle one conversation: open its session, fan the tool calls out, gather the reports."""
    with session_scope(CONVERSATIONS[user]):
        calls: list[Future[ToolReport]] = [
            submit(threads, search_web, f"weather for {user}"),
            submit(threads, read_calendar, "monday"),
            submit(processes, crunch_numbers, 20_000),
            submit(processes, crunch_numbers, 30_000),
        ]
        return [call.result() for call in calls]


def main() -> int:
    """Run two conversations at once, print what every tool saw, and check it."""
    reports: dict[str, list[ToolReport]] = {}
    threads = ThreadPoolExecutor(max_workers=3, thread_name_prefix="tools")
    processes = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"))
    with threads, processes:

        def converse(user: str) -> None:
            reports[user] = run_agent(user, threads, processes)

        conversations = [start_thread(converse, user) for user in CONVERSATIONS]
        for conversation in conversations:
            conversation.join()
        # The same workers used without tracectrl: nothing from above may be left there.
        leftovers = [
            threads.submit(_report, "plain thread task").result(),
            processes.submit(_report, "plain process task").result(),
        ]

    problems: list[str] = []
    print(f"{'conversation':14}{'tool':34}{'session seen':16}{'pid':>8}  thread")
    for user, expected in CONVERSATIONS.items():
        seen = reports.get(user, [])
        if len(seen) != 4:
            problems.append(f"{user}'s conversation did not finish its tool calls")
        for report in seen:
            _print_row(user, report, expected)
            if report.session_id != expected:
                problems.append(f"{report.tool} for {user} saw session {report.session_id}")
    for report in leftovers:
        _print_row("(none)", report, None)
        if report.session_id is not None:
            problems.append(f"{report.tool} saw the leaked session {report.session_id}")
    if current_session_id() is not None:
        problems.append(f"the main thread ended in session {current_session_id()}")

    if problems:
        print("\nFAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"\nOK: every tool ran in its own conversation's session (main pid {os.getpid()}).")
    return 0


def _print_row(owner: str, report: ToolReport, expected: str | None) -> None:
    verdict = "" if report.session_id == expected else f"  <-- expected {expected}"
    session = str(report.session_id)
    print(f"{owner:14}{report.tool:34}{session:16}{report.pid:>8}  {report.thread}{verdict}")


if __name__ == "__main__":
    sys.exit(main())
