"""Run journeyopt's benchmarks and write a results table.

    python benchmarks/run.py                    # every benchmark, full size
    python benchmarks/run.py ingest_panel --events 1000000 --repeats 3
    python benchmarks/run.py simulator optimum --repeats 5
    python benchmarks/run.py calibration --rows 1000000 --scaling-rows 0 --repeats 3
    python benchmarks/run.py rules --decisions 1000000 --rule-batch 10000 --repeats 1

Each measured command runs in its own child process, so its wall time and peak memory (resident
set size) are its own. Results: median over the repeats, written as Markdown to
``benchmarks/results/<name>.md`` (git-ignored) and printed; ``docs/benchmarks.md`` records them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

from rules import bench_rules  # noqa: E402
from synthetic_logs import write_synthetic_logs  # noqa: E402
from tracking_overhead import bench_tracking_overhead  # noqa: E402

from calibration import bench_calibration  # noqa: E402
from serving import bench_api, bench_batch  # noqa: E402


@dataclass(frozen=True)
class Measurement:
    seconds: float
    peak_rss_mib: float


def measure(cmd: Sequence[str]) -> Measurement:
    """Run ``cmd`` in a fresh child (via a wrapper) and return its wall time and peak RSS."""
    wrapper = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
        "dt = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps({'rc': rc, 'seconds': dt, 'rss': rss}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise SystemExit(f"benchmark command failed (exit {result['rc']}): {' '.join(cmd)}")
    return Measurement(result["seconds"], result["rss"])


def console_script(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def bench_ingest_panel(events: int, customers: int, contacts: int, repeats: int) -> list[str]:
    """Ingest + weekly panel of a synthetic coworking log (2 years)."""
    rows = ["| run | ingest s | panel s | total s | peak RSS MiB |", "|---|---|---|---|---|"]
    totals: list[float] = []
    peaks: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "logs"
        write_synthetic_logs(logs, events, customers, contacts)
        for run in range(repeats):
            canon, panel = Path(tmp) / f"canonical{run}", Path(tmp) / f"panel{run}"
            ing = measure(
                [
                    console_script("journeyopt-ingest"),
                    "data=coworking",
                    f"data.path={logs}",
                    f"output_dir={canon}",
                    "hydra.run.dir=" + str(Path(tmp) / f"hydra{run}"),
                ]
            )
            pan = measure(
                [
                    console_script("journeyopt-panel"),
                    "panel=coworking",
                    f"input_dir={canon}",
                    f"output_dir={panel}",
                    "hydra.run.dir=" + str(Path(tmp) / f"hydra_panel{run}"),
                ]
            )
            total, peak = ing.seconds + pan.seconds, max(ing.peak_rss_mib, pan.peak_rss_mib)
            totals.append(total)
            peaks.append(peak)
            rows.append(
                f"| {run + 1} | {ing.seconds:.1f} | {pan.seconds:.1f} | {total:.1f} | {peak:,.0f} |"
            )
            print(rows[-1], flush=True)
    rows.append(
        f"| **median** | | | **{statistics.median(totals):.1f}** "
        f"| **{statistics.median(peaks):,.0f}** |"
    )
    header = [
        f"Ingest + panel: {events:,} events, {customers:,} customers, {contacts:,} contacts, "
        f"104 weeks; {repeats} runs.",
        "",
    ]
    return header + rows


def random_masked_actions(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N,) one action per row drawn uniformly from the True entries of (N, A) ``masks``
    (every row has one): the ``k``-th allowed action, ``k = floor(u * allowed count)``.

    Column by column over the few actions: reductions along a short last axis
    (``sum``/``cumsum``/``argmax(axis=1)``) are several times slower, and this draw is timed
    together with the env steps.
    """
    columns = [masks[:, j] for j in range(masks.shape[1])]
    count = np.zeros(masks.shape[0], np.int16)
    for column in columns:
        count += column
    k = (rng.random(masks.shape[0]) * count).astype(np.int16)
    actions = np.zeros(masks.shape[0], np.int64)
    seen = np.zeros(masks.shape[0], np.int16)
    for column in columns[:-1]:
        seen += column
        actions += seen <= k  # the chosen action is the number of columns with seen <= k
    return actions


def single_env_rate(env: gym.Env, steps: int, masked: bool) -> float:
    """Raw steps per second of a gymnasium env under random (masked) actions, with resets."""
    env.reset(seed=0)
    env.action_space.seed(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        mask = env.unwrapped.action_masks().astype(np.int8) if masked else None  # type: ignore[attr-defined]
        _, _, terminated, truncated, _ = env.step(env.action_space.sample(mask=mask))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - t0)


