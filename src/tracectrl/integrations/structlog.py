"""structlog: a processor that adds the session, trace and span ids to every event.

Put :func:`add_session_context` in the processor chain, before the renderer::

    structlog.configure(processors=[add_session_context, structlog.processors.JSONRenderer()])

Needs ``pip install ".[structlog]"`` from a tracectrl checkout.
"""

from __future__ import annotations

try:
    from structlog.typing import EventDict, WrappedLogger
except ImportError as error:
    raise ImportError(
        "tracectrl.integrations.structlog needs structlog: "
        'pip install ".[structlog]" from the root of a tracectrl checkout'
    ) from error

from tracectrl.integrations._log_fields import add_session_fields

__all__ = ["add_session_context"]


def add_session_context(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    """Add ``session_id``, ``trace_id`` and ``span_id`` to ``event_dict`` and return it.

    ``session_id`` is the session in force where the event is logged,
    ``trace_id`` the 32-hex-digit id of the current trace (OpenTelemetry's
    current span when OpenTelemetry is installed) and ``span_id`` the
    16-hex-digit id of the current span; each is ``None`` when there is none.
    Keys the event already has (bound with ``bind()`` or passed to the call)
    are kept.

    Args:
        logger: the wrapped logger (unused, part of structlog's processor call).
        method_name: the name of the log method called (unused).
        event_dict: the event; the three keys are added to it in place.

    Returns:
        ``event_dict``, with ``session_id``, ``trace_id`` and ``span_id``.
    """
    add_session_fields(event_dict)
    return event_dict
