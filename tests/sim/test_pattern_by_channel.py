"""A contact pattern by channel: contact rules that count some channels only ("at most 2
e-mails and 1 call in any 5 weeks", the coworking demo's) are seen by the discrete summary,
so the exact optimum, and every value computed from it, plans under them.

Contracts: the numbering and the Markov step of the new digits; the panel of rendered logs
gives the simulator's own summary (one state code); over simulated customers the summary's
verdict on every per-channel cap it covers is the full state's; the plan never asks for a
contact the rules forbid and its exact value is what simulation gives; the calibration asks
for the component exactly when the rules need it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyopt.calibration.config import CapsConfig, SummaryConfig
from journeyopt.calibration.rules_check import (
    caps_with_rule_components,
    with_rule_components,
)
from journeyopt.errors import ConfigError
from journeyopt.panel.state import state_features
from journeyopt.sim.config import RulesConfig
from journeyopt.sim.discrete import (
    DiscreteLayout,
    Summary,
    discrete_state,
    next_summary,
    pattern_weeks,
    summarise,
)
from journeyopt.sim.optimum import cyclic_weeks_of_year, evaluate_table_policy, solve_optimum
from journeyopt.sim.summary_rules import plan_rules, rule_components
from journeyopt.sim.world import DiscreteSpec, WorldSpec
from tests.panel.windows import panel_config
from tests.sim.rendered import rendered_states
from tests.sim.worlds import guarded_runs, random_contact_trajectory

HORIZON, GAMMA, START = 10, 0.99, 20
N = 4_000


def by_channel(world: WorldSpec, weeks: int = 4, small: bool = True) -> WorldSpec:
    """``world`` whose summary keeps a ``weeks``-week contact pattern by channel (features
    counting every window up to 6 weeks); with ``small`` caps for a fast DP."""
    features = replace(
        world.features.with_rule_features(tuple(range(1, 7)), ()), recent_contacts=True
    )
    discrete = replace(
        world.discrete,
        contact_pattern_weeks=weeks,
        contact_pattern_by_channel=True,
        **(
            {"recency_cap_weeks": 6, "conversions_cap": 2, "engagement_cap_weeks": 3}
            if small
            else {}
        ),
    )
    return replace(world, discrete=discrete, features=features)


def demo_rules(world: WorldSpec) -> RulesConfig:
    """The coworking demo's rules (configs/rules/coworking.yaml): at most 2 e-mails and 1 call
    in any 5 weeks, a week's cool-down after a conversion."""
    return RulesConfig(frequency_caps={"email": 2, "phone": 1}, cooldown_weeks=1)


def test_the_digits_are_numbered_and_stepped_as_channels(world: WorldSpec) -> None:
    """Two channels, 4 weeks: 3^4 patterns, each fixing the weeks since contact below the
    pattern's weeks (80 non-empty, 1 empty at the contact cap 5); the next week's pattern
    shifts in the contact's channel; every next summary is a numbered state."""
    plain = DiscreteLayout.of(world)
    layout = DiscreteLayout.of(by_channel(world, small=False))
    cap = world.discrete.contact_cap_weeks
    assert layout.n_states == plain.n_states // cap * 81
    rng = np.random.default_rng(0)
    index = rng.integers(0, layout.n_states, 3_000)
    summary = layout.decode(index)
    np.testing.assert_array_equal(layout.encode(summary), index)
    contacted = rng.random(index.shape[0]) < 0.6
    action = np.where(contacted, rng.integers(1, world.actions.n_actions, index.shape[0]), 0)
    channel = world.params.channel[action]
    no = np.zeros(index.shape[0], bool)
    spec = layout.spec
    nxt = next_summary(
        summary, spec, no, no, contacted, np.zeros_like(index), action, None, channel, 2
    )
    digit = np.where(contacted, 1 + channel, 0)
    np.testing.assert_array_equal(nxt.pattern, (summary.pattern * 3 + digit) % 81)
    held = pattern_weeks(nxt.pattern, spec, 2)
    np.testing.assert_array_equal(held[:, 0], digit)
    again = layout.decode(layout.encode(nxt))
    for name in Summary._fields:
        np.testing.assert_array_equal(
            np.broadcast_to(getattr(again, name), index.shape),
            np.broadcast_to(getattr(nxt, name), index.shape),
        )
    with pytest.raises(ValueError, match="by channel"):
        next_summary(summary, spec, no, no, contacted, np.zeros_like(index), action)


