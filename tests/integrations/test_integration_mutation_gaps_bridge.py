"""The first call into OpenTelemetry, whichever it is, finds the bridge and does its work.

tracectrl looks OpenTelemetry up lazily: until the first call, a stand-in takes
every call, looks the bridge up, and answers as the bridge would.  Each test
here pins a behaviour that a small change to the code (a mutant) broke without
any other test noticing; see ``tests/mutation/run.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _tracing import Tracing
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from tracectrl import _trace
from tracectrl._otel_bridge import BRIDGE
from tracectrl.context import TraceContext
from tracectrl.integrations.otel import SESSION_ID_ATTRIBUTE

TRACE = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1, "", True)


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[_trace._BridgeLookup]:
    """A fresh stand-in, as in a process that has not called into OpenTelemetry yet."""
    lookup = _trace._BridgeLookup()
    monkeypatch.setattr(_trace, "_bridge", lookup)
    yield lookup
    assert _trace._bridge is BRIDGE  # the first call replaced it


def test_first_reads_of_the_context_and_its_keys_answer_as_the_bridge(
    stand_in: _trace._BridgeLookup,
) -> None:
    assert stand_in.span_key == BRIDGE.span_key


def test_first_read_of_the_no_span_marker_answers_as_the_bridge(
    stand_in: _trace._BridgeLookup,
) -> None:
    assert stand_in.no_span is BRIDGE.no_span


@pytest.mark.parametrize("read", ["get_context", "context"])
def test_first_read_of_the_context_returns_opentelemetrys_current_one(
    stand_in: _trace._BridgeLookup, read: str
) -> None:
    assert getattr(stand_in, read)() is otel_context.get_current()


def test_first_read_of_the_trace_sees_the_current_span(
    stand_in: _trace._BridgeLookup, tracing: Tracing
) -> None:
    with tracing.provider.get_tracer("t").start_as_current_span("s") as span:
        trace_now = stand_in.current_trace()
    assert trace_now is not None
    assert trace_now.span_id == f"{span.get_span_context().span_id:016x}"


def test_first_attach_makes_the_trace_current_in_opentelemetry(
    stand_in: _trace._BridgeLookup,
) -> None:
    token = stand_in.attach_trace(TRACE)
    try:
        assert trace.get_current_span().get_span_context().trace_id == int(TRACE.trace_id, 16)
    finally:
        _trace.detach_trace(token)


def test_first_hide_and_restore_of_a_span_hide_it_and_bring_it_back(
    monkeypatch: pytest.MonkeyPatch, tracing: Tracing
) -> None:
    with tracing.provider.get_tracer("t").start_as_current_span("s") as span:
        monkeypatch.setattr(_trace, "_bridge", _trace._BridgeLookup())
        token = _trace._bridge.hide_span()
        assert token is not None
        assert trace.get_current_span() is trace.INVALID_SPAN
        monkeypatch.setattr(_trace, "_bridge", _trace._BridgeLookup())
        _trace._bridge.restore_span(token)
        assert trace.get_current_span() is span


def test_first_stamp_gives_the_current_span_the_session(
    stand_in: _trace._BridgeLookup, tracing: Tracing
) -> None:
    # tracing made a SessionSpanProcessor, which registers its attribute; this
    # provider has none, so only the stamp can put the session on the span.
    provider = TracerProvider()
    with provider.get_tracer("t").start_as_current_span("server") as span:
        stand_in.stamp_session("conversation", (SESSION_ID_ATTRIBUTE,))
        assert span.attributes is not None
        assert span.attributes.get(SESSION_ID_ATTRIBUTE) == "conversation"
    provider.shutdown()


def test_first_restore_of_a_context_makes_it_current_again(
    stand_in: _trace._BridgeLookup,
) -> None:
    saved = otel_context.get_current()
    token = otel_context.attach(otel_context.set_value("k", "v"))
    try:
        stand_in.restore_context(saved)
        assert otel_context.get_current() is saved
    finally:
        otel_context.detach(token)
