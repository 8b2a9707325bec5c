"""OPE accuracy against the truth: logs of the coworking world under the staff policy with
exploration, target policies evaluated by every estimator on the logs and exactly simulated in
the true world with common random numbers; relative error and CI coverage per estimator.

    .venv/bin/python experiments/ope_accuracy/run.py --customers 5000 --horizon 13 --reps 5

Writes ``results.csv`` (one row per replicate x exploration x policy x estimator) and
``summary.md`` into this folder.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

import journeyopt
from journeyopt.agents.baselines import (
    MyopicPolicy,
    NoContact,
    OptimumPolicy,
    StaffPolicy,
    UniformRandom,
)
from journeyopt.agents.policy import Policy
from journeyopt.calibration.card import markdown_table
from journeyopt.calibration.policy_fidelity import AlwaysAction
from journeyopt.cli.entry import to_object
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.source import SourceConfig
from journeyopt.evaluation.ope.evaluate import OPESettings, evaluate_on_logs
from journeyopt.evaluation.ope.logged import logged_trajectories
from journeyopt.evaluation.simulate import evaluate_policies
from journeyopt.panel.build import build_panel
from journeyopt.panel.config import PanelConfig
from journeyopt.sim.behaviour import contact_rules
from journeyopt.sim.config import GenerateConfig
from journeyopt.sim.logs import generate_logs, write_logs
from journeyopt.sim.optimum import cyclic_weeks_of_year, solve_optimum
from journeyopt.sim.world import load_world

HERE = Path(__file__).parent
CONFIGS = Path(journeyopt.__file__).parent / "configs"


def coworking_source(path: Path) -> SourceConfig:
    raw = OmegaConf.load(CONFIGS / "data" / "coworking.yaml")
    raw.path = str(path)
    return to_object(raw, SourceConfig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=5000, help="initial customers logged")
    parser.add_argument("--horizon", type=int, default=13, help="weeks evaluated")
    parser.add_argument("--reps", type=int, default=5, help="log replicates per exploration rate")
    parser.add_argument("--truth-customers", type=int, default=50_000)
    parser.add_argument("--gamma", type=float, default=0.995)
    args = parser.parse_args()
    world = load_world("coworking")
    gen = GenerateConfig(
        output_dir="x", n_customers=args.customers, weeks=args.horizon + 2, initial_share=1.0
    )
    start_woy = 1  # 2023-01-02 is ISO week 1
    optimum = solve_optimum(
        world, args.horizon, args.gamma, cyclic_weeks_of_year(start_woy, args.horizon)
    )
    policies: list[Policy] = [
        NoContact(),
        UniformRandom(),
        StaffPolicy(world),
        MyopicPolicy(world),
        OptimumPolicy(world, optimum),
        AlwaysAction(1, "always_newsletter"),
    ]
    truth = evaluate_policies(
        world,
        policies,
        n_customers=args.truth_customers,
        horizon_weeks=args.horizon,
        gamma=args.gamma,
        seed=123,
        start_week_of_year=start_woy,
        optimum=optimum,
    )
    true_value = {run.name: float(np.mean(run.value)) for run in truth.runs}
    settings = OPESettings(gamma=args.gamma, n_boot=300)
    rows = []
    for epsilon in (0.05, 0.10, 0.20):
        for rep in range(args.reps):
            cfg = GenerateConfig(**{**gen.__dict__, "exploration": epsilon, "seed": rep})
            with tempfile.TemporaryDirectory() as tmp:
                logs_dir = Path(tmp)
                write_logs(
                    generate_logs(world, cfg, np.random.default_rng([rep, int(epsilon * 100)])),
                    logs_dir,
                    overwrite=True,
                )
                source = coworking_source(logs_dir)
                logs, _ = ingest_to_logs(source)
            panel = build_panel(logs, PanelConfig(), tuple(source.contact_channels))
            logged = logged_trajectories(panel, world, contact_rules(world), args.horizon)
            for policy in policies:
                result = evaluate_on_logs(policy, logged, world, settings)
                diag = result.diagnostics
                for name, iv in result.intervals.items():
                    truth_v = true_value[policy.name]
                    rows.append(
                        {
                            "exploration": epsilon,
                            "rep": rep,
                            "policy": policy.name,
                            "estimator": name,
                            "true_value": truth_v,
                            "estimate": iv.value,
                            "ci_low": iv.ci_low,
                            "ci_high": iv.ci_high,
                            "rel_error": (iv.value - truth_v) / abs(truth_v),
                            "covered": iv.covers(truth_v),
                            "ess_share": diag.overall["ess_share"],
                            "overlap_passed": diag.passed,
                        }
                    )
            print(f"epsilon={epsilon} rep={rep}: {logged.n_customers} customers", flush=True)
    frame = pd.DataFrame.from_records(rows)
    frame.to_csv(HERE / "results.csv", index=False)
    summary = (
        frame.groupby(["exploration", "policy", "estimator"])
        .agg(
            true_value=("true_value", "first"),
            mean_estimate=("estimate", "mean"),
            mean_abs_rel_error=("rel_error", lambda x: float(np.mean(np.abs(x)))),
            coverage=("covered", "mean"),
            ess_share=("ess_share", "mean"),
            overlap_passed=("overlap_passed", "mean"),
        )
        .reset_index()
    )
    by_estimator = (
        frame.groupby(["estimator", "overlap_passed"])
        .agg(
            mean_abs_rel_error=("rel_error", lambda x: float(np.mean(np.abs(x)))),
            coverage=("covered", "mean"),
            cases=("covered", "size"),
        )
        .reset_index()
    )
    (HERE / "summary.md").write_text(
        "## By estimator and overlap diagnosis\n\n"
        + markdown_table(by_estimator)
        + "\n\n## By exploration rate, policy and estimator\n\n"
        + markdown_table(summary)
        + "\n"
    )
    print(by_estimator.to_string())


if __name__ == "__main__":
    main()
