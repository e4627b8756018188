"""Zero-code propagation: threads and pools run work in the context of the code that started it.

:func:`tracectrl.submit` and :func:`tracectrl.bind` carry the caller's context
where *your* code calls them.  Agent frameworks and SDKs start threads and
submit to pools inside their own code, where no such call can be added.
After :func:`instrument`:

* every ``concurrent.futures.ThreadPoolExecutor.submit`` (so also ``map``, and
  ``loop.run_in_executor`` with the default or any thread pool) runs the
  callable in a fresh copy of the submitting context;
* every ``threading.Thread`` (``Timer`` and subclasses that override ``run``
  included) runs in a copy of the context of the code that called ``start()``,
  as CPython 3.14 does on free-threaded builds.  A thread pool's worker
  thread is the exception: it never keeps the context of the ``submit`` that
  happened to start it, so nothing of one task lingers into the next (the
  same for ``multiprocessing.pool``'s worker and handler threads, and Dask's
  thread pool);
* every ``concurrent.futures.ProcessPoolExecutor.submit`` and ``map`` ships the
  session id and the trace as plain data, like :func:`tracectrl.submit`.

A thread gets a copy of the whole :class:`contextvars.Context`, so every
library's state crosses at once: tracectrl's session and trace,
OpenTelemetry's span and baggage, OpenInference's session, structlog's
context variables, Sentry's scopes.  Work that already runs in a context of its
own (submitted by ``tracectrl.submit``, ``ContextThreadPoolExecutor``,
``bind``, ``asyncio.to_thread``) is recognised and not copied twice.

The patch sits one level below the public methods: the work item a pool's
``submit`` creates (``concurrent.futures.thread._WorkItem`` and
``concurrent.futures.process._WorkItem``) and the function ``Thread.start``
hands the new thread to (``threading._start_new_thread``, on 3.13
``threading._start_joinable_thread``).  Other instrumentations
(OpenTelemetry's ``ThreadingInstrumentor``, Sentry's ``ThreadingIntegration``)
wrap ``ThreadPoolExecutor.submit`` and ``Thread.start`` themselves; this module
never replaces those attributes, so the patches can be installed and removed
in any order and none of them restores another one's stale wrapper.

Standard library only: part of the core install.  For ``opentelemetry-instrument``,
:mod:`tracectrl.integrations.otel_threading` wraps these functions in an
instrumentor.
"""

from __future__ import annotations

import concurrent.futures.process as _process_pool
import concurrent.futures.thread as _thread_pool
import functools
import inspect
import multiprocessing.pool
import multiprocessing.queues
import threading
import types
from concurrent.futures import Future
from contextvars import Context, copy_context
from typing import TYPE_CHECKING, Any, Callable

from tracectrl._contextcopy import runs_in_own_context
from tracectrl._snapshot import capture, run_with_snapshot

__all__ = ["instrument", "is_instrumented", "uninstrument"]

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    _ThreadWorkItemBase = _thread_pool._WorkItem[Any]
    _ProcessWorkItemBase = _process_pool._WorkItem[Any]
else:
    _ThreadWorkItemBase = _thread_pool._WorkItem
    _ProcessWorkItemBase = _process_pool._WorkItem


def instrument() -> None:
    """Make every thread, thread pool and process pool carry the caller's context.

    Opt-in and idempotent: a second call does nothing.  Safe before or after
    other patches of ``ThreadPoolExecutor.submit`` and ``Thread.start``.  It
    takes effect for threads started and work submitted from now on, in every
    thread; work already queued or running is left as it is.

    Process pools: ``fn`` and its arguments must be picklable, as without
    instrumentation; if they are not, the future fails with the same pickling
    error.  A pool's ``initializer`` runs in the worker's own context, not a
    submitter's.

    Raises:
        RuntimeError: this Python's ``concurrent.futures`` or ``threading`` is
            not laid out as on CPython 3.9 to 3.13 (nothing is patched then), or
            other code replaced a work-item class this module patches.
    """
    global _active  # noqa: PLW0603 - the switch every patched seam reads
    with _lock:
        if _active:
            return
        seams = _seams()
        for name, (module, attribute, _, expected) in seams.items():
            if name in _forwards_to:
                continue  # still in place, under a patch applied after it: switch it back on
            current = getattr(module, attribute)
            if expected is not None and current is not expected:
                raise RuntimeError(
                    f"{module.__name__}.{attribute} was replaced by other code "
                    f"({current!r}); tracectrl can only extend the standard library's own class"
                )
        for name, (module, attribute, ours, _) in seams.items():
            if name not in _forwards_to:
                _forwards_to[name] = getattr(module, attribute)
                setattr(module, attribute, ours)
        _active = True


