"""Where the trace lives: a broken OpenTelemetry installation never breaks the host program.

Each test here pins a behaviour that a small change to the code (a mutant) broke
without any other test noticing; see ``tests/mutation/run.py``.
"""

from __future__ import annotations

import logging
import sys
import types

import pytest

from tracectrl import _trace
from tracectrl._tracecontext import parse_tracestate
from tracectrl.context import TraceContext, extract_trace_headers, propagation_headers

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _broken_bridge_module() -> types.ModuleType:
    module = types.ModuleType("tracectrl._otel_bridge")

    def fail(name: str) -> object:
        raise RuntimeError(f"broken OpenTelemetry installation: cannot load {name}")

    module.__getattr__ = fail  # type: ignore[method-assign]
    return module


def test_opentelemetry_that_fails_to_load_leaves_the_trace_in_tracectrl_and_logs_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "tracectrl._otel_bridge", _broken_bridge_module())
    monkeypatch.setattr(_trace, "_bridge", _trace._BridgeLookup())
    with caplog.at_level(logging.WARNING, logger="tracectrl"):
        assert _trace.current_trace() is None
    assert _trace._bridge is None
    [record] = [r for r in caplog.records if r.name == "tracectrl"]
    assert "could not be used" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    # The trace still works, in tracectrl's own variable.
    trace = extract_trace_headers({"traceparent": TRACEPARENT})
    assert trace is not None
    assert _trace.current_trace() == trace
    assert propagation_headers()["traceparent"].split("-")[1] == trace.trace_id


def test_tracestate_of_32768_characters_is_read_and_one_more_is_refused_unread() -> None:
    padded = "pad=1" + " " * (32 * 1024 - 5)
    assert len(padded) == 32768
    assert parse_tracestate([padded]) == "pad=1"
    assert parse_tracestate([padded + " "]) is None


def test_trace_context_built_without_is_remote_counts_as_remote_and_gets_new_parent_ids() -> None:
    trace = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1)
    assert trace.is_remote
    _trace.attach_trace(trace)
    parents = {propagation_headers()["traceparent"].split("-")[2] for _ in range(5)}
    assert len(parents) == 5
    assert trace.span_id not in parents
