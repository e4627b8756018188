"""Running a callable in a fresh copy of a context, and recognising work that already does.

:func:`tracectrl.bind` builds its callables here, and the zero-code patch of
:mod:`tracectrl.integrations.threading` asks :func:`runs_in_own_context`
before it copies a context for a submitted callable: work that already runs
in a copy of its own (``tracectrl.submit``, ``ContextThreadPoolExecutor``,
``bind``, ``asyncio.to_thread``) is not wrapped a second time.
"""

from __future__ import annotations

import functools
import types
from contextvars import Context
from typing import Callable, Generic, TypeVar

from typing_extensions import ParamSpec

_P = ParamSpec("_P")
_T = TypeVar("_T")


class ContextRunner(Generic[_P, _T]):
    """Calls ``fn`` in a fresh copy of ``context`` at every call.

    A class rather than a closure: the zero-code patch, which runs on every
    submit, tells a plain function (to be wrapped) from one of these (not to
    be wrapped again) by its type alone, without reading its code object.
    ``functools.wraps`` can give it ``fn``'s metadata (it has a ``__dict__``).
    """

    def __init__(self, context: Context, fn: Callable[_P, _T]) -> None:
        self.context = context
        self.fn = fn

    def __call__(self, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return self.context.copy().run(self.fn, *args, **kwargs)


def runner_in_copies_of(context: Context, fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """Return a callable that runs ``fn`` in a fresh copy of ``context`` at every call."""
    return ContextRunner(context, fn)


def runs_in_own_context(fn: object) -> bool:
    """Say whether calling ``fn`` already enters a context of its own.

    True for a bound :meth:`contextvars.Context.run` (what ``tracectrl.submit``
    and ``ContextThreadPoolExecutor`` submit), a :func:`functools.partial` of
    one (what ``asyncio.to_thread`` submits), and a callable made by
    :func:`runner_in_copies_of` (``tracectrl.bind``).  A wrapper around any of
    these (``functools.wraps`` included) is not recognised, so it still gets
    its copy: recognising it could run the wrapper's own code outside the
    caller's context.
    """
    # Dispatch on the exact type: this runs on every submit once the zero-code
    # patch is on, and getattr() with a default raises and swallows an
    # AttributeError for every plain function, which costs more than the copy.
    kind = type(fn)
    if kind is functools.partial:
        fn = fn.func  # type: ignore[attr-defined]
        kind = type(fn)
    if kind is ContextRunner:
        return True
    return kind is _BuiltinMethodType and type(fn.__self__) is Context  # type: ignore[attr-defined]


# A bound method of a C type, such as Context().run.
_BuiltinMethodType = types.BuiltinMethodType
