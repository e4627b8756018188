"""Interrupts at scope entry and exit: how often a time limit leaks the session (not run by pytest).

A tight loop of ``with session_scope("job"): pass`` is interrupted every 0.7 ms
by a ``signal.setitimer`` handler that raises, as a time limit does.  After each
interrupt, the session and trace must be back to none.  The block is empty, the
worst case: almost every interrupt lands in the scope's own code.

    PYTHONPATH=$PWD/src python tests/benchmarks/interrupts.py fresh 8
    PYTHONPATH=$PWD/src python tests/benchmarks/interrupts.py shared 8

``fresh`` builds a scope object per job, ``shared`` reuses one; the number is
seconds.  Prints the share of interrupts that left the session in force, the
entries a shared scope object kept, and where the leaking interrupts landed.
"""

from __future__ import annotations

import signal
import sys
import time
from types import FrameType
from typing import Optional

from tracectrl import current_trace, session_scope
from tracectrl._sessionvar import session_var
from tracectrl._trace import _trace_context


class TimeLimit(Exception):
    """The exception a signal-based time limit raises."""


armed = False


def on_alarm(signum: int, frame: Optional[FrameType]) -> None:
    global armed  # noqa: PLW0603 - one flag shared with the signal handler
    if armed:
        armed = False
        raise TimeLimit


def main() -> None:
    global armed  # noqa: PLW0603
    signal.signal(signal.SIGALRM, on_alarm)
    interrupts = leaks = 0
    places: dict[tuple[str, int], int] = {}
    scope = session_scope("job")
    with scope:
        current_trace()  # warm up: the OpenTelemetry bridge is looked up once
    shared = sys.argv[1:2] == ["shared"]
    deadline = time.monotonic() + float(sys.argv[2] if len(sys.argv) > 2 else 10)
    signal.setitimer(signal.ITIMER_REAL, 0.0007, 0.0007)
    while time.monotonic() < deadline:
        try:
            armed = True
            while True:
                with scope if shared else session_scope("job"):
                    pass
        except TimeLimit as interrupt:
            interrupts += 1
            tb = interrupt.__traceback__
            while tb is not None and tb.tb_next is not None and tb.tb_next.tb_next is not None:
                tb = tb.tb_next
            if session_var.get() is not None or _trace_context.get() is not None:
                leaks += 1
                if tb is not None:
                    where = (tb.tb_frame.f_code.co_name, tb.tb_lineno)
                    places[where] = places.get(where, 0) + 1
                session_var.set(None)
                _trace_context.set(None)
    signal.setitimer(signal.ITIMER_REAL, 0)
    kind = "shared" if shared else "fresh"
    print(
        f"{sys.version.split()[0]} {kind}: {leaks} leaks in {interrupts} interrupts"
        f" = {100 * leaks / max(interrupts, 1):.1f}%, entries kept {len(scope._entries)}"
    )
    print(sorted(places.items(), key=lambda item: -item[1])[:8])


if __name__ == "__main__":
    main()
