"""Resetting context-variable tokens without ever crashing the host program."""

from __future__ import annotations

import warnings
from contextlib import suppress
from contextvars import Context, ContextVar, Token
from typing import Any, Optional, TypeVar

from tracectrl._split_dependency import raise_if_split_by_thread_pool

_T = TypeVar("_T")

CROSS_CONTEXT_WARNING = (
    "a tracectrl scope was exited in a different thread or task from the one that "
    "entered it; the value from before the scope was restored in the exiting context "
    "only. Enter and exit each scope in the same task (see docs: Troubleshooting)."
)


FOREIGN_EXIT_WARNING = (
    "a tracectrl scope was exited in a thread or task that never entered it; nothing "
    "was changed there, and the entering context keeps its values until it exits "
    "the scope itself. Enter and exit each scope in the same task (see docs: "
    "Troubleshooting)."
)


def warn_foreign_exit() -> None:
    """Warn that a scope was exited where no entry of it was made (the caller changes nothing).

    Raises:
        RuntimeError: the exit is the teardown of a FastAPI dependency written
            as a sync generator, a mistake that must fail loudly.
    """
    raise_if_split_by_thread_pool()
    warnings.warn(FOREIGN_EXIT_WARNING, RuntimeWarning, stacklevel=4)


def reset_latest(
    var: ContextVar[Optional[_T]],
    tokens: list[Token[Optional[_T]]],
    first: Token[Optional[_T]] | None = None,
) -> Token[Optional[_T]] | None:
    """Reset ``var`` with the newest token in ``tokens`` that belongs to this context.

    ``tokens`` holds one token per open entry of a scope object, newest last.
    Entries made in one context nest, so the newest token this context can reset
    is the one its innermost entry took; tokens of other threads and tasks that
    entered the same object are skipped and kept for their own exits.  When no
    token belongs to this context the scope is being exited somewhere it was
    never entered: nothing is changed here (the exiting context's values are
    not the scope's to restore), the tokens stay for the contexts that own
    them, and a :class:`RuntimeWarning` is issued.

    Only ``append``, indexing and ``remove`` touch ``tokens``, each atomic, so
    threads sharing one scope object never take each other's token, and a
    misbehaving thread never makes a correct one raise.  The token used is
    removed from ``tokens`` and returned, so that a caller keeping other
    per-entry data can undo that entry's too; ``None`` means nothing was undone.

    ``first``, one of ``tokens``, is tried before the others: the entry a
    caller knows put the values now in force there (a decorated generator's
    body and its caller run in one context, so both may have entered).
    """
    newest_first = tokens[::-1]  # a copy: other threads change the list meanwhile
    if first is not None:
        newest_first.insert(0, first)  # tried twice if refused: the second try is refused too
    for token in newest_first:
        try:
            var.reset(token)
        except (ValueError, RuntimeError):
            continue  # another context's entry, or one its own thread is exiting now
        with suppress(ValueError):  # never expected: only its own context removes a token
            tokens.remove(token)
        return token
    if tokens:
        warn_foreign_exit()
    return None  # exited more often than entered, or where it was never entered


def reset(var: ContextVar[_T], token: Token[_T], *, stacklevel: int = 4, warn: bool = True) -> None:
    """Reset ``var`` with ``token``; if it was made in another context, restore safely there.

    ``stacklevel`` and ``warn`` are passed to :func:`restore_elsewhere`: a caller
    that restores several variables for one exit warns once, at its own caller.
    """
    try:
        var.reset(token)
    except ValueError:
        restore_elsewhere(var, token, stacklevel=stacklevel, warn=warn)
    except RuntimeError:
        pass  # already used: nothing left to restore


def restore_elsewhere(
    var: ContextVar[_T], token: Token[_T], *, stacklevel: int = 4, warn: bool = True
) -> None:
    """Set the value from before ``token`` in the current context and warn once per call site.

    The warning points ``stacklevel`` frames up (as :func:`warnings.warn` counts
    from here); ``warn=False`` restores without one.

    ``ContextVar.reset`` refuses a token made in another ``Context``; this is the
    safe fallback, in the spirit of OpenTelemetry's ``detach``, which never raises
    inside the host application.
    """
    old: Any = token.old_value
    if old is Token.MISSING:
        # Unset before the scope: restore the variable's default, read in an empty context.
        try:
            old = Context().run(var.get)
        except LookupError:
            old = None
    var.set(old)
    if warn:
        raise_if_split_by_thread_pool()  # FastAPI's sync-generator dependencies fail loudly
        warnings.warn(CROSS_CONTEXT_WARNING, RuntimeWarning, stacklevel=stacklevel)
