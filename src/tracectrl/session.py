"""The session id of the current thread or asyncio task.

The id lives in one :class:`contextvars.ContextVar` named ``tracectrl_session_id``,
so every thread and every asyncio task sees its own value.  This module is the
only place that writes it without a token and the only place that validates an id.
"""

from __future__ import annotations

import os
import re
import uuid
from contextvars import ContextVar
from typing import Callable, Optional

__all__ = [
    "MAX_SESSION_ID_LENGTH",
    "SESSION_ID_ENV_VAR",
    "current_session_id",
    "new_session",
    "set_session_id",
    "validate_session_id",
]

#: Environment variable that :func:`new_session` uses instead of a fresh UUID.
SESSION_ID_ENV_VAR = "TRACECTRL_SESSION_ID"

#: The longest session id accepted, in characters.
MAX_SESSION_ID_LENGTH = 256

_session_id: ContextVar[Optional[str]] = ContextVar("tracectrl_session_id", default=None)

# Installed by tracectrl.integrations.otel when it is imported: given the
# ContextVar's value, returns the session in force, which may be one that
# OpenTelemetry's propagator carried into the current request.  None otherwise,
# so that without OpenTelemetry a read stays one ContextVar lookup.
_carried_session: Optional[Callable[[Optional[str]], Optional[str]]] = None

# Unicode category Cc: C0 controls, DEL and C1 controls.  Any of them could split
# a header or a log line, so none is allowed anywhere in an id.
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")
# Lone surrogates (what os.environ makes of bytes that are not UTF-8) cannot be
# encoded, so such an id could never be sent to another agent.
_SURROGATE = re.compile("[\ud800-\udfff]")


def new_session() -> str:
    """Start a session in the current context and return its id.

    The id is ``$TRACECTRL_SESSION_ID`` when that variable is set and not empty,
    otherwise a new random :func:`uuid.uuid4` string.  The value stays in force
    for the rest of the current thread or task; use
    :func:`tracectrl.session_scope` to have it reset afterwards.

    Raises:
        ValueError: ``$TRACECTRL_SESSION_ID`` is set to an invalid id.
    """
    session_id = _fresh_session_id()
    _session_id.set(session_id)
    return session_id


def current_session_id() -> str | None:
    """Return the session id in force in this thread or task, or ``None`` if there is none.

    Once :mod:`tracectrl.integrations.otel` is imported, a session that
    OpenTelemetry's propagators extracted into the current request counts too,
    unless one set since by tracectrl code is in force.
    """
    session_id = _session_id.get()
    carried = _carried_session
    return session_id if carried is None else carried(session_id)


def set_session_id(sid: str) -> None:
    """Make ``sid`` the session id of the current context.

    ``$TRACECTRL_SESSION_ID`` is ignored: the value passed in is always written.
    Nothing is written when ``sid`` is rejected.

    Raises:
        TypeError: ``sid`` is not a ``str``.
        ValueError: ``sid`` is empty, longer than 256 characters, or holds a
            control character or a lone surrogate.
    """
    _session_id.set(validate_session_id(sid))


def validate_session_id(sid: object) -> str:
    """Return ``sid`` unchanged if it is a valid session id, else raise.

    A valid id is a ``str`` of 1 to 256 characters that holds no control
    character (Unicode category ``Cc``: ``\\x00``-``\\x1f``, ``\\x7f``-``\\x9f``)
    and no lone surrogate (``\\ud800``-``\\udfff``, which cannot be encoded
    to send).  Spaces, punctuation and non-ASCII letters are fine.

    Raises:
        TypeError: ``sid`` is not a ``str``.
        ValueError: the message names the rule that ``sid`` breaks.
    """
    if type(sid) is not str:
        if not isinstance(sid, str):
            raise TypeError(f"session id must be a str, got {type(sid).__name__}")
        sid = str(sid)
    problem = session_id_problem(sid)
    if problem is not None:
        raise ValueError(problem)
    return sid


def session_id_problem(sid: str) -> str | None:
    """Say which rule ``sid`` breaks, or return ``None`` when it is a valid id.

    The non-raising twin of :func:`validate_session_id`, for the wire path, where
    bad input is ignored rather than raised.
    """
    length = len(sid)
    # Fast path: a printable string holds no control character and no surrogate.
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
    return None


def _fresh_session_id() -> str:
    """Return ``$TRACECTRL_SESSION_ID`` if set and not empty, else a new UUID4 string."""
    from_env = os.environ.get(SESSION_ID_ENV_VAR)
    if from_env:
        problem = session_id_problem(from_env)
        if problem is not None:
            raise ValueError(f"${SESSION_ID_ENV_VAR} is not a valid session id: {problem}")
        return from_env
    return str(uuid.uuid4())
