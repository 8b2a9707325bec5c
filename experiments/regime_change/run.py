"""The regime-change experiment: weekly cycles in closed loop on the coworking world, with
and without adaptation, against the exact optimum of the world in force served to the same
customers. See README.md.

    .venv/bin/python experiments/regime_change/run.py --weeks 52 --out work/regime_change

Three arms on the same customers and random numbers (same seed): ``adaptive`` (a cycle after
every served week), ``frozen`` (the first champion for ever) and ``optimum`` (the exact optimum
of the world in force, no cycles). Writes ``weeks.csv`` (one row per arm and served week: what
the world knows — the true ITT uplift from the loop's counterfactual twin — and what the cycle
measured and decided) and ``summary.json`` into ``--out``, and every run into the MLflow store
``--out/mlflow.db`` (experiment ``regime_change``; a last run ``regime_change-summary`` holds
the summary metrics and both files).
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
from scipy import stats

from journeyopt.cli.entry import to_object
from journeyopt.loop.closed_loop import ClosedLoop, LoopWeek, run_closed_loop
from journeyopt.loop.config import CycleConfig, register_configs
from journeyopt.loop.cycle import run_cycle
from journeyopt.loop.oracle import WorldOptimumPolicy, optimum_scorer
from journeyopt.loop.truth import CoworkingTruth
from journeyopt.loop.twin import window_uplift
from journeyopt.serving.config import ExplorationConfig, HoldoutConfig, ServingConfig
from journeyopt.sim.config import GenerateConfig, shipped_practice, shipped_rules
from journeyopt.sim.regime import RegimeChange
from journeyopt.sim.world import WorldSpec, load_world
from journeyopt.tracking.registry import CHAMPION, PolicyRegistry
from journeyopt.tracking.rollout import start_rollout
from journeyopt.tracking.run import tracked_run

CONFIGS = Path(__file__).resolve().parents[2] / "src" / "journeyopt" / "configs"
SMALL_BUDGET = ["+experiment=small_cycle"]  # configs/experiment/small_cycle.yaml
ADAPTATION = [  # after response drift: calibrate on the newest quarter, without seasonality
    "drift.calibration.recent_weeks=13",
    "drift.calibration.seasonal=false",
]
ARMS: tuple[str, ...] = ("adaptive", "frozen", "optimum")


def cycle_config(overrides: list[str]) -> CycleConfig:
    """``configs/cycle.yaml`` with ``overrides``."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            "cycle",
            overrides=[
                "week=2000-01-03",
                "work_dir=unused",
                "data=coworking",  # the coworking demo's source and business settings
                "panel=coworking",
                "calibration=coworking",
                "rules@serve.rules=coworking",  # the rules it trains under
                "practice@serve.holdout.staff=coworking",  # the control group as measured
                *overrides,
            ],
        )
    return to_object(cfg, CycleConfig)


def week_row(
    arm: str, loop: ClosedLoop, week: LoopWeek | None, failure: str, uplift_weeks: int
) -> dict[str, Any]:
    """One row of ``weeks.csv``: the week's truth, the true ITT uplift over the window the
    cycle measured (``true_itt_window``) and what the cycle measured and decided."""
    weekly = [t.true_itt_uplift for t in loop.truth]
    row: dict[str, Any] = {
        "arm": arm,
        **asdict(loop.truth[-1]),
        "true_itt_window": window_uplift(weekly, uplift_weeks),
        "failure": failure,
    }
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


def new_loop(args: argparse.Namespace, world: WorldSpec) -> ClosedLoop:
    """The same customers, history and random numbers for every arm."""
    change = RegimeChange(args.segment, args.change_after, args.booking_factor, args.fatigue_factor)
    history = GenerateConfig(
        staff=shipped_practice("coworking"),
        output_dir="unused",
        n_customers=args.customers,
        weeks=args.history_weeks,
        seed=args.seed,
    )
    return ClosedLoop(CoworkingTruth(world, change, history), seed=args.seed)


