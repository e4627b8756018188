"""Zero-code propagation keeps no context alive: checked with weak references and tracemalloc."""

from __future__ import annotations

import gc
import tracemalloc
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import Optional

import pytest

from tracectrl import current_session_id, session_scope
from tracectrl.integrations.threading import instrument, uninstrument

SUBMITS = 100_000
BATCH = 1_000

_payload: ContextVar[Optional[object]] = ContextVar("zero_code_leak_payload", default=None)


class Payload:
    """A value a ContextVar holds that can be watched with a weak reference."""


@pytest.fixture
def instrumented() -> Iterator[None]:
    instrument()
    yield
    uninstrument()


@pytest.mark.usefixtures("instrumented")
def test_no_context_is_retained_after_100000_submits() -> None:
    payloads: list[weakref.ref[Payload]] = []

    def submit_batches(pool: ThreadPoolExecutor, count: int) -> None:
        for _ in range(count // BATCH):
            with session_scope("leak-check"):
                payload = Payload()
                payloads.append(weakref.ref(payload))
                token = _payload.set(payload)
                futures = [pool.submit(_payload.get) for _ in range(BATCH)]
                _payload.reset(token)
                del payload
                assert all(future.result() is not None for future in futures)
                del futures

    with ThreadPoolExecutor(max_workers=2) as pool:
        submit_batches(pool, 5 * BATCH)  # warm up: the pool's threads, the allocator's free lists
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            submit_batches(pool, SUBMITS)
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        assert pool.submit(current_session_id).result() is None
        assert pool.submit(_payload.get).result() is None
        # Checked while the workers live: none of them holds a context it ran.
        assert [ref for ref in payloads if ref() is not None] == []
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # What may remain is the list of weak references itself (105 entries).
    assert growth < 64 * 1024, growth
