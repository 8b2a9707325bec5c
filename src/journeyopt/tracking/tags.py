"""Run tags: code version (git commit), data fingerprint, simulator and agent.

Tags under ``journeyopt.`` are ours; ``mlflow.source.git.commit`` is MLflow's own key, so the
MLflow UI shows the commit next to the run.
"""

from __future__ import annotations

import getpass
import hashlib
import subprocess
from collections.abc import Iterable
from pathlib import Path

GIT_COMMIT_TAG = "mlflow.source.git.commit"
GIT_DIRTY_TAG = "journeyopt.git_dirty"
DATA_FINGERPRINT_TAG = "journeyopt.data_fingerprint"
SIMULATOR_TAG = "journeyopt.simulator"
AGENT_TAG = "journeyopt.agent"
_CHUNK_BYTES = 1 << 20


def git_commit(cwd: Path | None = None) -> tuple[str, bool] | None:
    """``(commit sha, has uncommitted changes)`` of the git work tree at ``cwd`` (default: the
    current directory), or ``None`` outside a git work tree or without git."""
    try:
        sha = _git(["rev-parse", "HEAD"], cwd)
        dirty = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None
    return sha, bool(dirty)


def _git(args: list[str], cwd: Path | None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
    )
    return done.stdout.strip()


def fingerprint_files(paths: Iterable[Path]) -> str:
    """SHA-256 (hex) over the names and bytes of ``paths``; folders count with every file below
    them. Independent of the order the paths are given in; names are relative to each given
    path, so a moved data folder keeps its fingerprint."""
    return digest_named_files(sorted(_files_by_name(paths)))


def digest_named_files(named: Iterable[tuple[str, Path]]) -> str:
    """SHA-256 (hex) over each ``(name, file)`` in the order given: the name, a NUL, the
    file's bytes, a NUL."""
    digest = hashlib.sha256()
    for name, file in named:
        digest.update(name.encode() + b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(_CHUNK_BYTES):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def _files_by_name(paths: Iterable[Path]) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for path in paths:
        if path.is_dir():
            below = (p for p in path.rglob("*") if p.is_file())
            found += [(f"{path.name}/{p.relative_to(path).as_posix()}", p) for p in below]
        elif path.is_file():
            found.append((path.name, path))
        else:
            raise FileNotFoundError(f"cannot fingerprint {path}: no such file or folder")
    return found


def run_tags(
    *,
    simulator: str | None = None,
    agent: str | None = None,
    data_fingerprint: str | None = None,
    cwd: Path | None = None,
) -> dict[str, str]:
    """The standard tags of a run: git commit (when in a git work tree) and whether the tree
    had uncommitted changes, plus whichever of simulator, agent and data fingerprint are
    given."""
    tags: dict[str, str] = {}
    commit = git_commit(cwd)
    if commit is not None:
        tags[GIT_COMMIT_TAG], tags[GIT_DIRTY_TAG] = commit[0], str(commit[1]).lower()
    for key, value in (
        (SIMULATOR_TAG, simulator),
        (AGENT_TAG, agent),
        (DATA_FINGERPRINT_TAG, data_fingerprint),
    ):
        if value is not None:
            tags[key] = value
    return tags


def current_user() -> str:
    """Login name of the user running the process (``unknown`` when it cannot be told)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"
