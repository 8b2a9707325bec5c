"""The exact optimum under the contact rules: the rules object evaluated over discrete
summaries, the plan never asks for a contact the rules forbid, its value is what simulation
gives, it beats the guard-wrapped unconstrained optimum, and what it cannot see is reported."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyopt.agents.baselines import NoContact
from journeyopt.evaluation.report import write_evaluation
from journeyopt.evaluation.simulate import evaluate_policies
from journeyopt.panel.state import FeatureSpec
from journeyopt.sim.behaviour import contact_rules
from journeyopt.sim.config import RulesConfig
from journeyopt.sim.discrete import DiscreteLayout, summarise
from journeyopt.sim.optimum import (
    OptimalPolicy,
    cyclic_weeks_of_year,
    evaluate_table_policy,
    solve_optimum,
)
from journeyopt.sim.rules import Cap, ContactRules, Eligibility, QuietWeeks
from journeyopt.sim.summary_rules import plan_rules, summary_features
from journeyopt.sim.world import WorldSpec
from tests.sim.worlds import guarded_runs, random_contact_trajectory

HORIZON, GAMMA, START = 12, 0.99, 50  # the episode crosses new year: quiet weeks 52 and 1
N = 6_000


def small_world(world: WorldSpec, pattern_weeks: int = 4, last_action: bool = False) -> WorldSpec:
    """The coworking world with small caps (a fast DP) and a contact pattern / last action."""
    contacts = world.actions.names[1:]
    windows = tuple(range(1, 7))  # every cap window of these tests is counted
    features = replace(world.features.with_rule_features(windows, contacts), recent_contacts=True)
    discrete = replace(
        world.discrete,
        recency_cap_weeks=8,
        conversions_cap=2,
        engagement_cap_weeks=3,
        contact_pattern_weeks=pattern_weeks,
        last_action=last_action,
    )
    return replace(world, discrete=discrete, features=features)


def business_rules(world: WorldSpec) -> ContactRules:
    """Rules a summary with a 4-week pattern represents: at most 2 contacts in any 5 weeks
    over all channels, a week's cool-down, no contacts of the last action in weeks 52 and 1,
    the last action for one customer type only."""
    last = world.actions.names[-1]
    return RulesConfig(
        total_cap=2,
        cooldown_weeks=1,
        quiet_weeks=[{"actions": [last], "weeks": [52, 1]}],
        eligibility=[{"actions": [last], "segments": [world.segment_names[2]]}],
    ).for_world(world, "rules")


@pytest.fixture(scope="module")
def small(world: WorldSpec) -> WorldSpec:
    return small_world(world)


@pytest.fixture(scope="module")
def rules(small: WorldSpec) -> ContactRules:
    return business_rules(small)


@pytest.fixture(scope="module")
def weeks() -> np.ndarray:
    return cyclic_weeks_of_year(START, HORIZON)


@pytest.fixture(scope="module")
def planned(small: WorldSpec, rules: ContactRules, weeks: np.ndarray) -> OptimalPolicy:
    return solve_optimum(small, HORIZON, GAMMA, weeks, rules=rules)


@pytest.fixture(scope="module")
def unaware(small: WorldSpec, weeks: np.ndarray) -> OptimalPolicy:
    return solve_optimum(small, HORIZON, GAMMA, weeks)


def test_the_plan_sees_every_rule_of_a_pattern_summary(
    planned: OptimalPolicy, rules: ContactRules
) -> None:
    assert planned.unseen_rules == ()
    assert "all contacts <= 2 in any 5 weeks" in planned.rules
    assert "cool-down 1 weeks" in planned.rules


def test_the_rule_aware_optimum_never_plans_a_forbidden_contact(
    small: WorldSpec, rules: ContactRules, planned: OptimalPolicy, unaware: OptimalPolicy
) -> None:
    """Simulated with the guard: the plan's contacts are never dropped (the unaware plan's
    are), and its simulated value is its exact value within sampling error."""
    optima = {"planned": planned, "unaware": unaware}
    runs, start = guarded_runs(small, rules, optima, N, HORIZON, START, GAMMA)
    assert runs["planned"].forbidden.sum() == 0
    assert runs["unaware"].forbidden.sum() > 100  # the rules bind
    value = runs["planned"].value
    exact = planned.value(start, 0)
    se = float(np.std(value - exact, ddof=1) / np.sqrt(N))
    assert abs(float(np.mean(value - exact))) < 4 * se
    # common random numbers: the rule-aware plan earns more than the guarded unaware one
    assert float(np.mean(runs["planned"].value - runs["unaware"].value)) > 0


def test_the_rule_aware_optimum_beats_the_guarded_unconstrained_one_exactly(
    small: WorldSpec, rules: ContactRules, planned: OptimalPolicy, unaware: OptimalPolicy
) -> None:
    index = np.arange(unaware.layout.n_states)
    guarded = evaluate_table_policy(
        small, lambda s, t: unaware.actions[t, index], GAMMA, unaware.weeks_of_year, rules
    )
    assert np.all(guarded[0] <= planned.values[0] + 1e-9)
    assert np.any(guarded[0] < planned.values[0] - 1.0)
    assert np.all(planned.values[0] <= unaware.values[0] + 1e-9)  # the rules cost something
    again = evaluate_table_policy(
        small, lambda s, t: planned.actions[t, index], GAMMA, planned.weeks_of_year, rules
    )
    np.testing.assert_allclose(again, planned.values, rtol=1e-10, atol=1e-8)


def test_planned_actions_are_allowed_by_the_rules_in_every_state_and_week(
    small: WorldSpec, rules: ContactRules, planned: OptimalPolicy
) -> None:
    states = planned.layout.all_states()
    split = plan_rules(rules, small)
    index = np.arange(planned.layout.n_states)
    for t, woy in enumerate(planned.weeks_of_year):
        masks = split.masks(states, int(woy))
        assert masks[index, planned.actions[t]].all()
    last = small.actions.n_actions - 1
    quiet = [t for t, w in enumerate(planned.weeks_of_year) if w in (52, 1)]
    assert quiet and not (planned.actions[quiet] == last).any()


@pytest.mark.parametrize("opt_outs_only", [RulesConfig(), None])
def test_rules_of_opt_outs_only_give_todays_optimum_bit_for_bit(
    small: WorldSpec, unaware: OptimalPolicy, weeks: np.ndarray, opt_outs_only: RulesConfig | None
) -> None:
    rules = opt_outs_only.for_world(small, "rules") if opt_outs_only else contact_rules(small)
    same = solve_optimum(small, HORIZON, GAMMA, weeks, rules=rules)
    np.testing.assert_array_equal(same.values, unaware.values)
    np.testing.assert_array_equal(same.actions, unaware.actions)
    assert same.unseen_rules == () and same.rules == "opt-outs only"


def test_an_unrepresentable_per_channel_cap_is_reported_not_planned(
    small: WorldSpec, weeks: np.ndarray
) -> None:
    channel = small.channels[0]
    rules = RulesConfig(frequency_caps={channel: 1}, cooldown_weeks=1).for_world(small, "r")
    optimum = solve_optimum(small, HORIZON, GAMMA, weeks, rules=rules)
    assert len(optimum.unseen_rules) == 1
    assert optimum.unseen_rules[0].startswith(f"{channel} <= 1 in any 5 weeks")
    assert "over all channels" in optimum.unseen_rules[0]
    assert optimum.rules == "cool-down 1 weeks"  # the rest is planned
    with pytest.raises(ValueError, match="cannot evaluate"):
        evaluate_table_policy(small, lambda s, t: np.zeros_like(s.segment), GAMMA, weeks, rules)


def test_what_the_summary_cannot_resolve_is_named(world: WorldSpec) -> None:
    """The fixed summary (no pattern): a 2-in-5-weeks cap is unseen, a 1-in-3-weeks cap is
    seen through weeks since contact; a gap beyond the contact cap and a lifecycle rule beyond
    the recency cap are unseen."""
    fixed = small_world(world, pattern_weeks=0)
    rules = RulesConfig(
        total_cap=2,
        caps=[{"over": "all", "max": 1, "window_weeks": 3}],
        min_gap_weeks=fixed.discrete.contact_cap_weeks + 1,
        eligibility=[{"lifecycle": ["active"]}],
    ).for_world(fixed, "r")
    split = plan_rules(rules, fixed)
    assert len(split.unseen) == 3
    assert "covers 0 (contact_pattern_weeks >= 4 would)" in split.unseen[0]
    assert split.unseen[1].startswith("gap 6 weeks")
    assert "active from lapsed" in split.unseen[2]
    assert split.rules.all_caps == (Cap(1, 3),)


# --- the invariant: over simulated customers, the summary's verdict is the state's --------


@pytest.fixture(scope="module")
def trajectory(world: WorldSpec) -> list[tuple[dict[str, np.ndarray], np.ndarray, int]]:
    """Features of 2,000 customers over 14 weeks under random contacts (within opt-outs), in
    the coworking world with a 4-week pattern and the last action, every window counted."""
    return random_contact_trajectory(small_world(world, 4, True))


@settings(max_examples=40, deadline=None)
@given(
    total_max=st.integers(0, 3),
    window=st.integers(1, 7),
    channel_cap=st.one_of(st.none(), st.tuples(st.integers(0, 1), st.integers(0, 1))),
    cooldown=st.integers(0, 9),
    gap=st.integers(0, 7),
    quiet=st.booleans(),
    lifecycle=st.sampled_from([(), ("active",), ("active", "lapsed"), ("prospect",)]),
)
def test_the_summary_gives_the_states_verdict_on_every_represented_rule(
    world: WorldSpec,
    trajectory: list[tuple[dict[str, np.ndarray], np.ndarray, int]],
    total_max: int,
    window: int,
    channel_cap: tuple[int, int] | None,
    cooldown: int,
    gap: int,
    quiet: bool,
    lifecycle: tuple[str, ...],
) -> None:
    rich = small_world(world, 4, True)
    caps: list[dict[str, object]] = [{"over": "all", "max": total_max, "window_weeks": window}]
    if channel_cap is not None:  # one channel, a one- or two-week window
        caps.append(
            {
                "channels": [rich.channels[0]],
                "max": channel_cap[0],
                "window_weeks": 1 + channel_cap[1],
            }
        )
    rules = RulesConfig(
        caps=caps,
        cooldown_weeks=cooldown,
        min_gap_weeks=gap,
        quiet_weeks=[{"channels": [rich.channels[-1]], "weeks": [50, 51]}] if quiet else [],
        eligibility=[{"lifecycle": list(lifecycle)}] if lifecycle else [],
    ).for_world(rich, "r")
    assert set(rules.spec.all_feature_names) <= set(trajectory[0][0])
    split = plan_rules(rules, rich)
    layout = DiscreteLayout.of(rich)
    for features, segment, woy in trajectory:
        summary = layout.decode(layout.encode(summarise(features, segment, rich)))
        mine = split.masks(summary, woy)
        theirs = split.rules.masks(features, segment=segment, week_of_year=woy)
        np.testing.assert_array_equal(mine, theirs)
        if not split.unseen:
            np.testing.assert_array_equal(
                mine, rules.masks(features, segment=segment, week_of_year=woy)
            )


def test_the_split_keeps_every_rule_or_names_it(world: WorldSpec) -> None:
    """Nothing is dropped silently: each cap, the cool-down, the gap and each eligibility rule
    is planned or unseen."""
    fixed = small_world(world, 0)
    rules = ContactRules(
        fixed.actions,
        fixed.features,
        frequency_caps={fixed.channels[0]: 2},
        total_cap=3,
        cooldown_weeks=20,
        min_gap_weeks=3,
        quiet=(QuietWeeks((1,)),),
        eligibility=(Eligibility(segments=(0,)), Eligibility(lifecycle=(1,))),
    )
    split = plan_rules(rules, fixed)
    planned = split.rules
    seen = len(planned.all_caps) + bool(planned.cooldown_weeks) + bool(planned.min_gap_weeks)
    seen += len(planned.eligibility)
    assert seen + len(split.unseen) == 2 + 1 + 1 + 2
    assert planned.quiet == rules.quiet and planned.unsupported == rules.unsupported


def test_contact_features_of_a_summary_count_the_pattern(world: WorldSpec) -> None:
    rich = small_world(world, 4, True)
    layout = DiscreteLayout.of(rich)
    states = layout.all_states()
    spec: FeatureSpec = rich.features
    rules = ContactRules(rich.actions, spec, caps=(Cap(2, 4),))
    features = summary_features(states, rich, rules)
    expected = np.array([bin(int(p) & 0b111).count("1") for p in states.pattern])
    np.testing.assert_array_equal(features["contacts_3w"], expected)


def test_the_evaluation_solves_its_optimum_under_its_rules_and_says_what_it_did_not_see(
    small: WorldSpec, tmp_path: Path
) -> None:
    channel = small.channels[0]
    rules = RulesConfig(frequency_caps={channel: 1}, cooldown_weeks=1).for_world(small, "r")
    result = evaluate_policies(
        small, [NoContact()], n_customers=300, horizon_weeks=HORIZON, gamma=GAMMA, rules=rules
    )
    assert result.optimum_rules == "cool-down 1 weeks"
    assert len(result.optimum_unseen_rules) == 1
    exact = solve_optimum(small, HORIZON, GAMMA, cyclic_weeks_of_year(1, HORIZON), rules=rules)
    start = result.optimum_value
    assert float(np.mean(start)) < float(
        np.mean(evaluate_policies(small, [NoContact()], 300, HORIZON, GAMMA).optimum_value)
    )
    assert exact.rules == result.optimum_rules
    write_evaluation(result, tmp_path / "ev", currency="EUR")
    note = (tmp_path / "ev" / "evaluation.md").read_text()
    assert "planned under the contact rules: cool-down 1 weeks" in note
    assert f"- {channel} <= 1 in any 5 weeks" in note


def test_rules_of_another_catalogue_are_refused(small: WorldSpec) -> None:
    names = ("none", *(f"other_{k}" for k in range(1, small.actions.n_actions)))
    other = ContactRules(replace(small.actions, names=names), small.features)
    with pytest.raises(ValueError, match="the contact rules are for the actions"):
        plan_rules(other, small)
