"""Celery: every task runs under the session and trace of the code that published it.

Call :func:`instrument` once per process, in the publishers and in the worker
(where the app is defined is the usual place)::

    from tracectrl.integrations.celery import instrument
    instrument()

Publishing (``delay``, ``apply_async``, retries, chains, groups, chords, and a
task that publishes another) writes ``traceparent``, ``tracestate``,
``X-TraceCtrl-Session`` and ``baggage`` with ``session.id`` into the message's
headers, exactly as :func:`tracectrl.propagation_headers` makes them for HTTP.
In the worker each task runs inside :class:`tracectrl.continue_session` on
those headers, so the same encoding and validation rules apply: hostile or
malformed values are ignored, and a task published without them (by a process
that did not call :func:`instrument`) runs under a new session and a new trace,
as a request without headers does.  After the task (returned, failed, retried)
the worker's own session and trace are back, whatever the task set; this holds
for the prefork, threads and solo pools.  In eager mode (``task_always_eager``)
the task runs in the caller's thread under the caller's session and trace, and
whatever it sets is undone when it returns.

OpenTelemetry's Celery instrumentation may run alongside, when
:func:`instrument` is called before ``CeleryInstrumentor().instrument()``: its
producer span becomes the parent in the message, its consumer span gets
``session.id`` from :class:`tracectrl.integrations.otel.SessionSpanProcessor`,
and both share one trace.  Needs ``pip install ".[celery]"`` from a tracectrl checkout.
"""

from __future__ import annotations

import logging
import threading
from contextvars import Context, copy_context
from itertools import filterfalse
from threading import get_ident
from typing import TYPE_CHECKING, Optional, Union

try:
    from celery import signals  # type: ignore[import-untyped]
    from celery.app.task import Context as _Request  # type: ignore[import-untyped]
except ImportError as error:
    raise ImportError(
        "tracectrl.integrations.celery needs Celery: "
        'pip install ".[celery]" from the root of a tracectrl checkout'
    ) from error

from tracectrl._continuation import Continued, enter, leave
from tracectrl._snapshot import ContextSnapshot, applied, capture
from tracectrl._trust import admission, warn_if_session_env_set
from tracectrl._wire import (
    ALL_NAMES,
    SESSION_FIELD,
    SESSION_HEADER,
    SIGNATURE_FIELD,
    SIGNATURE_HEADER,
)
from tracectrl.context import propagation_headers

if TYPE_CHECKING:
    from celery import Task
    from celery.utils.dispatch import Signal  # type: ignore[import-untyped]

__all__ = ["instrument", "is_instrumented", "uninstrument"]

_log = logging.getLogger("tracectrl.integrations.celery")

_PUBLISH_UID = "tracectrl.integrations.celery.before_task_publish"
_PRERUN_UID = "tracectrl.integrations.celery.task_prerun"
_POSTRUN_UID = "tracectrl.integrations.celery.task_postrun"

# What a task's prerun entered, by task id and the thread that runs it: the
# entry to undo, the task's context just after the entry (the session and trace
# a retry republishes with), and the entry of the same task id that was running
# before it in this thread (an eager retry runs the same id again inside the
# first run), restored to the map when this one ends.  A retry in the threads
# pool can start in another thread before the first run's postrun has restored
# this one: keyed by thread, each run restores its own entry, in the context
# that entered it.  Single dict reads and writes are atomic, which is all the
# threads pool needs.
_Entry = Union[Continued, applied]
_Run = tuple[_Entry, Context, Optional["_Run"]]
_running: dict[tuple[str, int], _Run] = {}
_lock = threading.Lock()
_instrumented = False

# The names Celery itself gives a request's attributes and a message's headers
# (the list Celery's own request Context uses to tell custom headers apart),
# none of them a propagation field in any case: skipped unread, they leave the
# few custom headers to compare case-insensitively.  A worker's request holds
# about 30 attributes: lowering every name cost 44k instructions per task,
# skipping Celery's 17k (cachegrind, Python 3.13), about 9 us less per task.
_CELERY_NAMES = frozenset(
    name
    for name in (*vars(_Request), "lang", "task", "argsrepr", "kwargsrepr", "compression")
    if isinstance(name, str) and name.lower() not in ALL_NAMES
)
_is_celery_name = _CELERY_NAMES.__contains__
# The fields as publishers spell them, by their lowercase names: lowering a
# name makes a new string, and the usual message holds these spellings alone.
_SPELLINGS = {
    **{name: name for name in ALL_NAMES},
    SESSION_HEADER: SESSION_FIELD,
    SIGNATURE_HEADER: SIGNATURE_FIELD,
}


def instrument() -> None:
    """Carry the session and trace through every Celery app in this process.

    Connects the publishing and worker-side signal handlers.  Calling it again
    does nothing; it may be called before or after the apps are created.

    Returns:
        ``None``; nothing is raised, and a second call changes nothing.
    """
    global _instrumented  # noqa: PLW0603 - one switch per process, like the signals themselves
    with _lock:
        signals.before_task_publish.connect(_on_publish, weak=False, dispatch_uid=_PUBLISH_UID)
        signals.task_prerun.connect(_on_prerun, weak=False, dispatch_uid=_PRERUN_UID)
        signals.task_postrun.connect(_on_postrun, weak=False, dispatch_uid=_POSTRUN_UID)
        _instrumented = True


