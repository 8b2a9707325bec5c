"""The coworking demo's evaluation with the exact optimum planned under ``simulator.rules`` vs
planned without them (the behaviour before the rule-aware optimum), on the same customers and
random numbers: ``journeyopt-evaluate``'s composed configuration, two optima.

    python experiments/sim_to_real/coworking_rules.py                 # configs/rules/coworking.yaml
    python experiments/sim_to_real/coworking_rules.py --without-caps  # its cool-down alone
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir

import journeyopt.cli.evaluate  # registers the evaluate schema; its folder finds the configs
from journeyopt.cli.entry import to_object
from journeyopt.cli.evaluate import EvaluateConfig
from journeyopt.evaluation.simulate import EvaluationResult, evaluate_with_baselines
from journeyopt.sim.optimum import cyclic_weeks_of_year, solve_optimum
from journeyopt.sim.world import load_world

CONFIGS = Path(journeyopt.cli.evaluate.__file__).resolve().parent.parent / "configs"
COLUMNS = ["policy", "value", "value_ci_low", "value_ci_high", "pct_of_optimum", "uplift"]


def show(name: str, result: EvaluationResult) -> None:
    print(f"{name} | planned under: {result.optimum_rules} | unseen: {result.optimum_unseen_rules}")
    table = result.table[result.table["segment"] == "all"][COLUMNS]
    print(table.to_string(index=False))
    print(f"exact optimum value (mean over the customers): {result.optimum_value.mean():.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--without-caps", action="store_true", help="drop the frequency caps")
    args = parser.parse_args()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = to_object(
            compose(
                "evaluate",
                overrides=[
                    "simulator=coworking",
                    "practice@evaluation.staff=coworking",
                    "output_dir=unused",
                ],
            ),
            EvaluateConfig,
        )
    if args.without_caps:
        cfg.simulator.rules.frequency_caps = {}
    sim, ev = cfg.simulator, cfg.evaluation
    world = load_world(sim.world)
    started = time.perf_counter()
    after = evaluate_with_baselines(world, sim, ev)
    weeks = cyclic_weeks_of_year(sim.start_week_of_year, sim.horizon_weeks)
    unaware = solve_optimum(world, sim.horizon_weeks, sim.gamma, weeks)
    before = evaluate_with_baselines(world, sim, ev, optimum=unaware)
    show("before (optimum planned without simulator.rules)", before)
    show("after (optimum planned under simulator.rules)", after)
    d = after.runs[-1].value - before.runs[-1].value
    half = 1.96 * d.std(ddof=1) / np.sqrt(d.size)
    print(f"optimum, after - before (paired): {d.mean():.2f} +- {half:.2f}")
    print(f"seconds: {time.perf_counter() - started:.1f}")


if __name__ == "__main__":
    main()
