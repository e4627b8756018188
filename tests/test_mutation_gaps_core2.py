"""Sessions, spans and ids at their edges: a broken OpenTelemetry, a failing span, new ids.

Each test here pins a behaviour that a small change to the code (a mutant) broke
without any other test noticing; see ``tests/mutation/run.py``.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import subprocess
import sys
import types
import warnings
from collections.abc import Generator, Iterator
from contextvars import copy_context
from pathlib import Path
from typing import Any, cast

import pytest

from tracectrl import _sessionvar, _span
from tracectrl import session as session_module
from tracectrl._trace import current_trace
from tracectrl.context import continue_session, extract_trace_headers
from tracectrl.scope import session_scope, with_session
from tracectrl.session import current_session_id


def _broken_module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)

    def fail(attribute: str) -> object:
        raise RuntimeError(f"broken OpenTelemetry installation: cannot load {attribute}")

    module.__getattr__ = fail  # type: ignore[method-assign]
    return module


def test_opentelemetry_that_fails_to_load_leaves_sessions_to_tracectrl_and_logs_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # No carried session can exist where the module that carries them cannot load.
    monkeypatch.setattr(_sessionvar, "carried_sessions_exist", False)
    monkeypatch.setitem(
        sys.modules, "tracectrl._otel_session", _broken_module("tracectrl._otel_session")
    )
    monkeypatch.setattr(session_module, "_otel_session", session_module._look_up_otel_session)
    with caplog.at_level(logging.WARNING, logger="tracectrl"):
        assert current_session_id() is None
    assert session_module._otel_session is None  # looked up once, not at every read
    [record] = [r for r in caplog.records if r.name == "tracectrl"]
    assert "sessions in its context are not seen" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    with session_scope("kept by tracectrl"):
        assert current_session_id() == "kept by tracectrl"
    assert current_session_id() is None


def test_without_opentelemetry_sessions_are_tracectrls_alone_and_nothing_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_sessionvar, "carried_sessions_exist", False)
    monkeypatch.setitem(sys.modules, "tracectrl._otel_session", None)  # import fails
    monkeypatch.setattr(session_module, "_otel_session", session_module._look_up_otel_session)
    with caplog.at_level(logging.DEBUG, logger="tracectrl"):
        assert current_session_id() is None
    assert session_module._otel_session is None
    assert [r for r in caplog.records if r.name == "tracectrl"] == []
    with session_scope("alone"):
        assert current_session_id() == "alone"


def test_span_option_without_opentelemetry_api_starts_no_span_and_raises_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # its import fails
    monkeypatch.setattr(_span, "_api", None)
    monkeypatch.setattr(_span, "_api_missing", False)
    for _ in range(2):
        with session_scope("plain", span="plan") as session_id:
            assert (session_id, current_session_id()) == ("plain", "plain")
        assert current_session_id() is None


def test_shared_scope_keeps_at_most_1024_open_entries_and_forgets_the_oldest_quarter() -> None:
    # Entries whose exit never came (an interrupt at exit, a killed thread) are
    # bounded: at the 1025th open entry the oldest 256 are dropped.
    shared = session_scope("job")
    seen: dict[str, object] = {}

    def abandon() -> None:
        for _ in range(1024):
            shared.__enter__()
        seen["full"] = len(shared._entries)
        oldest_kept = shared._entries[256]
        shared.__enter__()
        seen["after one more"] = len(shared._entries)
        seen["oldest kept"] = shared._entries[0] is oldest_kept

    copy_context().run(abandon)
    assert seen == {"full": 1024, "after one more": 1024 - 256 + 1, "oldest kept": True}


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.usefixtures("trace_backend")
def test_decorated_generator_leaves_a_caller_without_trace_without_one_at_each_yield() -> None:
    @with_session("steps")
    def steps() -> Iterator[str | None]:
        extract_trace_headers({"traceparent": TRACEPARENT})
        for _ in range(3):
            trace = current_trace()
            yield None if trace is None else trace.trace_id

    for trace_id in steps():
        assert trace_id == TRACEPARENT.split("-")[1]
        assert (current_session_id(), current_trace()) == (None, None)
    assert current_trace() is None


class _YieldOnce:
    """An awaitable that suspends its coroutine once, like an await on I/O."""

    def __await__(self) -> Generator[None, None, None]:
        yield


def test_decorated_coroutine_finished_elsewhere_warns_at_the_line_that_resumed_it() -> None:
    @with_session("decorated")
    async def work() -> None:
        await _YieldOnce()

    coroutine = work()
    copy_context().run(coroutine.send, None)

    def finish() -> int:
        line = sys._getframe().f_lineno + 2
        with contextlib.suppress(StopIteration):
            coroutine.send(None)
        return line

    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        line = copy_context().run(finish)
    assert [(w.filename, w.lineno) for w in warned] == [(__file__, line)]


def test_tracestate_in_two_fields_is_read_whole_even_when_its_first_field_was_seen_alone() -> None:
    alone = extract_trace_headers({"traceparent": TRACEPARENT, "tracestate": "a=1"})
    assert alone is not None
    assert alone.tracestate == "a=1"
    split = extract_trace_headers(
        [("traceparent", TRACEPARENT), ("tracestate", "a=1"), ("tracestate", "b=2")]
    )
    assert split is not None
    assert split.tracestate == "a=1,b=2"


def test_continue_session_refused_at_construction_warns_nothing_when_collected() -> None:
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        with contextlib.suppress(TypeError):
            continue_session({}, key=cast("Any", 123))
        gc.collect()
    assert [str(w.message) for w in warned] == []


def test_never_entered_continue_session_warns_at_its_own_code_not_at_the_collecting_line() -> None:
    # The garbage collector runs it from whatever line allocated last: pointing
    # there would blame unrelated code.
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        continue_session({})
        gc.collect()
    assert [Path(w.filename).name for w in warned] == ["context.py"]
    assert "never entered" in str(warned[0].message)


def test_key_tuple_holding_an_unhashable_part_is_refused_with_the_key_rule() -> None:
    with pytest.raises(TypeError, match="a session key must be str or bytes, got list"):
        continue_session({}, key=cast("Any", ("k" * 32, ["not", "a", "key"])))


def test_session_env_in_a_server_process_warns_once_at_the_code_continuing_sessions(
    tmp_path: Path,
) -> None:
    # A fresh interpreter: this process's look at the variable is long done.
    script = tmp_path / "server.py"
    script.write_text(
        "import warnings\n"
        "from tracectrl import continue_session\n"
        "with warnings.catch_warnings(record=True) as warned:\n"
        "    warnings.simplefilter('always')\n"
        "    continue_session({})\n"
        "    continue_session({})\n"
        "env = [w for w in warned if 'SESSION_ID is set' in str(w.message)]\n"
        "print([(w.filename, w.lineno) for w in env])\n",
        encoding="utf-8",
    )
    env = {**os.environ, "TRACECTRL_SESSION_ID": "job"}
    completed = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == repr([(str(script), 5)])
