"""The exact optimum: its value is what simulation of its policy gives, it beats every fixed
action and today's staff rules, and it never picks a forbidden action."""

from __future__ import annotations

import time

import numpy as np
import pytest
from numpy.typing import NDArray

from journeyopt.agents.baselines import make_baseline
from journeyopt.agents.policy import Policy
from journeyopt.evaluation.simulate import simulate_policy
from journeyopt.panel.state import CustomerState, state_features
from journeyopt.sim.behaviour import contact_rules
from journeyopt.sim.config import shipped_practice
from journeyopt.sim.discrete import DiscreteLayout, allowed_actions, discrete_state
from journeyopt.sim.env import EpisodeClock
from journeyopt.sim.optimum import (
    OptimalPolicy,
    cyclic_weeks_of_year,
    evaluate_table_policy,
    solve_optimum,
)
from journeyopt.sim.population import initial_population
from journeyopt.sim.world import WorldSpec

Ints = NDArray[np.int64]
HORIZON, GAMMA, START = 52, 0.995, 20
N = 10_000


@pytest.fixture(scope="module")
def optimum(world: WorldSpec) -> OptimalPolicy:
    started = time.perf_counter()
    policy = solve_optimum(world, HORIZON, GAMMA, cyclic_weeks_of_year(START, HORIZON))
    assert time.perf_counter() - started < 60.0  # benchmark target
    return policy


def _returns(world: WorldSpec, policy: Policy, state: CustomerState, segment: Ints) -> Ints:
    """(N,) discounted returns of ``policy`` from ``state``: the evaluation's own rollout."""
    run = simulate_policy(
        world,
        policy,
        state,
        segment,
        EpisodeClock.of(HORIZON, START),
        GAMMA,
        np.random.default_rng(12),
        np.random.default_rng(13),
        contact_rules(world),
    )
    return run.value


def test_values_are_finite_and_zero_at_the_horizon(optimum: OptimalPolicy) -> None:
    assert optimum.values.shape == (HORIZON + 1, optimum.layout.n_states)
    assert np.isfinite(optimum.values).all()
    assert np.all(optimum.values[HORIZON] == 0)
    assert np.all(optimum.values >= 0)  # doing nothing never loses money


def test_optimal_actions_are_always_allowed(world: WorldSpec, optimum: OptimalPolicy) -> None:
    allowed = allowed_actions(optimum.layout.all_states(), world)
    index = np.arange(optimum.layout.n_states)
    for t in range(HORIZON):
        assert allowed[index, optimum.actions[t]].all()


@pytest.mark.parametrize("action", range(5))
def test_optimum_beats_every_fixed_action_everywhere(
    world: WorldSpec, optimum: OptimalPolicy, action: int
) -> None:
    values = evaluate_table_policy(
        world,
        lambda s, t: np.full(s.segment.shape[0], action),
        GAMMA,
        optimum.weeks_of_year,
    )
    assert np.all(values[0] <= optimum.values[0] + 1e-9)
    assert np.any(values[0] < optimum.values[0] - 1.0)


def test_evaluating_the_optimal_table_gives_the_optimal_values(
    world: WorldSpec, optimum: OptimalPolicy
) -> None:
    index = np.arange(optimum.layout.n_states)
    values = evaluate_table_policy(
        world, lambda s, t: optimum.actions[t, index], GAMMA, optimum.weeks_of_year
    )
    np.testing.assert_allclose(values, optimum.values, rtol=1e-10, atol=1e-8)


def test_simulated_return_of_the_optimum_matches_its_value(
    world: WorldSpec, optimum: OptimalPolicy
) -> None:
    state, customers, _ = initial_population(world, N, np.random.default_rng(11))
    start = discrete_state(state_features(state, world.features), customers.segment, world)
    expected = optimum.value(start).mean()
    segment = customers.segment.astype(np.int64)
    dp = _returns(world, make_baseline("optimum", world, optimum=optimum), state, segment)
    half_width = 1.96 * dp.std(ddof=1) / np.sqrt(N)
    assert abs(dp.mean() - expected) < half_width, (dp.mean(), expected, half_width)

    staff_returns = _returns(
        world,
        make_baseline("staff_rules", world, shipped_practice("coworking").to_practice()),
        state,
        segment,
    )
    # the optimum's exact value beats the staff's simulated mean beyond its noise
    staff_se = staff_returns.std(ddof=1) / np.sqrt(N)
    assert staff_returns.mean() + 3 * staff_se < expected


def test_layout_matches_world(world: WorldSpec, optimum: OptimalPolicy) -> None:
    assert optimum.layout == DiscreteLayout.of(world)
    assert optimum.horizon_weeks == HORIZON
    assert optimum.weeks_of_year[0] == START and optimum.weeks_of_year[33] == 1
