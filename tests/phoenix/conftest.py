"""The ``phoenix`` fixture: a fresh Arize Phoenix on 127.0.0.1, shared by the tests of this folder.

Starting Phoenix takes most of a minute, so one server serves every test here;
each test writes to a project of its own, so they run in any order.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _phoenix import Phoenix, serving_phoenix


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    """A fresh ``phoenix serve`` on 127.0.0.1, stopped after the tests, passed or failed."""
    with serving_phoenix(tmp_path_factory.mktemp("phoenix")) as running:
        yield running
