"""The session-API snippets of the original spec, run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def run_snippet(code: str, **env: str) -> list[str]:
    """Run a snippet in a fresh interpreter, as a user would, and return its printed lines."""
    environ = {k: v for k, v in os.environ.items() if k != "TRACECTRL_SESSION_ID"}
    environ.update(env)
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environ,
        check=True,
    )
    return completed.stdout.splitlines()


AUTOMATIC = """
from tracectrl.session import new_session, current_session_id
sid = new_session()
print(sid) # e.g., "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
print(current_session_id()) # same value
"""


def test_seed_automatic_session_prints_one_uuid4_twice() -> None:
    first, second = run_snippet(AUTOMATIC)
    assert UUID4.match(first)
    assert second == first


def test_seed_automatic_session_uses_the_environment_variable() -> None:
    assert run_snippet(AUTOMATIC, TRACECTRL_SESSION_ID="fixed-session-for-testing") == [
        "fixed-session-for-testing",
        "fixed-session-for-testing",
    ]


def test_seed_manual_session_id_is_current() -> None:
    code = """
    from tracectrl.session import set_session_id
    set_session_id("user-session-abc123")
    from tracectrl.session import current_session_id
    print(current_session_id())
    """
    assert run_snippet(code) == ["user-session-abc123"]


def test_seed_set_session_id_ignores_the_environment_variable() -> None:
    code = """
    from tracectrl.session import set_session_id, current_session_id
    set_session_id("user-session-abc123")
    print(current_session_id())
    """
    lines = run_snippet(code, TRACECTRL_SESSION_ID="fixed-session-for-testing")
    assert lines == ["user-session-abc123"]


def test_seed_current_session_id_is_none_before_any_call() -> None:
    code = """
    from tracectrl.session import current_session_id
    print(current_session_id())
    """
    assert run_snippet(code) == ["None"]


def test_seed_contextvar_is_named_tracectrl_session_id() -> None:
    from tracectrl.session import _session_id

    assert _session_id.name == "tracectrl_session_id"


def test_empty_environment_variable_falls_back_to_uuid4(monkeypatch: pytest.MonkeyPatch) -> None:
    from tracectrl.session import new_session

    monkeypatch.setenv("TRACECTRL_SESSION_ID", "")
    assert UUID4.match(new_session())


def test_non_empty_environment_variable_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    from tracectrl.session import new_session

    monkeypatch.setenv("TRACECTRL_SESSION_ID", "  padded  ")
    assert new_session() == "  padded  "
