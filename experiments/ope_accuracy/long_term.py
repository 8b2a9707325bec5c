"""Long-term OPE accuracy against the truth, with a calibrated world as the model.

For each exploration rate: logs of the coworking world under the staff rules (5,000 customers
all present at the start, 52 weeks from 2023-01-02 = ISO week 1, logged propensities), a world
calibrated on the same logs (``journeyopt.calibration.pipeline.calibrate``, small bootstrap
ensemble), then the 52-week value of each target policy estimated by

- ``lt_dm``: the calibrated world's value from the logged initial states;
- ``lt_dr``: the long-term DR, the first ``H`` weeks importance-weighted on the logs, the
  calibrated world's value-to-go after them (``H`` = 1 and 2);
- ``lt_dr_oracle``: the same with the true world as the model (what a perfect calibration
  would give),

and compared with the true 52-week value (``evaluate_policies`` in the true world: same
horizon, discount, start week and starting distribution). Coverage is reported for the
bootstrap interval over customers alone and widened by the ensemble spread
(``half-width' = sqrt(half-width^2 + (z sd_members)^2)``).

    .venv/bin/python experiments/ope_accuracy/long_term.py --customers 5000 --ensemble 3

Writes ``long_term_results.csv`` and ``long_term_summary.md`` into this folder.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

from journeyopt.agents.baselines import (
    MyopicPolicy,
    NoContact,
    OptimumPolicy,
    StaffPolicy,
    UniformRandom,
)
from journeyopt.agents.policy import Policy
from journeyopt.calibration.calibrated import CalibratedWorld, align_segments
from journeyopt.calibration.card import markdown_table
from journeyopt.calibration.config import CalibrateConfig, CalibrationConfig
from journeyopt.calibration.pipeline import calibrate
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.evaluation.ope.evaluate import OPESettings, evaluate_long_term
from journeyopt.evaluation.ope.logged import logged_trajectories
from journeyopt.evaluation.ope.model_value import ValueModel
from journeyopt.evaluation.simulate import evaluate_policies
from journeyopt.panel.build import build_panel
from journeyopt.panel.config import PanelConfig
from journeyopt.sim.behaviour import contact_rules
from journeyopt.sim.config import GenerateConfig
from journeyopt.sim.logs import generate_logs, write_logs
from journeyopt.sim.optimum import cyclic_weeks_of_year, solve_optimum
from journeyopt.sim.world import load_world
from journeyopt.tracking.config import TrackingConfig

try:
    from run import coworking_source  # run as a script from this folder
except ImportError:  # pragma: no cover
    from experiments.ope_accuracy.run import coworking_source

HERE = Path(__file__).parent
VALUE_WEEKS = 52
START_WEEK_OF_YEAR = 1  # 2023-01-02, the log generator's first week


def widened(value: float, low: float, high: float, sd: float, z: float) -> tuple[float, float]:
    """The interval ``(low, high)`` around ``value`` widened by ``z * sd`` in quadrature."""
    return (
        value - float(np.hypot(value - low, z * sd)),
        value + float(np.hypot(high - value, z * sd)),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--log-weeks", type=int, default=52)
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--explorations", type=float, nargs="+", default=[0.05, 0.10, 0.20])
    parser.add_argument("--ensemble", type=int, default=3)
    parser.add_argument("--truth-customers", type=int, default=20_000)
    parser.add_argument("--gamma", type=float, default=0.995)
    args = parser.parse_args()
    truth_world = load_world("coworking")
    optimum = solve_optimum(
        truth_world, VALUE_WEEKS, args.gamma, cyclic_weeks_of_year(START_WEEK_OF_YEAR, VALUE_WEEKS)
    )
    policies: list[Policy] = [
        NoContact(),
        UniformRandom(),
        StaffPolicy(truth_world),
        MyopicPolicy(truth_world),
        OptimumPolicy(truth_world, optimum),
    ]
    truth = evaluate_policies(
        truth_world,
        policies,
        n_customers=args.truth_customers,
        horizon_weeks=VALUE_WEEKS,
        gamma=args.gamma,
        seed=123,
        start_week_of_year=START_WEEK_OF_YEAR,
        optimum=optimum,
    )
    true_value = {run.name: float(np.mean(run.value)) for run in truth.runs}
    settings = OPESettings(gamma=args.gamma, n_boot=300)
    z = float(norm.ppf(0.5 + settings.confidence / 2))
    oracle = ValueModel(truth_world)
    rows = []
    for epsilon in args.explorations:
        with tempfile.TemporaryDirectory() as tmp:
            logs_dir, world_dir = Path(tmp) / "logs", Path(tmp) / "world"
            gen = GenerateConfig(
                output_dir=str(logs_dir),
                n_customers=args.customers,
                weeks=args.log_weeks,
                initial_share=1.0,
                exploration=epsilon,
                seed=int(epsilon * 100),
            )
            rng = np.random.default_rng(int(epsilon * 100))
            write_logs(generate_logs(truth_world, gen, rng), logs_dir, overwrite=True)
            source = coworking_source(logs_dir)
            calibrate(
                CalibrateConfig(
                    data=source,
                    calibration=CalibrationConfig(
                        holdout_weeks=0, ensemble_size=args.ensemble, policy_customers=2000
                    ),
                    tracking=TrackingConfig(enabled=False),
                    output_dir=str(world_dir),
                )
            )
            calibrated = CalibratedWorld.load(world_dir)
            logs, _ = ingest_to_logs(source)
        names = truth_world.segment_names
        model = ValueModel(align_segments(calibrated.world, names))
        members = tuple(ValueModel(align_segments(m, names)) for m in calibrated.members)
        panel = build_panel(logs, PanelConfig(), tuple(source.contact_channels))
        for window in args.windows:
            logged = logged_trajectories(panel, truth_world, contact_rules(truth_world), window + 1)
            for policy in policies:
                result = evaluate_long_term(policy, logged, model, settings, VALUE_WEEKS, members)
                ideal = evaluate_long_term(policy, logged, oracle, settings, VALUE_WEEKS)
                found = [
                    (name, iv, result.model_spread.get(name, 0.0))
                    for name, iv in result.intervals.items()
                ] + [("lt_dr_oracle", ideal.intervals["lt_dr"], 0.0)]
                truth_v = true_value[policy.name]
                for name, iv, sd in found:
                    low, high = widened(iv.value, iv.ci_low, iv.ci_high, sd, z)
                    rows.append(
                        {
                            "exploration": epsilon,
                            "window_weeks": window,
                            "policy": policy.name,
                            "estimator": name,
                            "true_value": truth_v,
                            "estimate": iv.value,
                            "ci_low": iv.ci_low,
                            "ci_high": iv.ci_high,
                            "model_sd": sd,
                            "rel_error": (iv.value - truth_v) / abs(truth_v),
                            "covered": iv.covers(truth_v),
                            "covered_with_model_sd": low <= truth_v <= high,
                            "ess_share": result.diagnostics.overall["ess_share"],
                            "overlap_passed": result.diagnostics.passed,
                        }
                    )
            print(f"exploration={epsilon} window={window}: done", flush=True)
    frame = pd.DataFrame.from_records(rows)
    frame.to_csv(HERE / "long_term_results.csv", index=False)
    by_estimator = (
        frame.groupby(["estimator", "window_weeks"])
        .agg(
            mean_abs_rel_error=("rel_error", lambda x: float(np.mean(np.abs(x)))),
            max_abs_rel_error=("rel_error", lambda x: float(np.max(np.abs(x)))),
            coverage=("covered", "mean"),
            coverage_with_model_sd=("covered_with_model_sd", "mean"),
            overlap_passed=("overlap_passed", "mean"),
            cases=("covered", "size"),
        )
        .reset_index()
    )
    cols = ["exploration", "window_weeks", "policy", "estimator", "true_value", "estimate"]
    detail = frame[
        [*cols, "rel_error", "covered", "covered_with_model_sd", "model_sd", "ess_share"]
    ]
    (HERE / "long_term_summary.md").write_text(
        "## By estimator and window\n\n"
        + markdown_table(by_estimator)
        + "\n\n## Every case\n\n"
        + markdown_table(detail)
        + "\n"
    )
    print(by_estimator.to_string())


if __name__ == "__main__":
    main()
