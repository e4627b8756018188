"""An interrupt that lands inside a scope's exit: the exit is finished before it propagates.

Each test here pins a behaviour that a small change to the code (a mutant) broke
without any other test noticing; see ``tests/mutation/run.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextvars import copy_context
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from _tracing import Tracing
from opentelemetry import trace

from tracectrl import current_session_id, current_trace, session_scope
from tracectrl import scope as scope_module


class _Interrupt(BaseException):
    """Stands for KeyboardInterrupt or a signal handler's exception."""


def _interrupt_before(text: str, action: Callable[[], object]) -> None:
    """Run ``action``, with an interrupt raised before an ``__exit__`` line that reads ``text``."""
    source = Path(scope_module.__file__).read_text(encoding="utf-8").splitlines()
    lines = {number for number, line in enumerate(source, 1) if line.strip() == text}

    def local(frame: FrameType, event: str, arg: object) -> Any:
        if event == "line" and frame.f_lineno in lines:
            raise _Interrupt
        return local

    def calls(frame: FrameType, event: str, arg: object) -> Any:
        code = frame.f_code
        if code.co_filename == scope_module.__file__ and code.co_name == "__exit__":
            return local
        return None

    previous = sys.gettrace()
    sys.settrace(calls)
    try:
        with pytest.raises(_Interrupt):
            action()
    finally:
        sys.settrace(previous)


def test_interrupted_exit_whose_newest_entry_is_another_contexts_undoes_its_own() -> None:
    shared = session_scope("shared")
    shared.__enter__()  # this context's entry
    elsewhere = copy_context()
    elsewhere.run(shared.__enter__)  # another context's entry, now the newest
    _interrupt_before("_reset_session(entry[0])", lambda: shared.__exit__(None, None, None))
    assert (current_session_id(), current_trace()) == (None, None)
    assert len(shared._entries) == 1  # the other context's, kept for its own exit
    assert elsewhere.run(current_session_id) == "shared"


def test_interrupted_exit_after_its_entry_was_taken_still_ends_the_span(
    global_tracing: Tracing,
) -> None:
    scope = session_scope("conversation", span="plan")
    scope.__enter__()
    _interrupt_before("extras = entry[2]", lambda: scope.__exit__(None, None, None))
    assert (current_session_id(), current_trace()) == (None, None)
    assert trace.get_current_span() is trace.INVALID_SPAN
    assert [span.name for span in global_tracing.exporter.get_finished_spans()] == ["plan"]
    assert scope._entries == []
