"""The W3C Trace Context codec: ``traceparent`` and ``tracestate``, and new ids.

This module is the only place that parses or formats these two headers
(W3C Trace Context Level 2).  Parsers take untrusted input and never raise:
they answer ``None`` for anything the specification calls invalid, and
:func:`trace_from_fields` logs why at DEBUG before its caller ignores it.

Extraction and injection run on every request, so the common path is a few
C-level string operations: one regular expression checks a whole
``traceparent``; ``tracestate`` keys are checked once per distinct key and
valid ``tracestate`` values once per distinct value.
"""

from __future__ import annotations

import logging
import re
from random import getrandbits
from typing import TYPE_CHECKING

from tracectrl._trace import TraceContext

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The ``sampled`` trace flag: the caller may have recorded trace data.
FLAG_SAMPLED = 0x01
#: The ``random`` trace flag (Level 2): the trace-id's right-most 7 bytes are random.
FLAG_RANDOM = 0x02
#: The flags this implementation knows; the reserved ones are read and sent as zero.
KNOWN_FLAGS = FLAG_SAMPLED | FLAG_RANDOM
#: The most list-members a valid ``tracestate`` holds.
MAX_TRACESTATE_MEMBERS = 32
#: Emitted ``tracestate`` values are cut, by whole entries, to this many characters.
TRACESTATE_EMIT_LIMIT = 512

_log = logging.getLogger("tracectrl.tracecontext")

_OWS = " \t"
_TRACEPARENT_LENGTH = 55  # "00-" + 32 + "-" + 16 + "-" + 2
# Entries longer than this go first when a tracestate has to be cut.
_LARGE_ENTRY = 128
# The longest valid tracestate is 32 members of 513 characters and 31 commas;
# the rest is room for optional whitespace.  Anything longer is refused unread.
_MAX_TRACESTATE_INPUT = 32 * 1024

# One pass checks the fixed positions, the lowercase-hex charset, version ff and
# the all-zero ids; measured faster than the string methods that can do it
# (strip/count), which need several passes.
_TRACEPARENT = re.compile(
    r"(?!ff)[0-9a-f]{2}-(?!0{32})([0-9a-f]{32})-(?!0{16})([0-9a-f]{16})-([0-9a-f]{2})"
)
# Precomputed so that reading and writing the flags costs one lookup.
_FLAGS_BY_HEX = {f"{value:02x}": value & KNOWN_FLAGS for value in range(256)}
_FLAGS_SUFFIX = tuple(f"-{value & KNOWN_FLAGS:02x}" for value in range(256))

_KEY_CHARACTER = r"[a-z0-9_\-*/]"
_TRACESTATE_KEY = re.compile(
    rf"[a-z]{_KEY_CHARACTER}{{0,255}}"  # simple-key
    rf"|[a-z0-9]{_KEY_CHARACTER}{{0,240}}@[a-z]{_KEY_CHARACTER}{{0,13}}"  # tenant@system
)
# Keys seen valid.  Vendor keys repeat on every request, so the regular
# expression runs once per key; the bound keeps hostile keys from growing it.
_valid_keys: set[str] = set()
_MAX_VALID_KEYS = 1024
# Valid tracestate values seen lately, as received -> normal form.  Each hop of
# a trace passes its tracestate on unchanged, so a service sees one value on
# many requests.  Only values of at most 512 characters are kept and the map
# is emptied when full, so it never holds more than 256 of them.
_recent_tracestates: dict[str, str] = {}
_MAX_RECENT_TRACESTATES = 256


def trace_from_fields(
    traceparents: Sequence[str] | None, tracestates: Sequence[str] | None
) -> TraceContext | None:
    """Return the remote trace that incoming header fields describe, or ``None``.

    ``traceparents`` and ``tracestates`` are every field of each name, in
    order (``None`` or empty when absent).  Exactly one valid ``traceparent``
    is needed; otherwise the result is ``None`` and ``tracestate`` is not even
    read, as the specification says.  An invalid ``tracestate`` is dropped
    (``tracestate`` of ``''``) without affecting the ``traceparent``.
    """
    if not traceparents:
        return None
    if len(traceparents) != 1:
        _log.debug("ignored %d traceparent fields: exactly one is valid", len(traceparents))
        return None
    value = traceparents[0]
    # The usual value is exactly 55 characters: match it without another call.
    match = (
        _TRACEPARENT.fullmatch(value)
        if len(value) == _TRACEPARENT_LENGTH
        else _match_traceparent(value)
    )
    if match is None:
        _log.debug("ignored malformed traceparent %s", preview(value))
        return None
    tracestate = ""
    if tracestates:
        # A value seen lately is answered without another call.
        parsed = _recent_tracestates.get(tracestates[0]) if len(tracestates) == 1 else None
        if parsed is None:
            parsed = parse_tracestate(tracestates)
        if parsed is None:
            _log.debug("ignored invalid tracestate %s", preview(",".join(tracestates)))
        else:
            tracestate = parsed
    trace_id, parent_id, flags = match.groups()
    return _new_trace_context(
        TraceContext, (trace_id, parent_id, _FLAGS_BY_HEX[flags], tracestate, True)
    )


def parse_traceparent(value: str) -> tuple[str, str, int] | None:
    """Return ``(trace_id, parent_id, trace_flags)`` from one ``traceparent`` field, or ``None``.

    Surrounding spaces and tabs are ignored.  Version ``00`` must be exactly
    55 characters; a higher version (not ``ff``) may carry more fields after a
    ``-``, which are ignored, as the specification asks.  Upper-case hex, an
    all-zero trace-id or parent-id and wrong lengths are invalid.  Reserved
    flag bits are dropped (sent as zero), the sampled and random bits are kept.
    """
    match = _match_traceparent(value)
    if match is None:
        return None
    trace_id, parent_id, flags = match.groups()
    return trace_id, parent_id, _FLAGS_BY_HEX[flags]


