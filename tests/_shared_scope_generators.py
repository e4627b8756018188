"""One scope object entered both by a decorated generator's body and by the code consuming it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Optional

from tracectrl import current_session_id, current_trace, session_scope, with_session

State = tuple[Optional[str], Optional[str]]


def state() -> State:
    """The session and the trace id in force."""
    trace = current_trace()
    return current_session_id(), None if trace is None else trace.trace_id


def interleave(shared: AbstractContextManager[Any]) -> dict[str, State]:
    """Enter ``shared`` in the body of a ``@with_session("body")`` generator, which yields
    inside it; then enter it in the consumer (under ``session_scope("caller")``) and resume
    the body, which leaves it first.  Return what each side saw at each point.
    """
    seen: dict[str, State] = {}

    @with_session("body")
    def body() -> Iterator[None]:
        seen["body before"] = state()
        with shared:
            seen["body inside"] = state()
            yield
            seen["body inside, resumed"] = state()
        seen["body after"] = state()
        yield

    with session_scope("caller"):
        seen["caller before"] = state()
        steps = body()
        next(steps)
        seen["caller between"] = state()
        with shared:
            seen["caller inside"] = state()
            next(steps)
            seen["caller inside, after the body left"] = state()
        seen["caller after"] = state()
        steps.close()
    seen["outside"] = state()
    return seen
