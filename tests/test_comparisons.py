"""What other ways of carrying a session id do across threads, processes and HTTP.

The "Why tracectrl" page compares tracectrl with OpenInference's
``using_session``, OpenTelemetry baggage and structlog's contextvars.  Each
claim it makes about those libraries is pinned here, against the real
libraries, so that the page changes when they do.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Optional

import structlog
from openinference.instrumentation import get_attributes_from_context, using_session
from opentelemetry import baggage, propagate
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator

from tracectrl import current_session_id, session_scope
from tracectrl.context import propagation_headers
from tracectrl.executors import submit


def openinference_session() -> Optional[str]:
    """The session id OpenInference would put on a span started here."""
    value = dict(get_attributes_from_context()).get("session.id")
    return None if value is None else str(value)


def baggage_session() -> Optional[str]:
    value = baggage.get_baggage("session.id")
    return None if value is None else str(value)


def structlog_session() -> Optional[str]:
    value = structlog.contextvars.get_contextvars().get("session_id")
    return None if value is None else str(value)


def test_openinference_using_session_does_not_reach_a_plain_pool_thread() -> None:
    with ThreadPoolExecutor(max_workers=1) as pool, using_session("conversation-1"):
        assert openinference_session() == "conversation-1"
        assert pool.submit(openinference_session).result() is None


def test_openinference_using_session_is_not_sent_by_the_default_propagators() -> None:
    carrier: dict[str, str] = {}
    with using_session("conversation-1"):
        propagate.inject(carrier)  # tracecontext + baggage, OpenTelemetry's default
    assert "conversation-1" not in "".join(carrier.values())


def test_opentelemetry_baggage_is_sent_over_http_but_does_not_reach_a_plain_pool_thread() -> None:
    token = otel_context.attach(baggage.set_baggage("session.id", "conversation-2"))
    try:
        carrier: dict[str, str] = {}
        W3CBaggagePropagator().inject(carrier)
        with ThreadPoolExecutor(max_workers=1) as pool:
            in_thread = pool.submit(baggage_session).result()
    finally:
        otel_context.detach(token)
    assert carrier == {"baggage": "session.id=conversation-2"}
    assert in_thread is None


def test_structlog_contextvars_do_not_reach_a_plain_pool_thread() -> None:
    structlog.contextvars.bind_contextvars(session_id="conversation-3")
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            in_thread = pool.submit(structlog_session).result()
    finally:
        structlog.contextvars.clear_contextvars()
    assert in_thread is None


def test_only_tracectrl_submit_carries_the_session_into_a_process_pool() -> None:
    spawn = multiprocessing.get_context("spawn")
    structlog.contextvars.bind_contextvars(session_id="conversation-4")
    token = otel_context.attach(baggage.set_baggage("session.id", "conversation-4"))
    try:
        pool = ProcessPoolExecutor(max_workers=1, mp_context=spawn)
        with pool, using_session("conversation-4"), session_scope("conversation-4"):
            seen: dict[str, Any] = {
                "openinference": pool.submit(openinference_session).result(),
                "baggage": pool.submit(baggage_session).result(),
                "structlog": pool.submit(structlog_session).result(),
                "tracectrl, plain submit": pool.submit(current_session_id).result(),
                "tracectrl submit": submit(pool, current_session_id).result(),
            }
    finally:
        otel_context.detach(token)
        structlog.contextvars.clear_contextvars()
    assert seen == {
        "openinference": None,
        "baggage": None,
        "structlog": None,
        "tracectrl, plain submit": None,
        "tracectrl submit": "conversation-4",
    }


def test_tracectrl_sends_the_session_in_its_header_and_in_baggage() -> None:
    with session_scope("conversation-5"):
        headers = propagation_headers()
    assert headers["X-TraceCtrl-Session"] == "conversation-5"
    assert headers["baggage"] == "session.id=conversation-5"


def test_every_one_of_them_reaches_asyncio_tasks_created_inside() -> None:
    async def seen_in_a_task() -> dict[str, Optional[str]]:
        async def read() -> dict[str, Optional[str]]:
            return {
                "openinference": openinference_session(),
                "baggage": baggage_session(),
                "structlog": structlog_session(),
                "tracectrl": current_session_id(),
            }

        return await asyncio.create_task(read())

    structlog.contextvars.bind_contextvars(session_id="conversation-6")
    token = otel_context.attach(baggage.set_baggage("session.id", "conversation-6"))
    try:
        with using_session("conversation-6"), session_scope("conversation-6"):
            seen = asyncio.run(seen_in_a_task())
    finally:
        otel_context.detach(token)
        structlog.contextvars.clear_contextvars()
    assert set(seen.values()) == {"conversation-6"}
