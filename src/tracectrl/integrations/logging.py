"""Standard-library logging: every record carries the session, trace and span it was logged under.

Two ways in, both adding ``session_id``, ``trace_id`` and ``span_id`` to records:

* :func:`instrument` installs a LogRecord factory, so every record of every
  logger has them, whatever handlers and filters are configured::

      instrument()
      handler.setFormatter(logging.Formatter("%(session_id)s %(trace_id)s %(message)s"))

* :class:`SessionLogFilter`, added to a *handler*, stamps the records that
  handler emits, or from :func:`logging.config.dictConfig` with
  ``{"()": "tracectrl.integrations.logging.SessionLogFilter"}``.

Needs no extra.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional

from tracectrl.integrations._log_fields import add_session_fields

__all__ = ["SessionLogFilter", "instrument", "uninstrument"]

_RecordFactory = Callable[..., logging.LogRecord]


class SessionLogFilter(logging.Filter):
    """Add ``session_id``, ``trace_id`` and ``span_id`` to every record; never drops one.

    ``session_id`` is the session in force where the record is logged,
    ``trace_id`` the 32-hex-digit id of the current trace (OpenTelemetry's
    current span when OpenTelemetry is installed) and ``span_id`` the
    16-hex-digit id of the current span; each is ``None`` when there is none,
    so ``%(session_id)s`` always formats.

    Add it to a **handler**.  A filter on a logger runs only for records
    logged through that very logger: records of its child loggers (``app.db``
    under ``app``) reach the logger's handlers without passing its filters, so
    they would lack the attributes and a format using them would fail.  For
    every record of every logger, use :func:`instrument` instead.

    The values are read in the thread or task that runs the filter: a handler
    runs where the record is made, except behind a
    :class:`~logging.handlers.QueueListener`, which runs in the listener's
    thread; put the filter on the ``QueueHandler`` instead.  A record that
    already has the attributes (passed through ``extra=``, or filtered before
    being queued) keeps them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Set the three attributes on ``record`` unless already set; return ``True``."""
        add_session_fields(record.__dict__)
        return True


class _SessionRecordFactory:
    """A LogRecord factory that stamps the fields on the records of the factory it wraps."""

    __slots__ = ("active", "wrapped")

    def __init__(self, wrapped: _RecordFactory) -> None:
        self.wrapped = wrapped
        self.active = True

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.wrapped(*args, **kwargs)
        if self.active:
            add_session_fields(record.__dict__)
        return record


_lock = threading.Lock()
_installed: Optional[_SessionRecordFactory] = None


def instrument() -> None:
    """Give every log record of every logger ``session_id``, ``trace_id`` and ``span_id``.

    Installs a LogRecord factory that wraps the one in force, so it chains
    with factories installed before (OpenTelemetry's ``LoggingInstrumentor``
    included) and after it.  Calling it again does nothing.  The values are
    read where the record is made, as :class:`SessionLogFilter` documents.
    As for any record attribute, ``extra=`` may not pass these three names
    while it is installed (``logging`` raises ``KeyError``); put
    :class:`SessionLogFilter` on a handler instead if a call must set them.

    Returns:
        ``None``; nothing is raised, and a second call changes nothing.
    """
    global _installed  # noqa: PLW0603 - one factory per process, as logging has
    with _lock:
        if _installed is not None:
            _installed.active = True  # re-instrumented while another factory wraps ours
            return
        _installed = _SessionRecordFactory(logging.getLogRecordFactory())
        logging.setLogRecordFactory(_installed)


def uninstrument() -> None:
    """Stop adding the fields to new records: undo :func:`instrument`; idempotent.

    When a factory installed later wraps this one, this one stays in the chain
    but adds nothing, so the later factory keeps working.

    Returns:
        ``None``; nothing is raised.
    """
    global _installed  # noqa: PLW0603 - see instrument
    with _lock:
        installed = _installed
        if installed is None:
            return
        if logging.getLogRecordFactory() is installed:
            logging.setLogRecordFactory(installed.wrapped)
            _installed = None
        else:
            installed.active = False