def run_arm(
    arm: str,
    adapt: bool,
    args: argparse.Namespace,
    cfg: CycleConfig,
    serving: ServingConfig,
    world: WorldSpec,
) -> list[dict[str, Any]]:
    """Bootstrap a champion on the history, then serve ``args.weeks`` weeks."""
    root = args.out / arm
    loop = new_loop(args, world)
    loop.write(str(root / "logs"), str(root / "decisions"))
    cfg = replace(cfg, tracking=replace(cfg.tracking, registered_model=f"policy-{arm}"))
    gate = replace(cfg.promotion.gate, min_sim_improvement=-1e9, min_ope_improvement=-1e9)
    first = run_cycle(  # the first deployment replaces the staff rules whatever the gate says
        replace(
            cfg,
            week=loop.monday.strftime("%Y-%m-%d"),
            data=replace(cfg.data, path=str(root / "logs")),
            work_dir=str(root / "cycles"),
            promotion=replace(cfg.promotion, gate=replace(gate, require_overlap=False)),
        )
    )
    if not first.record.promoted and first.record.candidate:  # refused (e.g. inconclusive)
        registry = PolicyRegistry(cfg.tracking)
        registry.promote(first.record.candidate, CHAMPION, reason="regime-change study: the "
                         "first trained policy deployed with the gate bypassed")  # fmt: skip
        start_rollout(registry, first.record.candidate, None, cfg.serve.rollout.canary_share)
    print(arm, "first champion", first.record.champion, first.record.candidate, flush=True)
    rows = []
    for _ in range(args.weeks):
        try:
            (served,) = run_closed_loop(loop, cfg, serving, 1, root, adapt=adapt)
            failure = ""
        except Exception as err:  # a failed cycle: the champion keeps serving next week
            served, failure = None, str(err).splitlines()[0]
        row = week_row(arm, loop, served, failure, cfg.uplift.weeks)
        rows.append(row)
        print(json.dumps(row, default=str)[:400], flush=True)
    return rows


def run_optimum_arm(
    args: argparse.Namespace, cfg: CycleConfig, world: WorldSpec
) -> list[dict[str, Any]]:
    """The exact optimum of the world in force (planning ``simulator.horizon_weeks`` ahead
    each week, no exploration) for the treatment group, staff rules for the control group."""
    loop = new_loop(args, world)
    policy = WorldOptimumPolicy(world, cfg.simulator.horizon_weeks, cfg.simulator.gamma)
    scorer = optimum_scorer(
        policy,
        ServingConfig(
            rules=shipped_rules("coworking"),
            holdout=HoldoutConfig(staff=shipped_practice("coworking")),
        ),
    )
    rows = []
    for _ in range(args.weeks):
        policy.use(loop.world_now())
        loop.step(scorer)
        rows.append(week_row("optimum", loop, None, "", cfg.uplift.weeks))
        print(json.dumps(rows[-1], default=str)[:300], flush=True)
    return rows


def uplift_accuracy(measured: pd.DataFrame) -> dict[str, Any]:
    """Weekly uplift estimates (margin per customer-week) against the true ITT uplift over
    the same window: error, absolute error, RMSE and 95 % CI coverage."""
    error = measured["uplift_margin"] - measured["true_itt_window"]
    inside = (measured["uplift_ci_low"] <= measured["true_itt_window"]) & (
        measured["true_itt_window"] <= measured["uplift_ci_high"]
    )
    return {
        "weeks": len(measured),
        "mean_error": float(error.mean()),
        "mean_abs_error": float(error.abs().mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "ci_coverage": float(inside.mean()),
        "ci_covered": int(inside.sum()),
        "mean_ci_width": float((measured["uplift_ci_high"] - measured["uplift_ci_low"]).mean()),
    }


def paired_gaps(rows: pd.DataFrame, reference: str) -> dict[str, float]:
    """Each arm's treatment reward minus ``reference``'s, week by week (the arms share
    customers and random numbers): mean and 95 % t-interval half-width over the weeks
    (weeks are treated as independent, which the customers' carry-over makes optimistic)."""
    wide = rows.pivot(index="loop_week", columns="arm", values="treatment_reward")
    out: dict[str, float] = {}
    if reference not in wide:
        return out
    for arm in wide.columns.drop(reference):
        diff = (wide[arm] - wide[reference]).dropna()
        if len(diff) > 1:
            half = float(stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff)))
            out[f"after/{arm}_minus_{reference}"] = float(diff.mean())
            out[f"after/{arm}_minus_{reference}_ci_half"] = half
    return out


