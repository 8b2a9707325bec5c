"""The coworking world's YAML, renamed: the same world as another business would name it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import yaml

from journeyopt.calibration.rules_check import PlannedAsIs
from journeyopt.evaluation.simulate import PolicyRun, simulate_policy
from journeyopt.panel.state import state_features
from journeyopt.sim.behaviour import contact_rules, world_under_rules
from journeyopt.sim.discrete import DiscreteLayout, discrete_state
from journeyopt.sim.env import EpisodeClock, step_customers
from journeyopt.sim.optimum import OptimalPolicy, cyclic_weeks_of_year
from journeyopt.sim.population import starting_population
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.world import WORLDS_DIR, FittedResponses, WorldSpec


def raw_coworking() -> dict[str, Any]:
    """The parsed ``simulators/coworking/world.yaml``."""
    raw = yaml.safe_load((WORLDS_DIR / "coworking" / "world.yaml").read_text(encoding="utf-8"))
    assert isinstance(raw, dict)
    return raw


def renamed(value: Any, names: Mapping[str, str]) -> Any:
    """``value`` with every mapping key in ``names`` renamed, order kept (actions and customer
    types are keys of the world's YAML wherever they appear)."""
    if isinstance(value, dict):
        return {names.get(k, k): renamed(v, names) for k, v in value.items()}
    return value


def fitted_world(world: WorldSpec, seed: int, tenure_cap_weeks: int = 0) -> WorldSpec:
    """``world`` as a calibrated world with random response tables (every state different)."""
    world = replace(world, discrete=replace(world.discrete, tenure_cap_weeks=tenure_cap_weeks))
    rng = np.random.default_rng(seed)
    n, a = DiscreteLayout.of(world).n_states, world.actions.n_actions
    responses = FittedResponses(
        convert_logit=rng.normal(-2.0, 1.0, (n, a)),
        convert_season=rng.normal(0.0, 0.3, 54),
        value=rng.uniform(10.0, 500.0, n),
        engage_logit=rng.normal(-2.0, 1.0, (n, a)),
        engage_season=rng.normal(0.0, 0.3, 54),
        optout=rng.uniform(0.0, 0.05, (n, a)),
        actions_identified=True,
    )
    return replace(world, name=f"fitted-{seed}", responses=responses)


Trajectory = list[tuple[dict[str, np.ndarray], np.ndarray, int]]


def random_contact_trajectory(world: WorldSpec, n: int = 2_000, weeks: int = 14) -> Trajectory:
    """``(features, segment, week of year)`` of ``n`` customers of ``world``'s starting
    population over ``weeks`` weeks from ISO week 48 under uniformly random actions (one a
    week at most, opted-out channels masked), seed 3: the states a rule check over summaries
    is compared on."""
    rng = np.random.default_rng(3)
    state, segment = starting_population(world, n, rng, weeks)
    own = contact_rules(world)
    out = []
    for woy in cyclic_weeks_of_year(48, weeks):
        features = state_features(state, world.features)
        actions = rng.integers(0, world.actions.n_actions, segment.shape[0])
        out.append((features, segment, int(woy)))
        masks = own.masks(features)
        state = step_customers(world, state, features, segment, masks, actions, int(woy), rng).state
    return out


def guarded_runs(
    world: WorldSpec,
    rules: ContactRules,
    optima: Mapping[str, OptimalPolicy],
    n: int,
    horizon: int,
    start_week_of_year: int,
    gamma: float,
) -> tuple[dict[str, PolicyRun], np.ndarray]:
    """Each plan of ``optima`` acting as planned (:class:`PlannedAsIs`) in ``world`` under the
    guard of ``rules``, on the same ``n`` starting customers (seed 5) and random numbers (7,
    8), and the customers' starting discrete states: the rule checks' simulations."""
    guarded = world_under_rules(world, rules)
    state, segment = starting_population(guarded, n, np.random.default_rng(5), horizon)
    start = discrete_state(state_features(state, guarded.features), segment, guarded)
    runs = {
        name: simulate_policy(
            guarded,
            PlannedAsIs(world, optimum),
            state,
            segment,
            EpisodeClock.of(horizon, start_week_of_year),
            gamma,
            np.random.default_rng(7),
            np.random.default_rng(8),
            rules,
        )
        for name, optimum in optima.items()
    }
    return runs, start
