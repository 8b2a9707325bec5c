"""``journeyopt-evaluate``: compare contact policies in a simulated world.

    journeyopt-evaluate output_dir=outputs/eval/coworking
    journeyopt-evaluate output_dir=outputs/eval/quick evaluation.n_customers=2000 overwrite=true

A thin shell over :func:`journeyopt.evaluation.simulate.evaluate_policies` and
:func:`journeyopt.evaluation.report.write_evaluation`.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from journeyopt.agents.baselines import make_baseline
from journeyopt.cli.entry import log, report_errors, to_object
from journeyopt.evaluation.config import EvaluateConfig
from journeyopt.evaluation.config import register_configs as register_evaluation
from journeyopt.evaluation.report import write_evaluation
from journeyopt.evaluation.simulate import evaluate_policies
from journeyopt.sim.config import register_configs as register_simulator
from journeyopt.sim.optimum import cyclic_weeks_of_year, solve_optimum
from journeyopt.sim.world import load_world

register_simulator()
register_evaluation()


def run(cfg: EvaluateConfig) -> Path:
    """Evaluate the configured policies and write the results; returns the output folder."""
    sim, ev = cfg.simulator, cfg.evaluation
    world = load_world(sim.world)
    # the optimum is needed for "% of optimum" whatever the policies compared
    optimum = solve_optimum(
        world,
        sim.horizon_weeks,
        sim.gamma,
        cyclic_weeks_of_year(sim.start_week_of_year, sim.horizon_weeks),
    )
    staff = ev.staff.to_rules()
    policies = [make_baseline(name, world, staff, optimum) for name in ev.policies]
    result = evaluate_policies(
        world,
        policies,
        n_customers=ev.n_customers,
        horizon_weeks=sim.horizon_weeks,
        gamma=sim.gamma,
        seed=ev.seed,
        start_week_of_year=sim.start_week_of_year,
        optimum=optimum,
        reference=ev.reference if ev.reference in ev.policies else None,
    )
    out = write_evaluation(result, cfg.output_dir, overwrite=cfg.overwrite, currency=world.currency)
    log.info("wrote %s: %d policies x %d customers", out, len(policies), ev.n_customers)
    return out


@hydra.main(version_base="1.3", config_path="../configs", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    report_errors(lambda: run(to_object(cfg, EvaluateConfig)))
