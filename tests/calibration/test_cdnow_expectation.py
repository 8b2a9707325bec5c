"""The CDNOW comparison's per-customer forecast is the world's exact expectation
(``compare.expected_weeks``): equal, within simulation noise, to the mean of many simulated
weeks of the same customers without contacts, also where tenure reaches its cap."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from journeyopt.sim.discrete import DiscreteLayout, next_summary
from journeyopt.sim.dynamics import sample_outcome_at
from journeyopt.sim.world import WorldSpec, load_world

from .test_cdnow_window import _compare


def simulated_purchase_weeks(
    world: WorldSpec,
    start: NDArray[np.int64],
    weeks: NDArray[np.int64],
    runs: int,
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """(len(start) * runs, len(weeks)) whether each of ``runs`` simulated copies of each
    starting state (repeated in order) buys in each week of year ``weeks``, without contacts."""
    layout = DiscreteLayout.of(world)
    x = np.repeat(start, runs)
    none = np.zeros(x.shape[0], np.int64)
    bought = np.zeros((x.shape[0], weeks.shape[0]))
    for t, woy in enumerate(weeks):
        out = sample_outcome_at(world, x, none, int(woy), rng)
        bought[:, t] = out.converted
        summary = next_summary(
            layout.decode(x),
            world.discrete,
            out.converted,
            out.engaged,
            np.zeros(x.shape[0], bool),
            none,
            action=none,
            lasting_code=none,
        )
        x = layout.encode(summary)
    return bought


def tenure_two_states(world: WorldSpec, n: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """``n`` distinct discrete states of customers not opted out, all of tenure 2: one starting
    tenure, so each week reaches only the next (the tenure cap's restriction is exercised)."""
    states = DiscreteLayout.of(world).all_states()
    candidates = np.flatnonzero((states.optout == 0) & (np.asarray(states.tenure) == 2))
    return np.asarray(rng.choice(candidates, n, replace=False), np.int64)


def test_exact_expectation_equals_the_simulations_mean() -> None:
    compare = _compare()
    base = load_world("coworking")
    world = replace(base, discrete=replace(base.discrete, tenure_cap_weeks=8))
    rng = np.random.default_rng(0)
    start = tenure_two_states(world, 60, rng)
    weeks = np.arange(20, 32, dtype=np.int64)  # 12 weeks of year, tenure passes its cap
    exact = compare.expected_weeks(world, start, weeks)
    runs = 3000
    bought = simulated_purchase_weeks(world, start, weeks, runs, rng)
    mean = bought.reshape(start.shape[0], runs, -1).mean(axis=1)
    se = np.sqrt(np.maximum(mean * (1 - mean), 1e-4) / runs)
    assert np.all(np.abs(mean - exact) < 5 * se), np.abs(mean - exact).max()
    assert exact.sum() > 1.0  # customers do buy: the comparison is not of zeros
    total_se = np.sqrt(bought.reshape(start.shape[0], runs, -1).sum(2).var(1).sum() / runs)
    assert abs(mean.sum() - exact.sum()) < 4 * total_se
