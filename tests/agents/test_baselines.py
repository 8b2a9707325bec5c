"""Policies behind one interface: valid probabilities, masks respected, known behaviour."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from journeyopt.agents.baselines import BASELINES, expected_rewards, make_baseline
from journeyopt.agents.policy import Observation, Policy, sample_from
from journeyopt.sim.config import shipped_practice
from journeyopt.sim.env import InitialPool
from journeyopt.sim.observation import observation_layout
from journeyopt.sim.optimum import OptimalPolicy
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.world import WorldSpec

DEMO = shipped_practice("coworking").to_practice()


@pytest.fixture(scope="module")
def observation(world: WorldSpec) -> Observation:
    pool = InitialPool.draw(world, 500, seed=2, horizon_weeks=52)
    opted = pool.state.opted_out.copy()
    opted[:100, 0] = True  # e-mail opt-outs
    opted[50:150, 1] = True  # phone opt-outs (50..99 opted out of everything)
    state = replace(pool.state, opted_out=opted)
    return Observation.of_state(state, pool.segment, observation_layout(world), 1, 0)


@pytest.mark.parametrize("name", BASELINES)
def test_probabilities_valid_and_masked(
    name: str, world: WorldSpec, optimum: OptimalPolicy, observation: Observation
) -> None:
    policy = make_baseline(name, world, DEMO, optimum)
    assert isinstance(policy, Policy)
    rules = ContactRules(world.actions, world.features, frequency_caps={"phone": 0})
    masks = rules.masks(observation.features)
    actions, probs = policy.act(observation, masks, np.random.default_rng(0))
    assert actions.shape == (observation.n,) and probs.shape == masks.shape
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert (probs[~masks] == 0).all()
    assert masks[np.arange(observation.n), actions].all()
    assert (probs[np.arange(observation.n), actions] > 0).all()
    assert (actions[50:100] == 0).all()  # opted out of every channel: only none


def test_staff_policy_wraps_staff_rules(world: WorldSpec, observation: Observation) -> None:
    masks = ContactRules(world.actions, world.features).masks(observation.features)
    for week in (0, 13, 5):
        obs = Observation(observation.features, observation.segment, 1 + week, week)
        policy = make_baseline("staff_rules", world, DEMO)
        actions, _ = policy.act(obs, masks, np.random.default_rng())
        expected = DEMO.actions(world, obs.features, obs.segment, week)
        np.testing.assert_array_equal(actions, expected)


def test_myopic_maximises_this_weeks_expected_reward(
    world: WorldSpec, observation: Observation
) -> None:
    masks = ContactRules(world.actions, world.features).masks(observation.features)
    actions, _ = make_baseline("myopic", world).act(observation, masks, np.random.default_rng())
    rewards = expected_rewards(world, observation)
    chosen = rewards[np.arange(observation.n), actions]
    assert (chosen[:, None] >= np.where(masks, rewards, -np.inf) - 1e-12).all()
    assert len(set(actions.tolist())) > 1


def test_optimum_rejects_other_calendar(
    world: WorldSpec, optimum: OptimalPolicy, observation: Observation
) -> None:
    masks = np.ones((observation.n, world.actions.n_actions), bool)
    shifted = Observation(observation.features, observation.segment, 20, 0)
    with pytest.raises(ValueError, match="week of year"):
        make_baseline("optimum", world, optimum=optimum).act(
            shifted, masks, np.random.default_rng()
        )


def test_uniform_random_is_uniform_over_allowed(world: WorldSpec, observation: Observation) -> None:
    masks = ContactRules(world.actions, world.features).masks(observation.features)
    rows = np.repeat(np.arange(150, 151), 20_000)  # a customer with every action allowed
    obs = Observation(
        {k: v[rows] for k, v in observation.features.items()}, observation.segment[rows], 1, 0
    )
    actions, _ = make_baseline("random", world).act(obs, masks[rows], np.random.default_rng(1))
    counts = np.bincount(actions, minlength=world.actions.n_actions) / rows.shape[0]
    np.testing.assert_allclose(counts, 1 / world.actions.n_actions, atol=0.015)


def test_sample_from_never_draws_zero_probability() -> None:
    probs = np.array([[0.5, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 1.0], [0.25, 0.25, 0.5, 0.0]] * 3000)
    draws = sample_from(probs, np.random.default_rng(0))
    assert (probs[np.arange(probs.shape[0]), draws] > 0).all()


def test_observation_matches_segments_by_name(world: WorldSpec, observation: Observation) -> None:
    """A policy trained in a world that lists the segments in another order (a calibrated
    world sorts them) must see each customer's own type, not the one at the same index."""
    layout = observation_layout(world)
    names = layout.segment_names
    reordered = replace(layout, segment_names=tuple(reversed(names)))
    named = replace(observation, segment_names=names)
    expected_index = len(names) - 1 - observation.segment
    np.testing.assert_array_equal(named.segment_in(reordered), expected_index)
    np.testing.assert_array_equal(
        named.vector(reordered), replace(observation, segment=expected_index).vector(reordered)
    )
    with pytest.raises(ValueError, match="not among the policy's"):
        replace(named, segment_names=("nobody", *names[1:])).vector(layout)
