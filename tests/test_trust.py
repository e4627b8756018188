"""The trust boundary: who may set the session, and signed sessions with key rotation."""

from __future__ import annotations

import hmac
import logging
import uuid
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from tracectrl import _trust, current_session_id, current_trace, session_scope
from tracectrl.context import (
    SESSION_HEADER,
    SESSION_KEY_ENV_VAR,
    SIGNATURE_HEADER,
    continue_session,
    propagation_headers,
)

pytestmark = pytest.mark.usefixtures("trace_backend")

PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
OTHER_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
KEY = "key-2026-a"
OLD_KEY = b"key-2025-z"


def _is_uuid(text: object) -> bool:
    try:
        return str(uuid.UUID(str(text))) == text
    except ValueError:
        return False


def _sent(session_id: str, **kwargs: Any) -> dict[str, str]:
    with session_scope(session_id):
        return propagation_headers(**kwargs)


def test_signed_headers_carry_the_session_unchanged_plus_a_sha256_signature() -> None:
    unsigned = _sent("user 7 / café")
    signed = _sent("user 7 / café", key=KEY)
    assert signed[SESSION_HEADER] == unsigned[SESSION_HEADER] == "user%207%20%2F%20caf%C3%A9"
    assert SIGNATURE_HEADER not in unsigned
    scheme, _, digest = signed[SIGNATURE_HEADER].partition("=")
    assert scheme == "sha256"
    assert len(digest) == 64
    assert int(digest, 16) >= 0
    trace_id = signed["traceparent"].split("-")[1]
    expected = hmac.new(KEY.encode(), f"{trace_id}:user 7 / café".encode(), "sha256").hexdigest()
    assert digest == expected


def test_receiver_with_the_key_adopts_a_signed_session_and_its_trace() -> None:
    headers = _sent("alice", key=KEY)
    with continue_session(headers, key=KEY) as session_id:
        assert session_id == "alice"
        trace = current_trace()
        assert trace is not None
        assert trace.trace_id == headers["traceparent"].split("-")[1]


@pytest.mark.parametrize(
    "tamper",
    [
        "no signature",
        "signature of another session",
        "signature for another trace",
        "signed with another key",
        "two signature fields",
        "malformed signature",
        "non-ASCII signature",
        "no traceparent",
    ],
)
def test_receiver_with_a_key_ignores_every_session_that_is_not_correctly_signed(
    tamper: str,
) -> None:
    headers: Any = _sent("alice", key=KEY)
    if tamper == "no signature":
        del headers[SIGNATURE_HEADER]
    elif tamper == "signature of another session":
        headers[SIGNATURE_HEADER] = _sent("mallory", key=KEY)[SIGNATURE_HEADER]
        headers[SESSION_HEADER] = "alice"
    elif tamper == "signature for another trace":
        headers["traceparent"] = OTHER_TRACEPARENT
    elif tamper == "signed with another key":
        headers = _sent("alice", key="not-the-key")
    elif tamper == "two signature fields":
        headers = [*headers.items(), (SIGNATURE_HEADER, headers[SIGNATURE_HEADER])]
    elif tamper == "malformed signature":
        headers[SIGNATURE_HEADER] = headers[SIGNATURE_HEADER][:-1]
    elif tamper == "non-ASCII signature":
        headers[SIGNATURE_HEADER] = headers[SIGNATURE_HEADER][:-1] + "\u00e9"
    else:
        del headers["traceparent"]
    sent_traceparent = dict(headers).get("traceparent")
    with continue_session(headers, key=KEY) as session_id:
        assert _is_uuid(session_id), "a new session, not the claimed one"
        trace = current_trace()
        assert trace is not None
        if sent_traceparent is not None:  # the trace is still the caller's
            assert trace.trace_id == sent_traceparent[3:35]
    assert current_session_id() is None


def test_untrusted_sessions_still_continue_the_callers_trace() -> None:
    headers = {"traceparent": TRACEPARENT, SESSION_HEADER: "alice"}
    with continue_session(headers, key=KEY) as session_id:
        assert _is_uuid(session_id)
        trace = current_trace()
        assert trace is not None
        assert trace.trace_id == TRACE_ID


def test_untrusted_sessions_start_a_new_trace_when_told_to() -> None:
    headers = {"traceparent": TRACEPARENT, SESSION_HEADER: "alice"}
    with continue_session(headers, key=KEY, continue_untrusted_trace=False) as session_id:
        assert _is_uuid(session_id)
        trace = current_trace()
        assert trace is not None
        assert trace.trace_id != TRACE_ID
    with continue_session(headers, trust=lambda _: False, continue_untrusted_trace=False):
        trace = current_trace()
        assert trace is not None
        assert trace.trace_id != TRACE_ID


