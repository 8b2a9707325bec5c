"""A real ``journeyopt-serve`` (uvicorn) on a loopback port: the same actions as the batch
scorer and the pyfunc model for the same customers, and SIGTERM under load without failing a
request the server accepted."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.source import SourceConfig
from journeyopt.serving.batch import score_logs
from journeyopt.serving.config import HoldoutConfig, ServingConfig
from journeyopt.serving.decisions import read_decision_log
from journeyopt.serving.features import batch_from_logs
from journeyopt.serving.guards import allowed_actions
from journeyopt.serving.scorer import Scorer
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.config import shipped_practice, shipped_rules
from journeyopt.sim.observation import encode
from journeyopt.tracking.model import observation_frame
from tests.commands import DEMO_SERVING
from tests.serving.conftest import AS_OF, Registered
from tests.serving.loopback import free_port, wait_until_ready

TOKEN = "server-test-token"
START_SECONDS = 120.0


@contextmanager
def running_server(
    tmp_path: Path, tracking_uri: str, *overrides: str, token: str | None = TOKEN
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``journeyopt-serve`` on the champion of the store at ``tracking_uri`` with Hydra
    ``overrides``, on a free loopback port, with bearer ``token`` (None: none); killed on
    exit. Yields its URL and process."""
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("journeyopt-serve")),
        *DEMO_SERVING,
        "model=models:/journey-policy@champion",
        f"tracking.tracking_uri={tracking_uri}",
        f"port={port}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        *overrides,
    ]
    env = {**os.environ, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    env.pop("JOURNEYOPT_API_TOKEN", None)
    if token is not None:
        env["JOURNEYOPT_API_TOKEN"] = token
    output = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT,
                               cwd=tmp_path, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    if not wait_until_ready(url, lambda: process.poll() is None, START_SECONDS, 0.2):
        process.kill()
        pytest.fail("journeyopt-serve did not start:\n" + (tmp_path / "server.log").read_text())
    try:
        yield url, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        output.close()


@pytest.fixture
def server(
    registered: Registered, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """``journeyopt-serve`` on the registered champion, with a decision log."""
    log = tmp_path / "decision-log"
    uri = registered.tracking.tracking_uri
    overrides = (
        "rules@serve.rules=coworking",  # the rules the champion was trained under
        "serve.holdout.control_share=0.3",
        f"serve.decision_log={log}",
    )
    with running_server(tmp_path, uri, *overrides) as (url, process):
        yield url, process, log


def raw_requests(source: SourceConfig, customer_ids: list[str]) -> list[dict[str, Any]]:
    """API request bodies holding each customer's canonical events and contacts; every other
    customer's events without ``role`` (the server's source config gives it)."""
    logs, _ = ingest_to_logs(source)
    segment = logs.customers.set_index("customer_id")["segment"]
    bodies = []
    for k, cid in enumerate(customer_ids):
        ev = logs.events[logs.events["customer_id"] == cid]
        co = logs.contacts[logs.contacts["customer_id"] == cid]
        bodies.append({
            "customer_id": cid,
            "segment": str(segment.get(cid, "")) or None,
            "events": [{"ts": r.ts.isoformat(), "kind": r.kind, "channel": r.channel,
                        "value": r.value, "event_id": r.event_id,
                        **({"role": r.role} if k % 2 else {})}
                       for r in ev.itertuples()],
            "contacts": [{"ts": r.ts.isoformat(), "action": r.action, "channel": r.channel,
                          "cost": r.cost, "campaign": r.campaign,
                          "propensity": None if math.isnan(r.propensity) else r.propensity}
                         for r in co.itertuples()],
        })  # fmt: skip
    return bodies


async def load(url: str, n: int, clients: int, sigterm_after: int, pid: int) -> list[Any]:
    """``n`` single-customer requests from ``clients`` concurrent clients; SIGTERM to ``pid``
    once ``sigterm_after`` have been answered. Returns per request: status or exception."""
    outcomes: list[Any] = [None] * n
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    answered = 0

    async def client() -> None:
        nonlocal answered
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                                     timeout=30) as http:  # fmt: skip
            while not queue.empty():
                i = queue.get_nowait()
                try:
                    reply = await http.post("/v1/score", json={"customer_id": f"load-{i}"})
                    outcomes[i] = reply.status_code
                except httpx.TransportError as err:
                    outcomes[i] = err
                answered += 1
                if answered == sigterm_after:
                    os.kill(pid, signal.SIGTERM)

    await asyncio.gather(*(client() for _ in range(clients)))
    return outcomes


@pytest.mark.slow
def test_real_server_agrees_with_batch_and_pyfunc_and_stops_cleanly(
    server: tuple[str, subprocess.Popen[bytes], Path],
    registered: Registered,
    served: ServedModel,
    demo_source: SourceConfig,
    tmp_path: Path,
) -> None:
    url, process, log = server
    settings = ServingConfig(
        world="coworking",
        rules=shipped_rules("coworking"),
        holdout=HoldoutConfig(staff=shipped_practice("coworking")),
    )
    settings.holdout.control_share = 0.3
    out = tmp_path / "batch" / "actions.csv"
    score_logs(demo_source, AS_OF, served, settings, out)
    batch = read_decision_log(out.with_name("decisions.csv")).set_index("customer_id")
    ids = list(batch.index[:40])

    # the API, from each customer's raw events and contacts
    body = {"as_of": AS_OF, "customers": raw_requests(demo_source, ids)}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    reply = httpx.post(f"{url}/v1/score/batch", json=body, headers=auth, timeout=60)
    assert reply.status_code == 200, reply.text
    api = pd.DataFrame(reply.json()["decisions"]).set_index("customer_id")
    assert (api["action"] == batch.loc[ids, "action"]).all()
    assert (api["group"] == batch.loc[ids, "group"]).all()
    np.testing.assert_allclose(api["propensity"], batch.loc[ids, "propensity"], atol=1e-6)
    assert set(api["group"]) == {"treatment", "control"}

    # the registered pyfunc model on the same customers' observations and masks
    scorer = Scorer(served, settings)
    logs, _ = ingest_to_logs(demo_source)
    customers = batch_from_logs(logs, scorer.world, pd.Timestamp(AS_OF, tz="UTC"), ids)
    masks = allowed_actions(scorer.rules.reasons(customers.features), customers.known)
    woy = int(pd.Timestamp(AS_OF).isocalendar().week)
    segment = np.maximum(customers.segment, 0)
    obs = np.ascontiguousarray(encode(scorer.layout, customers.features, segment, woy))
    predicted = mlflow.pyfunc.load_model(str(registered.folder)).predict(
        observation_frame(obs, masks, served.policy.spec)
    )
    treated = (api["group"] == "treatment").to_numpy()
    assert treated.sum() > 10
    np.testing.assert_array_equal(
        predicted["action_name"].to_numpy()[treated], api["action"].to_numpy()[treated]
    )

    # SIGTERM while 8 clients keep sending: every request the server took is answered
    outcomes = asyncio.run(load(url, 600, 8, 150, process.pid))
    # uvicorn shuts down gracefully, then re-raises the signal: killed by SIGTERM, not KILL
    assert process.wait(60) in (0, -signal.SIGTERM)
    ok = {f"load-{i}" for i, o in enumerate(outcomes) if o == 200}
    assert not [o for o in outcomes if isinstance(o, int) and o != 200]
    logged = read_decision_log(log)
    taken = set(logged["customer_id"]) - set(ids)
    assert taken == ok, f"accepted but not answered: {sorted(taken - ok)[:5]}"
    assert 150 <= len(ok) < 600  # the server stopped part-way
    print(f"answered {len(ok)} of 600, refused {600 - len(ok)}")
