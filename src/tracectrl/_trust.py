"""The trust boundary for incoming sessions: who may set the session, and signed sessions.

An incoming session id is a claim by the caller.  Whoever can reach an agent can
name any session, and so write into another user's audit trail.  Two checks,
each opt-in, decide whether :class:`tracectrl.context.continue_session` (and the
server middlewares, which use it) adopts the claim:

* a *trust* callable, given the request (the headers object, the ASGI scope or
  the WSGI environ), answers whether this caller may set the session at all;
* with a *session key* (``key=`` or ``$TRACECTRL_SESSION_KEY``), the session is
  adopted only with a valid HMAC-SHA256 signature of the session id and the
  trace id, sent by :func:`tracectrl.context.propagation_headers` in
  ``X-TraceCtrl-Session-Signature``.  Several keys may be configured: the first
  signs, any verifies, so keys can be rotated without a flag day.

An untrusted claim is ignored, never raised: the request gets a new session and,
unless told otherwise, still continues the caller's trace.  This module is the
only place that signs, verifies or decides; ``context`` calls it at one point on
each side.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from tracectrl._sessionvar import SESSION_ID_ENV_VAR
from tracectrl._tracecontext import preview
from tracectrl._wire import SIGNATURE_FIELD, SIGNATURE_HEADER, TRACEPARENT

if TYPE_CHECKING:
    from hashlib import _Hash

    from tracectrl._trace import TraceContext

SESSION_KEY_ENV_VAR = "TRACECTRL_SESSION_KEY"
"""The environment variable that holds the session key(s), comma-separated; the first signs.

