"""The fields every log line gets: ``session_id``, ``trace_id`` and ``span_id``.

Shared by the standard-library logging integration (its record factory and
filter) and the structlog processor, so that both log the same values.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from tracectrl._trace import current_trace
from tracectrl.session import current_session_id

#: The names of the fields, as record attributes and event keys.
FIELD_NAMES = ("session_id", "trace_id", "span_id")


def add_session_fields(fields: MutableMapping[str, object]) -> None:
    """Set ``session_id``, ``trace_id`` and ``span_id`` in ``fields`` where absent.

    ``span_id`` is the 16-hex-digit id of the current local span, and ``None``
    outside any span (a trace that came in, or one tracectrl started, has no
    span of this process).  Reading the trace inside a unit of work makes its
    ids if nobody has yet, so the first line logged already has the trace id
    the unit keeps.
    """
    if "session_id" not in fields:
        fields["session_id"] = current_session_id()
    if "trace_id" not in fields or "span_id" not in fields:
        trace = current_trace()
        if "trace_id" not in fields:
            fields["trace_id"] = None if trace is None else trace.trace_id
        if "span_id" not in fields:
            fields["span_id"] = None if trace is None or trace.is_remote else trace.span_id
