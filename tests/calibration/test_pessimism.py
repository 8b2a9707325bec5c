"""Planning with pessimism: the optimum discounts each (state, action) by its members'
disagreement; no members, identical members or ``pessimism = 0`` give the plain optimum."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from journeyopt.agents.optimum_model import PlannedOptimum
from journeyopt.calibration.calibrated import CalibratedWorld
from journeyopt.calibration.config import CalibrationConfig
from journeyopt.calibration.pipeline import CalibrationResult
from journeyopt.errors import ConfigError
from journeyopt.sim.discrete import DiscreteLayout
from journeyopt.sim.optimum import (
    cyclic_weeks_of_year,
    evaluate_table_policy,
    next_states,
    outcome_model,
    solve_optimum,
)
from journeyopt.sim.world import WorldSpec, load_world

HORIZON, GAMMA = 6, 0.99
WEEKS = cyclic_weeks_of_year(10, HORIZON)


@pytest.fixture(scope="module")
def world() -> WorldSpec:
    return load_world("coworking")


def with_lift(world: WorldSpec, action: str, shift: float) -> WorldSpec:
    """``world`` with ``action``'s conversion lift moved by ``shift`` logits in every segment."""
    segments = tuple(
        replace(s, action_logit={**s.action_logit, action: s.action_logit[action] + shift})
        for s in world.segments
    )
    return replace(world, segments=segments)


@pytest.fixture(scope="module")
def doubted(world: WorldSpec) -> tuple[str, tuple[WorldSpec, ...]]:
    """A contact action the members disagree on (+-1.5 logits around the world's lift) and
    the members; every other response the same."""
    action = world.actions.names[-1]
    return action, (with_lift(world, action, 1.5), with_lift(world, action, -1.5), world)


def test_no_members_identical_members_or_zero_pessimism_give_the_plain_optimum(
    world: WorldSpec, doubted: tuple[str, tuple[WorldSpec, ...]]
) -> None:
    plain = solve_optimum(world, HORIZON, GAMMA, WEEKS)
    for members, pessimism in (((), 1.0), ((world, world, world), 2.0), (doubted[1], 0.0)):
        other = solve_optimum(world, HORIZON, GAMMA, WEEKS, members=members, pessimism=pessimism)
        np.testing.assert_array_equal(other.actions, plain.actions)
        np.testing.assert_allclose(other.values, plain.values, rtol=0, atol=1e-9)
    one = solve_optimum(world, HORIZON, GAMMA, WEEKS, members=doubted[1][:1], pessimism=1.0)
    np.testing.assert_array_equal(one.actions, plain.actions)  # one member: no spread


def test_pessimism_avoids_the_doubted_action_and_never_beats_the_plain_optimum(
    world: WorldSpec, doubted: tuple[str, tuple[WorldSpec, ...]]
) -> None:
    action, members = doubted
    a = world.actions.names.index(action)
    plain = solve_optimum(world, HORIZON, GAMMA, WEEKS)
    wary = solve_optimum(world, HORIZON, GAMMA, WEEKS, members=members, pessimism=1.0)
    warier = solve_optimum(world, HORIZON, GAMMA, WEEKS, members=members, pessimism=3.0)
    uses = [int((p.actions == a).sum()) for p in (plain, wary, warier)]
    assert uses[0] > uses[1] > uses[2]
    # the pessimistic values are lower bounds of the plain ones ...
    assert (wary.values <= plain.values + 1e-9).all()
    assert (warier.values <= wary.values + 1e-9).all()
    # ... and in the world itself no plan beats its plain optimum
    for plan in (wary, warier):
        value = evaluate_table_policy(
            world,
            lambda states, t, plan=plan: plan.actions[t, plan.layout.encode(states)],
            GAMMA,
            WEEKS,
        )
        assert (value[0] <= plain.values[0] + 1e-9).all()
        assert value[0].mean() < plain.values[0].mean()


def test_the_undoubted_actions_are_planned_alike(
    world: WorldSpec, doubted: tuple[str, tuple[WorldSpec, ...]]
) -> None:
    """The members differ only in the doubted action's response, so in the last week (no
    future values to differ through) every other action keeps its value: wherever the plain
    plan does not choose the doubted action there, neither does the pessimistic one."""
    action, members = doubted
    a = world.actions.names.index(action)
    plain = solve_optimum(world, HORIZON, GAMMA, WEEKS)
    wary = solve_optimum(world, HORIZON, GAMMA, WEEKS, members=members, pessimism=1.0)
    last = HORIZON - 1
    keep = plain.actions[last] != a
    np.testing.assert_array_equal(wary.actions[last][keep], plain.actions[last][keep])


