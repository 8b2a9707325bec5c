"""OPE accuracy against the truth, window-only estimators: logs of the coworking world under
the staff policy with exploration, target policies (baselines and two agents trained in the
true world with ``journeyopt-train``'s configs) evaluated by every estimator on the logs and
exactly simulated in the true world with common random numbers; relative error and CI
coverage per estimator. The model of ``dm`` and ``dr`` is the true world (an oracle).

    .venv/bin/python experiments/ope_accuracy/run.py --customers 5000 --horizon 8 --reps 2

The truth is simulated for ``--truth-customers`` (default 1,000,000) customers: a customer's
8-week return is heavy-tailed, and with 20,000 customers the truth's own Monte Carlo error
(+-5 %, shared by every case) was as large as the estimators' errors. ``results.csv`` keeps it
(``true_half_width``).

Writes ``results.csv`` (one row per replicate x exploration x policy x estimator) and
``summary.md`` into this folder, and one MLflow parent run (experiment ``ope_accuracy``) with
a child run per (exploration, replicate) and the agents' training runs.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

try:  # run as a script from this folder or from the repository root
    import study
except ImportError:  # pragma: no cover
    from experiments.ope_accuracy import study

from journeyopt.agents.policy import Policy
from journeyopt.calibration.policy_fidelity import AlwaysAction
from journeyopt.evaluation.ope.evaluate import OPESettings, evaluate_on_logs
from journeyopt.evaluation.ope.logged import logged_trajectories
from journeyopt.evaluation.ope.model_check import ModelCheckSettings, check_model
from journeyopt.sim.behaviour import contact_rules
from journeyopt.sim.optimum import cyclic_weeks_of_year, solve_optimum
from journeyopt.sim.world import load_world
from journeyopt.tracking.run import child_runs_of, tracked_run


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=5000, help="initial customers logged")
    parser.add_argument("--horizon", type=int, default=8, help="weeks evaluated")
    parser.add_argument("--reps", type=int, default=2, help="log replicates per exploration rate")
    parser.add_argument("--explorations", type=float, nargs="+", default=[0.05, 0.10, 0.20])
    parser.add_argument(
        "--truth-customers", type=int, default=1_000_000,
        help="customers simulated for the truth (its 95 %% Monte Carlo error is about +-0.7 %%)",
    )  # fmt: skip
    parser.add_argument("--gamma", type=float, default=0.995)
    parser.add_argument("--warm-steps", type=int, default=20_000, help="ppo_warm budget")
    parser.add_argument("--ppo-steps", type=int, default=50_000, help="ppo budget")
    parser.add_argument(
        "--output-dir", type=Path, default=Path("outputs/ope_accuracy/window"),
        help="agents and (unless MLFLOW_TRACKING_URI is set) mlflow.db",
    )  # fmt: skip
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    tracking = study.study_tracking(out)
    world = load_world("coworking")
    weeks_of_year = cyclic_weeks_of_year(study.START_WEEK_OF_YEAR, args.horizon)
    optimum = solve_optimum(world, args.horizon, args.gamma, weeks_of_year)
    settings = OPESettings(gamma=args.gamma, n_boot=300)
    rows = []
    with tracked_run(vars(args), "ope-accuracy-window", tracking=tracking) as parent:
        with child_runs_of(parent.run_id):
            agents = [
                study.train_agent(
                    kind, "coworking", args.horizon, args.gamma, steps, 0,
                    out / f"agent_{kind}", tracking,
                )
                for kind, steps in (("ppo_warm", args.warm_steps), ("ppo", args.ppo_steps))
            ]  # fmt: skip
        policies: list[Policy] = [
            *study.baseline_targets(world, optimum),
            AlwaysAction(1, "always_newsletter"),
            *(a.policy for a in agents),
        ]
        truth_of = study.true_value_intervals(
            world, policies, args.truth_customers, args.horizon, args.gamma, optimum
        )
        for epsilon in args.explorations:
            for rep in range(args.reps):
                seed = 1000 * rep + round(epsilon * 100)
                with tempfile.TemporaryDirectory() as tmp:
                    panel, _ = study.simulate_logs(
                        world, Path(tmp), args.customers, args.horizon + 2, epsilon, seed
                    )
                logged = logged_trajectories(panel, world, contact_rules(world), args.horizon)
                check = check_model(logged, world, args.gamma, ModelCheckSettings(n_boot=300))
                case = []
                for policy in policies:
                    result = evaluate_on_logs(policy, logged, world, settings)
                    diag = result.diagnostics
                    truth = truth_of[policy.name].value
                    case += [
                        {
                            "exploration": epsilon,
                            "rep": rep,
                            "policy": policy.name,
                            "estimator": name,
                            "true_value": truth,
                            "true_half_width": truth_of[policy.name].half_width,
                            "estimate": iv.value,
                            "ci_low": iv.ci_low,
                            "ci_high": iv.ci_high,
                            "rel_error": (iv.value - truth) / abs(truth),
                            "covered": iv.covers(truth),
                            "ess_share": diag.overall["ess_share"],
                            "overlap_passed": diag.passed,
                            "model_check_passed": check.passed,
                        }
                        for name, iv in result.intervals.items()
                    ]
                with tracked_run(
                    {"exploration": epsilon, "rep": rep},
                    f"exploration={epsilon:g} rep={rep}",
                    parent_run_id=parent.run_id,
                    tracking=tracking,
                ) as child:
                    frame = pd.DataFrame.from_records(case)
                    child.log_metrics({**study.case_metrics(frame), **check.metrics()}, step=0)
                    child.log_dict({"rows": case}, "case.json")
                rows += case
                print(f"exploration={epsilon} rep={rep}: {logged.n_customers} customers")
        frame = pd.DataFrame.from_records(rows)
        summary = write_results(frame, parent.run_id)
        parent.log_metrics(study.summary_metrics(summary, ["estimator", "overlap_passed"]), 0)
        for name in ("results.csv", "summary.md"):
            parent.log_artifact(study.HERE / name, "results")
    print(f"MLflow parent run {parent.run_id} ({tracking.resolved_tracking_uri()})")


def write_results(frame: pd.DataFrame, run_id: str | None) -> pd.DataFrame:
    """``results.csv`` and ``summary.md``; the table by estimator and overlap diagnosis."""
    frame.to_csv(study.HERE / "results.csv", index=False)
    by_estimator = (
        frame.groupby(["estimator", "overlap_passed"])
        .agg(
            mean_abs_rel_error=("rel_error", study.abs_mean),
            max_abs_rel_error=("rel_error", study.abs_max),
            coverage=("covered", "mean"),
            cases=("covered", "size"),
        )
        .reset_index()
    )
    by_policy = (
        frame.groupby(["policy", "estimator"])
        .agg(
            true_value=("true_value", "first"),
            true_half_width=("true_half_width", "first"),
            mean_estimate=("estimate", "mean"),
            mean_abs_rel_error=("rel_error", study.abs_mean),
            coverage=("covered", "mean"),
            ess_share=("ess_share", "mean"),
            overlap_passed=("overlap_passed", "mean"),
        )
        .reset_index()
    )
    detail = (
        frame.groupby(["exploration", "policy", "estimator"])
        .agg(
            mean_abs_rel_error=("rel_error", study.abs_mean),
            coverage=("covered", "mean"),
            ess_share=("ess_share", "mean"),
            overlap_passed=("overlap_passed", "mean"),
        )
        .reset_index()
    )
    study.write_summary(
        study.HERE / "summary.md",
        f"MLflow experiment `{study.EXPERIMENT}`, parent run `{run_id}`.",
        {
            "By estimator and overlap diagnosis": by_estimator,
            "By policy and estimator": by_policy,
            "By exploration rate, policy and estimator": detail,
        },
    )
    print(by_estimator.to_string())
    return by_estimator


if __name__ == "__main__":
    main()
