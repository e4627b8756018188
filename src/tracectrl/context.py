"""Carrying the W3C trace and the session id across HTTP between agents.

The caller sends the trace in ``traceparent``/``tracestate`` and the session in
``X-TraceCtrl-Session`` and in W3C ``baggage`` as ``session.id``; the callee
continues both.  One call per side does it all::

    requests.post(url, headers=propagation_headers())      # agent A

    with continue_session(request.headers):                 # agent B
        ...

The low-level pair, :func:`inject_trace_headers` and
:func:`extract_trace_headers`, handles the trace alone.  Incoming headers are
untrusted: whatever is malformed or oversized is ignored and logged at DEBUG on
a ``tracectrl.*`` logger, never raised and never copied into a header this
module emits.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Optional

from tracectrl._baggage import (
    baggage_members,
    merge_baggage,
)
from tracectrl._continuation import Continued, enter, leave_trace, local_trace
from tracectrl._headers import header_field_pair, header_values
from tracectrl._sessionvar import session_var
from tracectrl._tokens import reset_latest
from tracectrl._trace import (
    TraceContext,
    TraceValue,
    attach_trace,
    clear_trace,
    current_trace,
    get_trace_state,
    new_trace,
    otel_context,
)
from tracectrl._tracecontext import (
    outgoing_traceparent,
    outgoing_tracestate,
    trace_from_fields,
)
from tracectrl._trust import (
    SESSION_KEY_ENV_VAR,
    SessionKeys,
    TrustPolicy,
    admission,
    sign_session,
    warn_if_session_env_set,
)
from tracectrl._wire import (
    ALL_NAMES,
    BAGGAGE,
    BAGGAGE_SESSION_KEY,
    SESSION_HEADER,
    SIGNATURE_HEADER,
    TRACE_NAMES,
    TRACEPARENT,
    TRACESTATE,
    encode_session_id,
)
from tracectrl.session import current_session_id

if TYPE_CHECKING:
    from collections.abc import Mapping
    from contextvars import Token
    from types import TracebackType

__all__ = [
    "BAGGAGE_SESSION_KEY",
    "SESSION_HEADER",
    "SESSION_KEY_ENV_VAR",
    "SIGNATURE_HEADER",
    "SessionKeys",
    "TraceContext",
    "TrustPolicy",
    "continue_session",
    "current_trace",
    "extract_trace_headers",
    "inject_trace_headers",
    "propagation_headers",
]


def inject_trace_headers(headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return ``headers`` plus ``traceparent`` (and ``tracestate``) for an outgoing call.

    The trace-id and flags of the current trace are kept and ``tracestate`` is
    passed on unchanged (cut to 512 characters by whole entries if longer).
    The parent-id is new for every call when the current trace came from
    another process or was started by tracectrl, and the current span's id
    when it is a local span.  Inside a unit of work (a scope, a decorated
    call, a continued request) the unit's trace is sent, its ids made now if
    nobody has read them yet.  Outside any unit, with no trace in force, the
    call gets a trace of its own (random trace-id, sampled and random flags)
    and nothing is left in force: a call made at start-up never puts later
    work into its trace.

    ``headers`` is copied, not changed; its own ``traceparent``/``tracestate``
    fields, in any case, are replaced.  The session is not sent: add
    ``X-TraceCtrl-Session`` yourself (the manual form), or use :func:`propagation_headers`.

    Args:
        headers: the outgoing request's other headers, if any; not changed.

    Returns:
        A new ``dict``: a copy of ``headers`` with ``traceparent`` (and
        ``tracestate`` when the trace has one) set.  Nothing is raised.
    """
    result = {} if headers is None else _copy_without(headers, TRACE_NAMES)
    _add_trace_headers(result)
    return result


