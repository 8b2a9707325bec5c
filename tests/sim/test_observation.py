"""The observation encoding: layout, range, and exact recovery of the discrete summary."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyopt.panel.state import state_features
from journeyopt.sim.discrete import discrete_state
from journeyopt.sim.env import InitialPool
from journeyopt.sim.observation import decode, encode, observation_layout
from journeyopt.sim.world import WorldSpec, load_world

WORLD = load_world("coworking")
POOL = InitialPool.draw(WORLD, 400, seed=1, horizon_weeks=52)


def test_layout_is_documented_and_in_range(world: WorldSpec) -> None:
    layout = observation_layout(world)
    features = state_features(POOL.state, world.features)
    obs = encode(layout, features, POOL.segment, 30)
    assert obs.shape == (400, layout.size) and obs.dtype == np.float32
    assert len(set(layout.columns)) == layout.size
    assert obs.min() >= 0.0 and obs.max() <= 1.0
    never = obs[:, layout.index("recency_weeks_never")] == 1.0
    np.testing.assert_array_equal(never, np.isnan(features["recency_weeks"]))
    np.testing.assert_array_equal(obs[never, layout.index("recency_weeks")], 0.0)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(st.integers(0, 399), min_size=1, max_size=30),
    contact=st.lists(st.one_of(st.none(), st.integers(1, 200)), min_size=30, max_size=30),
    engagement=st.lists(st.one_of(st.none(), st.integers(1, 200)), min_size=30, max_size=30),
    optout=st.lists(st.integers(0, 3), min_size=30, max_size=30),
    week_of_year=st.integers(1, 53),
)
def test_discrete_state_recovered_from_observation(
    rows: list[int],
    contact: list[int | None],
    engagement: list[int | None],
    optout: list[int],
    week_of_year: int,
) -> None:
    """The DP optimum is reachable from observations: the summary is a function of them."""
    n = len(rows)
    features = {k: np.array(v)[rows] for k, v in state_features(POOL.state, WORLD.features).items()}
    features["weeks_since_contact"] = np.array([np.nan if c is None else c for c in contact[:n]])
    features["weeks_since_engagement"] = np.array(
        [np.nan if e is None else e for e in engagement[:n]]
    )
    features["opted_out_email"] = np.array([o & 1 for o in optout[:n]], bool)
    features["opted_out_phone"] = np.array([o & 2 for o in optout[:n]], bool)
    segment = POOL.segment[rows]
    layout = observation_layout(WORLD)
    decoded, seg, woy = decode(layout, encode(layout, features, segment, week_of_year))
    np.testing.assert_array_equal(seg, segment)
    assert (woy == week_of_year).all()
    np.testing.assert_array_equal(
        discrete_state(decoded, seg, WORLD), discrete_state(features, segment, WORLD)
    )
