"""Fixtures of the integration tests: a real OpenTelemetry SDK; propagators set by environment."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest
from _tracing import Tracing
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tracectrl.integrations.otel import SessionSpanProcessor


@pytest.fixture
def tracing() -> Iterator[Tracing]:
    """A ``TracerProvider`` with ``SessionSpanProcessor`` and an in-memory exporter (not global)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SessionSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Tracing(provider, exporter)
    provider.shutdown()


@pytest.fixture
def otel_propagators_from_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Configure OpenTelemetry's global propagator the way a deployment does: by environment.

    ``opentelemetry.propagate`` reads ``OTEL_PROPAGATORS`` when imported, so it
    is reloaded with the variable set (loading ``tracectrl_session`` through its
    entry point), and reloaded again afterwards so other tests see the default.
    """
    monkeypatch.setenv("OTEL_PROPAGATORS", "tracecontext,baggage,tracectrl_session")
    importlib.reload(propagate)
    yield
    monkeypatch.delenv("OTEL_PROPAGATORS")
    importlib.reload(propagate)


_global_tracing: Tracing | None = None


@pytest.fixture
def global_tracing() -> Iterator[Tracing]:
    """The global ``TracerProvider`` (set once per process), emptied before each test.

    ``span=`` starts its spans from the global provider, as OpenTelemetry's
    instrumentations do; OpenTelemetry lets a process set it only once.
    """
    global _global_tracing  # noqa: PLW0603 - one global provider per process
    if _global_tracing is None:
        from opentelemetry import trace

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SessionSpanProcessor())
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _global_tracing = Tracing(provider, exporter)
    _global_tracing.exporter.clear()
    yield _global_tracing
    _global_tracing.exporter.clear()
