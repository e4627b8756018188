"""A task for process-pool tests about started traces, in a module every start method can import."""

from __future__ import annotations

from opentelemetry import trace as otel_trace

from tracectrl._trace import TraceContext, current_trace


def report_trace_and_otel_span() -> tuple[TraceContext | None, bool]:
    """Return the trace in force in this worker and whether OpenTelemetry sees a current span."""
    return current_trace(), otel_trace.get_current_span().get_span_context().is_valid
