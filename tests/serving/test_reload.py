"""Reload on alias change: a real ``journeyopt-serve`` (two uvicorn workers) on a real registry
follows the alias ``champion`` to a new version while a client keeps sending requests, and no
request fails."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import httpx
import pytest

from journeyopt.errors import ConfigError
from journeyopt.serving.config import ReloadConfig
from journeyopt.serving.served_model import alias_watcher
from journeyopt.sim.world import WorldSpec
from journeyopt.tracking.config import TrackingConfig
from tests.serving.conftest import linear_policy, register
from tests.serving.test_server import TOKEN, running_server

AUTH = {"Authorization": f"Bearer {TOKEN}"}
POLL_SECONDS = 0.5
DEADLINE_SECONDS = 60.0


class Client(threading.Thread):
    """Sends single-customer requests on one keep-alive connection until stopped; records
    every answer's status and model version."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.answers: list[tuple[int, str]] = []
        self.failures: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers=AUTH, timeout=30) as http:
            i = 0
            while not self.stop.is_set():
                i += 1
                try:
                    reply = http.post("/v1/score", json={"customer_id": f"c{i}"})
                except httpx.TransportError as err:
                    self.failures.append(repr(err))
                    continue
                version = reply.json().get("model_version", "") if reply.is_success else ""
                self.answers.append((reply.status_code, version))


def served_versions(url: str, n: int) -> set[str]:
    """The model versions ``n`` requests on fresh connections were answered by (fresh
    connections reach both workers)."""
    return {
        httpx.get(f"{url}/v1/model", headers=AUTH, timeout=10).json()["version"] for _ in range(n)
    }


@pytest.mark.slow
def test_every_worker_follows_the_alias_without_failing_a_request(
    mlflow_sqlite: TrackingConfig, world: WorldSpec, tmp_path: Path
) -> None:
    first = register(mlflow_sqlite, linear_policy(world, seed=1))
    watch = alias_watcher("models:/journey-policy@champion", mlflow_sqlite)
    assert watch is not None and watch() == first
    overrides = (f"serve.reload.poll_seconds={POLL_SECONDS}", "workers=2")
    with running_server(tmp_path, mlflow_sqlite.tracking_uri, *overrides) as (url, _):
        assert served_versions(url, 10) == {first}
        client = Client(url)
        client.start()
        time.sleep(1.0)
        second = register(mlflow_sqlite, linear_policy(world, seed=2))  # moves the alias
        assert watch() == second != first
        moved = time.monotonic()
        deadline = moved + DEADLINE_SECONDS
        while served_versions(url, 10) != {second}:
            assert time.monotonic() < deadline, "the workers did not follow the alias"
            time.sleep(POLL_SECONDS)
        followed = time.monotonic() - moved
        time.sleep(1.0)
        client.stop.set()
        client.join(30)
    statuses = {status for status, _ in client.answers}
    versions = [version for _, version in client.answers]
    assert not client.failures and statuses == {200}, (client.failures[:3], statuses)
    assert versions[0] == first and versions[-1] == second
    switches = sum(a != b for a, b in itertools.pairwise(versions))
    assert switches == 1  # one connection, one worker: the version changed once, for good
    print(f"{len(versions)} requests, all answered; alias followed in {followed:.1f} s")


def test_only_aliases_are_watched_and_poll_seconds_is_checked(
    mlflow_sqlite: TrackingConfig,
) -> None:
    assert alias_watcher("models:/journey-policy/3", mlflow_sqlite) is None
    assert alias_watcher("some/model/folder", mlflow_sqlite) is None
    with pytest.raises(ConfigError, match="poll_seconds must be >= 0"):
        ReloadConfig(poll_seconds=-1.0)
