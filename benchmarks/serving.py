"""Serving benchmarks: the scoring API against ``mlflow models serve`` on the same registered
model, and the batch scorer on a million customers.

API: a real ``journeyopt-serve`` (uvicorn) and ``mlflow models serve --env-manager local`` on
loopback, each with 1 and 2 workers, serving the same registered pyfunc model (a tiny SB3
MaskablePPO policy of the coworking world, 64x64 MLP). Load: ``clients`` concurrent keep-alive
connections from one asyncio process with a minimal HTTP/1.1 client (an HTTP library's own
per-request cost would cap the rate measured on a 2-core machine long before the servers
do). Each configuration: 1 s warm-up, then ``seconds`` of load; p50/p99 latency of every
request and requests/s; the median of ``repeats`` runs is reported.

Bodies: ``journeyopt-serve`` gets a feature record per customer (``/v1/score``,
``/v1/score/batch``) or one list per feature (``/v1/score/columns``) and computes the
contact-rule masks, the holdout group, the guards, the expected value and the response;
``mlflow models serve`` gets the precomputed observation vector and masks
(``dataframe_split``), i.e. less work per customer.

Batch scorer: ``journeyopt-score`` end to end (ingest with rejects, panel state at the as-of
date, policy, guards, holdout, contact list and decision log) on the synthetic benchmark log
plus a customers file giving each customer a type, in a child process.

Run through ``benchmarks/run.py serving`` (or ``serving_api`` / ``serving_batch``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from synthetic_logs import write_synthetic_logs

AS_OF = "2024-12-30"
BATCH_CLIENTS = {1: 2, 2: 8}
"""Concurrent connections sending 1,000-customer batches, by server workers. Each keep-alive
connection is served by the worker that accepted it, a coin flip with two workers: with 8 the
chance that one worker gets none (and the run measures one worker) is 1 in 128."""
START_SECONDS = 180.0


class Measured(Protocol):
    seconds: float
    peak_rss_mib: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def register_tiny_policy(root: Path) -> tuple[str, Path, list[str]]:
    """Register an untrained MaskablePPO (64x64) policy of the coworking world in a SQLite
    store under ``root``; returns the tracking URI, the downloaded model folder and the
    observation + mask column names."""
    import mlflow
    import torch
    from sb3_contrib import MaskablePPO

    from journeyopt.agents.sb3 import make_training_env, policy_spec
    from journeyopt.sim.observation import observation_layout
    from journeyopt.sim.world import load_world
    from journeyopt.tracking.config import TrackingConfig
    from journeyopt.tracking.model import log_policy_model
    from journeyopt.tracking.registry import CHAMPION, PolicyRegistry
    from journeyopt.tracking.run import tracked_run
    from journeyopt.tracking.sb3_policy import SB3Policy

    torch.set_num_threads(1)
    world = load_world("coworking")
    env, population = make_training_env(
        world, 64, 8, 1, np.full(3, 0.01, np.float32), pool_size=128, seed=0
    )
    agent = MaskablePPO("MlpPolicy", env, n_steps=64, batch_size=64, seed=0, device="cpu",
                        policy_kwargs={"net_arch": [64, 64]})  # fmt: skip
    spec = policy_spec(world, observation_layout(world))
    policy = SB3Policy.from_model(agent, spec)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracking = TrackingConfig(tracking_uri=uri, experiment="bench",
                              artifact_location=(root / "mlruns").as_uri())  # fmt: skip
    observations = np.ascontiguousarray(env.reset())[:2]
    with tracked_run({}, "bench-policy", tracking=tracking, log_config=False) as run:
        info = log_policy_model(run, policy, observations, population.action_masks()[:2])
    assert info is not None
    registry = PolicyRegistry(tracking)
    version = registry.register(info).version
    registry.set_alias(CHAMPION, version)
    folder = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/journey-policy/{version}",
            dst_path=str(root / "model"),
            tracking_uri=uri,
            registry_uri=uri,
        )
    )
    return uri, folder, [*spec.feature_names, *spec.mask_columns]


def feature_record(rng: np.random.Generator) -> dict[str, object]:
    """A plausible coworking customer's features."""
    never = rng.random() < 0.3
    return {
        "recency_weeks": None if never else float(rng.integers(0, 80)),
        "frequency": int(rng.integers(0, 10)),
        "monetary": None if never else float(rng.integers(10, 300)),
        "n_conversions": 0 if never else int(rng.integers(1, 20)),
        "tenure_weeks": int(rng.integers(0, 200)),
        "lifecycle": "prospect" if never else str(rng.choice(["active", "lapsed"])),
        "contacts_4w": int(rng.integers(0, 3)),
        "contacts_4w_email": int(rng.integers(0, 2)),
        "contacts_4w_phone": int(rng.integers(0, 2)),
        "weeks_since_contact": float(rng.integers(0, 30)),
        "engagements_4w": int(rng.integers(0, 4)),
        "weeks_since_engagement": float(rng.integers(0, 30)),
        "n_cancellations": int(rng.integers(0, 2)),
        "opted_out_email": bool(rng.random() < 0.1),
        "opted_out_phone": bool(rng.random() < 0.1),
    }


