"""The session id of the current thread or asyncio task.

The id lives in one :class:`contextvars.ContextVar` named ``tracectrl_session_id``,
so every thread and every asyncio task sees its own value.  This module is the
only place that writes it without a token; the variable itself and the rules for
a valid id live in a private module that every other reader and writer shares.

Where no tracectrl session is in force, :func:`current_session_id` also looks
in OpenTelemetry's context (a session OpenInference's ``using_session`` set,
or one the ``tracectrl_session`` propagator carried), through
:mod:`tracectrl._otel_session`, imported on first need when
``opentelemetry-api`` is installed.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

from tracectrl import _sessionvar
from tracectrl._sessionvar import (
    MAX_SESSION_ID_LENGTH,
    SESSION_ID_ENV_VAR,
    fresh_session_id,
    session_id_problem,
    session_var,
)

__all__ = [
    "MAX_SESSION_ID_LENGTH",
    "SESSION_ID_ENV_VAR",
    "current_session_id",
    "new_session",
    "set_session_id",
    "validate_session_id",
]


def new_session() -> str:
    """Start a session in the current context and return its id.

    The id is ``$TRACECTRL_SESSION_ID`` when that variable is set and not empty,
    otherwise a new random :func:`uuid.uuid4` string.  The value stays in force
    for the rest of the current thread or task; use
    :func:`tracectrl.session_scope` to have it reset afterwards.

    Returns:
        The session id now in force.

    Raises:
        ValueError: ``$TRACECTRL_SESSION_ID`` is set to an invalid id.
    """
    session_id = fresh_session_id()
    session_var.set(session_id)
    return session_id


def current_session_id() -> str | None:
    """Return the session id in force in this thread or task, or ``None`` if there is none.

    A session set by tracectrl (a scope, :func:`set_session_id`,
    :func:`new_session`) is the answer while it is in force.  Where there is
    none and ``opentelemetry-api`` is installed, a session kept in
    OpenTelemetry's context counts too: one that OpenInference's
    ``using_session(...)`` or ``using_attributes(session_id=...)`` set, or one
    that the ``tracectrl_session`` propagator extracted into the current
    request (which also wins over a tracectrl session that was in force
    around that request).

    Returns:
        The session id, or ``None`` outside any session.
    """
    session_id = session_var.get()
    if session_id is not None and not _sessionvar.carried_sessions_exist:
        return session_id
    look_up = _otel_session
    return session_id if look_up is None else look_up(session_id)


def set_session_id(sid: str) -> None:
    """Make ``sid`` the session id of the current context.

    ``$TRACECTRL_SESSION_ID`` is ignored: the value passed in is always written.
    Nothing is written when ``sid`` is rejected.

    Args:
        sid: the session id, checked by :func:`validate_session_id`.

    Raises:
        TypeError: ``sid`` is not a ``str``.
        ValueError: ``sid`` is empty, longer than 256 characters, or holds a
            character that is not printable (``str.isprintable()``).
    """
    session_var.set(validate_session_id(sid))


def validate_session_id(sid: object) -> str:
    """Return ``sid`` unchanged if it is a valid session id, else raise.

    A valid id is a ``str`` of 1 to 256 characters, each printable as
    ``str.isprintable()`` says: no control character (``\\r``, ``\\n``), no
    line or paragraph separator (``\\u2028``, ``\\u2029``), no bidi control
    (``\\u202e``), no zero-width or other format character (``\\u200b``,
    ``\\ufeff``), no space other than the ASCII space, no lone surrogate and
    no unassigned code point, so that no id can split or forge a log line or a
    header.  The ASCII space, punctuation and letters and digits of any script
    are fine.

    Args:
        sid: the value to check.

    Returns:
        ``sid``, unchanged.

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


def _look_up_otel_session(local: str | None) -> str | None:
    """Stand in for the OpenTelemetry lookup until the first call finds out whether it imports.

    Looking it up lazily keeps ``import tracectrl`` free of OpenTelemetry's
    import time; before the first read no session can be missed.
    """
    global _otel_session  # noqa: PLW0603 - replaced once, by the first call
    try:
        from tracectrl._otel_session import session_in_current_context
    except ImportError:
        _otel_session = None  # opentelemetry-api is not installed
        return local
    except Exception:
        # An installation that fails otherwise must not break the host program.
        logging.getLogger("tracectrl").warning(
            "OpenTelemetry is installed but could not be used; "
            "sessions in its context are not seen",
            exc_info=True,
        )
        _otel_session = None
        return local
    _otel_session = session_in_current_context
    return session_in_current_context(local)


_otel_session: Optional[Callable[[Optional[str]], Optional[str]]] = _look_up_otel_session

# The variable under its historical name, for code that resets it with a token.
_session_id = session_var
