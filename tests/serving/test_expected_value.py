"""The scorer's remembered expected values equal the batched path's (``summarise`` ->
``response_probabilities`` -> ``expected_reward``) bit for bit, on random customers of the
ground-truth world and of calibrated worlds (fitted tables, with and without tenure)."""

from __future__ import annotations

import numpy as np
import pytest

from journeyopt.agents.policy import Observation
from journeyopt.panel.state import state_features
from journeyopt.serving.expected_value import ExpectedValues
from journeyopt.sim.discrete import summarise
from journeyopt.sim.dynamics import expected_reward, response_probabilities
from journeyopt.sim.population import initial_population
from journeyopt.sim.world import WorldSpec
from tests.sim.worlds import fitted_world


def customers(world: WorldSpec, n: int, seed: int) -> Observation:
    """``n`` customers of ``world``'s initial population with random segments and recent
    activity, at a random week of year."""
    rng = np.random.default_rng(seed)
    state, _, _ = initial_population(world, n, rng)
    features = dict(state_features(state, world.features))
    never = rng.random(n) < 0.3
    features["weeks_since_contact"] = np.where(never, np.nan, rng.integers(1, 30, n))
    segment = rng.integers(0, len(world.segments), n)
    return Observation(features, segment, int(rng.integers(1, 54)), 0)


def reference(world: WorldSpec, seen: Observation, actions: np.ndarray) -> np.ndarray:
    """The batched path, written out."""
    summary = summarise(seen.features, seen.segment, world)
    responses = response_probabilities(world, summary, actions, seen.week_of_year)
    return expected_reward(world, responses, actions)


def rows(seen: Observation, index: np.ndarray) -> Observation:
    features = {k: np.asarray(v)[index] for k, v in seen.features.items()}
    return Observation(features, seen.segment[index], seen.week_of_year, seen.week)


@pytest.mark.parametrize("kind", ["truth", "fitted", "fitted_with_tenure"])
def test_remembered_values_equal_the_batched_path(world: WorldSpec, kind: str) -> None:
    if kind != "truth":
        world = fitted_world(world, seed=5, tenure_cap_weeks=12 if "tenure" in kind else 0)
    values = ExpectedValues(world, small=64)
    rng = np.random.default_rng(11)
    for seed in range(3):  # three weeks of year, customers seen again and again
        seen = customers(world, 400, seed)
        actions = rng.integers(0, world.actions.n_actions, 400)
        expected = reference(world, seen, actions)
        for _ in range(2):  # first misses (filled), then hits
            start = 0
            while start < 400:
                size = int(rng.integers(1, 65))
                index = np.arange(start, min(start + size, 400))
                got = values(rows(seen, index), actions[index])
                np.testing.assert_array_equal(got, expected[index])
                start += size
        assert values.remembered > 0
        np.testing.assert_array_equal(values(seen, actions), expected)  # large: batched


def test_memory_stays_bounded(world: WorldSpec) -> None:
    values = ExpectedValues(world, small=64, max_entries=50)
    seen = customers(world, 300, 1)
    actions = np.zeros(300, np.int64)
    expected = reference(world, seen, actions)
    for start in range(0, 300, 30):
        index = np.arange(start, start + 30)
        np.testing.assert_array_equal(values(rows(seen, index), actions[index]), expected[index])
        assert values.remembered <= 50
