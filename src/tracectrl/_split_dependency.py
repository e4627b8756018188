"""Recognising a scope that a thread pool entered and exited in two throwaway contexts.

FastAPI runs a dependency written as a *sync generator* through
``contextmanager_in_threadpool``: the code before ``yield`` runs in one call to
AnyIO's thread pool and the code after it in another, each in its own copy of
the request's context.  A ``with session_scope(...)`` around the ``yield`` then
sets the session in a copy that is thrown away at once: the endpoint never sees
it.  That cannot be made to work from inside the scope, so it fails loudly at
the scope's exit (the first point where it can be told apart from other
misuses), and nowhere else: the check runs only on the slow path of an exit
in the wrong context.
"""

from __future__ import annotations

import contextlib
import sys
from inspect import CO_GENERATOR
from types import FrameType
from typing import Optional

SPLIT_DEPENDENCY_ERROR = (
    "a tracectrl scope in a dependency written as a sync generator "
    "(def dependency(): with session_scope(...): yield) was entered and exited in two "
    "separate thread-pool calls, each in a throwaway copy of the request's context, so "
    "the endpoint never saw its session. Write the dependency as `async def` "
    "(see docs: Servers, FastAPI dependencies with yield)."
)

# How far up the stack the dependency's generator may be: the scope's own
# frames (the token reset, the scope's __exit__) sit between it and the check.
_SEARCH_DEPTH = 10
_GENERATOR_CONTEXT_EXIT = contextlib._GeneratorContextManager.__exit__.__code__


def raise_if_split_by_thread_pool() -> None:
    """Raise :class:`RuntimeError` if the running scope exit is a FastAPI sync-generator teardown.

    That is: the exit runs in a generator that ``contextlib.contextmanager``
    resumed directly from AnyIO's worker thread, with no code of the
    application's in between that could have entered the scope in the same
    call.
    """
    frame: Optional[FrameType] = sys._getframe(1)
    for _ in range(_SEARCH_DEPTH):
        if frame is None:
            return
        if frame.f_code.co_flags & CO_GENERATOR and not _is_ours(frame):
            resumer = frame.f_back
            if resumer is None or resumer.f_code is not _GENERATOR_CONTEXT_EXIT:
                return
            worker = resumer.f_back
            if worker is not None and str(worker.f_globals.get("__name__", "")).startswith(
                "anyio."
            ):
                raise RuntimeError(SPLIT_DEPENDENCY_ERROR)
            return
        frame = frame.f_back


def _is_ours(frame: FrameType) -> bool:
    return str(frame.f_globals.get("__name__", "")).startswith("tracectrl.")
