"""Every test starts with no session and no trace, and leaves none behind.

A test that asks for the ``trace_backend`` fixture (``pytestmark =
pytest.mark.usefixtures("trace_backend")``) runs twice: once with the trace in
tracectrl's own ContextVar, as when ``opentelemetry-api`` is not installed, and
once in OpenTelemetry's context through the bridge.  Every interpreter the suite
runs on has ``opentelemetry-api``, so without the fixture only the second path
would ever be tested.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator, Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Optional

import pytest

#: Set by tests/run_all.sh for its pass without OpenTelemetry: every interpreter has
#: ``opentelemetry-api`` installed, so this pass makes it, and OpenInference, unimportable.
WITHOUT_OPENTELEMETRY = os.environ.get("TRACECTRL_TESTS_WITHOUT_OPENTELEMETRY") == "1"


class _Uninstalled(MetaPathFinder):
    """Make OpenTelemetry and OpenInference look uninstalled, as on a machine without them."""

    BLOCKED = frozenset({"opentelemetry", "openinference"})

    def find_spec(
        self,
        fullname: str,
        path: Optional[Sequence[str]] = None,
        target: Optional[ModuleType] = None,
    ) -> Optional[ModuleSpec]:
        if fullname.partition(".")[0] in self.BLOCKED:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


if WITHOUT_OPENTELEMETRY:
    if any(name.partition(".")[0] in _Uninstalled.BLOCKED for name in sys.modules):
        raise RuntimeError("OpenTelemetry was imported before the tests could block it")
    sys.meta_path.insert(0, _Uninstalled())

from tracectrl import _trace, _trust  # noqa: E402 - after the blocker, which it must not bypass
from tracectrl.session import _session_id  # noqa: E402 - see above

# Ray's servers (GCS, raylet, workers, the runtime-env agent) listen on every
# interface and talk over the machine's own address unless Ray is told this is a
# single machine; with this set before Ray is imported, all of them bind
# 127.0.0.1 (checked with `ss -ltnp`), as every service a test starts must.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

TRACE_BACKENDS = ["contextvar", "opentelemetry"]


@pytest.fixture(params=TRACE_BACKENDS)
def trace_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Keep the current trace in the backend named by the parameter for one test."""
    if request.param == "opentelemetry":
        bridge = pytest.importorskip("tracectrl._otel_bridge").BRIDGE
    else:
        bridge = None  # what _trace settles on when opentelemetry-api does not import
    monkeypatch.setattr(_trace, "_bridge", bridge)
    return str(request.param)


@pytest.fixture(autouse=True)
def _clean_context(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    monkeypatch.delenv("TRACECTRL_SESSION_ID", raising=False)
    monkeypatch.delenv("TRACECTRL_SESSION_KEY", raising=False)
    # The once-per-process look at $TRACECTRL_SESSION_ID in a server counts as
    # done: tests that set the variable on purpose stay quiet, and the tests of
    # the warning itself clear this.  $TRACECTRL_SESSION_KEY, read once per
    # process, is read again by each test that needs it.
    monkeypatch.setattr(_trust, "_checked_session_env", True)
    monkeypatch.setattr(_trust, "_env_keys", None)
    if "trace_backend" in request.fixturenames:
        # Switch before attaching, so that the detach below goes to the backend
        # that took the attach; monkeypatch restores the bridge only after it.
        request.getfixturevalue("trace_backend")
    session_token = _session_id.set(None)
    # A trace tracectrl starts lives in its ContextVar even with the bridge.
    started_token = _trace._trace_context.set(None)
    trace_token = _trace.attach_trace(None)
    yield
    _trace.detach_trace(trace_token)
    _trace._trace_context.reset(started_token)
    _session_id.reset(session_token)


def pytest_sessionstart(session: pytest.Session) -> None:
    """In the pass without OpenTelemetry, prove it is out of reach before any test runs."""
    if WITHOUT_OPENTELEMETRY:
        try:
            importlib.util.find_spec("opentelemetry")
        except ModuleNotFoundError:
            return
        raise RuntimeError("the pass without OpenTelemetry can still import it")
