"""Contract tests of the world's dynamics: shapes, ranges, permanence of opt-outs, masks,
reward decomposition, determinism and agreement between sampled and expected rewards."""

from __future__ import annotations

import numpy as np
import pytest

from journeyopt.panel.state import CustomerState, advance, state_features
from journeyopt.sim.discrete import DiscreteLayout, Summary, summarise
from journeyopt.sim.dynamics import (
    expected_reward,
    response_probabilities,
    sample_outcome,
    sample_week,
)
from journeyopt.sim.population import initial_population
from journeyopt.sim.world import WorldSpec


def _population(world: WorldSpec, n: int, seed: int = 0) -> tuple[CustomerState, np.ndarray]:
    state, customers, _ = initial_population(world, n, np.random.default_rng(seed))
    return state, customers.segment


def test_response_probabilities_are_probabilities_for_every_state(world: WorldSpec) -> None:
    states = DiscreteLayout.of(world).all_states()
    n = states.segment.shape[0]
    for a in range(world.actions.n_actions):
        for week in (1, 20, 31, 52):
            r = response_probabilities(world, states, np.full(n, a), week)
            for name, prob in r._asdict().items():
                assert prob.shape == (n,)
                if name != "value":
                    assert np.all((prob >= 0) & (prob <= 1)), name
            assert np.all(r.value > 0)
            assert np.all((r.engage >= 0) & (r.engage <= 1))
            if a == 0:
                assert np.all(r.optout == 0) and np.all(r.engage_contact == 0)


def test_mechanisms_point_the_documented_way(world: WorldSpec) -> None:
    base = Summary(*(np.array([v]) for v in (1, 2, 3, 5, 9, 0)))  # startup, 2 conv, 3 wks
    call = world.actions.names.index("personal_call")

    def conv(s: Summary, a: int = 0, week: int = 15) -> float:
        return float(response_probabilities(world, s, np.array([a]), week).convert[0])

    assert conv(base, call) > conv(base)  # contacts lift conversion
    assert conv(base._replace(contact=np.array([1])), call) < conv(base, call)  # fatigue
    assert conv(base._replace(engagement=np.array([1]))) > conv(base)  # delayed effect
    assert conv(base, week=31) < conv(base) and conv(base, week=52) < conv(base)  # seasons
    assert conv(base._replace(recency=np.array([27]))) < conv(base)  # lapse
    tired = response_probabilities(
        world, base._replace(contact=np.array([1])), np.array([call]), 15
    )
    fresh = response_probabilities(world, base, np.array([call]), 15)
    assert tired.optout[0] > fresh.optout[0]


def test_sample_week_shapes_and_reward_decomposition(world: WorldSpec) -> None:
    state, segment = _population(world, 3000)
    rng = np.random.default_rng(1)
    actions = rng.integers(0, world.actions.n_actions, 3000)
    out = sample_week(world, state, segment, actions, 10, rng)
    n, c = 3000, len(world.channels)
    assert out.activity.contacts.shape == out.activity.consent.shape == (n, c)
    assert out.converted.any() and out.engaged.any()
    np.testing.assert_array_equal(out.kind >= 0, out.converted)
    np.testing.assert_array_equal(out.list_value > 0, out.converted)
    disc = out.actions == world.discount_action
    np.testing.assert_allclose(out.margin, world.margin_rate * out.list_value)
    np.testing.assert_allclose(out.discount_cost, np.where(disc, 0.25 * out.list_value, 0))
    np.testing.assert_allclose(out.contact_cost, world.params.cost[out.actions])
    np.testing.assert_allclose(
        out.reward, out.margin - out.discount_cost - world.params.cost[out.actions]
    )
    np.testing.assert_allclose(out.paid[disc], np.round(0.75 * out.list_value[disc], 2))
    assert out.activity.conversions.max() <= 1
    np.testing.assert_allclose(out.activity.revenue, out.paid)


def test_forbidden_actions_never_produce_contacts(world: WorldSpec) -> None:
    state, segment = _population(world, 2000)
    state = type(state)(**{**state.__dict__, "opted_out": np.ones_like(state.opted_out)})
    rng = np.random.default_rng(2)
    actions = rng.integers(1, world.actions.n_actions, 2000)
    out = sample_week(world, state, segment, actions, 10, rng)
    assert out.activity.contacts.sum() == 0
    assert np.all(out.actions == 0) and out.overridden.all()
    assert np.all(out.contact_cost == 0) and not out.opted_out.any()


def test_inactive_customers_have_a_quiet_week(world: WorldSpec) -> None:
    state, segment = _population(world, 500)
    active = np.arange(500) % 2 == 0
    out = sample_week(
        world, state, segment, np.full(500, 4), 10, np.random.default_rng(3), active=active
    )
    assert out.activity.contacts[~active].sum() == 0
    assert not (out.converted[~active] | out.engaged[~active]).any()
    assert np.all(out.reward[~active] == 0)


def test_opt_out_is_permanent(world: WorldSpec) -> None:
    state, segment = _population(world, 4000)
    rng = np.random.default_rng(4)
    call = world.actions.names.index("personal_call")
    ever = np.zeros((4000, len(world.channels)), bool)
    for week in range(12):
        out = sample_week(world, state, segment, np.full(4000, call), week + 1, rng)
        state = advance(state, out.activity)
        assert np.all(state.opted_out[ever])  # once out, always out
        ever |= state.opted_out
        # after opting out of the phone, calls are no longer carried out
        phone = world.channels.index("phone")
        assert out.activity.contacts[out.overridden, phone].sum() == 0
    assert ever.any()


def test_same_seed_same_outcome(world: WorldSpec) -> None:
    state, segment = _population(world, 1000)
    actions = np.random.default_rng(5).integers(0, world.actions.n_actions, 1000)
    a = sample_week(world, state, segment, actions, 7, np.random.default_rng(9))
    b = sample_week(world, state, segment, actions, 7, np.random.default_rng(9))
    c = sample_week(world, state, segment, actions, 7, np.random.default_rng(10))
    np.testing.assert_array_equal(a.reward, b.reward)
    np.testing.assert_array_equal(a.activity.consent, b.activity.consent)
    assert not np.array_equal(a.reward, c.reward)


@pytest.mark.parametrize("action", ["none", "discount_offer", "personal_call"])
def test_expected_reward_is_the_mean_sampled_reward(world: WorldSpec, action: str) -> None:
    n = 100_000
    state, segment = _population(world, n)
    a = np.full(n, world.actions.names.index(action))
    summary = summarise(state_features(state, world.features), segment, world)
    expected = expected_reward(world, response_probabilities(world, summary, a, 10), a)
    out = sample_outcome(world, summary, a, 10, np.random.default_rng(6))
    se = out.reward.std() / np.sqrt(n)
    assert abs(out.reward.mean() - expected.mean()) < 4 * se
