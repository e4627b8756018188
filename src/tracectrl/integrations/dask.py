"""Dask distributed: submit work under the caller's session and trace.

:func:`submit` is ``client.submit`` and :func:`submit_map` is ``client.map``, with
the caller's session id and trace sent along as a snapshot, the same picklable
data that :func:`tracectrl.submit` sends to a process pool, and re-established
on the worker for each task alone::

    from tracectrl.integrations.dask import submit, submit_map

    with session_scope("user-42"):
        future = submit(client, plan_trip, "Lisbon", days=3)
        futures = submit_map(client, score_hotel, hotels)

Workers must be able to import ``tracectrl`` (it is installed where the
workers run, as ``fn`` is).  Needs ``pip install ".[dask]"`` from a tracectrl checkout.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Callable, TypeVar

try:
    import distributed
except ImportError as error:
    raise ImportError(
        "tracectrl.integrations.dask needs Dask distributed: "
        'pip install ".[dask]" from the root of a tracectrl checkout'
    ) from error

from typing_extensions import ParamSpec

from tracectrl._snapshot import ContextSnapshot, capture, run_in_task_with_snapshot

if TYPE_CHECKING:
    from distributed import Future

__all__ = ["submit", "submit_map"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


def submit(
    client: distributed.Client, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
) -> Future[_T]:
    """Run ``fn(*args, **kwargs)`` on the cluster under the session and trace in force here.

    The session id and trace are taken now, in the calling thread; on the
    worker they are in force while ``fn`` runs, in a context of its own, so
    whatever ``fn`` sets (``set_session_id``, another trace) never reaches
    the next task on that worker.  With no session here, ``fn`` runs with
    none.  ``kwargs`` all go to ``fn``, never to ``client.submit``; use the
    client's own options with ``client.submit(run, ...)`` if you need them.
    Each call is a new task (``pure=False``): the same call under two sessions
    must not share one result.  An exception raised by ``fn`` is the
    future's, as with ``client.submit``.  ``args`` and ``kwargs`` may hold
    futures; they are resolved as ``client.submit`` resolves them.  ``fn``
    runs in a copy of the task's context, so Dask's ``get_worker()`` and
    ``worker_client()`` work inside it.

    Args:
        client: the :class:`distributed.Client` to submit to.
        fn: the function the worker runs; it must be picklable.
        *args: positional arguments for ``fn`` (futures are resolved first).
        **kwargs: keyword arguments for ``fn``, all of them (futures are resolved first).

    Returns:
        The client's :class:`distributed.Future` for ``fn``'s result; an
    exception ``fn`` raises is the future's.
    """
    # The keyword arguments travel as one dict among the positional ones, where
    # Dask finds and resolves futures (it never looks inside a partial), and
    # where none of them can be taken for one of client.submit's own options.
    future: Future[_T] = client.submit(_run_task, capture(), fn, kwargs, *args, pure=False)
    return future


def submit_map(
    client: distributed.Client, fn: Callable[..., _T], /, *iterables: Collection[Any]
) -> list[Future[_T]]:
    """Run ``fn`` over ``iterables`` like ``client.map``, under the session and trace in force.

    One task per item (``fn(a, b, ...)`` with one item of each iterable, paired
    as the built-in ``map`` pairs them); every task gets the session and trace
    in force here when :func:`submit_map` is called, in a context of its own
    on the worker, as with :func:`submit`.  Each call makes new tasks
    (``pure=False``).  ``iterables`` may hold futures; they are resolved as
    ``client.map`` resolves them.

    Args:
        client: the :class:`distributed.Client` to submit to.
        fn: the function the workers run; it must be picklable.
        *iterables: the arguments, one collection (a list, a tuple...) per
            parameter of ``fn``.

    Returns:
        One :class:`distributed.Future` per item, in order; an exception
        ``fn`` raises is that item's future's.
    """
    run = functools.partial(_run_task, capture(), fn, {})
    futures: list[Future[_T]] = client.map(run, *iterables, pure=False)
    return futures


def _run_task(
    snapshot: ContextSnapshot, fn: Callable[..., _T], kwargs: dict[str, Any], /, *args: Any
) -> _T:
    """On the worker: ``fn(*args, **kwargs)`` under the snapshot, keeping Dask's own context."""
    return run_in_task_with_snapshot(snapshot, fn, *args, **kwargs)