def summarise(rows: pd.DataFrame, args: argparse.Namespace, uplift_weeks: int) -> dict[str, Any]:
    """The result tables of the README."""
    out: dict[str, Any] = {"weeks": args.weeks, "change_after": args.change_after}
    for regime, part in rows.groupby("regime"):
        for arm, arm_rows in part.groupby("arm"):
            key = f"{regime}/{arm}"
            out[f"{key}/treatment_reward"] = float(arm_rows["treatment_reward"].mean())
            out[f"{key}/control_reward"] = float(arm_rows["control_reward"].mean())
            out[f"{key}/true_itt_uplift"] = float(arm_rows["true_itt_uplift"].mean())
            out[f"{key}/one_week_effect"] = float(arm_rows["one_week_effect"].mean())
    after = rows[rows["regime"] == "after"].groupby("arm")["treatment_reward"].mean()
    if {"adaptive", "frozen", "optimum"} <= set(after.index):
        gap = after["optimum"] - after["frozen"]
        out["after/value_recovered"] = (
            float((after["adaptive"] - after["frozen"]) / gap) if gap != 0 else None
        )
    out.update(paired_gaps(rows[rows["regime"] == "after"], "optimum"))
    adaptive = rows[rows["arm"] == "adaptive"].sort_values("loop_week")
    if "reasons" in adaptive:
        after_change = adaptive["loop_week"] >= args.change_after
        on_drift = adaptive["reasons"].fillna("").str.contains("drift: ")
        detected = adaptive[after_change & on_drift]
        out["false_alarms_before_change"] = int((~after_change & on_drift).sum())
        out["weeks_until_drift_retrain"] = (
            int(detected["loop_week"].min()) - args.change_after + 1 if len(detected) else None
        )
        out["retrained"] = int(adaptive["retrained"].fillna(False).astype(bool).sum())
        out["promoted"] = int((adaptive["outcome"] == "promoted").sum())
        measured = adaptive.dropna(subset=["uplift_margin"])
        if len(measured):
            out["uplift/all_weeks"] = uplift_accuracy(measured)
            # the windows of every uplift.weeks-th week do not overlap: independent checks
            apart = measured[(measured["loop_week"] + 1) % uplift_weeks == 0]
            out["uplift/non_overlapping_windows"] = uplift_accuracy(apart)
    return out


def flat_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The summary's numbers as MLflow metrics (``sim/regime_change/...``: what the simulated
    closed loop measured)."""
    metrics: dict[str, float] = {}
    for key, value in summary.items():
        items = value.items() if isinstance(value, dict) else [("", value)]
        for sub, number in items:
            if isinstance(number, int | float) and np.isfinite(number):
                metrics["sim/regime_change/" + "/".join(k for k in (key, sub) if k)] = float(number)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weeks", type=int, default=52, help="served weeks per arm")
    parser.add_argument("--change-after", type=int, default=8, help="first week of new regime")
    parser.add_argument("--segment", default="freelancer", help="customer type that changes")
    parser.add_argument("--booking-factor", type=float, default=0.5, help="its booking odds x")
    parser.add_argument("--fatigue-factor", type=float, default=2.0, help="its fatigue x")
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--history-weeks", type=int, default=78)
    parser.add_argument("--exploration", type=float, default=0.1, help="serve.exploration.share")
    parser.add_argument("--timesteps", type=int, default=8192, help="training steps per cycle")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--combine",
        type=Path,
        nargs="+",
        help="summarise the weeks.csv of these earlier --out folders (arms run in parallel) "
        "into --out instead of running arms",
    )
    parser.add_argument("overrides", nargs="*", help="more cycle config overrides (key=value)")
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    steps = args.timesteps
    cfg = cycle_config(
        [
            f"tracking.tracking_uri=sqlite:///{(args.out / 'mlflow.db').resolve()}",
            f"tracking.artifact_location={(args.out / 'mlruns').resolve().as_uri()}",
            "tracking.experiment=regime_change",
            f"seed={args.seed}",
            *SMALL_BUDGET,
            f"train.total_timesteps={steps}",
            f"train.checkpoint_every_steps={steps}",
            *ADAPTATION,
            *args.overrides,
        ]
    )
    serving = replace(
        ServingConfig(
            rules=shipped_rules("coworking"),
            holdout=HoldoutConfig(staff=shipped_practice("coworking")),
        ),
        exploration=ExplorationConfig(share=args.exploration),
    )
    world = load_world("coworking")
    rows: list[dict[str, Any]] = []
    for folder in args.combine or []:
        rows += pd.read_csv(folder / "weeks.csv").to_dict("records")
    for arm in [] if args.combine else args.arms:
        if arm == "optimum":
            rows += run_optimum_arm(args, cfg, world)
        else:
            rows += run_arm(arm, arm == "adaptive", args, cfg, serving, world)
        pd.DataFrame(rows).to_csv(args.out / "weeks.csv", index=False)
    pd.DataFrame(rows).to_csv(args.out / "weeks.csv", index=False)
    summary = summarise(pd.DataFrame(rows), args, cfg.uplift.weeks)
    summary["settings"] = {**vars(args), "out": str(args.out), "cycle_overrides": SMALL_BUDGET
                           + ADAPTATION + list(args.overrides)}  # fmt: skip
    if args.combine:  # the settings the arms ran with
        summary["settings"] = {
            str(f): json.loads((f / "summary.json").read_text())["settings"] for f in args.combine
        }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    with tracked_run({}, "regime_change-summary", tracking=cfg.tracking, log_config=False) as run:
        run.log_metrics(flat_metrics(summary), step=0)
        run.log_artifact(args.out / "weeks.csv", "regime_change")
        run.log_artifact(args.out / "summary.json", "regime_change")
        summary["summary_run_id"] = run.run_id
    print(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
