"""Every test starts with no session and no trace, and leaves none behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tracectrl._trace import attach_trace, detach_trace
from tracectrl.session import _session_id


@pytest.fixture(autouse=True)
def _clean_context(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("TRACECTRL_SESSION_ID", raising=False)
    session_token = _session_id.set(None)
    trace_token = attach_trace(None)
    yield
    detach_trace(trace_token)
    _session_id.reset(session_token)