def journeyopt_bodies(n_customers: int, rng: np.random.Generator) -> bytes:
    segments = ["freelancer", "startup_team", "corporate_team"]
    customers = [
        {"customer_id": f"C{rng.integers(10**9)}", "segment": segments[i % 3],
         "features": feature_record(rng)}
        for i in range(n_customers)
    ]  # fmt: skip
    if n_customers == 1:
        return json.dumps({**customers[0], "as_of": AS_OF}).encode()
    return json.dumps({"as_of": AS_OF, "customers": customers}).encode()


def journeyopt_columns(n_customers: int, rng: np.random.Generator) -> bytes:
    """The body of ``POST /v1/score/columns`` for ``n_customers`` random customers."""
    segments = ["freelancer", "startup_team", "corporate_team"]
    records = [feature_record(rng) for _ in range(n_customers)]
    return json.dumps({
        "as_of": AS_OF,
        "customer_id": [f"C{rng.integers(10**9)}" for _ in range(n_customers)],
        "segment": [segments[i % 3] for i in range(n_customers)],
        "features": {name: [r[name] for r in records] for name in records[0]},
    }).encode()  # fmt: skip


def mlflow_body(columns: list[str], n_rows: int, rng: np.random.Generator) -> bytes:
    n_features = sum(not c.startswith("mask_") for c in columns)
    rows = [
        [*rng.random(n_features).round(4).tolist(), *([True] * (len(columns) - n_features))]
        for _ in range(n_rows)
    ]
    return json.dumps({"dataframe_split": {"columns": columns, "data": rows}}).encode()


def http_request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _client(port: int, request: bytes, stop_at: float, start_at: float,
                  latencies: list[float], errors: list[int], delay: float) -> None:  # fmt: skip
    await asyncio.sleep(delay)  # connections opened one by one (see run_load)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (now := time.perf_counter()) < stop_at:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if now >= start_at:
                latencies.append(time.perf_counter() - now)
                if status != 200:
                    errors.append(status)
    finally:
        writer.close()


def run_load(
    port: int, request: bytes, clients: int, seconds: float
) -> tuple[float, float, float, int]:
    """``(p50 ms, p99 ms, requests/s, errors)`` of ``clients`` keep-alive connections sending
    ``request`` for 1 s of warm-up plus ``seconds``."""
    latencies: list[float] = []
    errors: list[int] = []

    async def main() -> None:
        start_at = time.perf_counter() + 1.0
        stop_at = start_at + seconds
        # Opened at once, keep-alive connections all land on the worker that wakes first
        # (it accepts every pending connection in one go: measured, the other worker stayed
        # idle); opened 50 ms apart, each is accepted by whichever worker wins that race.
        await asyncio.gather(*(_client(port, request, stop_at, start_at, latencies, errors,
                                       0.05 * k) for k in range(clients)))  # fmt: skip

    asyncio.run(main())
    ms = np.asarray(latencies) * 1000.0
    return (
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 99)),
        len(ms) / seconds,
        len(errors),
    )


