"""The regime-change experiment: weekly cycles in closed loop on the coworking world, with
and without adaptation, against the optimum of the new regime. See README.md.

    .venv/bin/python experiments/regime_change/run.py --weeks 52 --out work/regime_change

Writes ``weeks.csv`` (one row per arm and served week: what the world knows and what the
cycle measured and decided) and ``summary.json`` into ``--out``, and every run into the
MLflow store ``--out/mlflow.db`` (experiment ``regime_change``).
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir

from journeyopt.agents.baselines import make_baseline
from journeyopt.cli.entry import to_object
from journeyopt.evaluation.simulate import evaluate_policies
from journeyopt.loop.closed_loop import ClosedLoop, LoopWeek, run_closed_loop
from journeyopt.loop.config import CycleConfig, register_configs
from journeyopt.loop.cycle import run_cycle
from journeyopt.serving.config import ServingConfig
from journeyopt.sim.behaviour import StaffRules
from journeyopt.sim.config import GenerateConfig
from journeyopt.sim.optimum import cyclic_weeks_of_year, solve_optimum
from journeyopt.sim.regime import RegimeChange, changed_world
from journeyopt.sim.world import WorldSpec, load_world

CONFIGS = Path(__file__).resolve().parents[2] / "src" / "journeyopt" / "configs"
SMALL_BUDGET = [
    "train.total_timesteps=8192",
    "train.n_customers=64",
    "train.pool_size=1000",
    "train.warm_start.n_customers=1000",
    "train.checkpoint_every_steps=8192",
    "calibration.ensemble_size=0",
    "calibration.holdout_weeks=0",
    "calibration.c_grid=[0.3]",
    "calibration.alpha_grid=[0.001]",
    "promotion.n_customers=1000",
    "promotion.ope.n_boot=200",
    "promotion.gate.require_overlap=false",
    "simulator.horizon_weeks=26",
]


def cycle_config(overrides: list[str]) -> CycleConfig:
    """``configs/cycle.yaml`` with ``overrides``."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("cycle", overrides=["week=2000-01-03", "work_dir=unused", *overrides])
    return to_object(cfg, CycleConfig)


def week_row(arm: str, week: LoopWeek | None, truth: dict[str, Any], failure: str) -> dict:
    """One row of ``weeks.csv``."""
    row: dict[str, Any] = {"arm": arm, **truth, "failure": failure}
    record = week.cycle.record if week is not None and week.cycle is not None else None
    if week is not None:
        row["champion"] = week.champion
    if record is not None:
        u = record.uplift
        row.update(
            uplift_margin=u.get("uplift/margin", np.nan),
            uplift_ci_low=u.get("uplift/margin_ci_low", np.nan),
            uplift_ci_high=u.get("uplift/margin_ci_high", np.nan),
            drift=record.drift_detected,
            retrained=record.retrained,
            outcome="promoted" if record.promoted else "refused" if record.candidate else "kept",
            reasons="; ".join(record.reasons + record.refused)[:300],
            run_id=record.run_id,
        )
    return row


def run_arm(
    arm: str, adapt: bool, args: argparse.Namespace, cfg: CycleConfig, world: WorldSpec
) -> list[dict]:
    """Bootstrap a champion on the history, then serve ``args.weeks`` weeks."""
    root = args.out / arm
    change = RegimeChange("freelancer", after_week=args.change_after)
    history = GenerateConfig(
        output_dir="unused", n_customers=args.customers, weeks=args.history_weeks, seed=args.seed
    )
    loop = ClosedLoop(world, change, history, seed=args.seed)
    loop.write(str(root / "logs"), str(root / "decisions"))
    cfg = replace(cfg, tracking=replace(cfg.tracking, registered_model=f"policy-{arm}"))
    gate = replace(cfg.promotion.gate, min_sim_improvement=-1e9, min_ope_improvement=-1e9)
    first = run_cycle(  # the first deployment replaces the staff rules whatever the gate says
        replace(
            cfg,
            week=loop.monday.strftime("%Y-%m-%d"),
            data=replace(cfg.data, path=str(root / "logs")),
            work_dir=str(root / "cycles"),
            promotion=replace(cfg.promotion, gate=gate),
        )
    )
    print(arm, "first champion", first.record.champion, first.record.run_id, flush=True)
    rows = []
    for _ in range(args.weeks):
        try:
            (served,) = run_closed_loop(loop, cfg, ServingConfig(), 1, root, adapt=adapt)
            failure = ""
        except Exception as err:  # a failed cycle: the champion keeps serving next week
            served, failure = None, str(err).splitlines()[0]
        row = week_row(arm, served, asdict(loop.truth[-1]), failure)
        rows.append(row)
        print(json.dumps(row, default=str)[:400], flush=True)
    return rows