def extract_trace_headers(headers: object) -> TraceContext | None:
    """Make the trace in incoming ``headers`` current and return it, or ``None``.

    ``headers`` is any mapping of header fields, read case-insensitively: a
    ``dict`` (values ``str`` or lists of them), ``http.client``/``email``
    messages, Starlette or Werkzeug ``Headers``, a ``multidict``, or a list of
    ``(name, value)`` pairs; and the forms message brokers use, a
    ``dict[str, bytes]`` (pika) or a list of ``(str, bytes | str)`` pairs
    (Kafka clients), with ``bytes`` read as ASCII.  Invalid input is ignored as W3C Trace Context
    says: a missing, malformed or repeated ``traceparent`` makes ``None``
    current (the next :func:`inject_trace_headers` starts a new trace) and its
    ``tracestate`` is dropped; an invalid ``tracestate`` alone is dropped.

    With OpenTelemetry, a local span in force (a server instrumentation's)
    stays current when no valid ``traceparent`` came in: it already is this
    request's trace, and the handler's spans stay its children.

    Nothing is raised.  The trace is set without a token, like
    :func:`tracectrl.session.set_session_id`: it stays for the rest of the
    current thread or task (or until the enclosing scope ends); use
    :class:`continue_session` to have it restored.

    Args:
        headers: the incoming request's or message's headers, in any of the
            forms above; anything else is ignored.

    Returns:
        The trace now current, as a :class:`TraceContext`, or ``None`` when
        ``headers`` hold no valid ``traceparent``.
    """
    traceparents, tracestates = header_field_pair(headers, TRACEPARENT, TRACESTATE)
    trace = trace_from_fields(traceparents, tracestates)
    if trace is not None:
        attach_trace(trace)
    elif local_trace() is None:
        clear_trace()
    return trace


def propagation_headers(
    headers: Mapping[str, str] | None = None, *, key: SessionKeys | None = None
) -> dict[str, str]:
    """Return ``headers`` plus everything the callee needs to continue this trace and session.

    That is ``traceparent`` and ``tracestate`` as :func:`inject_trace_headers`
    makes them (the unit of work's trace; outside any, a trace of the call's
    own, left nowhere in force), ``X-TraceCtrl-Session``
    with the percent-encoded session id, and ``baggage`` with ``session.id``
    first, merged into the valid members of the baggage in ``headers``.  Every
    value it adds is visible ASCII.  With no session in this thread or task,
    no session is sent (none is started) and the valid baggage of ``headers``
    is passed on.  ``headers`` is copied, not changed; its own fields of these
    names, in any case, are replaced.

    With a session key (``key``, else ``$TRACECTRL_SESSION_KEY``; with several,
    the first), ``X-TraceCtrl-Session-Signature`` is added too: the
    HMAC-SHA256 of the session id and the trace id, which a receiver with the
    same key requires (see :class:`continue_session`).  The session header
    itself is the same with or without a key.

    Args:
        headers: the outgoing request's other headers, if any; not changed.
        key: the session key to sign with, or several (the first signs);
            ``None`` reads ``$TRACECTRL_SESSION_KEY``, and signs nothing when
            that is unset.

    Returns:
        A new ``dict``: a copy of ``headers`` with ``traceparent``,
        ``tracestate``, ``X-TraceCtrl-Session``, ``baggage`` and, with a key,
        ``X-TraceCtrl-Session-Signature`` set.

    Raises:
        TypeError: ``key`` is neither text, bytes, nor a sequence of them.
    """
    if headers is None:
        result: dict[str, str] = {}
        existing: list[str] = []
    else:
        result = _copy_without(headers, ALL_NAMES)
        existing = header_values(headers, BAGGAGE)
    _add_trace_headers(result)
    session_id = current_session_id()
    encoded = None if session_id is None else encode_session_id(session_id)
    if encoded is not None:
        result[SESSION_HEADER] = encoded
        result[BAGGAGE] = merge_baggage(existing, BAGGAGE_SESSION_KEY, encoded)
        sign_session(result, session_id, key)  # type: ignore[arg-type]  # a str: it was encoded
    elif existing:
        baggage = ",".join(member.header_text() for member in baggage_members(existing))
        if baggage:
            result[BAGGAGE] = baggage
    return result