def start_server(
    command: Sequence[str], health: str, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(list(command), env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + START_SECONDS
    import urllib.error
    import urllib.request

    while True:
        try:
            with urllib.request.urlopen(health, timeout=1) as reply:
                if reply.status == 200:
                    return process
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop_server(process)
            raise SystemExit(
                f"server did not start: {' '.join(command)}\n{log.read_text()[-2000:]}"
            )
        time.sleep(0.25)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def bench_api(
    repeats: int, seconds: float, clients: int, console_script: Callable[[str], str]
) -> list[str]:
    """The API table: both servers, 1 and 2 workers, single requests and 1,000-row batches."""
    rng = np.random.default_rng(0)
    rows = ["| server | workers | request | clients | p50 ms | p99 ms | requests/s | customers/s |",
            "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        uri, folder, columns = register_tiny_policy(root)
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": uri,
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }
        env.pop("JOURNEYOPT_API_TOKEN", None)
        # mlflow models serve execs ``uvicorn`` from PATH: the environment's own
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        single = {1: clients, 2: clients}
        loads = {  # server -> (label, path, body, workers -> clients, customers per request)
            "journeyopt": [
                ("1 customer", "/v1/score", journeyopt_bodies(1, rng), single, 1),
                ("1,000 customers", "/v1/score/batch", journeyopt_bodies(1000, rng),
                 BATCH_CLIENTS, 1000),
                ("1,000 as columns", "/v1/score/columns", journeyopt_columns(1000, rng),
                 BATCH_CLIENTS, 1000),
            ],
            "mlflow": [
                ("1 customer", "/invocations", mlflow_body(columns, 1, rng), single, 1),
                ("1,000 customers", "/invocations", mlflow_body(columns, 1000, rng),
                 BATCH_CLIENTS, 1000),
            ],
        }  # fmt: skip
        for workers in (1, 2):
            for server in ("journeyopt", "mlflow"):
                port = free_port()
                if server == "journeyopt":
                    command = [
                        console_script("journeyopt-serve"),
                        "data=coworking",
                        "serve.world=coworking",
                        "practice@serve.holdout.staff=coworking",
                        "model=models:/journey-policy@champion",
                        "rules@serve.rules=coworking",  # the demo world's caps
                        f"port={port}",
                        f"workers={workers}",
                        f"hydra.run.dir={root / 'hydra'}",
                    ]
                    health = f"http://127.0.0.1:{port}/readyz"
                else:
                    command = [console_script("mlflow"), "models", "serve", "-m", str(folder),
                               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port),
                               "-w", str(workers)]  # fmt: skip
                    health = f"http://127.0.0.1:{port}/ping"
                process = start_server(command, health, env, root / f"{server}{workers}.log")
                try:
                    for label, path, body, clients_by_workers, per in loads[server]:
                        n_clients = clients_by_workers[workers]
                        request = http_request(path, body, {})
                        runs = [run_load(port, request, n_clients, seconds) for _ in range(repeats)]
                        p50, p99, rps = (statistics.median(r[i] for r in runs) for i in range(3))
                        errors = sum(r[3] for r in runs)
                        if errors:
                            raise SystemExit(f"{server}: {errors} non-200 answers")
                        rows.append(f"| {server} | {workers} | {label} | {n_clients} | {p50:.1f} | "
                                    f"{p99:.1f} | {rps:,.0f} | {rps * per:,.0f} |")  # fmt: skip
                        print(rows[-1], flush=True)
                finally:
                    stop_server(process)
    return [
        f"Scoring API vs `mlflow models serve` on the same registered model; {repeats} runs of "
        f"{seconds:.0f} s each (median), keep-alive connections.",
        "",
        *rows,
    ]


def write_customer_types(folder: Path, n_customers: int, seed: int = 0) -> None:
    """``customers.csv`` giving each synthetic customer ``C<i>`` a coworking customer type."""
    rng = np.random.default_rng(seed)
    types = np.array(["freelancer", "startup_team", "corporate_team"])
    table = pa.table({
        "customer_ref": pa.array(np.char.add("C", np.arange(n_customers).astype("U7"))),
        "customer_type": pa.array(types[rng.integers(0, 3, n_customers)]),
        "company_size": pa.array(np.full(n_customers, "1-10")),
        "signup_date": pa.array(np.full(n_customers, "2023-01-02")),
        "acquisition_channel": pa.array(np.full(n_customers, "web")),
    })  # fmt: skip
    pacsv.write_csv(table, folder / "customers.csv")


def bench_batch(
    events: int,
    customers: int,
    contacts: int,
    repeats: int,
    measure: Callable[[Sequence[str]], Measured],
    console_script: Callable[[str], str],
) -> list[str]:
    """``journeyopt-score`` on the synthetic log of ``customers`` customers."""
    rows = ["| run | seconds | peak RSS MiB | customers/s |", "|---|---|---|---|"]
    seconds: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        uri, folder, _ = register_tiny_policy(root)
        logs = root / "logs"
        write_synthetic_logs(logs, events, customers, contacts)
        write_customer_types(logs, customers)
        for run in range(repeats):
            done = measure([
                console_script("journeyopt-score"), "data=coworking", f"data.path={logs}",
                "rules@serve.rules=coworking", "serve.world=coworking",
                "practice@serve.holdout.staff=coworking",
                f"as_of={AS_OF}", f"model={folder}", f"out={root / f'out{run}' / 'actions.csv'}",
                f"hydra.run.dir={root / 'hydra'}", f"tracking.tracking_uri={uri}",
            ])  # fmt: skip
            seconds.append(done.seconds)
            rows.append(f"| {run + 1} | {done.seconds:.1f} | {done.peak_rss_mib:,.0f} | "
                        f"{customers / done.seconds:,.0f} |")  # fmt: skip
            print(rows[-1], flush=True)
            summary = json.loads((root / f"out{run}" / "summary.json").read_text())["scoring"]
    rows.append(f"| **median** | **{statistics.median(seconds):.1f}** | | |")
    return [
        f"Batch scorer `journeyopt-score`: {events:,} events, {customers:,} customers, "
        f"{contacts:,} contacts over 104 weeks, as of {AS_OF}; {summary['customers']:,} "
        f"customers scored, {summary['contacts']:,} contacts in the list; {repeats} runs.",
        "",
        *rows,
    ]


if __name__ == "__main__":
    sys.exit("run through benchmarks/run.py serving_api or serving_batch")
