"""What the ``tracing`` fixture yields."""

from __future__ import annotations

from typing import NamedTuple

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class Tracing(NamedTuple):
    """A real SDK provider (not the global one): every finished span lands in ``exporter``."""

    provider: TracerProvider
    exporter: InMemorySpanExporter