def parse_tracestate(fields: Sequence[str]) -> str | None:
    """Combine ``tracestate`` header fields into one value; ``None`` when it is invalid.

    Fields are joined with ``,`` in order, as RFC 7230 combines repeated
    fields.  Empty and whitespace-only members are allowed and dropped, as is
    whitespace around members.  The whole value is invalid when a member is
    malformed (key or value grammar), a key repeats, or there are more than 32
    members.  The result is in normal form: members joined by ``,`` with no
    whitespace around them; no members gives ``''``.
    """
    received = fields[0] if len(fields) == 1 else ",".join(fields)
    known = _recent_tracestates.get(received)
    if known is not None:
        return known
    if len(received) > _MAX_TRACESTATE_INPUT:
        return None
    combined = received
    members = combined.split(",")
    if (
        "" in members
        or "\t" in combined
        or ", " in combined
        or " ," in combined
        or combined[0] == " "
        or combined[-1] == " "
    ):
        members = [member for member in (text.strip(_OWS) for text in members) if member]
        combined = ",".join(members)
    # Neither a key nor a value holds "=", so with as many "=" as members and
    # one in each member (checked below), no value hides a second one.
    if (
        len(members) > MAX_TRACESTATE_MEMBERS
        or combined.count("=") != len(members)
        or not combined.isascii()
        or not combined.isprintable()
    ):
        return None
    keys = set()
    for member in members:
        key, equals, value = member.partition("=")
        if (
            not equals
            or not 0 < len(value) <= 256
            or (key not in _valid_keys and not _is_valid_key(key))
        ):
            return None
        keys.add(key)
    if len(keys) != len(members):
        return None  # a key repeats
    if len(received) <= TRACESTATE_EMIT_LIMIT:
        if len(_recent_tracestates) >= _MAX_RECENT_TRACESTATES:
            _recent_tracestates.clear()
        _recent_tracestates[received] = combined
    return combined


def outgoing_traceparent(trace: TraceContext) -> str:
    """Return the ``traceparent`` for one outgoing call made within ``trace``.

    The trace-id and flags are kept (reserved bits sent as zero).  The
    parent-id is a new random one when ``trace`` came from another process
    (``is_remote``), so every call is its own child; it is ``trace.span_id``
    when that is a local span, whose children the calls are.
    """
    if trace.is_remote:
        bits = getrandbits(64)
        while not bits:
            bits = getrandbits(64)
        return f"00-{trace.trace_id}-{bits:016x}{_FLAGS_SUFFIX[trace.trace_flags & 0xFF]}"
    return format_traceparent(trace.trace_id, trace.span_id, trace.trace_flags)


def format_traceparent(trace_id: str, parent_id: str, trace_flags: int) -> str:
    """Return the version ``00`` ``traceparent`` value; reserved flag bits are sent as zero.

    The ids must be valid (see :class:`~tracectrl._trace.TraceContext`); they
    are not checked here.
    """
    return f"00-{trace_id}-{parent_id}{_FLAGS_SUFFIX[trace_flags & 0xFF]}"


def outgoing_tracestate(tracestate: str) -> str:
    """Return ``tracestate`` cut to at most 512 characters by removing whole entries.

    As the specification says: entries longer than 128 characters go first,
    then entries from the end, until the rest fits.  ``tracestate`` must be
    in the normal form that :func:`parse_tracestate` returns.
    """
    if len(tracestate) <= TRACESTATE_EMIT_LIMIT:
        return tracestate
    members = tracestate.split(",")
    length = len(tracestate)
    for index in range(len(members) - 1, -1, -1):
        if length <= TRACESTATE_EMIT_LIMIT:
            break
        if len(members[index]) > _LARGE_ENTRY:
            length -= len(members.pop(index)) + 1
    while length > TRACESTATE_EMIT_LIMIT:
        length -= len(members.pop()) + 1
    return ",".join(members)


def tracestate_items(tracestate: str) -> list[tuple[str, str]]:
    """Return the ``(key, value)`` pairs of a normal-form ``tracestate``, in order."""
    pairs = []
    for member in tracestate.split(","):
        if member:
            key, _, value = member.partition("=")
            pairs.append((key, value))
    return pairs


def preview(value: str) -> str:
    """Return a short, escaped rendering of untrusted ``value`` for a log message."""
    # repr() escapes control characters, so nothing logged can forge a log line.
    return repr(value[:64]) + ("..." if len(value) > 64 else "")


def _match_traceparent(value: str) -> re.Match[str] | None:
    if len(value) != _TRACEPARENT_LENGTH:
        value = value.strip(_OWS)
        if len(value) != _TRACEPARENT_LENGTH:
            # Only a version above 00 may be longer, with a "-" before the rest.
            if (
                len(value) < _TRACEPARENT_LENGTH
                or value[_TRACEPARENT_LENGTH] != "-"
                or value.startswith("00")
            ):
                return None
            value = value[:_TRACEPARENT_LENGTH]
    return _TRACEPARENT.fullmatch(value)


def _is_valid_key(key: str) -> bool:
    if key in _valid_keys:
        return True
    if _TRACESTATE_KEY.fullmatch(key) is None:
        return False
    if len(_valid_keys) < _MAX_VALID_KEYS:
        _valid_keys.add(key)
    return True


# TraceContext(...) runs a Python-level __new__; tuple.__new__ builds the same
# tuple in C, which is measurable on the extraction path.
_new_trace_context = tuple.__new__