def uninstrument() -> None:
    """Undo :func:`instrument`: threads and pools start from their own context again.

    Idempotent, and safe in any order with other patches: where this module's
    patch is still outermost the standard library's function or class is put
    back; where another patch was applied on top of it, it stays in place as a
    pass-through, so the other patch keeps working and, once that one is
    removed too, nothing of tracectrl's is left active.  Work submitted or
    threads started before the call keep the context they were given.

    Returns:
        ``None``; nothing is raised.
    """
    global _active  # noqa: PLW0603 - the switch every patched seam reads
    with _lock:
        _active = False
        for name, (module, attribute, ours, _) in _seams().items():
            if name in _forwards_to and getattr(module, attribute) is ours:
                setattr(module, attribute, _forwards_to.pop(name))


def is_instrumented() -> bool:
    """Say whether :func:`instrument` is in effect.

    Returns:
        ``True`` between :func:`instrument` and :func:`uninstrument`, else ``False``.
    """
    return _active


class _ThreadWorkItem(_ThreadWorkItemBase):
    """A thread pool's work item that runs its callable in a copy of the submitter's context."""

    def __init__(
        self,
        future: Future[Any],
        fn: Callable[..., Any],
        args: Iterable[Any],
        kwargs: Mapping[str, Any],
    ) -> None:
        # Created by ThreadPoolExecutor.submit, in the submitting thread: the
        # context copied here is the submitter's.  This runs on every submit, so
        # the usual case, a plain function (never one that runs in a context of
        # its own: those are not plain functions), is recognised without a call;
        # the context goes first in the arguments of the unbound Context.run,
        # which saves making a bound method.  Together these halved the patch's
        # cost on CPython 3.13.
        if _active and (type(fn) is _FunctionType or not runs_in_own_context(fn)):
            if args.__class__ is tuple:  # always, from submit()
                args = (copy_context(), fn) + args  # noqa: RUF005 - the star form costs more
            else:
                args = (copy_context(), fn, *args)
            fn = _run_in_context
        # What the standard library's __init__ does (_check_layout verifies it),
        # without the call through super(): this runs on every submit.
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs


class _ProcessWorkItem(_ProcessWorkItemBase):
    """A process pool's work item that ships the submitter's session and trace as data."""

    def __init__(
        self,
        future: Future[Any],
        fn: Callable[..., Any],
        args: Iterable[Any],
        kwargs: Mapping[str, Any],
    ) -> None:
        # A Context cannot be pickled: the snapshot can, and run_with_snapshot is
        # the one runner on the far side.  Work tracectrl.submit already wrapped
        # keeps its own snapshot.
        if _active and fn is not run_with_snapshot:
            args = (capture(), fn, *args)
            fn = run_with_snapshot
        super().__init__(future, fn, args, kwargs)


def _start_thread_in_callers_context(
    function: Callable[[], object], *args: Any, **kwargs: Any
) -> Any:
    """Hand a new thread its bootstrap wrapped in a copy of the context calling ``start()``."""
    if _active:
        thread = getattr(function, "__self__", None)
        if isinstance(thread, threading.Thread) and _inherits_context(thread):
            function = functools.partial(copy_context().run, function)
    return _forwards_to[_THREAD_START](function, *args, **kwargs)


