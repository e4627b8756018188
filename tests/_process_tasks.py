"""Task functions for process-pool tests, in a module every start method can import.

Spawned and forkserver workers unpickle a task by module and name, so the tasks
live here, not in a test module (which would drag pytest into every worker).
"""

from __future__ import annotations

import os

from tracectrl._snapshot import ContextSnapshot, capture
from tracectrl.session import set_session_id


def report() -> tuple[int, ContextSnapshot]:
    """Return this worker's pid and the session and trace in force here."""
    return os.getpid(), capture()


def report_then_overwrite(session_id: str) -> tuple[int, ContextSnapshot]:
    """Report like :func:`report`, then set another session that must not outlive the task."""
    seen = report()
    set_session_id(session_id)
    return seen


def overwrite_then_fail(session_id: str) -> None:
    """Set a session, then raise: neither may outlive the task."""
    set_session_id(session_id)
    raise LookupError(f"tool failed under {session_id}")


def report_with_value(value: object = None) -> tuple[object, ContextSnapshot]:
    """Return the value received (a future's result, once resolved) and the session in force."""
    return value, capture()


def dask_worker_and_session() -> tuple[str, ContextSnapshot]:
    """Return the address of the Dask worker running this task, and the session in force."""
    from distributed import get_worker

    return get_worker().address, capture()
