"""``journeyopt-evaluate``: compare contact policies in a simulated world.

    journeyopt-evaluate output_dir=outputs/eval/coworking
    journeyopt-evaluate output_dir=outputs/eval/quick evaluation.n_customers=2000 overwrite=true

A thin shell over :func:`journeyopt.evaluation.simulate.evaluate_policies` and
:func:`journeyopt.evaluation.report.write_evaluation`.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from journeyopt.cli.entry import command, log, report_errors, to_object
from journeyopt.evaluation.config import EvaluateConfig
from journeyopt.evaluation.config import register_configs as register_evaluation
from journeyopt.evaluation.report import write_evaluation
from journeyopt.evaluation.simulate import evaluate_with_baselines
from journeyopt.outputs import check_simulation_output
from journeyopt.sim.config import register_configs as register_simulator
from journeyopt.sim.world import load_world

register_simulator()
register_evaluation()


def run(cfg: EvaluateConfig) -> Path:
    """Evaluate the configured policies and write the results; returns the output folder."""
    check_simulation_output(cfg.output_dir, cfg.overwrite, cfg.simulator.world)
    world = load_world(cfg.simulator.world)
    result = evaluate_with_baselines(world, cfg.simulator, cfg.evaluation)
    out = write_evaluation(result, cfg.output_dir, overwrite=cfg.overwrite, currency=world.currency)
    log.info(
        "wrote %s: %d policies x %d customers", out, len(result.runs), cfg.evaluation.n_customers
    )
    return out


@command("evaluate")
def main(cfg: DictConfig) -> None:
    report_errors(lambda: run(to_object(cfg, EvaluateConfig)))