def test_a_session_in_baggage_must_be_signed_too() -> None:
    signed = _sent("alice", key=KEY)
    baggage_only = {
        "traceparent": signed["traceparent"],
        "baggage": signed["baggage"],
        SIGNATURE_HEADER: signed[SIGNATURE_HEADER],
    }
    with continue_session(baggage_only, key=KEY) as session_id:
        assert session_id == "alice"
    del baggage_only[SIGNATURE_HEADER]
    with continue_session(baggage_only, key=KEY) as session_id:
        assert _is_uuid(session_id)


def test_a_receiver_accepts_every_key_it_holds_for_rotation() -> None:
    old = _sent("alice", key=OLD_KEY)
    new = _sent("bob", key=KEY)
    for headers, expected in ((old, "alice"), (new, "bob")):
        with continue_session(headers, key=[KEY, OLD_KEY]) as session_id:
            assert session_id == expected
    with continue_session(old, key=KEY) as session_id:
        assert _is_uuid(session_id), "a retired key no longer verifies"


def test_the_first_key_signs() -> None:
    signed_with_first = _sent("alice", key=[KEY, OLD_KEY])
    with continue_session(signed_with_first, key=KEY) as session_id:
        assert session_id == "alice"


def test_the_environment_variable_holds_the_keys_comma_separated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SESSION_KEY_ENV_VAR, f" {KEY} , {OLD_KEY.decode()} ")
    headers = _sent("alice")  # signed with the first key of the variable
    with continue_session(headers, key=KEY) as session_id:
        assert session_id == "alice"
    with continue_session(_sent("bob", key=OLD_KEY)) as session_id:
        assert session_id == "bob"
    with continue_session({"traceparent": TRACEPARENT, SESSION_HEADER: "eve"}) as session_id:
        assert _is_uuid(session_id)
    monkeypatch.delenv(SESSION_KEY_ENV_VAR)
    assert SIGNATURE_HEADER in _sent("alice"), "read once per process"
    monkeypatch.setattr(_trust, "_env_keys", None)  # as in a new process
    assert SIGNATURE_HEADER not in _sent("alice")


def test_each_key_is_compared_in_constant_time_without_stopping_at_a_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compared: list[tuple[str, str]] = []
    real_compare = hmac.compare_digest

    def recording_compare(a: str, b: str) -> bool:
        compared.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(_trust.hmac, "compare_digest", recording_compare)
    headers = _sent("alice", key=KEY)
    with continue_session(headers, key=[KEY, OLD_KEY, "third"]) as session_id:
        assert session_id == "alice"
    assert len(compared) == 3
    assert all(received == headers[SIGNATURE_HEADER] for _, received in compared)


def test_trust_callable_gets_the_headers_object_and_decides() -> None:
    headers = {"traceparent": TRACEPARENT, SESSION_HEADER: "alice"}
    seen: list[object] = []

    def trusted(request: object) -> bool:
        seen.append(request)
        return True

    with continue_session(headers, trust=trusted) as session_id:
        assert session_id == "alice"
    assert seen == [headers]
    assert seen[0] is headers
    with continue_session(headers, trust=lambda request: False) as session_id:
        assert _is_uuid(session_id)
        trace = current_trace()
        assert trace is not None
        assert trace.trace_id == TRACE_ID


def test_trust_and_key_must_both_agree() -> None:
    signed = _sent("alice", key=KEY)
    with continue_session(signed, trust=lambda _: False, key=KEY) as session_id:
        assert _is_uuid(session_id)
    with continue_session(signed, trust=lambda _: True, key=KEY) as session_id:
        assert session_id == "alice"


def test_a_failing_trust_callable_means_untrusted_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(request: object) -> bool:
        raise KeyError("client")

    headers = {"traceparent": TRACEPARENT, SESSION_HEADER: "alice"}
    caplog.set_level(logging.WARNING, "tracectrl.trust")
    with continue_session(headers, trust=broken) as session_id:
        assert _is_uuid(session_id)
    assert "trust callable failed" in caplog.text
    assert "KeyError" in caplog.text


def test_a_bad_key_type_raises_at_the_call() -> None:
    with pytest.raises(TypeError, match="session key must be str or bytes, got int"):
        continue_session({}, key=[KEY, 7])  # type: ignore[list-item]
    with session_scope("alice"), pytest.raises(TypeError, match="must be str or bytes, got int"):
        propagation_headers(key=[7])  # type: ignore[list-item]


