"""Where the world extrapolates: the exact forward propagation of a policy's customer-weeks, the
thin cells' shares, the card's section and the verdict's check
(:mod:`journeyopt.calibration.extrapolation`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from journeyopt.agents.baselines import OptimumPolicy, UniformRandom
from journeyopt.calibration.config import CardConfig
from journeyopt.calibration.extrapolation import (
    extrapolation_lines,
    extrapolation_reasons,
    occupancy,
    policy_extrapolation,
    starting_distribution,
    state_words,
    table_policy,
)
from journeyopt.calibration.pipeline import CalibrationResult
from journeyopt.errors import ConfigError
from journeyopt.evaluation.simulate import simulate_policy
from journeyopt.panel.state import state_features
from journeyopt.sim.config import RulesConfig
from journeyopt.sim.discrete import DiscreteLayout, discrete_state
from journeyopt.sim.env import EpisodeClock
from journeyopt.sim.optimum import cyclic_weeks_of_year, solve_optimum
from journeyopt.sim.population import starting_population
from journeyopt.sim.world import WorldSpec

HORIZON, GAMMA, CUSTOMERS = 8, 0.99, 3000


def _uniform(states: np.ndarray, t: int, allowed: np.ndarray) -> np.ndarray:
    """Uniform over the allowed actions (``UniformRandom``'s table)."""
    return allowed / allowed.sum(axis=1, keepdims=True)


def _start(world: WorldSpec, seed: int = 0) -> tuple[Any, np.ndarray, np.ndarray]:
    """``CUSTOMERS`` of the world's starting population, their segments and the (n_states,)
    customers per discrete state."""
    state, segment = starting_population(world, CUSTOMERS, np.random.default_rng(seed), HORIZON)
    x = discrete_state(state_features(state, world.features), segment, world)
    return state, segment, np.bincount(x, minlength=DiscreteLayout.of(world).n_states) * 1.0


def test_every_week_holds_the_whole_population_and_the_reward_is_the_exact_value(
    small_world: WorldSpec,
) -> None:
    _, _, start = _start(small_world)
    woy = cyclic_weeks_of_year(1, HORIZON)
    optimum = solve_optimum(small_world, HORIZON, GAMMA, woy)
    one_week = occupancy(small_world, start, {"opt": table_policy(optimum)}, GAMMA, woy[:1])
    np.testing.assert_allclose(one_week["opt"].weeks.sum(axis=1), start)  # week 0: the start
    both = occupancy(
        small_world, start, {"opt": table_policy(optimum), "uniform": _uniform}, GAMMA, woy
    )
    occupied, uniform = both["opt"], both["uniform"]
    assert occupied.weeks.sum() == pytest.approx(HORIZON * CUSTOMERS, rel=1e-12)
    # the forward pass's reward is the backward pass's value of the same start (the DP's)
    assert occupied.reward.sum() == pytest.approx(float(start @ optimum.values[0]), rel=1e-9)
    chosen = np.zeros_like(occupied.weeks, bool)
    for t in range(HORIZON):
        chosen[np.arange(chosen.shape[0]), optimum.actions[t]] = True
    assert occupied.weeks[~chosen].sum() == 0.0  # only the table's actions are taken
    assert uniform.weeks.sum() == pytest.approx(HORIZON * CUSTOMERS, rel=1e-12)


@pytest.mark.parametrize("stochastic", [False, True])
def test_the_propagation_matches_a_simulation_of_the_same_policy(
    small_world: WorldSpec, stochastic: bool
) -> None:
    state, segment, start = _start(small_world)
    woy = cyclic_weeks_of_year(1, HORIZON)
    optimum = solve_optimum(small_world, HORIZON, GAMMA, woy)
    policy, table = (
        (UniformRandom(), _uniform)
        if stochastic
        else (OptimumPolicy(small_world, optimum), table_policy(optimum))
    )
    exact = occupancy(small_world, start, {"policy": table}, GAMMA, woy)["policy"]
    rules = RulesConfig().for_world(small_world, "rules")
    run = simulate_policy(
        small_world,
        policy,
        state,
        segment,
        EpisodeClock.of(HORIZON, 1),
        GAMMA,
        np.random.default_rng(1),
        np.random.default_rng(2),
        rules,
    )
    # customer-weeks per action, and the discounted reward, within 4 standard errors
    counts = run.action_counts.astype(np.float64)
    se = counts.std(axis=0) * np.sqrt(CUSTOMERS)
    assert np.all(np.abs(counts.sum(axis=0) - exact.weeks.sum(axis=0)) <= 4 * se + 1e-9)
    value_se = run.value.std() * np.sqrt(CUSTOMERS)
    assert abs(run.value.sum() - exact.reward.sum()) <= 4 * value_se


def test_a_policy_in_logged_cells_has_share_0_and_one_leaving_them_share_1(
    small_world: WorldSpec,
) -> None:
    _, _, start = _start(small_world)
    woy = cyclic_weeks_of_year(1, HORIZON)

    def never(states: np.ndarray, t: int, allowed: np.ndarray) -> np.ndarray:
        out = np.zeros(allowed.shape)
        out[:, 0] = 1.0
        return out

    def always_first(states: np.ndarray, t: int, allowed: np.ndarray) -> np.ndarray:
        out = np.zeros(allowed.shape)
        first = np.where(allowed[:, 1], 1, 0)
        out[np.arange(states.size), first] = 1.0
        return out

    occupied = occupancy(small_world, start, {"never": never, "first": always_first}, GAMMA, woy)
    no_contact, contact = occupied["never"], occupied["first"]
    # the logs hold every cell no contact visits, 100 times each, and nothing else
    logged = np.where(no_contact.weeks > 0, 100, 0).astype(np.int64)
    held = policy_extrapolation(small_world, "no_contact", no_contact, logged, 30)
    assert held.thin_share == 0.0 and held.thin_value_share == 0.0 and held.cells == ()
    left = policy_extrapolation(small_world, "contact", contact, logged, 30, top=3)
    assert left.thin_share > 0.99
    assert left.weeks == pytest.approx(HORIZON * CUSTOMERS)
    assert len(left.cells) == 3
    assert [c.policy_weeks for c in left.cells] == sorted(
        (c.policy_weeks for c in left.cells), reverse=True
    )
    top = left.cells[0]
    assert top.logged_weeks == 0 and top.action == small_world.actions.names[1]
    assert top.words == state_words(small_world, top.state)
    assert top.words.startswith(small_world.segment_names[0])


def _meta(share: float, max_share: float) -> dict[str, Any]:
    cell = {
        "state": 7,
        "action": "a1",
        "words": "seg; active; opted in",
        "logged_weeks": 2,
        "policy_weeks": 1234.0,
    }
    return {
        "extrapolation": {
            "min_cell_weeks": 30,
            "max_share": max_share,
            "horizon_weeks": 52,
            "customers": 1000.0,
            "thin_cells": 90,
            "cells": 100,
            "policies": [
                {
                    "policy": "optimum",
                    "weeks": 52000.0,
                    "thin_share": share,
                    "thin_value_share": 0.5,
                    "cells": [cell],
                },
                {
                    "policy": "practice",
                    "weeks": 52000.0,
                    "thin_share": 0.9,
                    "thin_value_share": float("nan"),
                    "cells": [],
                },
            ],
        }
    }


def test_the_verdict_names_the_optimum_above_the_threshold_only() -> None:
    (reason,) = extrapolation_reasons(_meta(0.4, 0.3))
    assert "optimum" in reason and "40.0 %" in reason and "fewer than 30" in reason
    assert "exploration" in reason
    assert extrapolation_reasons(_meta(0.3, 0.3)) == []  # at the threshold: accepted
    assert extrapolation_reasons(_meta(0.4, 1.0)) == []  # 1: no check (the practice's 0.9 too)
    assert extrapolation_reasons({}) == []
    lines = "\n".join(extrapolation_lines(_meta(0.4, 0.3)))
    assert "## Where the world extrapolates" in lines
    assert "| optimum | 40.0 % | 50.0 % |" in lines and "| practice | 90.0 % | – |" in lines
    assert "| seg; active; opted in | a1 | 2 | 1,234 |" in lines
    assert "no verdict check" in "\n".join(extrapolation_lines(_meta(0.4, 1.0)))


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"min_cell_weeks": 0}, "min_cell_weeks must be >= 1"),
        ({"max_extrapolated_share": 0.0}, r"max_extrapolated_share must be in \(0, 1\]"),
        ({"max_extrapolated_share": 1.5}, r"max_extrapolated_share must be in \(0, 1\]"),
    ],
)
def test_bad_extrapolation_settings_are_refused(settings: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        CardConfig(**settings)


def test_the_calibration_records_and_cards_where_its_world_extrapolates(
    small_calibration: CalibrationResult,
) -> None:
    world = small_calibration.estimate.calibrated.world
    record = small_calibration.estimate.calibrated.meta["extrapolation"]
    start = starting_distribution(world, record["horizon_weeks"])
    assert world.base is not None
    assert start.sum() == pytest.approx(
        world.base.n_customers + world.base.arrivals_per_week * record["horizon_weeks"]
    )
    assert record["customers"] == pytest.approx(start.sum())
    # without arrivals (no weeks), exactly the states the simulations start the base from
    state, segment = starting_population(world, world.base.n_customers, np.random.default_rng(), 0)
    x = discrete_state(state_features(state, world.features), segment, world)
    np.testing.assert_array_equal(
        starting_distribution(world, 0), np.bincount(x, minlength=start.size)
    )
    assert [p["policy"] for p in record["policies"]] == ["optimum", "practice"]
    for p in record["policies"]:
        assert p["weeks"] == pytest.approx(record["horizon_weeks"] * start.sum())
        assert 0.0 <= p["thin_share"] <= 1.0
        metric = small_calibration.metrics[f"sim/extrapolated_share/{p['policy']}"]
        assert metric == p["thin_share"]
    card = (small_calibration.output_dir / "card.md").read_text()
    assert "## Where the world extrapolates" in card