def test_bad_pessimism_or_members_are_refused(world: WorldSpec) -> None:
    with pytest.raises(ValueError, match="pessimism must be >= 0"):
        solve_optimum(world, HORIZON, GAMMA, WEEKS, members=(world, world), pessimism=-1.0)
    caps = replace(world.discrete, contact_cap_weeks=world.discrete.contact_cap_weeks + 1)
    other = replace(world, discrete=caps)
    with pytest.raises(ValueError, match="every member must have the world's"):
        solve_optimum(world, HORIZON, GAMMA, WEEKS, members=(world, other), pessimism=1.0)
    with pytest.raises(ConfigError, match=r"calibration\.pessimism must be >= 0"):
        CalibrationConfig(pessimism=-0.5)


def test_a_calibrated_world_plans_with_its_recorded_pessimism(
    world: WorldSpec, doubted: tuple[str, tuple[WorldSpec, ...]]
) -> None:
    members = doubted[1]
    recorded = CalibratedWorld(world, members, {"planning": {"pessimism": 1.0}})
    older = CalibratedWorld(world, members, {})  # calibrated before the record: plain
    assert (recorded.pessimism, older.pessimism) == (1.0, 0.0)
    lone = CalibratedWorld(world, members[:1], {"planning": {"pessimism": 1.0}})
    assert recorded.pessimistic and not older.pessimistic and not lone.pessimistic
    bare = CalibratedWorld.of(world)  # a world alone: no members, no record, planned plainly
    assert CalibratedWorld.of(recorded) is recorded
    assert (bare.world, bare.members, bare.pessimism) == (world, (), 0.0)
    direct = solve_optimum(world, HORIZON, GAMMA, WEEKS, members=members, pessimism=1.0)
    np.testing.assert_array_equal(recorded.optimum(HORIZON, GAMMA, WEEKS).actions, direct.actions)
    plain = solve_optimum(world, HORIZON, GAMMA, WEEKS)
    np.testing.assert_array_equal(older.optimum(HORIZON, GAMMA, WEEKS).actions, plain.actions)
    moved = recorded.mapped(lambda w: replace(w, name="renamed"))
    assert moved.world.name == "renamed" and all(m.name == "renamed" for m in moved.members)
    assert moved.pessimism == 1.0


def test_a_calibration_records_its_pessimism_and_the_card_says_how_it_plans(
    small_calibration: CalibrationResult,
) -> None:
    loaded = CalibratedWorld.load(small_calibration.output_dir)
    assert loaded.pessimism == CalibrationConfig.pessimism == 1.0
    assert len(loaded.members) == 2
    card = (small_calibration.output_dir / "card.md").read_text()
    assert "the world's optimum plans pessimistically" in card
    assert "1 SD of the 2 members' disagreement" in card


def test_a_served_optimum_of_a_calibrated_world_is_planned_with_its_pessimism(
    world: WorldSpec, doubted: tuple[str, tuple[WorldSpec, ...]]
) -> None:
    caps = replace(
        world.discrete,
        recency_cap_weeks=3,
        conversions_cap=2,
        contact_cap_weeks=2,
        engagement_cap_weeks=2,
    )
    small, *members = (replace(w, discrete=caps) for w in (world, *doubted[1]))
    calibrated = CalibratedWorld(small, tuple(members), {"planning": {"pessimism": 2.0}})
    served = PlannedOptimum.solve(calibrated, HORIZON, GAMMA)
    assert served.world is small
    for week in (1, 30):
        plan = solve_optimum(
            small,
            HORIZON,
            GAMMA,
            cyclic_weeks_of_year(week, HORIZON),
            members=members,
            pessimism=2.0,
        )
        np.testing.assert_array_equal(served.actions[week - 1], plan.actions[0])


@pytest.mark.parametrize("subset", [False, True])
def test_a_calibrated_worlds_table_rows_give_the_summaries_outcome_model(
    small_calibration: CalibrationResult, subset: bool
) -> None:
    """The DP reads a calibrated world's tables by state index (every action at once); the
    numbers are those of its summaries' responses, element for element, for every state and
    for a subset (the extrapolation's reached states)."""
    world = small_calibration.estimate.calibrated.world
    layout = DiscreteLayout.of(world)
    index = np.arange(layout.n_states)
    if subset:
        index = np.random.default_rng(1).choice(index, 500, replace=False)
    states = layout.decode(index)
    nxt = next_states(world, layout, states)
    rows, summaries = (outcome_model(world, states, nxt, 23, i) for i in (index, None))
    for name in ("reward", "convert", "engage", "optout"):
        np.testing.assert_array_equal(getattr(rows, name), getattr(summaries, name), err_msg=name)
    v_next = np.random.default_rng(2).random(layout.n_states)
    np.testing.assert_array_equal(rows.q_values(v_next, GAMMA), summaries.q_values(v_next, GAMMA))
