"""Long-term OPE accuracy against the truth, with a calibrated world as the model.

For each exploration rate: logs of the coworking world under the staff rules (5,000 customers
all present at the start, 52 weeks from 2023-01-02 = ISO week 1, logged propensities), a world
calibrated on the same logs (``journeyopt.calibration.pipeline.calibrate``, small bootstrap
ensemble), two agents trained in that calibrated world with ``journeyopt-train``'s configs
(MaskablePPO warm-started from its optimum, and from scratch), then the 52-week value of each
target policy estimated by

- ``lt_dm``: the calibrated world's value from the logged initial states;
- ``lt_dr``: the long-term DR, the first ``H`` weeks importance-weighted on the logs, the
  calibrated world's value-to-go after them (``H`` = 1 and 2);
- ``lt_dr_oracle``: the same with the true world as the model (what a perfect calibration
  would give),

and compared with the true 52-week value (``evaluate_policies`` in the true world: same
horizon, discount, start week and starting distribution). The model check
(:mod:`journeyopt.evaluation.ope.model_check`) replays the logging policy in the calibrated
world over the logged weeks and compares with what the logs realised. Coverage is reported for
the bootstrap interval over customers alone, widened by the ensemble spread
(``sqrt(half-width^2 + (z sd_members)^2)``), and widened by the model check's error bound.

    .venv/bin/python experiments/ope_accuracy/long_term.py --customers 5000 --ensemble 3

Writes ``long_term_results.csv`` and ``long_term_summary.md`` into this folder, and one
MLflow parent run (experiment ``ope_accuracy``) with a child run per (exploration, window)
and the agents' training runs.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

try:  # run as a script from this folder or from the repository root
    import study
except ImportError:  # pragma: no cover
    from experiments.ope_accuracy import study

from journeyopt.agents.policy import Policy
from journeyopt.calibration.calibrated import CalibratedWorld, align_segments
from journeyopt.calibration.config import CalibrateConfig, CalibrationConfig
from journeyopt.calibration.pipeline import calibrate
from journeyopt.evaluation.ope.bootstrap import Interval
from journeyopt.evaluation.ope.evaluate import OPESettings, evaluate_long_term
from journeyopt.evaluation.ope.logged import logged_trajectories
from journeyopt.evaluation.ope.model_check import (
    ModelCheck,
    ModelCheckSettings,
    check_model,
    passes,
    widen,
)
from journeyopt.evaluation.ope.model_value import ValueModel
from journeyopt.sim.behaviour import contact_rules
from journeyopt.sim.optimum import cyclic_weeks_of_year, solve_optimum
from journeyopt.sim.world import load_world
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.run import child_runs_of, tracked_run

VALUE_WEEKS = 52


def widened(iv: Interval, sd: float, z: float) -> tuple[float, float]:
    """``iv`` widened by ``z * sd`` in quadrature on each side."""
    return (
        iv.value - float(np.hypot(iv.value - iv.ci_low, z * sd)),
        iv.value + float(np.hypot(iv.ci_high - iv.value, z * sd)),
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--log-weeks", type=int, default=52)
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--explorations", type=float, nargs="+", default=[0.05, 0.10, 0.20])
    parser.add_argument("--ensemble", type=int, default=3)
    parser.add_argument("--truth-customers", type=int, default=20_000)
    parser.add_argument("--gamma", type=float, default=0.995)
    parser.add_argument("--warm-steps", type=int, default=20_000, help="ppo_warm budget")
    parser.add_argument("--ppo-steps", type=int, default=50_000, help="ppo budget")
    parser.add_argument("--check-tolerance", type=float, default=0.1)
    parser.add_argument(
        "--summarise", action="store_true",
        help="only rewrite long_term_summary.md from the results and checks CSV files",
    )  # fmt: skip
    parser.add_argument(
        "--output-dir", type=Path, default=Path("outputs/ope_accuracy/long_term"),
        help="agents, calibrated worlds and (unless MLFLOW_TRACKING_URI is set) mlflow.db",
    )  # fmt: skip
    return parser.parse_args()


def calibrated_world(logs_dir: Path, world_dir: Path, ensemble: int) -> CalibratedWorld:
    """A world calibrated on the logs in ``logs_dir`` (no hold-out), written to ``world_dir``."""
    calibrate(
        CalibrateConfig(
            data=study.coworking_source(logs_dir),
            panel=study.coworking_panel(),
            calibration=CalibrationConfig(
                caps=study.coworking_caps(),
                practice_cycles_weeks=[2, 4, 13],  # the demo's (configs/calibration/coworking.yaml)
                holdout_weeks=0,
                ensemble_size=ensemble,
                policy_customers=2000,
            ),
            tracking=TrackingConfig(enabled=False),
            output_dir=str(world_dir),
        )
    )
    return CalibratedWorld.load(world_dir)


def case_rows(
    policy: Policy,
    truth: float,
    found: list[tuple[str, Interval, float]],
    check: ModelCheck,
    overlap_passed: bool,
    ess_share: float,
    z: float,
) -> list[dict[str, object]]:
    """One row per estimator of one policy: error and coverage three ways."""
    rows = []
    for name, iv, sd in found:
        low, high = widened(iv, sd, z)
        by_check = widen(iv, check.error_bound) if name != "lt_dr_oracle" else iv
        rows.append(
            {
                "policy": policy.name,
                "estimator": name,
                "true_value": truth,
                "estimate": iv.value,
                "ci_low": iv.ci_low,
                "ci_high": iv.ci_high,
                "model_sd": sd,
                "rel_error": (iv.value - truth) / abs(truth),
                "covered": iv.covers(truth),
                "covered_with_model_sd": low <= truth <= high,
                "covered_with_model_check": by_check.covers(truth),
                "ess_share": ess_share,
                "overlap_passed": overlap_passed,
                "model_check_gap": check.gap,
                "model_check_passed": check.passed,
            }
        )
    return rows


def main() -> None:
    args = parse_args()
    if args.summarise:
        frame = pd.read_csv(study.HERE / "long_term_results.csv")
        checks = pd.read_csv(study.HERE / "long_term_checks.csv")
        write_summary(frame, checks, args.check_tolerance, parent_run_id(checks))
        return
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    tracking = study.study_tracking(out)
    truth_world = load_world("coworking")
    weeks_of_year = cyclic_weeks_of_year(study.START_WEEK_OF_YEAR, VALUE_WEEKS)
    optimum = solve_optimum(truth_world, VALUE_WEEKS, args.gamma, weeks_of_year)
    baselines = study.baseline_targets(truth_world, optimum)
    truth_of = study.true_values(
        truth_world, baselines, args.truth_customers, VALUE_WEEKS, args.gamma, optimum
    )
    settings = OPESettings(gamma=args.gamma, n_boot=300)
    check_settings = ModelCheckSettings(tolerance=args.check_tolerance, n_boot=300)
    z = float(norm.ppf(0.5 + settings.confidence / 2))
    oracle = ValueModel(truth_world)
    names = truth_world.segment_names
    frames, checks = [], []
    with tracked_run(vars(args), "ope-accuracy-long-term", tracking=tracking) as parent:
        for epsilon in args.explorations:
            seed = round(epsilon * 100)
            with tempfile.TemporaryDirectory() as tmp:
                logs_dir = Path(tmp) / "logs"
                panel, _ = study.simulate_logs(
                    truth_world, logs_dir, args.customers, args.log_weeks, epsilon, seed
                )
                world_dir = out / f"world_{seed}"
                calibrated = calibrated_world(logs_dir, world_dir, args.ensemble)
            with child_runs_of(parent.run_id):
                agents = [
                    study.train_agent(
                        kind, str(world_dir), VALUE_WEEKS, args.gamma, steps, seed,
                        out / f"agent_{kind}_{seed}", tracking,
                    )
                    for kind, steps in (("ppo_warm", args.warm_steps), ("ppo", args.ppo_steps))
                ]  # fmt: skip
            truth_of.update(
                study.true_values(
                    truth_world,
                    [a.policy for a in agents],
                    args.truth_customers,
                    VALUE_WEEKS,
                    args.gamma,
                    optimum,
                )
            )
            policies = baselines + [a.policy for a in agents]
            model = ValueModel(align_segments(calibrated.world, names))
            members = tuple(ValueModel(align_segments(m, names)) for m in calibrated.members)
            rules = contact_rules(truth_world)
            replayed = logged_trajectories(panel, truth_world, rules, args.log_weeks - 1)
            check = check_model(replayed, model, args.gamma, check_settings)
            oracle_check = check_model(replayed, oracle, args.gamma, check_settings)
            checks += [
                {"exploration": epsilon, "model": m, "weeks": c.weeks, "realised": c.realised,
                 "predicted": c.predicted, "gap": c.gap, "gap_low": c.gap_low,
                 "gap_high": c.gap_high, "run_id": parent.run_id}
                for m, c in (("calibrated", check), ("true world", oracle_check))
            ]  # fmt: skip
            for window in args.windows:
                logged = logged_trajectories(panel, truth_world, rules, window + 1)
                rows = []
                for policy in policies:
                    result = evaluate_long_term(
                        policy, logged, model, settings, VALUE_WEEKS, members
                    )
                    ideal = evaluate_long_term(policy, logged, oracle, settings, VALUE_WEEKS)
                    found = [
                        (name, iv, result.model_spread.get(name, 0.0))
                        for name, iv in result.intervals.items()
                    ] + [("lt_dr_oracle", ideal.intervals["lt_dr"], 0.0)]
                    diag = result.diagnostics
                    rows += case_rows(
                        policy, truth_of[policy.name], found, check, diag.passed,
                        diag.overall["ess_share"], z,
                    )  # fmt: skip
                case = pd.DataFrame.from_records(rows).assign(
                    exploration=epsilon, window_weeks=window
                )
                frames.append(case)
                with tracked_run(
                    {"exploration": epsilon, "window_weeks": window},
                    f"exploration={epsilon:g} window={window}",
                    parent_run_id=parent.run_id,
                    tracking=tracking,
                ) as child:
                    child.log_metrics({**study.case_metrics(case), **check.metrics()}, step=0)
                    child.log_dict({"rows": case.to_dict(orient="records")}, "case.json")
                print(f"exploration={epsilon} window={window}: done", flush=True)
        frame = pd.concat(frames, ignore_index=True)
        frame.to_csv(study.HERE / "long_term_results.csv", index=False)
        table = pd.DataFrame.from_records(checks)
        table.to_csv(study.HERE / "long_term_checks.csv", index=False)
        write_summary(frame, table, args.check_tolerance, parent.run_id)
        summary = by_estimator(frame)
        parent.log_metrics(study.summary_metrics(summary, ["estimator", "window_weeks"]), 0)
        for name in ("long_term_results.csv", "long_term_checks.csv", "long_term_summary.md"):
            parent.log_artifact(study.HERE / name, "results")
    print(f"MLflow parent run {parent.run_id} ({tracking.resolved_tracking_uri()})")


def by_estimator(frame: pd.DataFrame) -> pd.DataFrame:
    return (
        frame.groupby(["estimator", "window_weeks"])
        .agg(
            mean_abs_rel_error=("rel_error", study.abs_mean),
            max_abs_rel_error=("rel_error", study.abs_max),
            coverage=("covered", "mean"),
            coverage_with_model_sd=("covered_with_model_sd", "mean"),
            coverage_with_model_check=("covered_with_model_check", "mean"),
            overlap_passed=("overlap_passed", "mean"),
            cases=("covered", "size"),
        )
        .reset_index()
    )


def parent_run_id(checks: pd.DataFrame) -> str:
    return str(checks["run_id"].iloc[0])


def with_check_flags(frame: pd.DataFrame, checks: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """``frame`` with the model check of each row's model world (the true world for
    ``lt_dr_oracle``, else the calibrated one) per exploration rate: ``check_passed`` (fails
    when the gap's interval lies wholly beyond ``+-tolerance``), ``check_passed_strict``
    (passes only when it lies wholly within), ``trusted`` and ``trusted_strict`` (overlap and
    the check passed)."""
    model = np.where(frame["estimator"] == "lt_dr_oracle", "true world", "calibrated")
    keyed = checks.set_index(["exploration", "model"])
    keys = pd.MultiIndex.from_arrays([frame["exploration"], model])
    low = keyed["gap_low"].reindex(keys).to_numpy()
    high = keyed["gap_high"].reindex(keys).to_numpy()
    return frame.assign(
        check_passed=[passes(lo, hi, tolerance, False) for lo, hi in zip(low, high, strict=True)],
        check_passed_strict=[
            passes(lo, hi, tolerance, True) for lo, hi in zip(low, high, strict=True)
        ],
    ).assign(
        trusted=lambda f: f["overlap_passed"] & f["check_passed"],
        trusted_strict=lambda f: f["overlap_passed"] & f["check_passed_strict"],
    )


def trusted_table(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return (
        frame.groupby(["estimator", "window_weeks", column])
        .agg(
            mean_abs_rel_error=("rel_error", study.abs_mean),
            max_abs_rel_error=("rel_error", study.abs_max),
            coverage=("covered", "mean"),
            coverage_with_model_check=("covered_with_model_check", "mean"),
            cases=("covered", "size"),
        )
        .reset_index()
    )


def write_summary(
    frame: pd.DataFrame, checks: pd.DataFrame, tolerance: float, run_id: str | None
) -> None:
    """``long_term_summary.md``: errors and coverage by estimator, by diagnosis, by policy;
    the model checks; every case."""
    flagged = with_check_flags(frame, checks, tolerance)
    by_policy = (
        frame[frame["window_weeks"] == frame["window_weeks"].min()]
        .groupby(["policy", "estimator"])
        .agg(
            mean_abs_rel_error=("rel_error", study.abs_mean),
            mean_rel_error=("rel_error", "mean"),
            coverage=("covered", "mean"),
            coverage_with_model_check=("covered_with_model_check", "mean"),
        )
        .reset_index()
    )
    cols = ["exploration", "window_weeks", "policy", "estimator", "true_value", "estimate"]
    detail = flagged[
        [*cols, "rel_error", "covered", "covered_with_model_sd", "covered_with_model_check",
         "model_sd", "ess_share", "overlap_passed", "check_passed", "check_passed_strict"]
    ]  # fmt: skip
    study.write_summary(
        study.HERE / "long_term_summary.md",
        f"MLflow experiment `{study.EXPERIMENT}`, parent run `{run_id}`; model check "
        f"tolerance {tolerance:g}.",
        {
            "By estimator and window": by_estimator(frame),
            "By diagnosis: overlap and the model check (fails when shown wrong)": trusted_table(
                flagged, "trusted"
            ),
            "By diagnosis: overlap and the strict model check (passes when shown right)": (
                trusted_table(flagged, "trusted_strict")
            ),
            "Model check (logging policy replayed over the logged weeks)": checks.drop(
                columns="run_id"
            ),
            "By policy (shortest window)": by_policy,
            "Every case": detail,
        },
    )
    print(by_estimator(frame).to_string())


if __name__ == "__main__":
    main()
