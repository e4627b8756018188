"""Pytest plugin for the mutant runs of ``tests/mutation/run.py``: run exactly the listed tests.

Node ids of parametrized tests do not always survive the command line (an id
with ``::``, ``/`` or escapes is not found again), so the runner passes the
test files and lists the node ids in a file: this plugin keeps those items, in
the file's order (fastest first), and deselects the rest.  A listed file, class
or unparametrized name (``--tests``) keeps every test under it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    listing = os.environ.get("TRACECTRL_MUTATION_TESTS")
    if not listing:
        return
    order = {
        node_id: index
        for index, node_id in enumerate(Path(listing).read_text(encoding="utf-8").splitlines())
    }
    ranks = {item.nodeid: _rank(item.nodeid, order) for item in items}
    kept = sorted((i for i in items if ranks[i.nodeid] is not None), key=lambda i: ranks[i.nodeid])
    deselected = [item for item in items if ranks[item.nodeid] is None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    items[:] = kept


def _rank(node_id: str, order: dict[str, int]) -> int | None:
    """The place of ``node_id`` in the listing, which may name it or a file, class or function."""
    if node_id in order:
        return order[node_id]
    parts = node_id.split("[", maxsplit=1)[0].split("::")
    for end in range(len(parts), 0, -1):
        prefix = "::".join(parts[:end])
        if prefix in order:
            return order[prefix]
    return None
