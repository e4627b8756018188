"""The optional OpenTelemetry span of a unit of work (``span=`` on the scopes).

Needs only ``opentelemetry-api``, imported on the first ``span=`` entry; without
it, ``span=`` does nothing.  The span comes from the global tracer provider
under the tracer name ``tracectrl``; with no SDK configured it is OpenTelemetry's
non-recording span, which costs next to nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextvars import Token
from typing import Any, Optional, Union, cast

from tracectrl._tokens import reset
from tracectrl._trace import TraceContext

AttributeValue = Union[
    str, bool, int, float, Sequence[str], Sequence[bool], Sequence[int], Sequence[float]
]
"""The values OpenTelemetry accepts as span attributes."""

#: The span attribute that holds the session id (OpenTelemetry's semantic convention).
SESSION_ID_ATTRIBUTE = "session.id"

_log = logging.getLogger("tracectrl.scope")


class _OpenTelemetry:
    """The few OpenTelemetry API names a unit's span needs, imported once."""

    def __init__(self) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

        self.attach = context.attach
        self.set_span_in_context = trace.set_span_in_context
        self.tracer = trace.get_tracer("tracectrl")
        self.link = Link
        self.span_context = SpanContext
        self.trace_flags = TraceFlags
        self.internal = SpanKind.INTERNAL
        self.error = Status
        self.error_code = StatusCode.ERROR


_api: Optional[_OpenTelemetry] = None
_api_missing = False


def _load() -> Optional[_OpenTelemetry]:
    global _api, _api_missing  # noqa: PLW0603 - imported once, on the first span= entry
    if _api is None and not _api_missing:
        try:
            _api = _OpenTelemetry()
        except ImportError:
            _api_missing = True  # span= does nothing without opentelemetry-api
    return _api


def start_span(
    name: str,
    attributes: Mapping[str, AttributeValue] | None,
    session_id: str | None,
    link_to: TraceContext | None,
) -> Any:
    """Start the unit's span (not yet current), or return ``None`` without OpenTelemetry.

    ``link_to`` is the trace that was in force before a unit that starts a new
    trace: the span links to it, so a dashboard can lead back to the caller.
    """
    api = _load()
    if api is None:
        return None
    values = None if attributes is None else dict(attributes)
    links = None
    if link_to is not None:
        # No ValueError here: a trace in force has hex ids (parsed and validated,
        # made by tracectrl, or formatted from OpenTelemetry's integer ids).
        links = [
            api.link(
                api.span_context(
                    int(link_to.trace_id, 16),
                    int(link_to.span_id, 16),
                    link_to.is_remote,
                    api.trace_flags(link_to.trace_flags),
                )
            )
        ]
    span = api.tracer.start_span(name, kind=api.internal, attributes=values, links=links)
    if session_id is not None and (values is None or SESSION_ID_ATTRIBUTE not in values):
        # Set on the started span rather than passed to start_span: the SDK copies
        # and checks start attributes several times (sampler, then the span), which
        # measured 9 us on the benchmark machine against 4 us for set_attribute, a
        # fifth of a whole span.  An id in ``attributes`` is the caller's and wins.
        span.set_attribute(SESSION_ID_ATTRIBUTE, session_id)
    return span


def make_current(span: Any) -> object:
    """Make ``span`` OpenTelemetry's current span; return the token :func:`unmake_current` takes."""
    api = _api
    assert api is not None  # a span exists only once the API is loaded
    return api.attach(api.set_span_in_context(span))


def unmake_current(token: object) -> None:
    """Undo :func:`make_current`, safely even from another context (the exit warns, not this)."""
    context_token = cast("Token[Any]", token)
    reset(context_token.var, context_token, warn=False)


def end_span(span: Any, error: BaseException | None) -> None:
    """End the unit's span; an exception is recorded and sets ERROR status.

    ``GeneratorExit`` (a generator closed early) is not an error.
    """
    api = _api
    try:
        try:
            if error is not None and not isinstance(error, GeneratorExit) and api is not None:
                span.record_exception(error)
                span.set_status(api.error(api.error_code, f"{type(error).__name__}: {error}"))
        finally:
            span.end()  # even when the error cannot be recorded (its str() raises)
    except Exception:  # instrumentation must never break the host program
        _log.debug("could not end a unit's span", exc_info=True)