def bench_simulator(customers: int, weeks: int, env_steps: int, repeats: int) -> list[str]:
    """Vectorised population env throughput; single-customer env and CartPole-v1 step rates."""
    from journeyopt.sim.env import CustomerJourneyEnv, InitialPool
    from journeyopt.sim.vec_env import PopulationVecEnv
    from journeyopt.sim.world import load_world

    world = load_world("coworking")
    pool = InitialPool.draw(world, 10_000, seed=0)
    rows = [
        "| run | vec env customer-steps/s | vec env, per CPU s | single env steps/s "
        "| CartPole-v1 steps/s |",
        "|---|---|---|---|---|",
    ]
    vec_rates, vec_cpu_rates, single_rates, cart_rates = [], [], [], []
    for run in range(repeats):
        env = PopulationVecEnv(world, customers, horizon_weeks=weeks, pool=pool, seed=run)
        env.reset()
        rng = np.random.default_rng(run)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(weeks):  # the last step auto-resets the population
            env.step(random_masked_actions(env.action_masks(), rng))
        vec_rates.append(customers * weeks / (time.perf_counter() - t0))
        # CPU time of this process: less sensitive to other jobs on a shared machine
        vec_cpu_rates.append(customers * weeks / (time.process_time() - c0))
        single = CustomerJourneyEnv(world, horizon_weeks=weeks, pool=pool)
        single_rates.append(single_env_rate(single, env_steps, masked=True))
        cart_rates.append(single_env_rate(gym.make("CartPole-v1"), env_steps, masked=False))
        rates = (vec_rates[-1], vec_cpu_rates[-1], single_rates[-1], cart_rates[-1])
        rows.append(f"| {run + 1} | " + " | ".join(f"{r:,.0f}" for r in rates) + " |")
        print(rows[-1], flush=True)
    medians = (vec_rates, vec_cpu_rates, single_rates, cart_rates)
    rows.append(
        "| **median** | " + " | ".join(f"**{statistics.median(r):,.0f}**" for r in medians) + " |"
    )
    header = [
        f"Simulator throughput, coworking world: vectorised env with {customers:,} customers x "
        f"{weeks} weeks (random masked actions, auto-reset included, one process); "
        f"single-customer env and CartPole-v1: {env_steps:,} random steps; {repeats} runs.",
        "",
    ]
    return header + rows


def bench_optimum(weeks: int, repeats: int) -> list[str]:
    """Wall time of the exact DP optimum of the coworking world."""
    from journeyopt.sim.optimum import cyclic_weeks_of_year, solve_optimum
    from journeyopt.sim.world import load_world

    world = load_world("coworking")
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        solve_optimum(world, weeks, 0.995, cyclic_weeks_of_year(1, weeks))
        seconds.append(time.perf_counter() - t0)
    runs = ", ".join(f"{s:.2f}" for s in seconds)
    return [
        f"Exact optimum (backward induction), coworking world, {weeks} weeks: "
        f"median **{statistics.median(seconds):.2f} s** over {repeats} runs ({runs} s).",
    ]


BENCHMARKS: dict[str, Callable[[argparse.Namespace], list[str]]] = {
    "ingest_panel": lambda a: bench_ingest_panel(a.events, a.customers, a.contacts, a.repeats),
    "simulator": lambda a: bench_simulator(a.sim_customers, a.weeks, a.env_steps, a.repeats),
    "optimum": lambda a: bench_optimum(a.weeks, a.repeats),
    "calibration": lambda a: bench_calibration(
        a.rows,
        a.repeats,
        a.scaling_rows,
        measure,
        console_script("journeyopt-calibrate"),
        console_script("journeyopt-generate"),
        a.work,
    ),
    "tracking_overhead": lambda a: bench_tracking_overhead(a.train_steps, a.repeats),
    "serving_api": lambda a: bench_api(a.repeats, a.api_seconds, a.clients, console_script),
    "serving_batch": lambda a: bench_batch(
        a.events, a.customers, a.contacts, a.repeats, measure, console_script
    ),
    "rules": lambda a: bench_rules(a.decisions, a.rule_batch, a.repeats),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(BENCHMARKS), choices=list(BENCHMARKS))
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--contacts", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sim-customers", type=int, default=100_000)
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--env-steps", type=int, default=20_000)
    parser.add_argument("--rows", type=int, default=10_000_000, help="calibration: log rows")
    parser.add_argument(
        "--scaling-rows", type=int, default=1_000_000, help="calibration: smaller log (0: none)"
    )
    parser.add_argument("--work", default="", help="calibration: keep logs here (default: temp)")
    parser.add_argument("--train-steps", type=int, default=200_000)
    parser.add_argument("--api-seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--decisions", type=int, default=1_000_000, help="rules: decisions")
    parser.add_argument("--rule-batch", type=int, default=10_000, help="rules: batch size")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    for name in args.names:
        lines = [f"# {name}", "", f"Machine: {machine}", "", *BENCHMARKS[name](args)]
        (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
