"""Resetting context-variable tokens without ever crashing the host program."""

from __future__ import annotations

import warnings
from contextvars import ContextVar, Token
from typing import Optional, TypeVar

_T = TypeVar("_T")

CROSS_CONTEXT_WARNING = (
    "a tracectrl scope was exited in a different thread or task from the one that "
    "entered it; the value from before the scope was restored in the exiting context "
    "only. Enter and exit each scope in the same task (see docs: Troubleshooting)."
)


def reset_latest(var: ContextVar[Optional[_T]], tokens: list[Token[Optional[_T]]]) -> int | None:
    """Reset ``var`` with the newest token in ``tokens`` that belongs to this context.

    ``tokens`` holds one token per entry of a scope object, newest last.  Entries
    from one context nest, so the newest token that this context can reset is the
    one its innermost entry took; tokens of other tasks entering the same object
    are skipped and kept for their own exits.  When no token belongs to this
    context the scope is being exited somewhere else: the value from before the
    newest entry is set here and a :class:`RuntimeWarning` is issued.

    The token used is removed from ``tokens``; its index is returned, so that a
    caller keeping other per-entry data beside ``tokens`` can undo that entry's
    too.  ``None`` means ``tokens`` was empty: there was nothing to undo.
    """
    for index in range(len(tokens) - 1, -1, -1):
        token = tokens[index]
        try:
            var.reset(token)
        except ValueError:
            continue  # created in another Context: that entry belongs to another task
        except RuntimeError:
            pass  # already used: nothing left to restore for this entry
        del tokens[index]
        return index
    if not tokens:
        return None
    restore_elsewhere(var, tokens.pop())
    return len(tokens)


def reset(var: ContextVar[Optional[_T]], token: Token[Optional[_T]]) -> None:
    """Reset ``var`` with ``token``; if it was made in another context, restore safely there."""
    try:
        var.reset(token)
    except ValueError:
        restore_elsewhere(var, token)
    except RuntimeError:
        pass  # already used: nothing left to restore


def restore_elsewhere(var: ContextVar[Optional[_T]], token: Token[Optional[_T]]) -> None:
    """Set the value from before ``token`` in the current context and warn once per call site.

    ``ContextVar.reset`` refuses a token made in another ``Context``; this is the
    safe fallback, in the spirit of OpenTelemetry's ``detach``, which never raises
    inside the host application.
    """
    old = token.old_value
    var.set(None if old is Token.MISSING else old)
    warnings.warn(CROSS_CONTEXT_WARNING, RuntimeWarning, stacklevel=4)
