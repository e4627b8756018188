"""Standard-library logging: every record carries the session id and trace id it was logged under.

Add :class:`SessionLogFilter` to a logger or handler and refer to the new
attributes in a format string::

    handler.addFilter(SessionLogFilter())
    handler.setFormatter(logging.Formatter("%(session_id)s %(trace_id)s %(message)s"))

or from :func:`logging.config.dictConfig` with
``{"()": "tracectrl.integrations.logging.SessionLogFilter"}``.  Needs no extra.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping

from tracectrl._trace import current_trace
from tracectrl.session import current_session_id

__all__ = ["SessionLogFilter"]


class SessionLogFilter(logging.Filter):
    """Add ``session_id`` and ``trace_id`` to every record; never drops one.

    ``session_id`` is the session in force where the record is logged and
    ``trace_id`` the 32-hex-digit id of the current trace (OpenTelemetry's
    current span when OpenTelemetry is installed); each is ``None`` when there
    is none, so ``%(session_id)s`` always formats.

    The values are read in the thread or task that runs the filter: attach it to
    the logger, or to a handler that runs where the record is made (not to a
    handler behind a :class:`~logging.handlers.QueueListener`, which runs in
    the listener's thread; put it on the ``QueueHandler`` instead).  A record
    that already has the attributes (passed through ``extra=``, or filtered
    before being queued) keeps them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Set ``record.session_id`` and ``record.trace_id`` unless already set; return ``True``."""
        _add_session_fields(record.__dict__)
        return True


def _add_session_fields(fields: MutableMapping[str, object]) -> None:
    """Set ``session_id`` and ``trace_id`` in ``fields`` where absent: what every log line gets.

    Shared by :class:`SessionLogFilter` and the structlog processor.
    """
    if "session_id" not in fields:
        fields["session_id"] = current_session_id()
    if "trace_id" not in fields:
        trace = current_trace()
        fields["trace_id"] = None if trace is None else trace.trace_id
