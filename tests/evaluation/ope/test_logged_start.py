"""Logs and truth describe the same customers: the logged trajectories, rebuilt from raw logs
through ingestion and the panel, start from exactly the world's initial population that
simulation evaluates policies on (the OPE accuracy study compares the two)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

import journeyopt
from journeyopt.cli.entry import to_object
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.source import SourceConfig
from journeyopt.evaluation.ope.logged import logged_trajectories
from journeyopt.panel.build import build_panel
from journeyopt.panel.segments import NO_PURCHASE_TIER, value_tier_labels
from journeyopt.panel.state import state_features
from journeyopt.sim.behaviour import contact_rules
from journeyopt.sim.config import GenerateConfig, shipped_practice
from journeyopt.sim.discrete import discrete_state
from journeyopt.sim.logs import generate_logs, write_logs
from journeyopt.sim.population import initial_population
from journeyopt.sim.world import WorldSpec, load_world
from tests.panel.windows import panel_config

CONFIGS = Path(journeyopt.__file__).parent / "configs"
CUSTOMERS = 600
SEED = 11


def logged_panel(world: WorldSpec, folder: Path) -> pd.DataFrame:
    """The panel of three weeks of logs the demo's practice writes in ``world`` for
    :data:`CUSTOMERS` customers, all present from the first week (ingested from ``folder``)."""
    cfg = GenerateConfig(
        staff=shipped_practice("coworking"),
        output_dir=str(folder),
        n_customers=CUSTOMERS,
        weeks=3,
        exploration=0.1,
        initial_share=1.0,
        seed=SEED,
    )
    write_logs(generate_logs(world, cfg, np.random.default_rng(SEED)), folder, overwrite=True)
    raw = OmegaConf.load(CONFIGS / "data" / "coworking.yaml")
    raw.path = str(folder)
    source = to_object(raw, SourceConfig)
    return build_panel(ingest_to_logs(source)[0], panel_config(), tuple(source.contact_channels))


def test_week_zero_of_the_logs_is_the_worlds_initial_population(tmp_path: Path) -> None:
    world = load_world("coworking")
    panel = logged_panel(world, tmp_path)
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


def test_a_value_tier_world_reads_each_customers_tier_of_the_first_week(tmp_path: Path) -> None:
    """A world whose segments are value tiers (``segment_value_cuts``, a calibration with
    ``calibration.value_tiers``) gets each customer's tier of mean conversion value in the
    trajectory's first week, as the scorer reads it, not the customers file's segment (which
    that world does not know)."""
    world = load_world("coworking")
    panel = logged_panel(world, tmp_path)
    decided = panel["propensity"].notna() | (panel["action"].astype(str) != "none")
    first = panel[panel["week"] == panel.loc[decided, "week"].min()]  # the trajectories' start
    cut = float(np.nanmedian(first["monetary"].to_numpy(np.float64)))
    names = ("value 1/2", "value 2/2", NO_PURCHASE_TIER)
    segments = tuple(replace(s, name=n) for s, n in zip(world.segments, names, strict=True))
    tiered = replace(world, segments=segments, segment_value_cuts=(cut,))
    logged = logged_trajectories(panel, tiered, contact_rules(tiered), 2)

    monetary = np.asarray(logged.features["monetary"][:, 0], np.float64)
    want = value_tier_labels(monetary, np.array([cut]))
    assert [names[k] for k in logged.segment] == want.tolist()
    assert set(want) == set(names)  # below and above the cut, and prospects without a value
    # without logged propensities, the behaviour cloning that completes them reads the tiers too
    cloned = logged_trajectories(panel.assign(propensity=np.nan), tiered, contact_rules(tiered), 2)
    assert np.array_equal(cloned.segment, logged.segment)
    assert cloned.propensity_source != "logged"