def _inherits_context(thread: threading.Thread) -> bool:
    """Say whether ``thread`` should run in a copy of the context that starts it."""
    target = getattr(thread, "_target", None)
    # Long-lived threads that pools start, lazily inside the first submit or put,
    # or in their constructor, and reuse for every task: keeping that caller's
    # context would hand its session to every later task (and to result
    # callbacks) and keep it alive for the pool's lifetime.
    if _is_pool_thread(target) or isinstance(thread, _process_pool._ExecutorManagerThread):
        return False
    return not runs_in_own_context(target)


def _is_pool_thread(target: object) -> bool:
    """Say whether ``target`` is what a pool's long-lived thread runs."""
    for known in _POOL_THREADS:  # by identity: a target need not be hashable
        if target is known:
            return True
    module = getattr(target, "__module__", None)
    name = getattr(target, "__qualname__", None)
    return type(module) is str and type(name) is str and (module, name) in _NAMED_POOL_THREADS


def _seams() -> dict[str, tuple[Any, str, object, object]]:
    """Each patched seam: module, attribute, our replacement, the class it must extend."""
    _check_layout()
    return {
        "thread-work-item": (_thread_pool, "_WorkItem", _ThreadWorkItem, _ThreadWorkItemBase),
        "process-work-item": (_process_pool, "_WorkItem", _ProcessWorkItem, _ProcessWorkItemBase),
        _THREAD_START: (threading, _THREAD_START, _start_thread_in_callers_context, None),
    }


def _check_layout() -> None:
    """Refuse to patch a standard library whose seams differ from CPython 3.9 to 3.13."""
    expected = ["self", "future", "fn", "args", "kwargs"]
    for module, base in (
        (_thread_pool, _ThreadWorkItemBase),
        (_process_pool, _ProcessWorkItemBase),
    ):
        parameters = list(inspect.signature(base.__init__).parameters)
        stored = sorted(vars(base(Future(), print, (), {})))
        if parameters != expected or stored != sorted(expected[1:]):
            raise RuntimeError(
                f"{module.__name__}._WorkItem takes {parameters} and stores {stored}, "
                f"not {expected} as on CPython 3.9 to 3.13; "
                "tracectrl.integrations.threading cannot patch it"
            )
    if not hasattr(threading, _THREAD_START) or not hasattr(_thread_pool, "_worker"):
        raise RuntimeError(
            f"threading.{_THREAD_START} or concurrent.futures.thread._worker is missing; "
            "tracectrl.integrations.threading supports CPython 3.9 to 3.13"
        )


# Thread.start hands the new thread its bootstrap through this module global.
_THREAD_START = (
    "_start_joinable_thread"
    if hasattr(threading, "_start_joinable_thread")
    else "_start_new_thread"
)
#: The targets of the standard library's pool threads: concurrent.futures' worker,
#: multiprocessing's queue feeder, and multiprocessing.pool's workers and handlers
#: (``Pool`` and ``ThreadPool``, whose tasks run in the worker's own context).
_POOL_THREADS = (
    _thread_pool._worker,
    multiprocessing.queues.Queue._feed,  # type: ignore[attr-defined]
    multiprocessing.pool.worker,  # type: ignore[attr-defined]
    multiprocessing.pool.Pool._handle_workers,  # type: ignore[attr-defined]
    multiprocessing.pool.Pool._handle_tasks,  # type: ignore[attr-defined]
    multiprocessing.pool.Pool._handle_results,  # type: ignore[attr-defined]
)
#: Pool threads of other libraries, by the module and name of their target, so
#: that none of those libraries is imported here: Dask's thread pool (every Dask
#: worker runs its tasks in one) and the copy of concurrent.futures it ships.
_NAMED_POOL_THREADS = frozenset(
    {
        ("distributed.threadpoolexecutor", "_worker"),
        ("distributed._concurrent_futures_thread", "_worker"),
    }
)

_run_in_context = Context.run
_FunctionType = types.FunctionType
_lock = threading.Lock()
_active = False
# Seam name -> what our patch forwards to, for every seam where our patch is in place.
_forwards_to: dict[str, Any] = {}
