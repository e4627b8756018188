"""The trust module's caches stay bounded: a caller cycling through keys cannot grow them.

Keys come from configuration, not from requests, but a process that builds many
middlewares or calls ``continue_session(key=...)`` with changing keys must still
hold at most ``_MAX_CACHED_KEYS`` of each cached object.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tracectrl import _trust

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(autouse=True)
def empty_caches() -> Iterator[None]:
    caches = (_trust._parsed_keys, _trust._prepared_keys, _trust._key_only_admissions)
    for cache in caches:
        cache.clear()
    yield
    for cache in caches:
        cache.clear()


def _use_keys(count: int) -> None:
    for number in range(count):
        key = f"rotation-key-{number}"
        _trust.admission(None, None, key, True)
        _trust.session_signature("user-1", TRACE_ID, key)


def test_trust_caches_fill_to_their_bound_and_start_over_past_it() -> None:
    bound = _trust._MAX_CACHED_KEYS
    assert bound == 64
    _use_keys(bound)
    assert len(_trust._parsed_keys) == bound
    assert len(_trust._prepared_keys) == bound
    assert len(_trust._key_only_admissions) == bound
    _use_keys(bound + 1)  # the same keys again, and one more
    assert len(_trust._parsed_keys) == 1
    assert len(_trust._prepared_keys) == 1
    assert len(_trust._key_only_admissions) == 1


def test_a_key_used_twice_is_parsed_and_prepared_once() -> None:
    first = _trust.session_keys("steady-key")
    assert _trust.session_keys("steady-key") is first
    policy = _trust.admission(None, None, "steady-key", True)
    assert _trust.admission(None, None, "steady-key", True) is policy
    signature = _trust.session_signature("user-1", TRACE_ID, "steady-key")
    prepared = _trust._prepared_keys[b"steady-key"]
    assert _trust.session_signature("user-1", TRACE_ID, "steady-key") == signature
    assert _trust._prepared_keys[b"steady-key"] is prepared


def _expected_signature(key: str, session_id: str, trace_id: str) -> str:
    import hashlib
    import hmac

    message = f"{trace_id}:{session_id}".encode()
    return "sha256=" + hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    "changed",
    [
        ("other-key", "user-1", TRACE_ID),
        ("steady-key", "user-2", TRACE_ID),
        ("steady-key", "user-1", "0af7651916cd43dd8448eb211c80319c"),
    ],
    ids=["key", "session", "trace"],
)
def test_the_remembered_outgoing_signature_is_never_reused_for_another_key_session_or_trace(
    changed: tuple[str, str, str],
) -> None:
    first = _trust.session_signature("user-1", TRACE_ID, "steady-key")
    assert first == _expected_signature("steady-key", "user-1", TRACE_ID)
    assert _trust.session_signature("user-1", TRACE_ID, "steady-key") == first
    key, session_id, trace_id = changed
    assert _trust.session_signature(session_id, trace_id, key) == _expected_signature(
        key, session_id, trace_id
    )
