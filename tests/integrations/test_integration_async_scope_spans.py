"""`async with session_scope(..., span=...)`: the span ends, with any error, with the block."""

from __future__ import annotations

import asyncio

import pytest
from _tracing import Tracing
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from tracectrl import session_scope


def test_async_scope_span_ends_at_exit_and_records_the_error(global_tracing: Tracing) -> None:
    async def main() -> None:
        async with session_scope("conversation", span="plan"):
            assert global_tracing.exporter.get_finished_spans() == ()
        with pytest.raises(LookupError):
            async with session_scope("conversation", span="failing"):
                raise LookupError("no plan")
        assert trace.get_current_span() is trace.INVALID_SPAN

    asyncio.run(main())
    plan, failing = global_tracing.exporter.get_finished_spans()
    assert (plan.name, plan.status.status_code) == ("plan", StatusCode.UNSET)
    assert (failing.name, failing.status.status_code) == ("failing", StatusCode.ERROR)
