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


def test_exact_expectation_equals_the_simulations_mean() -> None:
    compare = _compare()
    base = load_world("coworking")
    world = replace(base, discrete=replace(base.discrete, tenure_cap_weeks=8))
    layout = DiscreteLayout.of(world)
    rng = np.random.default_rng(0)
    states = layout.all_states()
    # one starting tenure: each week reaches only the next (the restriction is exercised)
    candidates = np.flatnonzero((states.optout == 0) & (np.asarray(states.tenure) == 2))
    start = rng.choice(candidates, 60, replace=False)
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