Read once per process, when a key is first needed.
"""

SessionKeys = Union[str, bytes, Sequence[Union[str, bytes]]]
"""One key (text is encoded as UTF-8) or several, the first of which signs."""
TrustPolicy = Callable[[Any], bool]
"""Decides from the request whether its caller may set the session."""

_SCHEME = "sha256="
_SIGNATURE_LENGTH = len(_SCHEME) + 64
_OWS = " \t"
_BLOCK_SIZE = 64  # SHA-256's, as RFC 2104 uses it
# Keys as given -> as bytes, and keys -> their prepared hash states.  A process
# uses a handful of keys; the bound only stops a caller that makes keys on the fly.
_MAX_CACHED_KEYS = 64
_parsed_keys: dict[object, tuple[bytes, ...]] = {}
_prepared_keys: dict[bytes, tuple[_Hash, _Hash]] = {}
_key_only_admissions: dict[tuple[tuple[bytes, ...], bool], Admission] = {}

_log = logging.getLogger("tracectrl.trust")

# $TRACECTRL_SESSION_KEY, parsed; None until first needed.  Read once per
# process, like OpenTelemetry's OTEL_* variables: an os.environ lookup of a
# missing variable costs more than reading all the headers of a request.
_env_keys: Optional[tuple[bytes, ...]] = None
# Whether $TRACECTRL_SESSION_ID was looked at yet (once per process, same reason).
_checked_session_env = False


def session_keys(key: SessionKeys | None) -> tuple[bytes, ...]:
    """Return the keys ``key`` names, or those of ``$TRACECTRL_SESSION_KEY`` when it is ``None``.

    Empty keys are dropped; no key at all gives ``()``, which signs and checks nothing.

    Raises:
        TypeError: ``key`` is neither text, bytes, nor a sequence of them.
    """
    if key is None:
        return _keys_from_environment()
    # Keys given as text, bytes or a tuple are parsed once; a list, each time.
    cacheable = isinstance(key, (str, bytes, tuple))
    if cacheable:
        try:
            cached = _parsed_keys.get(key)
        except TypeError:  # a tuple holding something unhashable: refused below
            cached = None
        if cached is not None:
            return cached
    keys = _parse_keys(key)
    if cacheable:
        if len(_parsed_keys) >= _MAX_CACHED_KEYS:
            _parsed_keys.clear()
        _parsed_keys[key] = keys
    return keys


def _parse_keys(key: SessionKeys) -> tuple[bytes, ...]:
    if isinstance(key, (str, bytes)):
        key = (key,)
    keys = []
    for given in key:
        if isinstance(given, str):
            encoded = given.encode()
        elif isinstance(given, bytes):
            encoded = given
        else:
            raise TypeError(f"a session key must be str or bytes, got {type(given).__name__}")
        if encoded:
            keys.append(encoded)
    return tuple(keys)


def sign_session(headers: dict[str, str], session_id: str, key: SessionKeys | None) -> None:
    """Add the session's signature to outgoing ``headers`` when a key is configured.

    ``headers`` must already hold the ``traceparent`` that goes with it: the
    signature covers the session id and that trace id, so it cannot be moved
    to another trace.  Without a key, nothing is added.
    """
    keys = session_keys(key)
    if keys:
        # "00-" + trace-id: the version 00 traceparent this library writes.
        headers[SIGNATURE_HEADER] = _outgoing_signature(
            keys[0], session_id, headers[TRACEPARENT][3:35]
        )


def session_signature(session_id: str, trace_id: str, key: SessionKeys | None) -> str | None:
    """Return the signature header value for ``session_id`` in ``trace_id``; ``None`` with no key.

    ``key`` ``None`` means ``$TRACECTRL_SESSION_KEY``; of several keys, the first signs.
    """
    keys = session_keys(key)
    return _outgoing_signature(keys[0], session_id, trace_id) if keys else None


def _outgoing_signature(key: bytes, session_id: str, trace_id: str) -> str:
    """Return :func:`_signature`, from a one-entry memo when the last outgoing call had it.

    Every outgoing call of one unit of work signs the same session and trace-id
    (only the parent-id changes), so an agent calling several others in one turn
    computes one HMAC.  Only the sending side remembers: a receiver checks every
    signature it is given.
    """
    global _last_outgoing  # noqa: PLW0603 - one entry, replaced whole (atomic under the GIL)
    signed = (key, session_id, trace_id)
    last = _last_outgoing
    if last[0] == signed:
        return last[1]
    signature = _signature(key, session_id, trace_id)
    _last_outgoing = (signed, signature)
    return signature


_last_outgoing: tuple[tuple[bytes, str, str], str] = ((b"", "", ""), "")


class Admission:
    """The receiving side's policy for one :class:`~tracectrl.context.continue_session`."""

    __slots__ = ("continue_trace", "keys", "request", "trust")

    def __init__(
        self,
        request: object,
        trust: TrustPolicy | None,
        keys: tuple[bytes, ...],
        continue_trace: bool,
    ) -> None:
        self.request = request
        self.trust = trust
        self.keys = keys
        self.continue_trace = continue_trace

    def admit(
        self,
        fields: dict[str, list[str]],
        session_id: str | None,
        trace: TraceContext | None,
    ) -> tuple[str | None, TraceContext | None]:
        """Return the session and trace to continue: the caller's, or ``None`` where not trusted.

        Never raises: a trust callable that fails counts as "not trusted" and
        is logged at WARNING with its traceback, as a bug to fix.
        """
        reason = None
        if self.trust is not None and not self._trusted():
            reason = "the caller is not trusted"
        elif session_id is not None and self.keys:
            reason = _signature_problem(self.keys, session_id, trace, fields.get(SIGNATURE_FIELD))
        if reason is None:
            return session_id, trace
        if session_id is not None:
            _log.debug("did not adopt incoming session %s: %s", preview(session_id), reason)
        return None, trace if self.continue_trace else None

    def _trusted(self) -> bool:
        assert self.trust is not None
        try:
            return bool(self.trust(self.request))
        except Exception:
            _log.warning("the trust callable failed; the request is not trusted", exc_info=True)
            return False


def admission(
    request: object, trust: TrustPolicy | None, key: SessionKeys | None, continue_trace: bool
) -> Admission | None:
    """Return the policy for one incoming request, or ``None`` when every caller is trusted."""
    keys = session_keys(key)
    if trust is not None:
        return Admission(request, trust, keys, continue_trace)
    if not keys:
        return None
    # Keys alone do not look at the request: one policy per set of keys serves all.
    shared = _key_only_admissions.get((keys, continue_trace))
    if shared is None:
        if len(_key_only_admissions) >= _MAX_CACHED_KEYS:
            _key_only_admissions.clear()
        shared = _key_only_admissions[keys, continue_trace] = Admission(
            None, None, keys, continue_trace
        )
    return shared


