"""The discrete summary: bounds, round trips, and Markov consistency with ``advance``."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyopt.panel.state import advance, state_features
from journeyopt.sim.discrete import (
    DiscreteLayout,
    allowed_actions,
    discrete_state,
    next_summary,
    summarise,
)
from journeyopt.sim.dynamics import sample_week
from journeyopt.sim.population import initial_population
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.world import WorldSpec, load_world

WORLD = load_world("coworking")
LAYOUT = DiscreteLayout.of(WORLD)

weeks_or_never = st.one_of(st.just(float("nan")), st.floats(1, 500).map(np.floor))


@settings(max_examples=200, deadline=None)
@given(
    n_conv=st.integers(0, 10_000),
    recency=st.floats(1, 1000).map(np.floor),
    since_contact=weeks_or_never,
    since_engagement=weeks_or_never,
    email=st.booleans(),
    phone=st.booleans(),
    segment=st.integers(0, len(WORLD.segments) - 1),
)
def test_discrete_state_is_in_bounds_and_round_trips(
    n_conv: int,
    recency: float,
    since_contact: float,
    since_engagement: float,
    email: bool,
    phone: bool,
    segment: int,
) -> None:
    features = {
        "n_conversions": np.array([n_conv]),
        "recency_weeks": np.array([recency if n_conv else np.nan]),
        "weeks_since_contact": np.array([since_contact]),
        "weeks_since_engagement": np.array([since_engagement]),
        "opted_out_email": np.array([email]),
        "opted_out_phone": np.array([phone]),
    }
    index = discrete_state(features, np.array([segment]), WORLD)
    assert 0 <= index[0] < LAYOUT.n_states
    s = LAYOUT.decode(index)
    spec = WORLD.discrete
    assert s.conversions[0] == min(n_conv, spec.conversions_cap)
    assert s.recency[0] == (min(recency, spec.recency_cap_weeks) if n_conv else 0)
    assert 1 <= s.contact[0] <= spec.contact_cap_weeks
    assert 1 <= s.engagement[0] <= spec.engagement_cap_weeks
    assert s.optout[0] == email + 2 * phone
    np.testing.assert_array_equal(LAYOUT.encode(s), index)


def test_enumeration_is_a_bijection() -> None:
    states = LAYOUT.all_states()
    np.testing.assert_array_equal(LAYOUT.encode(states), np.arange(LAYOUT.n_states))
    assert LAYOUT.n_states == 3 * (1 + 3 * 27) * 5 * 9 * 4


def test_summary_masks_agree_with_the_contact_rules(world: WorldSpec) -> None:
    state, customers, _ = initial_population(world, 400, np.random.default_rng(0))
    opted = np.random.default_rng(1).random(state.opted_out.shape) < 0.4
    state = type(state)(**{**state.__dict__, "opted_out": opted})
    features = state_features(state, world.features)
    rules = ContactRules(world.actions, world.features)
    summary = summarise(features, customers.segment, world)
    np.testing.assert_array_equal(allowed_actions(summary, world), rules.masks(features))


def test_summary_is_markov_under_the_dynamics(world: WorldSpec) -> None:
    """Next week's summary computed from the features equals the one predicted from this
    week's summary and outcome alone: the property the exact optimum relies on."""
    state, customers, _ = initial_population(world, 3000, np.random.default_rng(2))
    rng = np.random.default_rng(3)
    seg = customers.segment
    for week in range(40):
        features = state_features(state, world.features)
        summary = summarise(features, seg, world)
        actions = rng.integers(0, world.actions.n_actions, size=(seg.shape[0],))
        out = sample_week(world, state, seg, actions, week % 52 + 1, rng)
        state = advance(state, out.activity)
        optout_bits = (out.activity.consent < 0).astype(np.int64) @ (
            1 << np.arange(len(world.channels))
        )
        predicted = next_summary(
            summary,
            world.discrete,
            out.converted,
            out.engaged,
            out.actions != 0,
            optout_bits,
        )
        actual = summarise(state_features(state, world.features), seg, world)
        for name, a, b in zip(actual._fields, actual, predicted, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} at week {week}")


weeks_any = st.one_of(
    st.just(float("nan")),
    st.just(float("inf")),
    st.floats(-5, 500, allow_nan=False),
)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 10_000),
            weeks_any,
            weeks_any,
            weeks_any,
            st.booleans(),
            st.booleans(),
            st.integers(0, len(WORLD.segments) - 1),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_fast_discrete_state_equals_the_summary_path(rows: list[tuple]) -> None:
    """The direct index computation agrees with ``encode(summarise(...))`` on any features,
    including never (NaN), out-of-range and fractional weeks."""
    n_conv, recency, contact, engagement, email, phone, segment = map(
        np.array, zip(*rows, strict=True)
    )
    features = {
        "n_conversions": n_conv,
        "recency_weeks": np.where(n_conv > 0, recency, np.nan),
        "weeks_since_contact": contact,
        "weeks_since_engagement": engagement,
        "opted_out_email": email,
        "opted_out_phone": phone,
    }
    expected = LAYOUT.encode(summarise(features, segment, WORLD))
    np.testing.assert_array_equal(discrete_state(features, segment, WORLD), expected)
    # a recency given for prospects is ignored by both
    features["recency_weeks"] = recency
    np.testing.assert_array_equal(discrete_state(features, segment, WORLD), expected)


def test_fast_discrete_state_on_a_simulated_population(world: WorldSpec) -> None:
    state, customers, _ = initial_population(world, 5000, np.random.default_rng(7))
    features = state_features(state, world.features)
    np.testing.assert_array_equal(
        discrete_state(features, customers.segment, world),
        DiscreteLayout.of(world).encode(summarise(features, customers.segment, world)),
    )