def uninstrument() -> None:
    """Disconnect what :func:`instrument` connected; tasks already running still restore.

    Returns:
        ``None``; nothing is raised, and calling it when not instrumented changes
        nothing.
    """
    global _instrumented  # noqa: PLW0603
    with _lock:
        signals.before_task_publish.disconnect(dispatch_uid=_PUBLISH_UID)
        signals.task_prerun.disconnect(dispatch_uid=_PRERUN_UID)
        _instrumented = False
    # The postrun handler stays until no task entered by the prerun one is left
    # to restore; it removes itself then (see _on_postrun).
    if not _running:
        signals.task_postrun.disconnect(dispatch_uid=_POSTRUN_UID)


def is_instrumented() -> bool:
    """Return whether :func:`instrument` is in effect in this process.

    Returns:
        ``True`` between :func:`instrument` and :func:`uninstrument`, else ``False``.
    """
    return _instrumented


def _on_publish(headers: dict[str, object] | None = None, **_: object) -> None:
    """``before_task_publish``: write the session and trace in force into the message headers.

    A retry (the message of a task that is running here) carries the session and
    trace the task started with, whatever the task set since: it is the same task.
    """
    if headers is None:
        return
    try:
        # The message may already carry these fields (a retry republishes its
        # own headers; a user may have set some): the ones in force now win,
        # and valid baggage members other than session.id are kept.
        stale = [key for key in headers if key not in _CELERY_NAMES and key.lower() in ALL_NAMES]
        carried = None
        if stale:
            carried = {key: value for key in stale if isinstance(value := headers[key], str)}
            for key in stale:
                del headers[key]
        task_id = headers.get("id")
        running = _running.get((task_id, get_ident())) if isinstance(task_id, str) else None
        if running is None:
            headers.update(propagation_headers(carried))
        else:
            with applied(_started_with(running)):
                headers.update(propagation_headers(carried))
    except Exception:  # publishing must never fail because of tracectrl
        _log.debug("did not add the session and trace to a task message", exc_info=True)


def _on_prerun(task_id: str | None = None, task: Task | None = None, **_: object) -> None:
    """``task_prerun``: enter the publisher's session and trace for this task."""
    if task_id is None or task is None:
        return
    try:
        key = (task_id, get_ident())
        outer = _running.get(key)
        entry: _Entry
        if outer is not None:
            # An eager retry, run inside the first attempt: the same task.
            entry = applied(_started_with(outer))
            entry.__enter__()
        else:
            request = task.request
            if getattr(request, "is_eager", False):
                # Run inline by apply(): the caller's own context is the publisher's.
                entry = applied(capture())
                entry.__enter__()
            else:
                fields = _propagation_fields(vars(request))
                warn_if_session_env_set()
                entry = enter(fields, admission(fields, None, None, True))
        # The context as entered, not a snapshot: copying it costs one reference
        # (its mapping is immutable), capture() cost ~2 us per task, and only a
        # retry reads it.
        _running[key] = (entry, copy_context(), outer)
        _keep_last(signals.task_postrun, _on_postrun, _POSTRUN_UID)
    except Exception:
        _log.debug("did not continue the session of task %s", task_id, exc_info=True)


def _on_postrun(task_id: str | None = None, **_: object) -> None:
    """``task_postrun`` (sent after success, failure and retry alike): restore the worker's own."""
    if task_id is None:
        return
    key = (task_id, get_ident())
    running = _running.get(key)
    if running is None:
        return
    entry, _context, outer = running
    try:
        if type(entry) is applied:
            entry.__exit__(None, None, None)
        else:
            leave(entry)  # type: ignore[arg-type]  # the other kind of entry
    except Exception:
        _log.debug("could not restore the context after task %s", task_id, exc_info=True)
    finally:
        if outer is None:
            _running.pop(key, None)
        else:
            _running[key] = outer
        if not _instrumented and not _running:
            signals.task_postrun.disconnect(dispatch_uid=_POSTRUN_UID)


def _started_with(running: _Run) -> ContextSnapshot:
    """The session and trace a running task was entered with (its retries carry them)."""
    return running[1].run(capture)


def _propagation_fields(request: dict[str, object]) -> object:
    """The propagation fields among a worker request's attributes (the message headers).

    Named in lowercase, so that the carrier reader finds them by lookup; as
    pairs, in the request's order, when two spellings of one name came in, so
    that it sees the repeat.  Attributes named as Celery names its own are
    never propagation fields, in any case, and are not looked at.
    """
    fields = {}
    # filterfalse skips Celery's names in C: a Python-level test per name cost ~1 us per task.
    for key in filterfalse(_is_celery_name, request):
        if (lowered := _SPELLINGS.get(key)) or (lowered := key.lower()) in ALL_NAMES:
            if lowered in fields:
                return [
                    (lowered, value)
                    for key, value in request.items()
                    if (lowered := key.lower()) in ALL_NAMES
                ]
            fields[lowered] = request[key]
    return fields


def _keep_last(signal: Signal, receiver: object, uid: str) -> None:
    """Move ``receiver`` to the end of ``signal``'s receivers if another was connected after it.

    Receivers run in the order they were connected, for every signal.  Other
    instrumentations (OpenTelemetry's) attach their own context in
    ``task_prerun`` after ours and detach it in ``task_postrun``; contexts must
    be restored in the reverse order they were entered, or the last one to
    restore brings back a value from the middle, which would then leak into the
    next task.  So our prerun handler runs first (:func:`instrument` is called
    before the other instrumentation's) and our postrun handler last.
    """
    receivers = signal.receivers
    if receivers and receivers[-1][0][0] != uid:
        signal.disconnect(dispatch_uid=uid)
        signal.connect(receiver, weak=False, dispatch_uid=uid)