def test_a_pattern_by_channel_needs_the_pattern() -> None:
    with pytest.raises(ConfigError, match="contact_pattern_by_channel"):
        DiscreteSpec(27, 3, 5, 9, contact_pattern_by_channel=True)
    with pytest.raises(ConfigError, match="contact_pattern_by_channel"):
        CapsConfig(27, 3, 5, 9, contact_pattern_by_channel=True)
    with pytest.raises(ConfigError, match="pattern_by_channel"):
        SummaryConfig(pattern_by_channel=[])


def test_panel_from_rendered_logs_equals_the_simulators_pattern_by_channel(
    world: WorldSpec, tmp_path: Path
) -> None:
    """Simulate, render raw logs, ingest, build the state: every customer's pattern by channel
    is the simulator's own (the panel, the simulator and the API share the state code)."""
    rich = by_channel(world, small=False)
    cfg = panel_config(rule_windows=[4], recent_contacts=True)
    rendered = rendered_states(rich, tmp_path, cfg, weeks=20)
    expected = summarise(state_features(rendered.simulator, rich.features), rendered.segment, rich)
    actual = summarise(state_features(rendered.panel, rich.features), rendered.segment, rich)
    held = pattern_weeks(np.asarray(expected.pattern), rich.discrete, 2)
    assert (held == 1).any() and (held == 2).any()  # both channels in the patterns
    np.testing.assert_array_equal(np.asarray(actual.pattern), np.asarray(expected.pattern))
    np.testing.assert_array_equal(
        discrete_state(state_features(rendered.panel, rich.features), rendered.segment, rich),
        DiscreteLayout.of(rich).encode(expected),
    )


@pytest.fixture(scope="module")
def trajectory(world: WorldSpec) -> list[tuple[dict[str, np.ndarray], np.ndarray, int]]:
    """Features of 2,000 customers over 14 weeks under random contacts (one a week at most,
    within opt-outs) in the coworking world with a 4-week pattern by channel."""
    return random_contact_trajectory(by_channel(world))


@settings(max_examples=30, deadline=None)
@given(
    email=st.tuples(st.integers(0, 3), st.integers(1, 5)),
    phone=st.tuples(st.integers(0, 2), st.integers(1, 5)),
    total=st.one_of(st.none(), st.tuples(st.integers(0, 3), st.integers(1, 5))),
)
def test_the_summary_gives_the_states_verdict_on_every_per_channel_cap(
    world: WorldSpec,
    trajectory: list[tuple[dict[str, np.ndarray], np.ndarray, int]],
    email: tuple[int, int],
    phone: tuple[int, int],
    total: tuple[int, int] | None,
) -> None:
    rich = by_channel(world)
    caps: list[dict[str, object]] = [
        {"channels": ["email"], "max": email[0], "window_weeks": email[1]},
        {"channels": ["phone"], "max": phone[0], "window_weeks": phone[1]},
    ]
    if total is not None:
        caps.append({"over": "all", "max": total[0], "window_weeks": total[1]})
    rules = RulesConfig(caps=caps).for_world(rich, "r")
    split = plan_rules(rules, rich)
    assert split.unseen == ()  # every window up to 5 weeks is within the 4-week pattern
    layout = DiscreteLayout.of(rich)
    for features, segment, woy in trajectory:
        summary = layout.decode(layout.encode(summarise(features, segment, rich)))
        np.testing.assert_array_equal(
            split.masks(summary, woy), rules.masks(features, segment=segment, week_of_year=woy)
        )


