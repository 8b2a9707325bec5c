"""The optional components of the discrete summary: the weekly contact pattern and the last
contact's action. Off by default (numbering unchanged), Markov when on, and the same digits
from the simulator's state and from the panel built from the rendered logs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyopt.errors import ConfigError
from journeyopt.panel.state import state_features
from journeyopt.sim.discrete import DiscreteLayout, Summary, discrete_state, next_summary, summarise
from journeyopt.sim.world import WorldSpec, load_world
from tests.panel.windows import feature_windows, panel_config
from tests.sim.caps import discrete_spec
from tests.sim.rendered import rendered_states


def with_components(
    world: WorldSpec, pattern_weeks: int, last_action: bool, gap: tuple[int, int] = (0, 1)
) -> WorldSpec:
    """``world`` whose summary keeps the pattern and/or the last action and/or the previous
    gap between conversions (``gap``: its cap and bin width, weeks; features extended)."""
    contacts = world.actions.names[1:]
    features = replace(
        world.features.with_rule_features(
            (pattern_weeks,) if pattern_weeks else (), contacts if last_action else ()
        ),
        recent_contacts=True,
        conversion_gap=bool(gap[0]),
    )
    discrete = replace(
        world.discrete,
        contact_pattern_weeks=pattern_weeks,
        last_action=last_action,
        gap_cap_weeks=gap[0],
        gap_bin_weeks=gap[1],
    )
    return replace(world, discrete=discrete, features=features)


@pytest.fixture(scope="module")
def coworking() -> WorldSpec:
    return load_world("coworking")


def test_components_are_off_by_default_and_the_numbering_unchanged(coworking: WorldSpec) -> None:
    layout = DiscreteLayout.of(coworking)
    cap = coworking.discrete.contact_cap_weeks
    assert layout.dims[2] == cap
    np.testing.assert_array_equal(layout.recent.code.reshape(-1), np.arange(cap))
    # only the reachable (contact, pattern, last action) triples are numbered: with a 4-week
    # pattern and cap 5, 15 patterns x 4 contact actions below the cap, the empty one at it
    on = DiscreteLayout.of(with_components(coworking, 4, True))
    assert on.n_states == layout.n_states // cap * (15 * 4 + 1)
    assert DiscreteLayout.of(with_components(coworking, 4, False)).dims[2] == 16
    assert DiscreteLayout.of(with_components(coworking, 0, True)).dims[2] == 4 * 4 + 1
    index = np.arange(0, layout.n_states, 97)
    summary = layout.decode(index)
    assert (summary.pattern == 0).all() and (summary.last_action == 0).all()
    np.testing.assert_array_equal(layout.encode(summary), index)


@pytest.mark.parametrize("weeks", [1, 7, -1])
def test_pattern_weeks_must_be_off_or_two_to_six(weeks: int) -> None:
    with pytest.raises(ConfigError, match="contact_pattern_weeks must be 0"):
        discrete_spec(contact_pattern_weeks=weeks)


def test_a_world_must_count_what_its_summary_reads(coworking: WorldSpec) -> None:
    with pytest.raises(ConfigError, match="recent_contacts"):
        replace(coworking, discrete=replace(coworking.discrete, contact_pattern_weeks=4))
    counting = replace(coworking, features=replace(coworking.features, recent_contacts=True))
    with pytest.raises(ConfigError, match="rule_windows"):
        replace(counting, discrete=replace(coworking.discrete, contact_pattern_weeks=4))
    with pytest.raises(ConfigError, match="rule_actions"):
        replace(counting, discrete=replace(coworking.discrete, last_action=True))


def test_the_features_of_a_spec_without_recent_contacts_are_unchanged() -> None:
    """Rule windows alone (contact rules) do not add the summary's features: the serving
    API's feature records of an existing rules set-up keep their fields."""
    spec = feature_windows(contact_channels=("email",), rule_windows=(4,), rule_actions=("a",))
    assert "contact_pattern" not in spec.rule_feature_names
    assert "last_contact_action" not in spec.rule_feature_names
    on = replace(spec, recent_contacts=True)
    assert on.rule_feature_names[-3:] == (
        "contact_pattern",
        "contact_pattern_email",
        "last_contact_action",
    )


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([0, 2, 4, 6]),
    st.booleans(),
    st.integers(0, 2**32 - 1),
    st.sampled_from([(0, 1), (5, 1), (9, 2), (27, 13)]),
)
def test_encode_decode_round_trip_and_markov_next_summary(
    pattern_weeks: int, last_action: bool, seed: int, gap: tuple[int, int]
) -> None:
    world = with_components(load_world("coworking"), pattern_weeks, last_action, gap)
    layout = DiscreteLayout.of(world)
    rng = np.random.default_rng(seed)
    n = 200
    index = rng.integers(0, layout.n_states, n)
    summary = layout.decode(index)
    np.testing.assert_array_equal(layout.encode(summary), index)
    converted, engaged, contacted = (rng.random((3, n)) < 0.5).astype(bool)
    action = np.where(contacted, rng.integers(1, world.actions.n_actions, n), 0)
    nxt = next_summary(
        summary, world.discrete, converted, engaged, contacted, np.zeros(n, np.int64), action
    )
    mask = (1 << pattern_weeks) - 1
    np.testing.assert_array_equal(nxt.pattern, ((summary.pattern << 1) | contacted) & mask)
    cap = world.discrete.contact_cap_weeks
    kept = np.where(nxt.contact < cap, summary.last_action, 0)
    expected_last = np.where(contacted, action, kept) if last_action else 0
    np.testing.assert_array_equal(nxt.last_action, expected_last)
    # a repeat conversion sets the gap to this week's recency, binned; else it is kept
    n_bins = world.discrete.n_gap_bins
    binned = np.minimum((summary.recency - 1) // gap[1] + 1, n_bins)
    repeat = converted & (summary.conversions > 0)
    expected_gap = np.where(repeat, binned, summary.gap) if gap[0] else 0
    np.testing.assert_array_equal(nxt.gap, expected_gap)
    if gap[0]:  # the gap exists exactly for customers with two or more conversions
        np.testing.assert_array_equal(np.asarray(nxt.gap) > 0, nxt.conversions >= 2)
    # the next summary is a reachable state of the same layout (encode refuses others)
    again = layout.decode(layout.encode(nxt))
    for name in Summary._fields:
        np.testing.assert_array_equal(
            np.broadcast_to(getattr(again, name), (n,)), np.broadcast_to(getattr(nxt, name), (n,))
        )


def test_an_impossible_summary_is_refused(coworking: WorldSpec) -> None:
    layout = DiscreteLayout.of(with_components(coworking, 4, False))
    summary = layout.decode(np.arange(2))
    with pytest.raises(ValueError, match="disagree"):
        layout.encode(summary._replace(contact=np.array([1, 1]), pattern=np.array([2, 0])))


def test_next_summary_needs_the_action_when_the_last_action_is_kept(coworking: WorldSpec) -> None:
    world = with_components(coworking, 0, True)
    summary = DiscreteLayout.of(world).decode(np.arange(3))
    no = np.zeros(3, bool)
    with pytest.raises(ValueError, match="pass the week's action"):
        next_summary(summary, world.discrete, no, no, no, np.zeros(3, np.int64))


def test_panel_from_rendered_logs_equals_the_simulators_summary(
    coworking: WorldSpec, tmp_path: Path
) -> None:
    """Simulate a world whose summary keeps every optional component, render its raw logs,
    ingest them and build the state at the end: every customer's summary (pattern, last action
    and the previous gap between conversions included) is the simulator's own."""
    world = with_components(coworking, 4, True, gap=(9, 2))
    panel_cfg = panel_config(
        rule_windows=[4],
        rule_actions=list(world.actions.names[1:]),
        recent_contacts=True,
        conversion_gap=True,
    )
    rendered = rendered_states(world, tmp_path, panel_cfg, weeks=20)
    ids, panel_state, final, segment = (
        rendered.ids,
        rendered.panel,
        rendered.simulator,
        rendered.segment,
    )
    expected = summarise(state_features(final, world.features), segment, world)
    actual = summarise(state_features(panel_state, world.features), segment, world)
    assert np.asarray(expected.pattern).any() and np.asarray(expected.last_action).any()
    assert len(np.unique(np.asarray(expected.gap))) >= 3  # none yet and two bins at least
    for name in Summary._fields:
        np.testing.assert_array_equal(
            np.asarray(getattr(actual, name)), np.asarray(getattr(expected, name)), err_msg=name
        )
    np.testing.assert_array_equal(
        discrete_state(state_features(panel_state, world.features), segment, world),
        DiscreteLayout.of(world).encode(expected),
    )
    # the scoring API's features from the same logs (serving.features, the panel's walk)
    from journeyopt.serving.features import batch_from_logs

    batch = batch_from_logs(rendered.canonical, world, rendered.as_of, customer_ids=list(ids))
    for name in ("contact_pattern", "last_contact_action", "conversion_gap_weeks"):
        np.testing.assert_array_equal(
            np.asarray(batch.features[name], np.int64),
            np.asarray(state_features(final, world.features)[name], np.int64),
            err_msg=name,
        )


def test_design_columns_exist_only_for_components_that_are_on(coworking: WorldSpec) -> None:
    from journeyopt.calibration.design import Design

    n_seg, n_actions = len(coworking.segments), coworking.actions.n_actions
    cap = coworking.discrete.contact_cap_weeks
    off = Design(DiscreteLayout.of(coworking), n_actions, seasonal=False)
    on_world = with_components(coworking, 4, True)
    on = Design(DiscreteLayout.of(on_world), n_actions, seasonal=False)
    pattern_cols = n_seg * 5 + (n_actions - 1) * 5  # popcount 0..4 per segment and per action
    assert on.n_columns == off.n_columns + pattern_cols + n_seg * (n_actions - 1) * cap
    # a customer contacted 1 and 3 weeks ago by a call (index 4): popcount 2, last action 4
    values = (1, 1, 5, 1, 9, 0, 0, 0b101, 4)
    summary = Summary(*(np.array([v], np.int64) for v in values))
    row_on = on.matrix(summary, np.array([2])).toarray()[0]
    row_off = off.matrix(summary._replace(pattern=0, last_action=0), np.array([2])).toarray()[0]
    np.testing.assert_array_equal(row_on[: off.n_columns], row_off)
    extra = np.flatnonzero(row_on[off.n_columns :]) + off.n_columns
    base_cols = off.n_columns
    assert list(extra) == [
        base_cols + 1 * 5 + 2,  # pattern count 2, segment 1
        base_cols + n_seg * 5 + 1 * 5 + 2,  # action 2 (column 1) x count 2
        base_cols + pattern_cols + (1 * (n_actions - 1) + 3) * cap + 0,  # seg 1, last 4, week 1
    ]
