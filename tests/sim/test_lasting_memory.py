"""The last *lasting* action (``DiscreteSpec.lasting_actions``): a memory of the last contact of
a set ``L`` of actions that contacts of other actions do not erase, with its own weeks since
it. Point-in-time in the panel, the same from the simulator's state and from its rendered logs,
Markov in the DP, and chosen against the plain last action by held-out likelihood."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from journeyopt.calibration.config import SummaryConfig
from journeyopt.calibration.design import Design
from journeyopt.calibration.summary import candidate_specs, lasting_variants
from journeyopt.errors import ConfigError
from journeyopt.panel.state import (
    NEVER,
    CustomerState,
    WeekActivity,
    action_weeks_feature,
    advance,
    lasting_memory,
    state_features,
)
from journeyopt.sim.discrete import DiscreteLayout, Summary, discrete_state, next_summary, summarise
from journeyopt.sim.optimum import solve_optimum
from journeyopt.sim.world import WorldSpec, load_world
from tests.panel.windows import feature_windows, panel_config
from tests.sim.caps import discrete_spec
from tests.sim.rendered import rendered_states
from tests.sim.test_summary_components import with_components


def lasting_world(world: WorldSpec, lasting: tuple[str, ...]) -> WorldSpec:
    """``world`` whose summary keeps the last lasting action of ``lasting`` (features extended
    by each action's weeks since its last contact)."""
    base = with_components(world, 0, True)
    return replace(
        base,
        features=replace(base.features, action_recency=True),
        discrete=replace(base.discrete, lasting_actions=lasting),
    )


@pytest.fixture(scope="module")
def coworking() -> WorldSpec:
    return load_world("coworking")


def _week(n: int, k: int, contacts: dict[int, int]) -> WeekActivity:
    """A week in which customer ``i`` got one contact of rule action ``contacts[i]``."""
    quiet = WeekActivity.quiet(n, 1, k)
    assert quiet.action_contacts is not None
    for i, a in contacts.items():
        quiet.contacts[i, 0] = 1
        quiet.action_contacts[i, a] = 1
    return quiet


def test_a_later_non_lasting_contact_leaves_the_memory_a_lasting_one_replaces_it() -> None:
    spec = feature_windows(
        contact_channels=("x",), rule_actions=("a", "b", "c"), action_recency=True
    )
    state = CustomerState.new(spec, 0, np.zeros(3, np.int32))
    weeks = [{0: 1, 1: 1, 2: 1}, {}, {0: 0, 1: 2}, {}]  # b for all; then a (not lasting) or c
    for contacts in weeks:
        state = advance(state, _week(3, 3, contacts))
    features = state_features(state, spec)
    code, since = lasting_memory(features, ("b", "c"))
    # customer 0: b 4 weeks ago, a 2 weeks ago leaves it; customer 1: c 2 weeks ago replaces
    # it; customer 2: b 4 weeks ago
    np.testing.assert_array_equal(code, [1, 2, 1])
    np.testing.assert_array_equal(since, [4.0, 2.0, 4.0])
    np.testing.assert_array_equal(features[action_weeks_feature("a")], [2.0, np.nan, np.nan])
    # the plain last action follows every contact
    np.testing.assert_array_equal(state.last_contact_action, [1, 3, 2])
    assert lasting_memory(state_features(CustomerState.new(spec, 0, np.zeros(1)), spec), ("b",))[
        0
    ].tolist() == [0]


def test_features_of_a_spec_without_action_recency_are_unchanged() -> None:
    spec = feature_windows(contact_channels=("x",), rule_actions=("a",), recent_contacts=True)
    state = advance(CustomerState.new(spec, 0, np.zeros(2, np.int32)), _week(2, 1, {0: 0}))
    names = list(state_features(state, spec))
    assert not any(n.startswith("weeks_since_action_") for n in names)
    on = replace(spec, action_recency=True)
    assert list(state_features(state, on)) == [*names, action_weeks_feature("a")]
    assert on.all_feature_names == tuple(state_features(state, on))
    assert state.last_action_week.tolist() == [[0], [NEVER]]


def test_lasting_actions_need_the_last_action_and_the_features(coworking: WorldSpec) -> None:
    with pytest.raises(ConfigError, match="needs last_action"):
        discrete_spec(lasting_actions=("a",))
    with pytest.raises(ConfigError, match="distinct contact actions"):
        discrete_spec(last_action=True, lasting_actions=("a", "a"))
    base = with_components(coworking, 0, True)
    call = coworking.actions.names[-1]
    with pytest.raises(ConfigError, match="action_recency"):
        replace(base, discrete=replace(base.discrete, lasting_actions=(call,)))
    with pytest.raises(ConfigError, match="unknown actions"):
        lasting_world(coworking, ("nothing_like_it",))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_encode_decode_round_trip_and_markov_next_summary(coworking: WorldSpec, seed: int) -> None:
    names = coworking.actions.names
    for pattern in (0, 4):
        world = lasting_world(coworking, (names[4], names[2]))
        if pattern:
            world = replace(
                world,
                features=world.features.with_rule_features((pattern,), ()),
                discrete=replace(world.discrete, contact_pattern_weeks=pattern),
            )
        layout = DiscreteLayout.of(world)
        rng = np.random.default_rng(seed)
        n = 300
        index = rng.integers(0, layout.n_states, n)
        summary = layout.decode(index)
        np.testing.assert_array_equal(layout.encode(summary), index)
        cap = world.discrete.contact_cap_weeks
        assert ((np.asarray(summary.last_action) > 0) == (np.asarray(summary.lasting) < cap)).all()
        assert (summary.contact <= np.asarray(summary.lasting)).all()
        converted, engaged, contacted = (rng.random((3, n)) < 0.5).astype(bool)
        action = np.where(contacted, rng.integers(1, world.actions.n_actions, n), 0)
        code = world.lasting_codes[action]
        nxt = next_summary(
            summary,
            world.discrete,
            converted,
            engaged,
            contacted,
            np.zeros(n, np.int64),
            action,
            code,
        )
        aged = np.minimum(np.asarray(summary.lasting) + 1, cap)
        np.testing.assert_array_equal(nxt.lasting, np.where(code > 0, 1, aged))
        kept = np.where(aged < cap, summary.last_action, 0)
        np.testing.assert_array_equal(nxt.last_action, np.where(code > 0, code, kept))
        again = layout.decode(layout.encode(nxt))  # reachable: encode refuses others
        for name in Summary._fields:
            np.testing.assert_array_equal(
                np.broadcast_to(getattr(again, name), (n,)),
                np.broadcast_to(getattr(nxt, name), (n,)),
            )
    with pytest.raises(ValueError, match="lasting"):
        next_summary(summary, world.discrete, converted, engaged, contacted, code * 0, action)


def test_panel_from_rendered_logs_equals_the_simulators_lasting_memory(
    coworking: WorldSpec, tmp_path: Path
) -> None:
    """Simulate a world whose summary keeps the last lasting action, render its raw logs,
    ingest them and build the state at the end: every customer's memory is the simulator's;
    the scoring API's features from the same logs agree; and the memory differs from the
    plain last action for some customers (a later non-lasting contact)."""
    names = coworking.actions.names
    world = lasting_world(coworking, (names[4], names[3]))
    panel_cfg = panel_config(
        rule_actions=list(names[1:]), recent_contacts=True, action_recency=True
    )
    rendered = rendered_states(world, tmp_path, panel_cfg, weeks=20)
    final, segment = rendered.simulator, rendered.segment
    expected = summarise(state_features(final, world.features), segment, world)
    actual = summarise(state_features(rendered.panel, world.features), segment, world)
    for name in Summary._fields:
        np.testing.assert_array_equal(
            np.asarray(getattr(actual, name)), np.asarray(getattr(expected, name)), err_msg=name
        )
    cap = world.discrete.contact_cap_weeks
    assert (np.asarray(expected.last_action) > 0).sum() >= 5
    assert (np.asarray(expected.lasting) > expected.contact).sum() >= 5  # another contact since
    np.testing.assert_array_equal(
        discrete_state(state_features(rendered.panel, world.features), segment, world),
        DiscreteLayout.of(world).encode(expected),
    )
    from journeyopt.serving.features import batch_from_logs

    batch = batch_from_logs(
        rendered.canonical, world, rendered.as_of, customer_ids=list(rendered.ids)
    )
    truth = state_features(final, world.features)
    for a in names[1:]:
        np.testing.assert_array_equal(
            np.asarray(batch.features[action_weeks_feature(a)], np.float64),
            np.asarray(truth[action_weeks_feature(a)], np.float64),
            err_msg=a,
        )
    assert int(np.asarray(expected.lasting).max()) == cap


def test_the_memory_at_week_t_reads_only_contacts_before_t(
    coworking: WorldSpec, tmp_path: Path
) -> None:
    """Point-in-time: every panel row's weeks since each action equals the weeks since that
    action's last logged decision strictly before the row's week."""
    from journeyopt.panel.build import build_panel

    names = coworking.actions.names
    world = lasting_world(coworking, (names[4],))
    panel_cfg = panel_config(
        rule_actions=list(names[1:]), recent_contacts=True, action_recency=True
    )
    rendered = rendered_states(world, tmp_path, panel_cfg, weeks=16)
    panel = build_panel(rendered.canonical, panel_cfg, world.channels)
    panel = panel.sort_values(["customer_id", "week"])
    for a in names[1:]:
        took = panel["week"].where(panel["action"].astype(str) == a)
        # the last week with this action strictly before the row's week
        before = took.groupby(panel["customer_id"]).transform(lambda s: s.ffill().shift(1))
        expected = panel["week"] - before
        got = panel[action_weeks_feature(a)]
        pd.testing.assert_series_equal(
            got.astype(np.float64), expected.astype(np.float64), check_names=False
        )
        assert got.notna().sum() > 20


def test_design_reads_the_weeks_since_the_lasting_contact(coworking: WorldSpec) -> None:
    names = coworking.actions.names
    world = lasting_world(coworking, (names[4],))
    plain = with_components(coworking, 0, True)
    n_seg, cap = len(coworking.segments), coworking.discrete.contact_cap_weeks
    d_plain = Design(DiscreteLayout.of(plain), coworking.actions.n_actions, seasonal=False)
    d_last = Design(DiscreteLayout.of(world), coworking.actions.n_actions, seasonal=False)
    assert d_plain.n_columns - d_last.n_columns == n_seg * (len(names) - 2) * cap
    # contacted 1 week ago (a newsletter), the lasting call 3 weeks ago: the lasting cell of
    # lag 3 is on, no lag-1 cell
    values = dict(
        segment=0,
        conversions=1,
        recency=5,
        contact=1,
        engagement=9,
        optout=0,
        last_action=1,
        lasting=3,
    )
    summary = Summary(**{k: np.array([v], np.int64) for k, v in values.items()})
    row = d_last.matrix(summary, np.array([0])).toarray()[0]
    start = d_last.n_columns - d_last.n_state_action_columns  # no season block: 0
    assert start == 0
    blocks = d_last._blocks
    offset = sum(list(blocks.values())[: list(blocks).index("last_action_contact")])
    cells = np.flatnonzero(row[offset : offset + blocks["last_action_contact"]])
    assert cells.tolist() == [2]


def test_the_dp_is_exact_over_the_lasting_summary(coworking: WorldSpec) -> None:
    """The DP's transitions keep the memory through a week without a lasting contact, and the
    exact optimum solves over the lasting summary's states."""
    names = coworking.actions.names
    world = lasting_world(coworking, (names[4],))
    layout = DiscreteLayout.of(world)
    states = layout.all_states()
    none = np.zeros(layout.n_states, np.int64)
    flags = np.zeros(layout.n_states, bool)
    nxt = next_summary(states, world.discrete, flags, flags, flags, none, none, none)
    cap = world.discrete.contact_cap_weeks
    remembered = (np.asarray(states.lasting) < cap - 1) & (np.asarray(states.last_action) > 0)
    assert (np.asarray(nxt.last_action)[remembered] == 1).all()
    optimum = solve_optimum(world, 4, 0.99)
    assert np.isfinite(optimum.value(np.arange(0, layout.n_states, 101), 0)).all()


def test_candidates_offer_every_small_lasting_set_beside_the_plain_last_action() -> None:
    actions = ("none", "a", "b", "c", "d")
    spec = discrete_spec(last_action=True)
    assert [v.lasting_actions for v in lasting_variants(spec, actions, 1)] == [
        ("a",),
        ("b",),
        ("c",),
        ("d",),
    ]
    assert len(lasting_variants(spec, actions, 2)) == 4 + 6
    assert len(lasting_variants(spec, actions, 9)) == 4 + 6 + 4  # never all four
    assert lasting_variants(discrete_spec(), actions, 2) == ()
    cfg = SummaryConfig(
        select=True, pattern_weeks=[0], last_action=[False, True], lasting_max_actions=1
    )
    specs = candidate_specs(discrete_spec(), cfg, actions=actions)
    assert [(s.last_action, s.lasting_actions) for s in specs] == [
        (False, ()),
        (True, ()),
        (True, ("a",)),
        (True, ("b",)),
        (True, ("c",)),
        (True, ("d",)),
    ]
    with pytest.raises(ConfigError, match="lasting_max_actions"):
        SummaryConfig(lasting_max_actions=-1)
