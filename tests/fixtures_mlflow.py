"""MLflow backends for tests: the embedded SQLite store in ``tmp_path`` and a real
``mlflow server`` on loopback, both from one pre-migrated SQLite file.

Fixtures (available to every test package through ``tests/conftest.py``):

- ``mlflow_sqlite``: a :class:`TrackingConfig` on a fresh SQLite store in ``tmp_path``;
- ``mlflow_server_url``: URL of an ``mlflow server`` shared by the test run, also across
  pytest-xdist workers (started on a free loopback port, stopped at the end);
- ``mlflow_remote``: a :class:`TrackingConfig` on that server with an experiment of its own;
- ``mlflow_backend``: parametrized over both (``sqlite`` and ``server``).

Nothing is written into the repository: every store and artifact folder lives in pytest's
temporary directories, and MLflow's process-wide URIs are reset after each test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
from filelock import FileLock

from journeyopt.tracking.config import TrackingConfig
from tests.built_once import shared_dir

SERVER_START_SECONDS = 180.0
_MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def _shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder shared by the pytest-xdist workers of this run (the session's own folder
    without xdist)."""
    folder = shared_dir(tmp_path_factory) / "mlflow"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def mlflow_migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file holding MLflow's current schema, created once per test run (copying it
    saves the seconds a migration takes)."""
    folder = _shared_dir(tmp_path_factory)
    path = folder / "template.db"
    with FileLock(folder / "template.lock"):
        if not path.exists():
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            building = folder / "building.db"
            store = SqlAlchemyStore(f"sqlite:///{building}", str(folder / "mlruns"))
            store.engine.dispose()
            building.rename(path)
    return path


@contextlib.contextmanager
def mlflow_isolated() -> Iterator[None]:
    """Reset MLflow's process-wide tracking and registry URIs (and their environment
    variables, which ``mlflow.set_tracking_uri`` sets) when the block ends (for fixtures of a
    wider scope than a test)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in _MLFLOW_ENV:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        yield
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
        for name in _MLFLOW_ENV:
            os.environ.pop(name, None)


@pytest.fixture
def _mlflow_isolated() -> Iterator[None]:
    """:func:`mlflow_isolated` around the test."""
    with mlflow_isolated():
        yield


def sqlite_store(folder: Path, template: Path) -> TrackingConfig:
    """Tracking on a fresh embedded SQLite store in ``folder`` (a copy of the migrated
    ``template``), artifacts in ``folder / "mlruns"``."""
    db = folder / "mlflow.db"
    shutil.copyfile(template, db)
    return TrackingConfig(
        tracking_uri=f"sqlite:///{db}",
        experiment="tests",
        artifact_location=(folder / "mlruns").as_uri(),
        flush_every_seconds=3600.0,
    )


@pytest.fixture
def mlflow_sqlite(
    tmp_path: Path, mlflow_migrated_db: Path, _mlflow_isolated: None
) -> TrackingConfig:
    """Tracking on a fresh embedded SQLite store with artifacts in ``tmp_path``."""
    return sqlite_store(tmp_path, mlflow_migrated_db)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _stop(pid: int, url: str) -> None:
    """Stop the server's process group (the server and the workers it started)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while _healthy(url) and time.monotonic() < deadline:
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        if _healthy(url):
            os.killpg(pid, signal.SIGKILL)


def _start_server(folder: Path, template: Path) -> dict[str, Any]:
    """Start ``mlflow server`` on a copy of ``template``; wait until ``/health`` answers."""
    db = folder / "mlflow.db"
    shutil.copyfile(template, db)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in _MLFLOW_ENV}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    with (folder / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1", "--backend-store-uri", f"sqlite:///{db}",
             "--artifacts-destination", str(folder / "artifacts")],
            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + SERVER_START_SECONDS
    while not _healthy(url):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process.pid, url)
            tail = (folder / "server.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"mlflow server did not start:\n{tail}")
        time.sleep(0.25)
    return {"url": url, "pid": process.pid, "users": 0}


@pytest.fixture(scope="session")
def mlflow_server_url(
    tmp_path_factory: pytest.TempPathFactory, mlflow_migrated_db: Path
) -> Iterator[str]:
    """URL of a real ``mlflow server`` (one worker, SQLite backend, proxied artifacts in a
    temporary folder) on a free loopback port. One server serves every pytest-xdist worker:
    the first to need it starts it, the last to finish stops it."""
    folder = _shared_dir(tmp_path_factory)
    state_file = folder / "server.json"
    with FileLock(folder / "server.lock"):
        state = json.loads(state_file.read_text()) if state_file.exists() else None
        if state is None or not _healthy(state["url"]):
            state = _start_server(folder, mlflow_migrated_db)
        state["users"] += 1
        state_file.write_text(json.dumps(state))
    try:
        yield str(state["url"])
    finally:
        with FileLock(folder / "server.lock"):
            state = json.loads(state_file.read_text())
            state["users"] -= 1
            if state["users"] == 0:
                _stop(int(state["pid"]), str(state["url"]))
                state_file.unlink()
            else:
                state_file.write_text(json.dumps(state))


@pytest.fixture
def mlflow_remote(mlflow_server_url: str, _mlflow_isolated: None) -> TrackingConfig:
    """Tracking on the session's ``mlflow server``, in an experiment of this test's own."""
    return TrackingConfig(
        tracking_uri=mlflow_server_url,
        experiment=f"test-{uuid.uuid4().hex[:12]}",
        registered_model=f"journey-policy-{uuid.uuid4().hex[:8]}",
        flush_every_seconds=3600.0,
    )


@pytest.fixture(params=["sqlite", "server"])
def mlflow_backend(request: pytest.FixtureRequest) -> TrackingConfig:
    """Each test using it runs on the embedded SQLite store and on the server."""
    name = "mlflow_sqlite" if request.param == "sqlite" else "mlflow_remote"
    settings = request.getfixturevalue(name)
    assert isinstance(settings, TrackingConfig)
    return settings