def test_session_env_var_in_a_server_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_trust, "_checked_session_env", False)
    monkeypatch.setenv("TRACECTRL_SESSION_ID", "shared")
    with pytest.warns(RuntimeWarning, match=r"\$TRACECTRL_SESSION_ID is set .* one session"):
        scope = continue_session({})
    with scope as session_id:
        assert session_id == "shared"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with continue_session({}):  # once per process
            pass


def test_no_warning_when_the_session_env_var_is_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_trust, "_checked_session_env", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with continue_session({}) as session_id:
            assert _is_uuid(session_id)


# --------------------------------------------------------------------------- #
# Properties.
# --------------------------------------------------------------------------- #

SESSION_IDS = st.text(
    st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")),
    min_size=1,
    max_size=40,
).filter(str.isprintable)
KEYS = st.text(min_size=1, max_size=20).filter(lambda key: "," not in key) | st.binary(
    min_size=1, max_size=20
)
TEXT = st.text(max_size=80)


@PROPERTY
@given(
    session_id=SESSION_IDS, sender_keys=st.lists(KEYS, min_size=1, max_size=3), rotate=st.booleans()
)
def test_any_signed_session_is_adopted_by_a_receiver_holding_the_signing_key(
    session_id: str, sender_keys: list[str | bytes], rotate: bool
) -> None:
    headers = _sent(session_id, key=sender_keys)
    receiver = [b"another key", *sender_keys[:1]] if rotate else sender_keys[:1]
    with continue_session(headers, key=receiver) as seen:
        assert seen == session_id


@PROPERTY
@given(
    session_id=SESSION_IDS,
    signature=TEXT | st.text("0123456789abcdef", min_size=64, max_size=64).map("sha256=".__add__),
    claimed=SESSION_IDS,
)
@example(session_id="alice", signature="sha256=" + "0" * 64, claimed="alice")
def test_no_forged_signature_or_swapped_session_is_adopted(
    session_id: str, signature: str, claimed: str
) -> None:
    genuine = _sent(session_id, key=KEY)
    forged = {**genuine, SIGNATURE_HEADER: signature}
    swapped = {**genuine, SESSION_HEADER: _sent(claimed)[SESSION_HEADER]}
    for headers, honest in (
        (forged, signature == genuine[SIGNATURE_HEADER]),
        (swapped, claimed == session_id),
    ):
        with continue_session(headers, key=KEY) as seen:
            event("adopted" if honest else "refused")
            assert (seen == session_id) if honest else _is_uuid(seen)


HEADER_VALUES = TEXT | st.binary(max_size=40) | st.lists(TEXT, max_size=3) | st.none()
HEADER_NAMES = st.sampled_from(
    ["traceparent", "tracestate", "baggage", SESSION_HEADER, SIGNATURE_HEADER.lower(),
     SIGNATURE_HEADER.upper(), "x-other"]
)  # fmt: skip
HEADERS = st.dictionaries(HEADER_NAMES | TEXT, HEADER_VALUES, max_size=6) | st.lists(
    st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=6
)


@PROPERTY
@given(headers=HEADERS, trusted=st.booleans(), keyed=st.booleans(), continue_trace=st.booleans())
def test_hostile_headers_never_raise_and_never_set_an_unverified_session(
    headers: Any, trusted: bool, keyed: bool, continue_trace: bool
) -> None:
    with continue_session(
        headers,
        trust=lambda _: trusted,
        key=KEY if keyed else None,
        continue_untrusted_trace=continue_trace,
    ) as session_id:
        assert current_session_id() == session_id
        if keyed or not trusted:
            # No signature made with KEY can appear in random text.
            assert _is_uuid(session_id)
        assert current_trace() is not None
    assert current_session_id() is None


@PROPERTY
@given(st.binary(min_size=1, max_size=200), SESSION_IDS, st.integers(1, 2**128 - 1))
@example(b"k" * 64, "alice", 1)
@example(b"k" * 65, "alice", 1)
def test_the_signature_is_hmac_sha256_for_keys_of_any_length(
    key: bytes, session_id: str, trace_number: int
) -> None:
    trace_id = f"{trace_number:032x}"
    expected = hmac.new(key, f"{trace_id}:{session_id}".encode(), "sha256").hexdigest()
    assert _trust._signature(key, session_id, trace_id) == "sha256=" + expected
