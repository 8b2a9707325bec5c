"""The optimum of the world in force as a served policy: the DP's actions read back from the
observation vectors, a switch of world at the regime change, and a clear refusal to save."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from journeyopt.errors import JourneyoptError
from journeyopt.loop.closed_loop import ClosedLoop
from journeyopt.loop.oracle import OPTIMUM_VERSION, WorldOptimumPolicy, optimum_scorer
from journeyopt.loop.truth import CoworkingTruth
from journeyopt.panel.state import state_features
from journeyopt.serving.config import HoldoutConfig, ServingConfig
from journeyopt.sim.config import GenerateConfig, shipped_practice, shipped_rules
from journeyopt.sim.discrete import DiscreteLayout, discrete_state
from journeyopt.sim.observation import encode
from journeyopt.sim.optimum import cyclic_weeks_of_year, solve_optimum
from journeyopt.sim.regime import RegimeChange, changed_world
from journeyopt.sim.summary_rules import plan_rules
from journeyopt.sim.world import WorldSpec, load_world

HORIZON, GAMMA = 8, 0.99


@pytest.fixture(scope="module")
def world() -> WorldSpec:
    return load_world("coworking")


@pytest.fixture(scope="module")
def loop(world: WorldSpec) -> ClosedLoop:
    history = GenerateConfig(
        staff=shipped_practice("coworking"), output_dir="unused", n_customers=300, weeks=20
    )
    return ClosedLoop(CoworkingTruth(world, RegimeChange("freelancer", 1), history), seed=0)


def test_the_policy_takes_the_optimums_first_week_action(
    world: WorldSpec, loop: ClosedLoop
) -> None:
    policy = WorldOptimumPolicy(world, HORIZON, GAMMA)
    features = state_features(loop.state, world.features)
    segment = loop.world.customers.segment
    woy = int(loop.monday.isocalendar().week)
    observations = encode(policy.layout, features, segment, woy).astype(np.float32)
    masks = np.ones((segment.shape[0], world.actions.n_actions), bool)
    actions, probabilities = policy.act(observations, masks)
    plan = solve_optimum(world, HORIZON, GAMMA, cyclic_weeks_of_year(woy, HORIZON))
    expected = plan.optimal_actions(discrete_state(features, segment, world), 0)
    np.testing.assert_array_equal(actions, expected)
    assert len(set(actions.tolist())) > 1  # the optimum contacts some customers, not others
    np.testing.assert_array_equal(probabilities.argmax(axis=1), actions)
    only_none = np.zeros_like(masks)
    only_none[:, 0] = True
    assert not policy.act(observations, only_none)[0].any()


def test_the_policy_follows_the_world_in_force(world: WorldSpec, loop: ClosedLoop) -> None:
    policy = WorldOptimumPolicy(world, HORIZON, GAMMA)
    scorer = optimum_scorer(
        policy,
        ServingConfig(
            rules=shipped_rules("coworking"),
            holdout=HoldoutConfig(staff=shipped_practice("coworking")),
        ),
    )
    assert scorer.model.version == OPTIMUM_VERSION
    woy = int(loop.monday.isocalendar().week)
    before = policy.plan(woy)
    truth = loop.step(scorer)  # week 0, before the change: the original world's optimum
    assert truth.regime == "before" and np.isfinite(truth.true_itt_uplift)
    policy.use(loop.world_now())
    assert policy.world.name == changed_world(world, RegimeChange("freelancer", 1)).name
    assert loop.step(scorer).regime == "after"
    after = policy.plan(woy)
    assert policy.plan(woy) is after and after is not before  # solved once per world and week
    assert not np.array_equal(after.actions, before.actions)


def test_the_policy_plans_under_the_scorers_contact_rules(
    world: WorldSpec, loop: ClosedLoop
) -> None:
    policy = WorldOptimumPolicy(world, HORIZON, GAMMA)
    woy = int(loop.monday.isocalendar().week)
    free = policy.plan(woy)  # no rules yet: opt-outs only
    scorer = optimum_scorer(
        policy,
        ServingConfig(
            rules=shipped_rules("coworking"),
            holdout=HoldoutConfig(staff=shipped_practice("coworking")),
        ),
    )
    assert policy.rules is scorer.rules  # the one object the scorer's guard enforces
    plan = policy.plan(woy)
    planned = plan_rules(scorer.rules, world)
    assert plan.unseen_rules == planned.unseen and policy.unseen_rules == planned.unseen
    assert planned.unseen  # the per-channel caps: named, applied by the guard only
    states = DiscreteLayout.of(world).all_states()
    allowed = planned.masks(states, woy)  # the cool-down the summary represents
    rows = np.arange(allowed.shape[0])
    assert allowed[rows, plan.actions[0]].all()  # the plan never breaks it
    assert not allowed[rows, free.actions[0]].all()  # the rule-free plan does
    assert (plan.values[0] <= free.values[0] + 1e-9).all()
    assert (plan.values[0] < free.values[0] - 1e-6).any()  # the rule binds
    features = state_features(loop.state, world.features)
    segment = loop.world.customers.segment
    observations = encode(policy.layout, features, segment, woy).astype(np.float32)
    masks = np.ones((segment.shape[0], world.actions.n_actions), bool)
    actions, _ = policy.act(observations, masks)
    truly = planned.rules.masks(features, segment=segment, week_of_year=woy)
    assert truly[np.arange(segment.shape[0]), actions].all()


def test_another_world_and_saving_are_refused(world: WorldSpec, tmp_path: Path) -> None:
    policy = WorldOptimumPolicy(world, HORIZON, GAMMA)
    fewer = replace(world.features, fatigue_weeks=world.features.fatigue_weeks + 1)
    with pytest.raises(JourneyoptError, match="other actions or observations"):
        policy.use(replace(world, name="other", features=fewer))
    with pytest.raises(JourneyoptError, match="simulation reference"):
        policy.save(tmp_path)
