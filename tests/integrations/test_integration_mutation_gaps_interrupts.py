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

from tracectrl import _unit as unit_module
from tracectrl import current_session_id, current_trace, session_scope, set_session_id
from tracectrl import scope as scope_module
from tracectrl.context import extract_trace_headers


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
    _interrupt_before("_reset_session(session_token)", lambda: shared.__exit__(None, None, None))
    assert (current_session_id(), current_trace()) == (None, None)
    assert len(shared._entries) == 1  # the other context's, kept for its own exit
    assert elsewhere.run(current_session_id) == "shared"


def test_interrupted_exit_after_its_entry_was_taken_still_ends_the_span(
    global_tracing: Tracing,
) -> None:
    scope = session_scope("conversation", span="plan")
    scope.__enter__()
    _interrupt_before("if extras is not None:", lambda: scope.__exit__(None, None, None))
    assert (current_session_id(), current_trace()) == (None, None)
    assert trace.get_current_span() is trace.INVALID_SPAN
    assert [span.name for span in global_tracing.exporter.get_finished_spans()] == ["plan"]
    assert scope._entries == []


def test_a_second_interrupt_while_an_interrupted_exit_ends_its_span_still_restores_the_trace(
    global_tracing: Tracing, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The exit is cut short after it restored the session; while it finishes
    # (ending the unit's span, Python-level calls), a second interrupt lands.
    # The trace was restored before any of those calls, so the caller gets its
    # own session and trace back all the same.
    set_session_id("caller")
    before = current_trace()
    scope = session_scope("conversation", span="plan")
    scope.__enter__()
    inside = current_trace()

    def interrupted(extras: object, error: object) -> None:
        raise _Interrupt  # the second interrupt, as the span's end begins

    monkeypatch.setattr(unit_module, "leave_extras", interrupted)
    _interrupt_before("entries.remove(entry)", lambda: scope.__exit__(None, None, None))
    assert inside is not None
    assert inside != before
    assert (current_session_id(), current_trace()) == ("caller", before)


def test_a_joining_scope_exited_after_its_block_took_a_trace_from_headers_restores_the_span(
    global_tracing: Tracing,
) -> None:
    # A joining scope under an OpenTelemetry span keeps that span's trace and
    # puts no trace of its own in force.  A trace its block takes from headers
    # is undone at the exit, in OpenTelemetry's context too, also on the exit
    # path of a scope object that another context entered after it.
    set_session_id("conversation")
    tracer = global_tracing.provider.get_tracer("test")
    with tracer.start_as_current_span("request") as request:
        shared = session_scope("conversation")
        shared.__enter__()
        elsewhere = copy_context()
        elsewhere.run(shared.__enter__)  # the newest entry: this exit takes the slow path
        extract_trace_headers({"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"})
        assert trace.get_current_span() is not request
        shared.__exit__(None, None, None)
        assert trace.get_current_span() is request
        assert current_trace() is not None
        assert current_trace().trace_id == format(request.get_span_context().trace_id, "032x")
    assert current_session_id() == "conversation"
    assert len(shared._entries) == 1  # the other context's


def test_a_second_interrupt_as_an_interrupted_exit_finishes_still_restores_the_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The trace is put back by a C-level call before the rest of the exit (a
    # Python-level call, where a second interrupt can land at once) begins.
    set_session_id("caller")
    before = current_trace()
    scope = session_scope("conversation")
    scope.__enter__()
    inside = current_trace()

    def interrupted(entry: object, error: object) -> None:
        raise _Interrupt  # the second interrupt, as the rest of the exit begins

    monkeypatch.setattr(unit_module, "_leave_rest", interrupted)
    _interrupt_before("entries.remove(entry)", lambda: scope.__exit__(None, None, None))
    assert inside is not None
    assert inside != before
    assert (current_session_id(), current_trace()) == ("caller", before)