def trust_for_request(trust: Callable[[Any], bool], request: object) -> TrustPolicy:
    """Return a trust callable for ``continue_session`` that asks ``trust`` about ``request``.

    For the middlewares: their ``trust`` is given the ASGI scope or the WSGI
    environ, which hold the client address and path, not just the headers.
    """
    return lambda _headers: trust(request)


def exact_paths(paths: Iterable[str]) -> frozenset[str]:
    """Return ``paths`` as a set of exact paths.

    Raises:
        TypeError: ``paths`` is one string (which would be read as its characters).
    """
    if isinstance(paths, (str, bytes)):
        raise TypeError(f"exclude_paths takes a list of paths, got the string {paths!r}")
    return frozenset(paths)


def warn_if_session_env_set() -> None:
    """Warn if ``$TRACECTRL_SESSION_ID`` is set where requests are served; look once per process.

    In a server that variable is the session of every request that brings
    none and of every ``new=True``: all of them would merge into one session.
    The first middleware or ``continue_session`` of the process looks.
    """
    global _checked_session_env  # noqa: PLW0603 - once per process
    if _checked_session_env:
        return
    _checked_session_env = True
    if not os.environ.get(SESSION_ID_ENV_VAR):
        return
    warnings.warn(
        f"${SESSION_ID_ENV_VAR} is set in a process that continues incoming sessions: every "
        "request that brings no session, and every new=True scope, joins that one session. "
        "Unset it in servers; it is meant for scripts and tests.",
        RuntimeWarning,
        stacklevel=3,
    )


def _keys_from_environment() -> tuple[bytes, ...]:
    global _env_keys  # noqa: PLW0603 - the variable, read once
    keys = _env_keys
    if keys is None:
        raw = os.environ.get(SESSION_KEY_ENV_VAR, "")
        keys = _env_keys = tuple(part.strip().encode() for part in raw.split(",") if part.strip())
    return keys


def _signature(key: bytes, session_id: str, trace_id: str) -> str:
    """Return ``sha256=`` and the hex HMAC-SHA256 (RFC 2104) of the trace-id and session id."""
    prepared = _prepared_keys.get(key)
    if prepared is None:
        prepared = _prepare(key)
    # The trace-id has a fixed length, so "<trace-id>:<session id>" is
    # unambiguous whatever the session id holds.
    inner = prepared[0].copy()
    inner.update(f"{trace_id}:{session_id}".encode())
    outer = prepared[1].copy()
    outer.update(inner.digest())
    return _SCHEME + outer.hexdigest()


def _prepare(key: bytes) -> tuple[_Hash, _Hash]:
    # HMAC with the key's inner and outer pads hashed once, then copied per
    # message: half the time of hmac.digest(), which with OpenSSL 3 sets the
    # key up again on every call (measured on 3.9 and 3.13).  Equal to
    # hmac.new(key, message, "sha256"), as the tests check.
    short_key = hashlib.sha256(key).digest() if len(key) > _BLOCK_SIZE else key
    padded = short_key.ljust(_BLOCK_SIZE, b"\0")
    prepared = (
        hashlib.sha256(bytes(byte ^ 0x36 for byte in padded)),
        hashlib.sha256(bytes(byte ^ 0x5C for byte in padded)),
    )
    if len(_prepared_keys) >= _MAX_CACHED_KEYS:
        _prepared_keys.clear()
    _prepared_keys[key] = prepared
    return prepared


def _signature_problem(
    keys: tuple[bytes, ...],
    session_id: str,
    trace: TraceContext | None,
    values: list[str] | None,
) -> str | None:
    if not values:
        return f"no {SIGNATURE_HEADER}"
    if len(values) != 1:
        return f"{len(values)} {SIGNATURE_HEADER} fields"
    if trace is None:
        return "a signed session needs the traceparent it was signed with"
    received = values[0].strip(_OWS)
    if len(received) != _SIGNATURE_LENGTH or not received.isascii():
        return f"malformed {SIGNATURE_HEADER} {preview(received)}"
    valid = False
    for key in keys:
        # Every key is tried, each compared in constant time: the time taken
        # tells neither how much of the signature matched nor which key did.
        valid |= hmac.compare_digest(_signature(key, session_id, trace.trace_id), received)
    return None if valid else "the signature does not match"
