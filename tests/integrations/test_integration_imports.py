"""``import tracectrl`` needs no extra; each integration without its library names the extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# Installs a finder that makes every optional library look uninstalled.
_BLOCKER = textwrap.dedent(
    """
    import sys
    BLOCKED = {blocked!r}

    class Uninstalled:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, Uninstalled())
    """
)
OPTIONAL_LIBRARIES = (
    "opentelemetry",
    "starlette",
    "fastapi",
    "flask",
    "werkzeug",
    "httpx",
    "requests",
    "structlog",
    "uvicorn",
    "celery",
    "distributed",
    "ray",
)
EXTRAS = {
    "otel": "otel",
    "requests": "requests",
    "httpx": "httpx",
    "structlog": "structlog",
    "celery": "celery",
    "dask": "dask",
    "ray": "ray",
    "otel_threading": "otel-instrumentation",
}


def _run(
    code: str, blocked: tuple[str, ...] = OPTIONAL_LIBRARIES
) -> subprocess.CompletedProcess[str]:
    program = _BLOCKER.format(blocked=set(blocked)) + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False
    )


def test_core_and_dependency_free_integrations_work_with_no_extra_installed() -> None:
    result = _run(
        """
        import logging, sys
        import tracectrl
        from tracectrl.context import continue_session, propagation_headers
        from concurrent.futures import ThreadPoolExecutor
        from tracectrl.integrations import asgi, logging as session_logging, wsgi
        from tracectrl.integrations import threading as zero_code

        assert tracectrl.current_session_id() is None  # looks OpenTelemetry up: not installed
        zero_code.instrument()
        with ThreadPoolExecutor(max_workers=1) as pool, tracectrl.session_scope("pooled"):
            assert pool.submit(tracectrl.current_session_id).result() == "pooled"
        zero_code.uninstrument()

        with tracectrl.session_scope("offline") as session_id:
            headers = propagation_headers()
        assert headers["X-TraceCtrl-Session"] == "offline", headers
        with continue_session(headers):
            assert tracectrl.current_session_id() == "offline"
            record = logging.LogRecord("x", logging.INFO, "f.py", 1, "m", None, None)
            session_logging.SessionLogFilter().filter(record)
            assert record.session_id == "offline"
            assert record.trace_id == headers["traceparent"][3:35]
        leaked = sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED)
        assert not leaked, leaked
        """
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("module", "extra"), sorted(EXTRAS.items()))
def test_integration_without_its_library_names_the_extra_to_install(
    module: str, extra: str
) -> None:
    result = _run(
        f"""
        try:
            import tracectrl.integrations.{module}
        except ImportError as error:
            print(error)
        else:
            raise SystemExit("imported without its library")
        """
    )
    assert result.returncode == 0, result.stderr
    assert f'pip install ".[{extra}]" from the root of a tracectrl checkout' in result.stdout


def test_importing_tracectrl_does_not_import_opentelemetry_even_when_installed() -> None:
    result = _run(
        """
        import sys
        import tracectrl, tracectrl.context, tracectrl.executors
        assert "opentelemetry" not in sys.modules
        tracectrl.context.propagation_headers()  # the first trace looks OpenTelemetry up
        assert "opentelemetry.trace" in sys.modules
        """,
        blocked=(),
    )
    assert result.returncode == 0, result.stderr


def test_with_the_api_alone_the_propagator_works_and_the_span_processor_names_the_extra() -> None:
    # Only opentelemetry.sdk is missing: OTEL_PROPAGATORS=...,tracectrl_session
    # loads SessionPropagator through the entry point, so it must still import.
    code = textwrap.dedent(
        """
        import sys

        class NoSdk:
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry.sdk" or name.startswith("opentelemetry.sdk."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, NoSdk())
        from tracectrl import session_scope
        from tracectrl.integrations.otel import SessionPropagator, SessionSpanProcessor

        carrier = {}
        with session_scope("api-only"):
            SessionPropagator().inject(carrier)
        assert carrier["X-TraceCtrl-Session"] == "api-only", carrier
        try:
            SessionSpanProcessor()
        except ImportError as error:
            assert 'pip install ".[otel]" from the root of a tracectrl checkout' in str(
                error
            ), error
        else:
            raise AssertionError("SessionSpanProcessor() without the SDK did not raise")
        assert not [name for name in sys.modules if name.startswith("opentelemetry.sdk")]
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
