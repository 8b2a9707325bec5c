"""Contract tests of the world's dynamics: shapes, ranges, permanence of opt-outs, masks,
reward decomposition, determinism and agreement between sampled and expected rewards."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from journeyopt.panel.state import CustomerState, advance, state_features
from journeyopt.sim import dynamics
from journeyopt.sim.discrete import DiscreteLayout, Summary, summarise
from journeyopt.sim.dynamics import (
    ResponseTable,
    expected_reward,
    fitted_responses,
    keyed_standard_gamma,
    response_probabilities,
    sample_outcome,
    sample_week,
)
from journeyopt.sim.population import initial_population
from journeyopt.sim.world import WorldSpec
from tests.sim.worlds import fitted_world


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
    disc = world.actions.discount_rates[out.actions] > 0  # the demo's voucher: 25 % off
    assert disc.any()
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


def test_response_table_is_response_probabilities(world: WorldSpec) -> None:
    """The tabulated model is bit-for-bit the reference one, for every state and action."""
    table = ResponseTable.of(world)
    assert ResponseTable.of(world) is table
    layout = DiscreteLayout.of(world)
    states = layout.all_states()
    n, a_count = layout.n_states, world.actions.n_actions
    for week in (1, 20, 31, 52, 53):
        for a in range(a_count):
            r = response_probabilities(world, states, np.full(n, a), week)
            cell = np.arange(n) * a_count + a
            np.testing.assert_array_equal(table.convert(week)[cell], r.convert)
            np.testing.assert_array_equal(table.engage_contact[cell], r.engage_contact)
            np.testing.assert_array_equal(table.optout[cell], r.optout)
            np.testing.assert_array_equal(table.inquiry(week), r.inquiry)
            np.testing.assert_array_equal(
                table.lift, r.value / world.params.mean_value[states.segment]
            )


def test_response_table_of_fitted_tables_is_fitted_responses(world: WorldSpec) -> None:
    """A calibrated world's table, computed on whole tables, is bit-for-bit what the
    simulation reads state by state (:func:`fitted_responses`), every week and action."""
    fitted = fitted_world(world, 3)
    assert fitted.responses is not None
    table = ResponseTable.of(fitted)
    n, a_count = DiscreteLayout.of(fitted).n_states, fitted.actions.n_actions
    for week in (1, 20, 31, 52, 53):
        for a in range(a_count):
            r = fitted_responses(fitted.responses, np.arange(n), np.full(n, a), week)
            cell = np.arange(n) * a_count + a
            np.testing.assert_array_equal(table.convert(week)[cell], r.convert)
            np.testing.assert_array_equal(table.engage_contact[cell], r.engage_contact)
            np.testing.assert_array_equal(table.optout[cell], r.optout)
            np.testing.assert_array_equal(table.inquiry(week), r.inquiry)
    # the contact's own engagement: what the action's probability adds to none's, rescaled
    base = 1.0 / (1.0 + np.exp(-fitted.responses.engage_logit[:, 0]))
    with_contact = 1.0 / (1.0 + np.exp(-fitted.responses.engage_logit[:, 2]))
    r = fitted_responses(fitted.responses, np.arange(n), np.full(n, 2), 20)
    np.testing.assert_allclose(
        r.engage_contact, np.clip((with_contact - base) / (1.0 - base), 0.0, 1.0), rtol=1e-12
    )


@pytest.mark.parametrize("shape", [0.4, 1.0, 2.5, 4.0])
def test_keyed_gamma_is_gamma_distributed_and_a_function_of_the_key(shape: float) -> None:
    from scipy import stats

    key = np.random.default_rng(11).integers(0, 2**64 - 1, 50_000, np.uint64, endpoint=True)
    x = keyed_standard_gamma(key, np.full(key.shape[0], shape))
    assert stats.kstest(x, stats.gamma(shape).cdf).pvalue > 1e-3
    part = keyed_standard_gamma(key[::7], np.full(key[::7].shape[0], shape))
    np.testing.assert_array_equal(part, x[::7])


def test_a_converting_customer_gets_the_same_value_whatever_the_actions(
    world: WorldSpec,
) -> None:
    """Common random numbers per customer: kind and value noise do not depend on who else
    converts, so a customer converting under two policies books the same list value."""
    state, segment = _population(world, 20_000)
    summary = summarise(state_features(state, world.features), segment, world)
    n = segment.shape[0]
    a = sample_outcome(world, summary, np.zeros(n, np.int64), 10, np.random.default_rng(3))
    b = sample_outcome(world, summary, np.full(n, 3), 10, np.random.default_rng(3))
    both = a.converted & b.converted
    assert both.sum() > 100 and (a.converted != b.converted).any()
    np.testing.assert_array_equal(a.kind[both], b.kind[both])
    np.testing.assert_array_equal(a.list_value[both], b.list_value[both])


def test_conversion_kinds_follow_the_kind_probabilities(world: WorldSpec) -> None:
    state, segment = _population(world, 100_000)
    summary = summarise(state_features(state, world.features), segment, world)
    out = sample_outcome(world, summary, np.full(100_000, 4), 10, np.random.default_rng(8))
    p = world.params
    for s in range(len(world.segments)):
        kinds = out.kind[out.converted & (segment == s)]
        observed = np.bincount(kinds, minlength=p.kind_probs.shape[1]) / kinds.shape[0]
        se = np.sqrt(p.kind_probs[s] * (1 - p.kind_probs[s]) / kinds.shape[0])
        assert np.all(np.abs(observed - p.kind_probs[s]) <= 4 * se + 1e-12), s


def test_response_tables_do_not_keep_worlds_alive(world: WorldSpec) -> None:
    import gc
    import weakref

    other = replace(world, margin_rate=0.5)
    ResponseTable.of(other).convert(1)
    ref = weakref.ref(other)
    del other
    gc.collect()
    assert ref() is None


def test_out_of_range_actions_are_refused(world: WorldSpec) -> None:
    state, segment = _population(world, 10)
    summary = summarise(state_features(state, world.features), segment, world)
    bad = np.full(10, world.actions.n_actions)
    with pytest.raises(IndexError):
        sample_outcome(world, summary, bad, 10, np.random.default_rng(0))


def test_a_released_table_is_built_again_the_same(world: WorldSpec) -> None:
    """``ResponseTable.release`` drops a world's table (its memory) and the next use builds
    the same table again; releasing a world without a table is a no-op."""
    table = ResponseTable.of(world)
    before = table.convert(20).copy()
    ResponseTable.release(world)
    again = ResponseTable.of(world)
    assert again is not table
    np.testing.assert_array_equal(again.convert(20), before)
    np.testing.assert_array_equal(again.engage_contact, table.engage_contact)
    ResponseTable.release(world)
    ResponseTable.release(world)  # nothing cached: no error
    assert ResponseTable.of(world) is not again


def test_a_table_keeps_the_season_levels_that_fit_and_computes_the_rest_again(
    world: WorldSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Season levels beyond the table's memory are dropped, least recently used first, and
    computed again when a week needs them: the same numbers."""
    fitted = fitted_world(world, 3)
    weeks = (1, 20, 31, 52, 1, 20)
    expected = {w: ResponseTable(fitted).convert(w).copy() for w in weeks}
    level_bytes = expected[1].nbytes + ResponseTable(fitted).inquiry(1).nbytes
    monkeypatch.setattr(dynamics, "LEVEL_CACHE_BYTES", 2 * level_bytes)
    table = ResponseTable(fitted)
    for w in weeks:
        np.testing.assert_array_equal(table.convert(w), expected[w])
        assert len(table._convert) <= 2 and list(table._convert) == list(table._inquiry)
    assert len({int(table.season_level[w]) for w in weeks}) > 2  # the test evicts
