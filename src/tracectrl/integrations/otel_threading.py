"""An OpenTelemetry instrumentor for zero-code propagation, for ``opentelemetry-instrument``.

:class:`ContextPropagationInstrumentor` is registered under the
``opentelemetry_instrumentor`` entry point as ``tracectrl_threading``, so

.. code-block:: shell

    OTEL_PROPAGATORS=tracecontext,baggage,tracectrl_session \\
        opentelemetry-instrument python app.py

switches on :func:`tracectrl.integrations.threading.instrument` with no code:
every thread and pool in the program carries the whole context of the code
that started it, next to the ``tracectrl_session`` propagator that carries the
session between services.  Leave it out with
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=tracectrl_threading``.

Needs ``pip install ".[otel-instrumentation]"`` from a tracectrl checkout (the
``opentelemetry-instrumentation`` package, which provides ``BaseInstrumentor``
and the ``opentelemetry-instrument`` command).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

try:
    # Some type checkers resolve another copy of this namespace package.
    from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined, unused-ignore]
        BaseInstrumentor,
    )
except ImportError as error:
    raise ImportError(
        "tracectrl.integrations.otel_threading needs opentelemetry-instrumentation: "
        'pip install ".[otel-instrumentation]" from the root of a tracectrl checkout'
    ) from error

from tracectrl.integrations import threading as zero_code

__all__ = ["ContextPropagationInstrumentor"]


class ContextPropagationInstrumentor(BaseInstrumentor):  # type: ignore[misc, unused-ignore]
    """Switch :mod:`tracectrl.integrations.threading` on and off as an OpenTelemetry instrumentor.

    ``instrument()`` and ``uninstrument()`` behave as
    :func:`~tracectrl.integrations.threading.instrument` and
    :func:`~tracectrl.integrations.threading.uninstrument` do, including next to
    OpenTelemetry's own ``ThreadingInstrumentor``, which may be on as well: it
    then carries OpenTelemetry's context a second time, harmlessly.  Like every
    ``BaseInstrumentor``, one instance per class exists, and a second
    ``instrument()`` logs a warning and does nothing.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        """Nothing to check: the patch is of the standard library."""
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        zero_code.instrument()

    def _uninstrument(self, **kwargs: Any) -> None:
        zero_code.uninstrument()
