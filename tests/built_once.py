"""Expensive test inputs built once per test run and shared by the pytest-xdist workers.

A session fixture is built once per worker process: with ``pytest -n 2`` a calibration that
tests on both workers use is calibrated twice. :func:`built_once` builds it in the first
worker that needs it, under a file lock, into a folder beside the workers' own temporary
folders, and pickles the result; the other worker loads the pickle (or waits for the build).
"""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from filelock import FileLock

T = TypeVar("T")


def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder shared by the pytest-xdist workers of this run (the session's own folder
    without xdist)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = root / "shared"
    folder.mkdir(exist_ok=True)
    return folder


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], T]
) -> T:
    """``build(folder)`` run once per test run for ``name`` (an empty ``folder`` of its own),
    its result pickled; every later call, in any worker, returns the unpickled result."""
    root = shared_dir(tmp_path_factory)
    result_file = root / f"{name}.pkl"
    with FileLock(root / f"{name}.lock"):
        if result_file.exists():
            loaded: T = pickle.loads(result_file.read_bytes())
            return loaded
        folder = root / name
        shutil.rmtree(folder, ignore_errors=True)  # what a failed build left
        folder.mkdir()
        result = build(folder)
        partial = result_file.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(result))
        partial.rename(result_file)
        return result
