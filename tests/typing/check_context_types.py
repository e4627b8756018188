"""Static checks of tracectrl.context's types: mypy --strict runs this file, never pytest."""

from __future__ import annotations

from http.client import HTTPMessage

from typing_extensions import assert_type

from tracectrl.context import (
    BAGGAGE_SESSION_KEY,
    SESSION_HEADER,
    SESSION_KEY_ENV_VAR,
    SIGNATURE_HEADER,
    SessionKeys,
    TraceContext,
    TrustPolicy,
    continue_session,
    current_trace,
    extract_trace_headers,
    inject_trace_headers,
    propagation_headers,
)

assert_type(SESSION_HEADER, str)
assert_type(BAGGAGE_SESSION_KEY, str)

assert_type(inject_trace_headers(), "dict[str, str]")
assert_type(inject_trace_headers({"Accept": "json"}), "dict[str, str]")
inject_trace_headers({"Accept": 1})  # type: ignore[dict-item]

assert_type(propagation_headers(), "dict[str, str]")
assert_type(propagation_headers({"baggage": "k=v"}), "dict[str, str]")

# Any headers object is accepted on the way in.
assert_type(extract_trace_headers({"traceparent": "..."}), "TraceContext | None")
assert_type(extract_trace_headers(HTTPMessage()), "TraceContext | None")
assert_type(extract_trace_headers([(b"traceparent", b"...")]), "TraceContext | None")

trace = current_trace()
assert_type(trace, "TraceContext | None")
if trace is not None:
    assert_type(trace.trace_id, str)
    assert_type(trace.trace_flags, int)
    assert_type(trace.is_remote, bool)

with continue_session({"X-TraceCtrl-Session": "s"}) as session_id:
    assert_type(session_id, str)


async def use_async_scope(headers: HTTPMessage) -> None:
    async with continue_session(headers) as continued:
        assert_type(continued, str)


assert_type(TraceContext("a" * 32, "b" * 16, 1), TraceContext)

# Signed sessions and the trust boundary.
assert_type(SIGNATURE_HEADER, str)
assert_type(SESSION_KEY_ENV_VAR, str)
assert_type(propagation_headers(key="k"), "dict[str, str]")
assert_type(propagation_headers(key=[b"new", "old"]), "dict[str, str]")
propagation_headers(key=7)  # type: ignore[arg-type]


def from_gateway(headers: object) -> bool:
    return headers is not None


keys: SessionKeys = ("new", b"old")
policy: TrustPolicy = from_gateway
with continue_session({}, trust=from_gateway, key=keys, continue_untrusted_trace=False) as sid:
    assert_type(sid, str)
continue_session({}, trust="yes")  # type: ignore[arg-type]
