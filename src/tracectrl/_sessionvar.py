"""The session id's state: its ContextVar, the rules for a valid id, and where a new id comes from.

Shared by every module that reads or writes the session (:mod:`tracectrl.session`,
:mod:`tracectrl.scope`, :mod:`tracectrl.context`, the snapshot and the integrations),
so that one variable and one set of rules serve them all.
"""

from __future__ import annotations

import os
import re
import uuid
from contextvars import ContextVar
from typing import Optional

SESSION_ID_ENV_VAR = "TRACECTRL_SESSION_ID"
"""Environment variable that :func:`tracectrl.session.new_session` uses instead of a fresh UUID."""

MAX_SESSION_ID_LENGTH = 256
"""The longest session id accepted, in characters."""

session_var: ContextVar[Optional[str]] = ContextVar("tracectrl_session_id", default=None)

# Set by tracectrl._otel_session once the tracectrl_session propagator has
# carried a session into OpenTelemetry's context.  Until then a tracectrl session
# in force is the answer, and current_session_id() stays one ContextVar read.
carried_sessions_exist = False

# Unicode category Cc: C0 controls, DEL and C1 controls.  Any of them could split
# a header or a log line.  They get their own message because they are the usual
# mistake; the rule itself is str.isprintable() (see session_id_problem).
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")
# Lone surrogates (what os.environ makes of bytes that are not UTF-8) cannot be
# encoded, so such an id could never be sent to another agent.
_SURROGATE = re.compile("[\ud800-\udfff]")


def session_id_problem(sid: str) -> str | None:
    """Say which rule ``sid`` breaks, or return ``None`` when it is a valid id.

    A valid id has 1 to 256 characters, each printable (``str.isprintable()``:
    the ASCII space is, every other separator, control, format, surrogate and
    unassigned character is not).  The non-raising twin of
    :func:`tracectrl.session.validate_session_id`, for the wire path, where bad
    input is ignored rather than raised.
    """
    length = len(sid)
    # Fast path: the whole rule on characters is one C-level call.
    if 0 < length <= MAX_SESSION_ID_LENGTH and sid.isprintable():
        return None
    if length == 0:
        return "session id must not be empty"
    if length > MAX_SESSION_ID_LENGTH:
        return f"session id must be at most {MAX_SESSION_ID_LENGTH} characters, got {length}"
    control = _CONTROL_CHARACTER.search(sid)
    if control is not None:
        return (
            "session id must not contain control characters, "
            f"got {control.group()!r} at index {control.start()}"
        )
    surrogate = _SURROGATE.search(sid)
    if surrogate is not None:
        return (
            "session id must not contain surrogate characters, "
            f"got {surrogate.group()!r} at index {surrogate.start()}"
        )
    # U+2028/U+2029 end a line for str.splitlines(), bidi controls (U+202E) and
    # zero-width characters (U+200B, U+FEFF) disguise what a reader sees: none of
    # them may reach a log line.  Issue 11, section 1.
    index = next(index for index, character in enumerate(sid) if not character.isprintable())
    return (
        "session id must hold only printable characters (str.isprintable()), "
        f"got {sid[index]!a} at index {index}"
    )


def fresh_session_id() -> str:
    """Return ``$TRACECTRL_SESSION_ID`` if set and not empty, else a new UUID4 string."""
    from_env = os.environ.get(SESSION_ID_ENV_VAR)
    if from_env:
        problem = session_id_problem(from_env)
        if problem is not None:
            raise ValueError(f"${SESSION_ID_ENV_VAR} is not a valid session id: {problem}")
        return from_env
    return str(uuid.uuid4())
