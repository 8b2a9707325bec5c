"""Logs and truth describe the same customers: the logged trajectories, rebuilt from raw logs
through ingestion and the panel, start from exactly the world's initial population that
simulation evaluates policies on (the OPE accuracy study compares the two)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

import journeyopt
from journeyopt.cli.entry import to_object
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.source import SourceConfig
from journeyopt.evaluation.ope.logged import logged_trajectories
from journeyopt.panel.build import build_panel
from journeyopt.panel.state import state_features
from journeyopt.sim.behaviour import contact_rules
from journeyopt.sim.config import GenerateConfig, shipped_practice
from journeyopt.sim.discrete import discrete_state
from journeyopt.sim.logs import generate_logs, write_logs
from journeyopt.sim.population import initial_population
from journeyopt.sim.world import load_world
from tests.panel.windows import panel_config

CONFIGS = Path(journeyopt.__file__).parent / "configs"
CUSTOMERS = 600
SEED = 11


def test_week_zero_of_the_logs_is_the_worlds_initial_population(tmp_path: Path) -> None:
    world = load_world("coworking")
    cfg = GenerateConfig(
        staff=shipped_practice("coworking"),
        output_dir=str(tmp_path),
        n_customers=CUSTOMERS,
        weeks=3,
        exploration=0.1,
        initial_share=1.0,
        seed=SEED,
    )
    write_logs(generate_logs(world, cfg, np.random.default_rng(SEED)), tmp_path, overwrite=True)
    raw = OmegaConf.load(CONFIGS / "data" / "coworking.yaml")
    raw.path = str(tmp_path)
    source = to_object(raw, SourceConfig)
    panel = build_panel(ingest_to_logs(source)[0], panel_config(), tuple(source.contact_channels))
    logged = logged_trajectories(panel, world, contact_rules(world), 2)

    # the generator's first draw is the initial population: the same customers
    state, customers, _ = initial_population(world, CUSTOMERS, np.random.default_rng(SEED))
    truth = state_features(state, world.features)
    segment = customers.segment.astype(np.int64)
    assert logged.n_customers == CUSTOMERS
    assert logged.week_of_year[0] == 1  # 2023-01-02, the truth's first week of year
    week0 = {name: values[:, 0] for name, values in logged.features.items()}
    for name in world.features.feature_names:
        got = np.sort(np.nan_to_num(np.asarray(week0[name], np.float64), nan=-1.0))
        want = np.sort(np.nan_to_num(np.asarray(truth[name], np.float64), nan=-1.0))
        np.testing.assert_allclose(got, want, err_msg=name)
    world_states = discrete_state(truth, segment, world)
    logged_states = discrete_state(week0, logged.segment, world)
    n_states = int(max(world_states.max(), logged_states.max())) + 1
    np.testing.assert_array_equal(
        np.bincount(logged_states, minlength=n_states),
        np.bincount(world_states, minlength=n_states),
    )
