"""Log records and structlog events carry the session id and trace id they were made under."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest
import structlog

from tracectrl import session_scope
from tracectrl.context import continue_session
from tracectrl.integrations.logging import SessionLogFilter
from tracectrl.integrations.structlog import add_session_context

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
HEADERS = {"traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-01", "X-TraceCtrl-Session": "s-1"}


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A private logger that does not propagate to the root logger."""
    logger = logging.getLogger(f"tracectrl.tests.{id(object())}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    for log_filter in list(logger.filters):
        logger.removeFilter(log_filter)


def test_records_carry_session_and_trace_inside_a_scope_and_none_outside(
    logger: logging.Logger,
) -> None:
    handler = _Records()
    logger.addHandler(handler)
    logger.addFilter(SessionLogFilter())

    logger.info("before")
    with continue_session(HEADERS):
        logger.info("inside")
    logger.info("after")

    seen = [(r.getMessage(), r.session_id, r.trace_id) for r in handler.records]
    assert seen == [("before", None, None), ("inside", "s-1", TRACE_ID), ("after", None, None)]


def test_values_given_with_extra_are_kept(logger: logging.Logger) -> None:
    handler = _Records()
    logger.addHandler(handler)
    logger.addFilter(SessionLogFilter())
    with session_scope("ambient"):
        logger.info("explicit", extra={"session_id": "chosen"})
    assert handler.records[0].session_id == "chosen"


def test_dict_config_builds_the_filter_and_formats_every_line(logger: logging.Logger) -> None:
    stream = io.StringIO()
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"session": {"()": "tracectrl.integrations.logging.SessionLogFilter"}},
            "formatters": {"plain": {"format": "%(session_id)s %(trace_id)s %(message)s"}},
            "handlers": {
                "memory": {
                    "class": "logging.StreamHandler",
                    "stream": stream,
                    "filters": ["session"],
                    "formatter": "plain",
                }
            },
            "loggers": {logger.name: {"handlers": ["memory"], "level": "INFO"}},
        }
    )
    logger.info("outside")
    with continue_session(HEADERS):
        logger.info("inside")
    assert stream.getvalue().splitlines() == ["None None outside", f"s-1 {TRACE_ID} inside"]


def test_structlog_events_carry_session_and_trace_inside_a_scope_and_none_outside() -> None:
    output = io.StringIO()
    log = structlog.wrap_logger(
        structlog.PrintLogger(output),
        processors=[add_session_context, structlog.processors.JSONRenderer(sort_keys=True)],
    )
    log.info("before")
    with continue_session(HEADERS):
        log.info("inside")
        log.info("bound", session_id="chosen")
    log.info("after")

    events = [json.loads(line) for line in output.getvalue().splitlines()]
    assert [(e["event"], e["session_id"], e["trace_id"]) for e in events] == [
        ("before", None, None),
        ("inside", "s-1", TRACE_ID),
        ("bound", "chosen", TRACE_ID),
        ("after", None, None),
    ]
