"""Fixtures shared by every test package (loaded as pytest plugins), and the order the
collection runs in."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.fixtures_mlflow"]

FIRST = ("tests/test_walkthrough.py::", "notebooks/")
"""Long single items that run first: the README walkthroughs (one to three minutes each on two
busy cores, no fixture shared with another module) and the notebooks."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Runs the :data:`FIRST` items before the rest, in their own order (a stable sort). With
    ``pytest -n 2`` (pytest-xdist's ``load`` schedule) the collection is handed out in order,
    the last tests in ever smaller chunks: a long item collected last keeps one worker busy
    after the other has run out of tests; at the start it is balanced by everything after."""
    items.sort(key=lambda item: not item.nodeid.startswith(FIRST))