class continue_session:
    """Continue the caller's trace and session while a request is handled, then restore both.

    Use ``with continue_session(request.headers) as session_id:`` (or ``async
    with``); ``headers`` is any headers object :func:`extract_trace_headers`
    reads, a message broker's headers included.  The trace is the incoming
    one when ``traceparent`` is valid, else a new trace whose ids are made on
    first read, never one left in force by earlier work (with OpenTelemetry, a
    span in its context that did not come from this request's server
    instrumentation is taken out of force for the request).  The session is
    taken from ``X-TraceCtrl-Session``, else from ``baggage`` ``session.id``,
    else a new one is started as
    :func:`tracectrl.session.new_session` would pick it (a UUID if
    ``$TRACECTRL_SESSION_ID`` is invalid).  Malformed, oversized or invalid
    incoming values are ignored and logged at DEBUG: entering never raises.

    The incoming session is a claim by the caller; two opt-in checks decide
    whether it is adopted.  ``trust``, a callable, is given ``headers`` and
    answers whether this caller may set the session at all (one that raises
    counts as "no", logged at WARNING).  With a session key (``key``, else
    ``$TRACECTRL_SESSION_KEY``; several keys are all accepted, for rotation),
    only a session signed with one of them, in
    ``X-TraceCtrl-Session-Signature``, for the incoming trace-id, is adopted;
    the signature is checked in constant time.  A session that fails either
    check is ignored as if none had been sent: a new one is started.  The
    trace is still continued, unless ``continue_untrusted_trace=False``, which
    starts a new one for untrusted callers too.

    On exit, normal, by exception or by cancellation, the session and trace
    from before the entry are restored.  One object may be entered nested or
    by many tasks at once: each entry restores what it replaced.  Exit in the
    thread or task that entered; an exit where it was never entered changes
    nothing there and warns with :class:`RuntimeWarning`.

    Creating one does nothing until it is entered: an object that is never
    entered warns with :class:`RuntimeWarning` when it is garbage-collected.
    So does, once per process, continuing sessions while
    ``$TRACECTRL_SESSION_ID`` is set: it would merge every request that
    brings no session into that one.

    Args:
        headers: the incoming request's or message's headers, in any form
            :func:`extract_trace_headers` reads.
        trust: a callable given ``headers`` that answers whether this caller
            may set the session; ``None`` trusts every caller.
        key: the session key, or several, that an incoming session must be
            signed with; ``None`` reads ``$TRACECTRL_SESSION_KEY``, and
            requires no signature when that is unset.
        continue_untrusted_trace: whether a caller whose session is refused
            still has its trace continued (the default) or gets a new one.

    Entering returns the session id in force inside the block.

    Raises:
        TypeError: ``key`` is neither text, bytes, nor a sequence of them.
    """

    __slots__ = ("_admission", "_entered", "_entries", "_headers", "_session_tokens")

    def __init__(
        self,
        headers: object,
        *,
        trust: TrustPolicy | None = None,
        key: SessionKeys | None = None,
        continue_untrusted_trace: bool = True,
    ) -> None:
        self._entered = True  # refused arguments leave nothing to warn about when collected
        self._headers = headers
        self._admission = admission(headers, trust, key, continue_untrusted_trace)
        self._entered = False
        warn_if_session_env_set()
        # The session token of each open entry, newest last, and by the id of each
        # (tokens are not hashable; an open entry keeps its token alive), the
        # entry it belongs to, whose trace is undone with it, and the trace and
        # OpenTelemetry context it put in force.
        self._session_tokens: list[Token[Optional[str]]] = []
        self._entries: dict[int, tuple[Continued, TraceValue, object]] = {}

    def __enter__(self) -> str:
        self._entered = True
        entry = enter(self._headers, self._admission)
        self._entries[id(entry.session_token)] = (entry, get_trace_state(), otel_context())
        self._session_tokens.append(entry.session_token)
        return entry.session_id

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tokens = self._session_tokens
        first = self._entry_in_force() if len(tokens) > 1 else None
        undone = reset_latest(session_var, tokens, first)
        if undone is not None:
            leave_trace(self._entries.pop(id(undone))[0])

    def _entry_in_force(self) -> Token[Optional[str]] | None:
        """The newest entry whose trace and OpenTelemetry context are the ones in force.

        A decorated generator's body runs in its caller's context: when both
        entered this object, the newest entry is not always the exiting one's.
        """
        trace_now = get_trace_state()
        otel_now = otel_context()
        for token in reversed(self._session_tokens[:]):
            recorded = self._entries.get(id(token))
            if recorded is not None and recorded[1] is trace_now and recorded[2] is otel_now:
                return token
        return None

    def __del__(self) -> None:
        if not self._entered:
            # Issue 11: `continue_session(headers)` without `with` silently did nothing.
            warnings.warn(
                "continue_session(...) was never entered, so it continued nothing: "
                "use `with continue_session(headers):` or `async with`",
                RuntimeWarning,
                stacklevel=1,  # called by the garbage collector: no caller to point at
                source=self,
            )

    async def __aenter__(self) -> str:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def _add_trace_headers(headers: dict[str, str]) -> None:
    trace = current_trace()
    if trace is None:
        trace = new_trace()  # outside any unit of work: this call's own, left nowhere
    headers[TRACEPARENT] = outgoing_traceparent(trace)
    if trace.tracestate:
        headers[TRACESTATE] = outgoing_tracestate(trace.tracestate)


def _copy_without(headers: Mapping[str, str], names: frozenset[str]) -> dict[str, str]:
    return {key: value for key, value in headers.items() if key.lower() not in names}
