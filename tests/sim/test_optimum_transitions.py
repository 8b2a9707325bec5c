"""The exact DP's weekly transitions keep three outcome probabilities per (state, action) and
form the eight outcomes one action at a time (the memory of a million-state DP and of a value
check that keeps one week per week of year); the optimum and the value model's Q are the same,
bit for bit, as from the (A, 8, n_states) outcome table they replaced."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from journeyopt.evaluation.ope import model_value
from journeyopt.evaluation.ope.model_value import ValueModel
from journeyopt.sim.discrete import DiscreteLayout, allowed_actions
from journeyopt.sim.optimum import (
    Transitions,
    cyclic_weeks_of_year,
    next_states,
    outcome_model,
    solve_optimum,
)
from journeyopt.sim.world import WorldSpec, load_world
from tests.sim.test_summary_components import with_components

HORIZON = 6
GAMMA = 0.99


@pytest.fixture(scope="module")
def world() -> WorldSpec:
    """The coworking world with a 3-week pattern and a last lasting action of two actions,
    small caps (about 23,000 states)."""
    base = with_components(load_world("coworking"), 3, True)
    names = base.actions.names
    spec = replace(
        base.discrete,
        lasting_actions=(names[2], names[4]),
        recency_cap_weeks=6,
        conversions_cap=2,
        engagement_cap_weeks=3,
    )
    return replace(base, features=replace(base.features, action_recency=True), discrete=spec)


def _table_q(m: Transitions, v_next: np.ndarray, gamma: float) -> np.ndarray:
    """The replaced formula: the (A, 8, n) outcome table, summed over the outcomes."""
    pc, pe, px = m.convert[:, None], m.engage[:, None], m.optout[:, None]
    o = np.arange(8)[None, :, None]
    prob = np.where(o & 4, pc, 1 - pc) * np.where(o & 2, pe, 1 - pe) * np.where(o & 1, px, 1 - px)
    return np.asarray(m.reward + gamma * (prob * v_next[m.next_state]).sum(axis=1))


def test_prob_is_the_product_of_the_three_parts_and_sums_to_one(world: WorldSpec) -> None:
    layout = DiscreteLayout.of(world)
    states = layout.all_states()
    nxt = next_states(world, layout, states)
    assert nxt.dtype == np.int32 and int(nxt.max()) < layout.n_states
    m = outcome_model(world, states, nxt, 10)
    for a in range(world.actions.n_actions):
        p = m.prob(a)
        assert p.shape == (8, layout.n_states)
        np.testing.assert_allclose(p.sum(axis=0), 1.0, rtol=1e-12)
        np.testing.assert_array_equal(p[7], m.convert[a] * m.engage[a] * m.optout[a])


def test_the_optimum_equals_the_outcome_table_backward_induction(world: WorldSpec) -> None:
    layout = DiscreteLayout.of(world)
    states = layout.all_states()
    nxt = next_states(world, layout, states).astype(np.int64)
    woy = cyclic_weeks_of_year(1, HORIZON)
    allowed = allowed_actions(states, world).T
    values = np.zeros((HORIZON + 1, layout.n_states))
    actions = np.zeros((HORIZON, layout.n_states), np.int64)
    for t in range(HORIZON - 1, -1, -1):
        q = _table_q(outcome_model(world, states, nxt, int(woy[t])), values[t + 1], GAMMA)
        q = np.where(allowed, q, -np.inf)
        actions[t] = np.argmax(q, axis=0)
        values[t] = q[actions[t], np.arange(layout.n_states)]
    optimum = solve_optimum(world, HORIZON, GAMMA)
    np.testing.assert_array_equal(optimum.values, values)
    np.testing.assert_array_equal(optimum.actions, actions)
    assert len(set(actions.ravel().tolist())) > 1  # the test sees the contacts' values


def test_the_value_models_q_equals_the_outcome_table(world: WorldSpec) -> None:
    model = ValueModel(world)
    v_next = np.random.default_rng(0).normal(50.0, 10.0, model.layout.n_states)
    for week in (1, 30):
        expected = _table_q(model.transitions(week), v_next, GAMMA)
        np.testing.assert_array_equal(model.q_values(v_next, week, GAMMA), expected)


def test_the_value_model_keeps_only_what_fits_and_computes_the_rest_again(
    world: WorldSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Weekly outcome models beyond the cache's memory are dropped (least recently used
    first) and computed again when asked for: the same numbers."""
    full = ValueModel(world)
    v_next = np.random.default_rng(1).normal(50.0, 10.0, full.layout.n_states)
    expected = {week: full.q_values(v_next, week, GAMMA) for week in (1, 2, 3, 1)}
    week_bytes = 4 * full.transitions(1).reward.nbytes
    monkeypatch.setattr(model_value, "CACHE_BYTES", 2 * week_bytes)
    small = ValueModel(world)
    for week in (1, 2, 3, 1, 2, 3):
        np.testing.assert_array_equal(small.q_values(v_next, week, GAMMA), expected[week])
        assert len(small._weeks) <= 2
    assert list(small._weeks) == [2, 3]
