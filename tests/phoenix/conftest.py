"""The ``phoenix`` fixture: a fresh Arize Phoenix on 127.0.0.1 for each test that asks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _phoenix import Phoenix, serving_phoenix


@pytest.fixture
def phoenix(tmp_path: Path) -> Iterator[Phoenix]:
    """A fresh ``phoenix serve`` on 127.0.0.1, stopped after the test, passed or failed."""
    with serving_phoenix(tmp_path) as running:
        yield running
