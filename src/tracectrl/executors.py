"""Carry the caller's session and trace into threads, pools and worker processes.

A :class:`contextvars.ContextVar` belongs to one thread or task: a new thread, a
pool worker and ``loop.run_in_executor`` all run the work in the *worker's*
context, so the session the caller is in is gone there.  The helpers below run
each piece of work in a fresh copy of the caller's context instead.  A fresh
copy per task, never a shared one: a :class:`contextvars.Context` can be entered
by one thread at a time (a second entry raises ``RuntimeError: cannot enter
context``), and with a copy per task nothing one task sets is seen by another.

A context cannot be pickled, so for a
:class:`~concurrent.futures.ProcessPoolExecutor` :func:`submit` and
:func:`run_in_executor` send the library's values (the session id and the
trace) as plain data and re-establish them in the worker for that task only.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextvars import Context, copy_context
from typing import Callable, Optional, TypeVar

from typing_extensions import ParamSpec, TypeVarTuple, Unpack

from tracectrl._contextcopy import runner_in_copies_of
from tracectrl._snapshot import capture, run_with_snapshot

__all__ = ["ContextThreadPoolExecutor", "bind", "run_in_executor", "start_thread", "submit"]

_P = ParamSpec("_P")
_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")
_Submitted = TypeVar("_Submitted")


def submit(
    executor: Executor, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
) -> Future[_T]:
    """Schedule ``fn(*args, **kwargs)`` on ``executor`` in a fresh copy of the caller's context.

    Works with any :class:`~concurrent.futures.Executor` whose tasks run in this
    process (``ThreadPoolExecutor`` and its subclasses), and with
    :class:`~concurrent.futures.ProcessPoolExecutor` (see below).  Each call
    copies the context again, so tasks never share one, and whatever a task sets
    (``set_session_id``, any other ContextVar) stays in that task: it never
    reaches the caller or the next task on the same worker.

    With no session in force the task sees none.  An exception raised by ``fn``
    is set on the returned future, exactly as ``executor.submit`` does; the
    caller's context is untouched either way.  The context is copied now, in
    the calling thread, not when a worker picks the task up.

    Process pools: the session id and the trace travel as a picklable snapshot
    and are in force in the worker for this task only; the worker's own context
    is restored afterwards.  Other ContextVars do not cross processes.  ``fn``
    and the arguments must be picklable; if they are not, the future fails with
    the executor's own pickling error.  Other executors that pickle their tasks
    (not ``ProcessPoolExecutor`` subclasses) are not recognised: a ``Context``
    cannot be pickled, so such a submission fails.

    Args:
        executor: the executor to run ``fn`` on: a thread pool, a process pool,
            or any other :class:`~concurrent.futures.Executor`.
        fn: the function to call; for a process pool, a picklable module-level one.
        *args: positional arguments for ``fn``.
        **kwargs: keyword arguments for ``fn`` (all of them, even ones named
            ``fn`` or ``executor``).

    Returns:
        The executor's own future for the result of ``fn``.

    Raises:
        RuntimeError: the executor is shut down (raised by ``executor.submit``).
    """
    if isinstance(executor, ProcessPoolExecutor):
        return _ship_snapshot(executor.submit, fn, *args, **kwargs)
    run_in_copy: Callable[..., _T] = copy_context().run  # mypy cannot nest one ParamSpec in another
    return executor.submit(run_in_copy, fn, *args, **kwargs)


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A drop-in ``ThreadPoolExecutor`` whose tasks run in the caller's context.

    :meth:`submit` runs each task in a fresh copy of the submitting thread's
    context, as :func:`submit` does; ``map``, inherited unchanged, submits every
    item through it, so each item gets its own copy too, taken when ``map`` is
    called.  ``map`` keeps its usual behaviour: ``timeout``, ``chunksize``
    (ignored by thread pools), results in order and the first exception re-raised
    when its result is reached.

    Code that submits with no session in force runs its tasks with none, even on
    a worker that ran a scoped task before.  An ``initializer`` runs in the
    worker's own context, so ContextVars it sets are not visible to tasks.
    """

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        """Schedule ``fn(*args, **kwargs)`` in a fresh copy of the caller's context.

        An exception raised by ``fn`` is set on the returned future; nothing the
        task sets reaches the caller or later tasks on the same worker thread.
        """
        run_in_copy: Callable[..., _T] = copy_context().run  # as in submit()
        return super().submit(run_in_copy, fn, *args, **kwargs)