def test_a_window_longer_than_the_pattern_is_named_not_planned(world: WorldSpec) -> None:
    rich = by_channel(world, weeks=3)
    rules = demo_rules(rich).for_world(rich, "r")  # 5-week windows: 4 past weeks
    split = plan_rules(rules, rich)
    assert len(split.unseen) == 2
    assert (
        "covers 3 weeks by channel (a pattern of at least 4 weeks by channel would)"
        in (split.unseen[0])
    )


def test_the_optimum_plans_under_the_demos_per_channel_caps(world: WorldSpec) -> None:
    """The demo's rules are all seen; simulated with the guard the plan's contacts are never
    dropped (an unaware plan's are), its simulated value is its exact value within sampling
    error, and the exact guarded value of the unaware plan is nowhere above it."""
    rich = by_channel(world)
    rules = demo_rules(rich).for_world(rich, "r")
    weeks = cyclic_weeks_of_year(START, HORIZON)
    planned = solve_optimum(rich, HORIZON, GAMMA, weeks, rules=rules)
    unaware = solve_optimum(rich, HORIZON, GAMMA, weeks)
    assert planned.unseen_rules == ()
    assert "email <= 2 in any 5 weeks" in planned.rules
    assert "phone <= 1 in any 5 weeks" in planned.rules
    optima = {"planned": planned, "unaware": unaware}
    runs, start = guarded_runs(rich, rules, optima, N, HORIZON, START, GAMMA)
    assert runs["planned"].forbidden.sum() == 0
    assert runs["unaware"].forbidden.sum() > 100  # the caps bind
    value = runs["planned"].value
    exact = planned.value(start, 0)
    se = float(np.std(value - exact, ddof=1) / np.sqrt(N))
    assert abs(float(np.mean(value - exact))) < 4 * se
    index = np.arange(unaware.layout.n_states)
    guarded = evaluate_table_policy(
        rich, lambda s, t: unaware.actions[t, index], GAMMA, unaware.weeks_of_year, rules
    )
    assert np.all(guarded[0] <= planned.values[0] + 1e-9)
    assert np.any(guarded[0] < planned.values[0] - 1.0)


def test_the_calibration_asks_for_a_pattern_by_channel_when_the_rules_need_it(
    world: WorldSpec,
) -> None:
    rules = demo_rules(world).for_world(world, "r")
    assert rule_components(rules) == ((4,), False, True)
    cfg = with_rule_components(SummaryConfig(select=True), rules)
    assert cfg.pattern_weeks == [0, 4] and cfg.pattern_by_channel == [False, True]
    over_all = RulesConfig(total_cap=2).for_world(world, "r")
    assert rule_components(over_all) == ((4,), False, False)
    assert with_rule_components(SummaryConfig(select=True), over_all) == SummaryConfig(select=True)
    one_week = RulesConfig(caps=[{"channels": ["phone"], "max": 1, "window_weeks": 1}])
    assert rule_components(one_week.for_world(world, "r")) == ((), False, False)


def test_the_configured_caps_get_what_the_rules_need(world: WorldSpec) -> None:
    """The summary as given (the selection off) is extended by the components the rules need,
    and left alone when it has them or the rules need none."""
    caps = world.discrete
    extended = caps_with_rule_components(caps, demo_rules(world).for_world(world, "r"))
    assert extended == replace(caps, contact_pattern_weeks=4, contact_pattern_by_channel=True)
    assert caps_with_rule_components(extended, demo_rules(world).for_world(world, "r")) is extended
    assert caps_with_rule_components(caps, RulesConfig().for_world(world, "r")) is caps
    longer = replace(caps, contact_pattern_weeks=6)
    over_all = RulesConfig(total_cap=2).for_world(world, "r")
    assert caps_with_rule_components(longer, over_all) is longer  # 6 weeks cover the 4
