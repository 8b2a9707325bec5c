"""``journeyopt-generate``: raw coworking logs from a ground-truth world.

    journeyopt-generate output_dir=logs/demo
    journeyopt-generate output_dir=logs/messy seed=3 mess.malformed_rate=0.005 overwrite=true

A thin shell over :func:`journeyopt.sim.logs.generate_logs` and
:func:`journeyopt.sim.logs.write_logs`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from journeyopt.cli.entry import command, log, report_errors, to_object
from journeyopt.outputs import check_simulation_output
from journeyopt.sim.config import GenerateConfig, register_configs
from journeyopt.sim.logs import generate_logs, write_logs
from journeyopt.sim.world import load_world

register_configs()


def run(cfg: GenerateConfig) -> Path:
    """Generate the logs described by ``cfg`` and write them; returns the output folder."""
    check_simulation_output(cfg.output_dir, cfg.overwrite, cfg.simulator.world)
    world = load_world(cfg.simulator.world)
    logs = generate_logs(world, cfg, np.random.default_rng(cfg.seed))
    out = write_logs(logs, Path(cfg.output_dir), overwrite=cfg.overwrite)
    truth = logs.truth
    log.info(
        "wrote %s: %d persons, %d events (+%d duplicates, +%d malformed), %d contact rows",
        out,
        truth.n_persons,
        truth.events,
        truth.duplicate_rows,
        truth.malformed_rows,
        truth.contact_rows,
    )
    return out


@command("generate")
def main(cfg: DictConfig) -> None:
    report_errors(lambda: run(to_object(cfg, GenerateConfig)))
