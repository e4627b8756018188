"""Pytest plugin for the coverage pass of ``tests/mutation/run.py``: which test ran which line.

Loaded with ``-p _coverage_plugin`` under ``coverage run``.  Around each test it
switches coverage's dynamic context to the test's node id, so that every line the
test runs in this process is recorded under its name.  Child processes (process
pools, the docs blocks, the import tests) cannot be switched from here: the test's
node id goes into an environment variable that they inherit, and the coverage
configuration names it as their static context (``context = ${...}``).  A child
that outlives one test (a module-scoped pool) carries the id of the test that
started it, so the runner maps child lines to that test and to every test of its
file that ran while a multiprocessing child was alive.
It also records each test's duration, so the runner can run the fastest first
and size its timeouts.  A test that replaces coverage's trace function (the
interrupt tests install their own; some end with ``sys.settrace(None)``, others
put the previous one back) runs lines coverage cannot see: the plugin notices
every ``sys.settrace`` call a test makes, puts coverage's trace function back
after it, without which no later test in the process would be recorded, and
lists the test as *blind*, so that the runner lets it try every mutant.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from collections.abc import Generator
from pathlib import Path

import coverage
import pytest

CHILD_CONTEXT_VARIABLE = "TRACECTRL_MUTATION_CHILD_CONTEXT"
CHILD_PREFIX = "child:"

_durations: dict[str, float] = {}
# Tests that ran while a multiprocessing child (a pool worker) was alive: a worker
# started by one test may run the tasks of the next tests of its file.
_with_children: list[str] = []
# Tests that replaced coverage's trace function: what they ran is not all recorded.
_blind: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    # Set here, not by the runner, so that the measured process itself does not
    # start a second coverage from the .pth hook at interpreter start-up.
    os.environ["COVERAGE_PROCESS_START"] = os.environ["TRACECTRL_MUTATION_RCFILE"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    measuring = coverage.Coverage.current()
    os.environ[CHILD_CONTEXT_VARIABLE] = CHILD_PREFIX + item.nodeid
    if measuring is not None:
        measuring.switch_context(item.nodeid)
    tracer = sys.gettrace()
    replaced = False
    settrace = sys.settrace

    def noting_settrace(function: object) -> None:
        # A test that restores the tracer it found still ran lines unrecorded.  Every new
        # thread calls this to install coverage's tracer there (threading's bootstrap,
        # then coverage itself): those calls are not a test's.
        nonlocal replaced
        caller = str(sys._getframe(1).f_globals.get("__name__", ""))
        if caller != "threading" and not caller.startswith("coverage"):
            replaced = True
        settrace(function)  # type: ignore[arg-type]

    sys.settrace = noting_settrace
    started = time.perf_counter()
    try:
        yield
    finally:
        sys.settrace = settrace
    _durations[item.nodeid] = time.perf_counter() - started
    if replaced or sys.gettrace() is not tracer:
        _blind.append(item.nodeid)
        sys.settrace(tracer)
    if multiprocessing.active_children():
        _with_children.append(item.nodeid)
    if measuring is not None:
        measuring.switch_context("")
    os.environ[CHILD_CONTEXT_VARIABLE] = ""


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("TRACECTRL_MUTATION_DURATIONS")
    if target:
        report = {"durations": _durations, "with_children": _with_children, "blind": _blind}
        Path(target).write_text(json.dumps(report, indent=0), encoding="utf-8")