def optimum_gain(world: WorldSpec, horizon: int, customers: int, seed: int) -> dict[str, float]:
    """Value per customer-week of the staff rules and of the exact optimum in ``world``
    (simulation, common random numbers, undiscounted mean over ``horizon`` weeks)."""
    optimum = solve_optimum(world, horizon, 1.0, cyclic_weeks_of_year(1, horizon))
    staff = StaffRules()
    policies = [make_baseline(n, world, staff, optimum) for n in ("staff_rules", "optimum")]
    result = evaluate_policies(
        world, policies, n_customers=customers, horizon_weeks=horizon, gamma=1.0, seed=seed,
        start_week_of_year=1, optimum=optimum, reference=None,
    )  # fmt: skip
    staff_value, best = (float(r.value.mean()) / horizon for r in result.runs)
    return {"staff_per_week": staff_value, "optimum_per_week": best}


def summarise(rows: pd.DataFrame, args: argparse.Namespace, world: WorldSpec) -> dict[str, Any]:
    """The result table of the README."""
    after = rows[rows["loop_week"] >= args.change_after]
    out: dict[str, Any] = {"weeks": args.weeks, "change_after": args.change_after}
    for arm, part in after.groupby("arm"):
        gain = part["treatment_reward"] - part["control_reward"]
        out[f"{arm}_treatment_reward_per_week"] = float(part["treatment_reward"].mean())
        out[f"{arm}_realised_gain_over_control"] = float(gain.mean())
        out[f"{arm}_true_one_week_uplift"] = float(part["true_uplift"].mean())
    adaptive = rows[rows["arm"] == "adaptive"].sort_values("loop_week")
    after_change = adaptive["loop_week"] >= args.change_after
    on_drift = adaptive["reasons"].fillna("").str.contains("drift: ")
    detected = adaptive[after_change & on_drift]
    out["false_alarms_before_change"] = int((~after_change & on_drift).sum())
    out["weeks_until_drift_retrain"] = (
        int(detected["loop_week"].min()) - args.change_after + 1 if len(detected) else None
    )
    # the cycle after week k measures the last `uplift.weeks` served weeks: its truth is the
    # mean true one-week uplift over those weeks
    window = adaptive["true_uplift"].rolling(4, min_periods=1).mean()
    measured = adaptive.assign(truth=window).dropna(subset=["uplift_margin", "truth"])
    if len(measured):
        error = measured["uplift_margin"] - measured["truth"]
        inside = (measured["uplift_ci_low"] <= measured["truth"]) & (
            measured["truth"] <= measured["uplift_ci_high"]
        )
        out["uplift_mean_error"] = float(error.mean())
        out["uplift_mean_abs_error"] = float(error.abs().mean())
        out["uplift_ci_coverage"] = float(inside.mean())
        out["uplift_weeks_measured"] = len(measured)
    new = changed_world(world, RegimeChange("freelancer", args.change_after))
    out.update({f"new_regime_{k}": v for k, v in optimum_gain(new, 13, 2000, args.seed).items()})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weeks", type=int, default=52, help="served weeks per arm")
    parser.add_argument("--change-after", type=int, default=8, help="first week of new regime")
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--history-weeks", type=int, default=78)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    cfg = cycle_config(
        [
            f"tracking.tracking_uri=sqlite:///{(args.out / 'mlflow.db').resolve()}",
            f"tracking.artifact_location={(args.out / 'mlruns').resolve().as_uri()}",
            "tracking.experiment=regime_change",
            f"seed={args.seed}",
            *SMALL_BUDGET,
        ]
    )
    world = load_world("coworking")
    rows: list[dict] = []
    for arm, adapt in (("adaptive", True), ("frozen", False)):
        rows += run_arm(arm, adapt, args, cfg, world)
        pd.DataFrame(rows).to_csv(args.out / "weeks.csv", index=False)
    summary = summarise(pd.DataFrame(rows), args, world)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
