"""The previous gap between conversions as an optional component of the discrete summary:
computed by the one state code, off by default (numbering and features unchanged), numbered
only where it exists (two or more conversions), and refused where it could not stay Markov."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from journeyopt.calibration.design import Design
from journeyopt.errors import ConfigError
from journeyopt.panel.state import CustomerState, WeekActivity, advance, state_features
from journeyopt.sim.discrete import DiscreteLayout, Summary, discrete_state, summarise
from journeyopt.sim.world import WorldSpec, load_world
from tests.panel.windows import feature_windows
from tests.sim.caps import discrete_spec


def with_gap(world: WorldSpec, cap: int, width: int = 1) -> WorldSpec:
    return replace(
        world,
        features=replace(world.features, conversion_gap=True),
        discrete=replace(world.discrete, gap_cap_weeks=cap, gap_bin_weeks=width),
    )


@pytest.fixture(scope="module")
def coworking() -> WorldSpec:
    return load_world("coworking")


def test_the_state_code_keeps_the_weeks_between_the_last_two_converting_weeks() -> None:
    spec = feature_windows(contact_channels=("email",))
    state = CustomerState.new(spec, 0, np.zeros(3, np.int32))
    # customer 0 converts in weeks 1, 5 and 7; customer 1 in week 2 only; customer 2 twice in
    # week 3 (one week, no gap between weeks)
    buys = {1: [1, 0, 0], 2: [0, 1, 0], 3: [0, 0, 2], 5: [1, 0, 0], 7: [1, 0, 0]}
    for week in range(9):
        quiet = WeekActivity.quiet(3, 1)
        activity = replace(quiet, conversions=np.array(buys.get(week, [0, 0, 0]), np.int32))
        state = advance(state, activity)
        if week == 5:
            np.testing.assert_array_equal(state.conversion_gap, [4, 0, 0])
    np.testing.assert_array_equal(state.conversion_gap, [2, 0, 0])
    assert "conversion_gap_weeks" not in state_features(state, spec)
    on = replace(spec, conversion_gap=True)
    assert on.rule_feature_names == ("conversion_gap_weeks",)
    np.testing.assert_array_equal(state_features(state, on)["conversion_gap_weeks"], [2, 0, 0])


def test_off_by_default_and_the_numbering_unchanged(coworking: WorldSpec) -> None:
    off = DiscreteLayout.of(coworking)
    s = coworking.discrete
    assert s.gap_cap_weeks == 0 and s.n_gap_bins == 1
    assert off.dims[1] == 1 + s.conversions_cap * s.recency_cap_weeks
    # bins 1-2, 3-4, 5-6, 7-8 and "9 or more" for 2 and 3+ conversions: 1 + R + 2 * 5 * R
    on = DiscreteLayout.of(with_gap(coworking, 9, 2))
    r = s.recency_cap_weeks
    assert on.dims[1] == 1 + r + (s.conversions_cap - 1) * 5 * r
    assert on.n_states == off.n_states // off.dims[1] * on.dims[1]
    states = on.all_states()
    np.testing.assert_array_equal(on.encode(states), np.arange(on.n_states))
    np.testing.assert_array_equal(states.gap > 0, states.conversions >= 2)
    assert set(np.unique(states.gap)) == {0, 1, 2, 3, 4, 5}


@pytest.mark.parametrize(
    ("caps", "match"),
    [
        ({"gap_cap_weeks": 1}, "0 \\(off\\) or 2..recency_cap_weeks"),
        ({"gap_cap_weeks": 28}, "0 \\(off\\) or 2..recency_cap_weeks"),
        ({"gap_cap_weeks": 10, "recency_cap_weeks": 9}, "2..recency_cap_weeks \\(9\\)"),
        ({"gap_cap_weeks": 10, "gap_bin_weeks": 2}, "must be a multiple of gap_bin_weeks"),
        ({"gap_bin_weeks": 0}, "gap_bin_weeks must be >= 1"),
    ],
)
def test_invalid_gap_settings_are_refused(caps: dict[str, int], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        discrete_spec(**caps)


def test_a_world_must_give_the_feature_its_summary_reads(coworking: WorldSpec) -> None:
    with pytest.raises(ConfigError, match="conversion_gap: true"):
        replace(coworking, discrete=replace(coworking.discrete, gap_cap_weeks=9))


def test_within_history_lowers_the_gap_cap_with_the_recency_cap() -> None:
    spec, clipped = discrete_spec(gap_cap_weeks=9, gap_bin_weeks=2).within_history(6)
    assert (spec.recency_cap_weeks, spec.gap_cap_weeks, spec.gap_bin_weeks) == (6, 5, 2)
    assert clipped["gap_cap_weeks"] == (9, 5)
    narrow, _ = discrete_spec(gap_cap_weeks=7, gap_bin_weeks=3).within_history(3)
    assert (narrow.gap_cap_weeks, narrow.gap_bin_weeks) == (3, 2)
    kept, none = discrete_spec(gap_cap_weeks=9, gap_bin_weeks=2).within_history(40)
    assert kept.gap_cap_weeks == 9 and "gap_cap_weeks" not in none


def test_features_map_to_bins_and_the_fast_index_agrees(coworking: WorldSpec) -> None:
    world = with_gap(coworking, 9, 2)
    n = 8
    features = state_features(
        CustomerState.new(world.features, 30, np.zeros(n, np.int32)), world.features
    )
    features["n_conversions"] = np.array([0, 1, 2, 2, 3, 5, 2, 2], np.int32)
    features["recency_weeks"] = np.array([np.nan, 3, 1, 4, 9, 30, 2, 2])
    features["conversion_gap_weeks"] = np.array([0, 0, 1, 2, 3, 8, 9, 0], np.int32)
    segment = np.zeros(n, np.int64)
    summary = summarise(features, segment, world)
    # gap 1-2 -> bin 1, 3-4 -> 2, 7-8 -> 4, 9+ -> 5; a same-week repeat (0) counts as bin 1
    np.testing.assert_array_equal(summary.gap, [0, 0, 1, 1, 2, 4, 5, 1])
    layout = DiscreteLayout.of(world)
    np.testing.assert_array_equal(discrete_state(features, segment, world), layout.encode(summary))


def test_design_columns_exist_only_when_the_gap_is_on(coworking: WorldSpec) -> None:
    n_actions = coworking.actions.n_actions
    off = Design(DiscreteLayout.of(coworking), n_actions, seasonal=False)
    on = Design(DiscreteLayout.of(with_gap(coworking, 9, 2)), n_actions, seasonal=False)
    n_seg, r = len(coworking.segments), coworking.discrete.recency_cap_weeks
    assert on.n_columns == off.n_columns + n_seg * 5 + 5 * r + 5 + (n_actions - 1) * 5
    values = (1, 2, 4, 5, 9, 0, 0, 0, 0, 3)  # two conversions, recency 4, gap bin 3
    summary = Summary(*(np.array([v], np.int64) for v in values))
    row_on = on.matrix(summary, np.array([2])).toarray()[0]
    row_off = off.matrix(summary._replace(gap=0), np.array([2])).toarray()[0]
    np.testing.assert_array_equal(row_on[: off.n_columns], row_off)
    extra = np.flatnonzero(row_on[off.n_columns :])
    assert list(extra) == [
        1 * 5 + 2,  # segment 1 x gap bin 3
        n_seg * 5 + 2 * r + 3,  # gap bin 3 x recency 4
        n_seg * 5 + 5 * r + 2,  # gap bin 3 x log(recency)
        n_seg * 5 + 5 * r + 5 + 1 * 5 + 2,  # action 2 (column 1) x gap bin 3
    ]
    assert row_on[off.n_columns + n_seg * 5 + 5 * r + 2] == pytest.approx(np.log(4))
    # one conversion: no gap columns
    single = summary._replace(conversions=np.array([1]), gap=np.array([0]))
    assert not on.matrix(single, np.array([2])).toarray()[0][off.n_columns :].any()
