"""Logged decision data the way a user gets it: coworking logs generated under today's
practice with logged exploration, written as raw files, ingested and turned into the panel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

import journeyopt
from journeyopt.cli.entry import to_object
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.source import SourceConfig
from journeyopt.evaluation.ope.logged import LoggedTrajectories, logged_trajectories
from journeyopt.panel.build import build_panel
from journeyopt.sim.behaviour import contact_rules
from journeyopt.sim.config import GenerateConfig, shipped_practice
from journeyopt.sim.logs import generate_logs, write_logs
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.world import load_world
from tests.panel.windows import panel_config

CONFIGS = Path(journeyopt.__file__).parent / "configs"


def logged_coworking(
    out: Path,
    weeks: int,
    seed: int,
    n_customers: int = 3000,
    rules: ContactRules | None = None,
) -> LoggedTrajectories:
    """``n_customers`` customers of the coworking world, all present from the start, over
    ``weeks`` weeks under the demo's practice with 10 % exploration (logged propensities),
    through ingestion and the panel; ``rules`` mask them (None: the world's own rules)."""
    world = load_world("coworking")
    cfg = GenerateConfig(
        staff=shipped_practice("coworking"),
        output_dir=str(out),
        n_customers=n_customers,
        weeks=weeks + 1,  # the last week is incomplete in the panel
        exploration=0.1,
        initial_share=1.0,
    )
    write_logs(generate_logs(world, cfg, np.random.default_rng(seed)), out, overwrite=True)
    raw = OmegaConf.load(CONFIGS / "data" / "coworking.yaml")
    raw.path = str(out)
    source = to_object(raw, SourceConfig)
    panel = build_panel(ingest_to_logs(source)[0], panel_config(), tuple(source.contact_channels))
    return logged_trajectories(panel, world, rules or contact_rules(world), weeks)
