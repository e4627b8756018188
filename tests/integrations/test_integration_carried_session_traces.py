"""Scopes under a session OpenTelemetry's propagator carried in: which of them start a trace.

A scope that names the carried session is the same session, so it keeps the
request's trace; a scope of any other session starts a trace of its own.
"""

from __future__ import annotations

from contextvars import Context

from opentelemetry import context as otel_context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tracectrl import current_session_id, session_scope
from tracectrl._trace import current_trace
from tracectrl.integrations.otel import SessionPropagator

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
REQUEST = {"traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-01", "x-tracectrl-session": "caller"}
PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), SessionPropagator()])


def _trace_ids_under_the_request() -> dict[str, str | None]:
    token = otel_context.attach(PROPAGATOR.extract(REQUEST))
    try:
        assert current_session_id() == "caller"
        seen: dict[str, str | None] = {}
        for name in ("caller", "other"):
            with session_scope(name):
                trace = current_trace()
                seen[name] = None if trace is None else trace.trace_id
        return seen
    finally:
        otel_context.detach(token)


def test_scope_of_the_carried_session_keeps_the_request_trace_and_another_starts_its_own() -> None:
    seen = _trace_ids_under_the_request()
    assert seen["caller"] == TRACE_ID
    assert seen["other"] not in (None, TRACE_ID)


def test_scope_of_the_carried_session_keeps_the_request_trace_where_no_session_was_ever_set() -> (
    None
):
    # A fresh context, as in a server thread tracectrl never touched: no session
    # value at all, not even None, was set before the request.
    seen = Context().run(_trace_ids_under_the_request)
    assert seen["caller"] == TRACE_ID
    assert seen["other"] not in (None, TRACE_ID)
