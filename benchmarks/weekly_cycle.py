"""The weekly cycle's cost on a closed-loop store: one measuring cycle (rollout, uplift, drift;
no re-training), repeated.

    python benchmarks/weekly_cycle.py --store work/s11-x/prof_base --repeats 3

``--store`` is the ``--out`` folder of ``experiments/rollout/closed_loop.py`` (its raw logs,
decision log and MLflow store, a canary in progress); the cycle runs with the settings that
run used (``summary.json``: world, seed and config overrides) for the week after its logs, each
repeat in a fresh work folder (the cycle's record would otherwise skip it). Its runs are added
to the store's MLflow (the registry is not changed: the benchmark stops if the rollout does
anything but ``continue``). Measured per repeat: wall seconds and the process's CPU seconds
(all threads; less sensitive to other jobs on a shared machine than the wall time), and the
1-minute load average before and after. Run it with ``PYTHONPATH=<a checkout>/src`` to compare
code versions on the same store.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from journeyopt.loop.cycle import run_cycle
from journeyopt.serving.config import ExplorationConfig, HoldoutConfig, ServingConfig
from journeyopt.sim.config import shipped_practice, shipped_rules

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class CycleTiming:
    wall_seconds: float
    cpu_seconds: float
    load_before: float
    load_after: float
    rollout: str


def closed_loop_script() -> ModuleType:
    """``experiments/rollout/closed_loop.py`` as a module (its config of the cycle)."""
    path = ROOT / "experiments" / "rollout" / "closed_loop.py"
    spec = importlib.util.spec_from_file_location("closed_loop_script", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def store_config(store: Path, work_dir: Path) -> tuple[Any, str]:
    """The cycle config the closed loop of ``store`` ran its weekly cycles with, and the week
    after its logs (``YYYY-MM-DD``)."""
    script = closed_loop_script()
    settings = json.loads((store / "summary.json").read_text())["settings"]
    cfg = script.cycle_config(
        [
            f"tracking.tracking_uri=sqlite:///{(store / 'mlflow.db').resolve()}",
            f"tracking.artifact_location={(store / 'mlruns').resolve().as_uri()}",
            "tracking.experiment=rollout_closed_loop",
            f"seed={settings['seed']}",
            *script.SMALL_BUDGET,
            *script.NO_RETRAINING,
            *script.WORLD_OVERRIDES[settings["world"]],
            f"calibration.ensemble_size={settings['ensemble']}",
            *settings["overrides"],
        ]
    )
    world = settings["world"]
    serving = replace(
        ServingConfig(
            rules=shipped_rules(world),
            holdout=HoldoutConfig(staff=shipped_practice(world)),
        ),
        exploration=ExplorationConfig(share=settings["exploration"]),
    )
    serving = replace(serving, rollout=cfg.serve.rollout)
    cfg = replace(
        cfg,
        data=replace(cfg.data, path=str(store / "logs")),
        decisions=str(store / "decisions"),
        work_dir=str(work_dir),
        serve=serving,
    )
    files = (store / "decisions").glob("decisions-*.csv")
    last = max(pd.Timestamp(p.stem.removeprefix("decisions-")) for p in files)
    return cfg, (last + pd.Timedelta(weeks=1)).strftime("%Y-%m-%d")


def time_cycle(cfg: Any, week: str) -> CycleTiming:
    """One cycle of ``week`` in a fresh work folder."""
    with tempfile.TemporaryDirectory() as tmp:
        load_before = os.getloadavg()[0]
        wall, cpu = time.perf_counter(), time.process_time()
        result = run_cycle(replace(cfg, week=week, work_dir=tmp))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if result.record.rollout != "continue" or result.record.retrained:
        sys.exit(f"the cycle changed the store ({result.record.rollout}): not repeatable")
    return CycleTiming(wall, cpu, load_before, os.getloadavg()[0], result.record.rollout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, required=True, help="a closed_loop.py --out")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--label", default="", help="a name for the code version measured")
    args = parser.parse_args()
    cfg, week = store_config(args.store.resolve(), Path("unused"))
    timings = [time_cycle(cfg, week) for _ in range(args.repeats)]
    for i, t in enumerate(timings):
        print(f"repeat {i}: wall {t.wall_seconds:.1f} s, cpu {t.cpu_seconds:.1f} s, "
              f"load {t.load_before:.1f} -> {t.load_after:.1f}")  # fmt: skip
    print(
        json.dumps(
            {
                "label": args.label,
                "store": str(args.store),
                "week": week,
                "repeats": args.repeats,
                "median_wall_seconds": statistics.median(t.wall_seconds for t in timings),
                "median_cpu_seconds": statistics.median(t.cpu_seconds for t in timings),
                "load_1min": [round(t.load_before, 1) for t in timings],
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
