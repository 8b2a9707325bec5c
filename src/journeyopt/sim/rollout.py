"""Roll a population forward under a policy and collect discounted returns.

A minimal Monte Carlo loop over the dynamics, shared by the log generator's checks and the
exact optimum's tests; evaluation with common random numbers and confidence intervals builds
on the same :func:`journeyopt.sim.dynamics.sample_week` and ``advance``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from numpy.typing import NDArray

from journeyopt.panel.state import CustomerState, advance, state_features
from journeyopt.sim.discrete import summarise
from journeyopt.sim.dynamics import sample_outcome
from journeyopt.sim.world import WorldSpec

Float = NDArray[np.float64]
IntArray = NDArray[np.int64]
FeaturePolicy = Callable[[Mapping[str, NDArray[np.generic]], IntArray, int], NDArray[np.integer]]
"""A policy over features: (features (N,) each, segment (N,), episode week t) -> actions (N,)."""


def discounted_returns(
    world: WorldSpec,
    policy: FeaturePolicy,
    state: CustomerState,
    segment: NDArray[np.integer],
    weeks_of_year: NDArray[np.integer],
    gamma: float,
    rng: np.random.Generator,
) -> Float:
    """(N,) discounted return ``sum_t gamma^t r_t`` of each customer over ``len(weeks_of_year)``
    weeks, starting from ``state``, currency."""
    seg = np.asarray(segment, np.int64)
    total = np.zeros(state.n_customers)
    for t, woy in enumerate(np.asarray(weeks_of_year)):
        features = state_features(state, world.features)
        actions = np.asarray(policy(features, seg, t), np.int64)
        summary = summarise(features, seg, world)
        out = sample_outcome(world, summary, actions, int(woy), rng)
        total += gamma**t * out.reward
        state = advance(state, out.activity)
    return total