def bind(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """Return a callable that runs ``fn`` in the context as it is now, at bind time.

    For callbacks, queues and ``threading.Thread(target=bind(work), daemon=True)``:
    whoever calls the result later, in whatever thread and under whatever
    session, ``fn`` sees the session and trace that were in force when
    :func:`bind` was called (none if there was none).  Each call runs in its own
    fresh copy of that context, so concurrent calls from several threads are
    safe and one call's changes are invisible to the next and to the caller.
    Exceptions from ``fn`` propagate to the caller unchanged.

    The result keeps ``fn``'s ``functools.wraps`` metadata.  It holds a
    :class:`contextvars.Context`, which cannot be pickled, so it cannot be sent
    to a process pool: use :func:`submit` there.  For a
    coroutine function only the creation of the coroutine is bound; the body
    runs in the task that awaits it.  Likewise for a generator function: the
    body runs in the context of the code iterating it (decorate it with
    :func:`tracectrl.with_session` instead).

    Args:
        fn: the function to run later in the context of now.

    Returns:
        A callable with ``fn``'s signature that runs ``fn`` in a fresh copy of
        the context taken at bind time, and returns what ``fn`` returns.
    """
    return functools.wraps(fn)(runner_in_copies_of(copy_context(), fn))


def start_thread(
    target: Callable[_P, object], /, *args: _P.args, **kwargs: _P.kwargs
) -> threading.Thread:
    """Start a thread running ``target(*args, **kwargs)`` in a copy of the caller's context.

    Returns the thread, already started; ``join()`` it to wait.  Every keyword
    argument goes to ``target``; none is taken for the thread itself.  The thread
    gets ``threading.Thread``'s defaults (an automatic name, daemon if the calling
    thread is).  For a name or a daemon flag, write
    ``threading.Thread(target=bind(target), name=..., daemon=True).start()``.

    With no session in force the thread has none.  An exception in ``target``
    goes to :func:`threading.excepthook`, as for any thread; what the thread
    sets never reaches the caller.

    Args:
        target: the function the thread runs.
        *args: positional arguments for ``target``.
        **kwargs: keyword arguments for ``target`` (all of them).

    Returns:
        The started :class:`threading.Thread`.

    Raises:
        RuntimeError: the interpreter cannot start another thread.
    """
    thread = threading.Thread(target=bind(target), args=args, kwargs=kwargs)
    thread.start()
    return thread


def run_in_executor(
    executor: Optional[Executor], fn: Callable[[Unpack[_Ts]], _T], /, *args: Unpack[_Ts]
) -> asyncio.Future[_T]:
    """Like ``loop.run_in_executor``, but ``fn`` runs in a fresh copy of the caller's context.

    Must be called with an event loop running in this thread (from a coroutine
    or a loop callback).  The work is submitted at once, like the ``asyncio``
    original; await the returned future for the result or for the exception
    ``fn`` raised.  ``executor=None`` uses the loop's default executor.  The
    stdlib ``loop.run_in_executor`` does not copy the context (so a worker
    thread sees no session); ``asyncio.to_thread`` does, for the default
    executor only.

    Process pools behave as with :func:`submit`: the session id and the trace
    travel as plain data; ``fn`` and ``args`` must be picklable.

    Args:
        executor: the executor, or ``None`` for the loop's default executor.
        fn: the function to call.
        *args: positional arguments for ``fn``.

    Returns:
        An :class:`asyncio.Future` for the result of ``fn``.

    Raises:
        RuntimeError: no event loop is running in this thread.
    """
    loop = asyncio.get_running_loop()
    if isinstance(executor, ProcessPoolExecutor):
        return _ship_snapshot(functools.partial(loop.run_in_executor, executor), fn, *args)
    return loop.run_in_executor(executor, copy_context().run, fn, *args)


def _ship_snapshot(
    submit_to_pool: Callable[..., _Submitted],
    fn: Callable[_P, _T],
    /,
    *args: _P.args,
    **kwargs: _P.kwargs,
) -> _Submitted:
    """Submit ``fn`` to a process pool with the caller's session and trace as plain data."""
    snapshot = capture()
    # ProcessPoolExecutor starts fork workers from inside submit(), and a forked
    # worker keeps the forking thread's context for life: submit from an empty
    # context, so that a worker born here hands nothing of this caller's (our
    # values, OpenTelemetry's, anyone's) to the plain tasks it runs later.
    return Context().run(submit_to_pool, run_with_snapshot, snapshot, fn, *args, **kwargs)
