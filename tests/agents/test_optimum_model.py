"""The exact optimum as a served, logged policy: each row gets the first-week action of the
optimum planned from its own week of year, under the rules it is served under; logged to a real
MLflow store and read back as data, it chooses the same actions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from journeyopt.agents.optimum_model import PlannedOptimum
from journeyopt.panel.state import state_features
from journeyopt.serving.guards import serving_rules
from journeyopt.sim.config import shipped_rules
from journeyopt.sim.discrete import DiscreteLayout, discrete_state
from journeyopt.sim.observation import encode
from journeyopt.sim.optimum import cyclic_weeks_of_year, solve_optimum
from journeyopt.sim.population import starting_population
from journeyopt.sim.summary_rules import plan_rules
from journeyopt.sim.world import WorldSpec, load_world, world_path
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.model import (
    load_policy_model,
    log_policy_model,
    observation_frame,
    unwrap_policy,
)
from journeyopt.tracking.run import tracked_run

HORIZON, GAMMA = 6, 0.99
WEEKS = (3, 30, 53)  # ISO week 53 plans as week 1, as the DP's calendar does


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> WorldSpec:
    """Two customer types of the coworking world with small caps (a few thousand states)."""
    raw = yaml.safe_load(world_path("coworking").read_text())
    raw.update(
        name="small",
        discrete={
            "recency_cap_weeks": 8,
            "conversions_cap": 2,
            "contact_cap_weeks": 3,
            "engagement_cap_weeks": 3,
        },
    )
    path = tmp_path_factory.mktemp("world") / "world.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_world(path)


@pytest.fixture(scope="module")
def planned(world: WorldSpec) -> PlannedOptimum:
    return PlannedOptimum.solve(
        world, HORIZON, GAMMA, serving_rules(world, shipped_rules("coworking"))
    )


def customers(
    world: WorldSpec, layout_of: PlannedOptimum
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, D) observations of 300 starting customers in each week of :data:`WEEKS`, their
    discrete states and weeks of year."""
    state, segment = starting_population(world, 300, np.random.default_rng(0), HORIZON)
    features = state_features(state, world.features)
    observations = np.concatenate(
        [encode(layout_of.layout, features, segment, w) for w in WEEKS]
    ).astype(np.float32)
    states = np.tile(discrete_state(features, segment, world), len(WEEKS))
    weeks = np.repeat(WEEKS, segment.shape[0])
    return observations, states, weeks


def test_each_row_takes_its_weeks_planned_first_action(
    world: WorldSpec, planned: PlannedOptimum
) -> None:
    rules = serving_rules(world, shipped_rules("coworking"))
    observations, states, weeks = customers(world, planned)
    masks = np.ones((observations.shape[0], world.actions.n_actions), bool)
    actions, probabilities = planned.act(observations, masks)
    for w in WEEKS:
        plan = solve_optimum(world, HORIZON, GAMMA, cyclic_weeks_of_year(w, HORIZON), rules=rules)
        rows = weeks == w
        np.testing.assert_array_equal(actions[rows], plan.optimal_actions(states[rows], 0))
    assert len(set(actions.tolist())) > 1  # it contacts some customers, not others
    np.testing.assert_array_equal(probabilities.argmax(axis=1), actions)
    assert planned.unseen_rules == plan_rules(rules, world).unseen and planned.unseen_rules
    free = PlannedOptimum.solve(world, HORIZON, GAMMA)  # opt-outs only: another plan
    assert free.rules == "opt-outs only" and not np.array_equal(free.actions, planned.actions)
    all_states = DiscreteLayout.of(world).all_states()
    allowed = plan_rules(rules, world).masks(all_states, 3)
    assert allowed[np.arange(allowed.shape[0]), planned.actions[2]].all()
    only_none = np.zeros_like(masks)
    only_none[:, 0] = True
    assert not planned.act(observations, only_none)[0].any()


def test_logged_and_read_back_it_chooses_the_same(
    world: WorldSpec, planned: PlannedOptimum, mlflow_sqlite: TrackingConfig, tmp_path: Path
) -> None:
    observations, _, _ = customers(world, planned)
    masks = np.ones((observations.shape[0], world.actions.n_actions), bool)
    masks[::7, 1] = False
    with tracked_run({}, "optimum", tracking=mlflow_sqlite, log_config=False) as run:
        info = log_policy_model(run, planned, observations[:3], masks[:3])
    assert info is not None
    model = load_policy_model(info.model_uri, mlflow_sqlite, tmp_path / "download")
    loaded = unwrap_policy(model)
    assert isinstance(loaded, PlannedOptimum) and loaded.spec == planned.spec
    assert loaded.unseen_rules == planned.unseen_rules and loaded.rules == planned.rules
    predicted = model.predict(observation_frame(observations, masks, planned.spec))
    np.testing.assert_array_equal(
        predicted["action"].to_numpy(), planned.act(observations, masks)[0]
    )


def test_a_table_of_another_shape_is_refused(world: WorldSpec, planned: PlannedOptimum) -> None:
    with pytest.raises(ValueError, match="actions must be"):
        PlannedOptimum(world, planned.actions[:, :-1], HORIZON, GAMMA)
