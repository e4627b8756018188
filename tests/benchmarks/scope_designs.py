"""What a scope could cost under other designs: skeletons timed against the minimal manager.

Not a test and not part of ``run.py``: a probe of the design space behind the
"What limits each number" section of the Performance page.  Each skeleton does
only the context-variable work of one design, with none of tracectrl's checks
(id validation, spans, out-of-order and interrupt handling), so its ratio is a
lower bound for a full implementation of that design::

    .venv/py3.13/bin/python tests/benchmarks/scope_designs.py [--repeat N]

Every case runs in a context that already holds a session and 20 other
variables, as inside an instrumented request, and prints its best time per
``with`` block and its ratio to the minimal manager measured in the same round.
"""

from __future__ import annotations

import argparse
import timeit
from contextvars import ContextVar, Token, copy_context
from typing import Any, Optional

SESSION: ContextVar[Any] = ContextVar("probe_session", default=None)
TRACE: ContextVar[Any] = ContextVar("probe_trace", default=None)
OTEL: ContextVar[dict[str, object]] = ContextVar("probe_otel")
_SPAN_KEY = "current-span"


class Holder:
    """A lazily filled trace holder, made without an ``__init__`` (as tracectrl's is)."""

    __slots__ = ("before", "parent", "trace")


class Minimal:
    """The baseline: ``set`` on enter, ``reset`` on exit."""

    __slots__ = ("token", "value")

    def __init__(self, value: str) -> None:
        self.value = value

    def __enter__(self) -> None:
        self.token = SESSION.set(self.value)

    def __exit__(self, *exc_info: object) -> None:
        SESSION.reset(self.token)


class OneVariableTokenList:
    """One variable, one token per entry in a list: safe when threads share the object."""

    __slots__ = ("tokens", "value")

    def __init__(self, value: str) -> None:
        self.value = value
        self.tokens: list[Token[Any]] = []

    def __enter__(self) -> None:
        self.tokens.append(SESSION.set(self.value))

    def __exit__(self, *exc_info: object) -> None:
        tokens = self.tokens
        token = tokens[-1]
        SESSION.reset(token)
        tokens.remove(token)


class TwoVariables:
    """The session and a new trace holder, each in its own variable (today's layout)."""

    __slots__ = ("entries", "value")

    def __init__(self, value: str) -> None:
        self.value = value
        self.entries: list[tuple[Token[Any], Token[Any]]] = []

    def __enter__(self) -> None:
        self.entries.append((SESSION.set(self.value), TRACE.set(Holder())))

    def __exit__(self, *exc_info: object) -> None:
        entries = self.entries
        entry = entries[-1]
        SESSION.reset(entry[0])
        TRACE.reset(entry[1])
        entries.remove(entry)


class OneFrameOwnToken:
    """One variable holding a frame that keeps its own token: nothing else."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __enter__(self) -> None:
        frame: list[Any] = [self.value, None, SESSION.get(), self, None]
        frame[4] = SESSION.set(frame)

    def __exit__(self, *exc_info: object) -> None:
        frame = SESSION.get()
        if frame[3] is self:
            SESSION.reset(frame[4])


class OneFrameSkeleton:
    """One variable for session and trace, with the trace rules' decisions and no checks.

    It joins or starts a trace as the rules say, makes the lazy holder, reads
    OpenTelemetry's context (to hide a span for a new trace) and keeps the token
    in the frame, so that threads sharing the object never take each other's.
    """

    __slots__ = ("new_trace", "value")

    def __init__(self, value: str, new_trace: Optional[bool] = None) -> None:
        self.value = value
        self.new_trace = new_trace

    def __enter__(self) -> str:
        value = self.value
        current = SESSION.get()
        new_trace = self.new_trace
        if new_trace is None:
            new_trace = current is None or value != current[0]
        otel = OTEL.get()
        if new_trace:
            holder: object = Holder()
            if otel.get(_SPAN_KEY) is not None:
                pass  # a full design hides the span here
        else:
            holder = current[1]
        frame: list[Any] = [value, holder, current, self, None]
        frame[4] = SESSION.set(frame)
        return value

    def __exit__(self, *exc_info: object) -> None:
        frame = SESSION.get()
        if frame[3] is self and frame[4] is not None:
            SESSION.reset(frame[4])
            frame[4] = None


DESIGNS = {
    "one variable, a token list (before units of work)": OneVariableTokenList,
    "one variable, a frame keeping its own token (nothing else)": OneFrameOwnToken,
    "two variables: session and a new trace holder (nothing else)": TwoVariables,
    "one variable: the trace rules' skeleton, no checks": OneFrameSkeleton,
}


def _best_ns(statement: str, names: dict[str, object], number: int, repeat: int) -> float:
    context = copy_context()

    def setup() -> None:
        SESSION.set(["outer-session", Holder(), None, None, None])
        TRACE.set(Holder())
        OTEL.set({})
        for index in range(20):
            ContextVar(f"other_{index}").set(index)

    context.run(setup)
    timer = timeit.Timer(statement, globals=names)
    return min(context.run(timer.repeat, repeat, number)) / number * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--number", type=int, default=200_000, help="blocks per sample")
    args = parser.parse_args()
    sid = "a-session-id"
    for round_number in range(1, args.repeat + 1):
        print(f"round {round_number}")
        for name, design in DESIGNS.items():
            names: dict[str, object] = {"Minimal": Minimal, "Design": design, "sid": sid}
            minimal = _best_ns("with Minimal(sid): pass", names, args.number, 5)
            ours = _best_ns("with Design(sid): pass", names, args.number, 5)
            print(f"  {ours / minimal:4.2f}x  {ours:6.0f} ns vs {minimal:6.0f} ns  {name}")


if __name__ == "__main__":
    main()
