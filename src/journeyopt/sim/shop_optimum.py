"""The exact optimum of a shop world (:mod:`journeyopt.sim.shop`) by dynamic programming over
its own true state.

The true state (latent type × weeks since purchase × contact-history bits × pending delayed
effect × opt-out; 3 × 16 × 16 × 5 × 2 = 7,680 states for the roastery) is Markov, and a week's
outcome that moves it is (purchased, opted out), drawn independently given (state, action).
Backward induction over (state, week of the episode):

    V_H(s) = 0
    Q_t(s, a) = r_t(s, a) + gamma * sum_o P_t(o | s, a) V_{t+1}(next(s, a, o))
    V_t(s) = max over allowed a of Q_t(s, a)

with the expected reward :func:`journeyopt.sim.shop.expected_reward` (refunds discounted to the
purchase week) and ``next`` = :func:`journeyopt.sim.shop.next_state`, the functions the
simulation samples from. The optimum knows the latent type: it is the best any policy can do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from journeyopt.sim.optimum import cyclic_weeks_of_year
from journeyopt.sim.shop import (
    ShopSpec,
    ShopState,
    allowed_actions,
    expected_reward,
    next_state,
    responses,
)

Float = NDArray[np.float64]
IntArray = NDArray[np.int64]
StatePolicy = Callable[[ShopState, int], IntArray]
"""A policy over true states: (states (n,), episode week t) -> actions (n,)."""


@dataclass(frozen=True)
class ShopLayout:
    """Mixed-radix numbering of true states: (type, weeks - 1, history, pending, optout).

    Attributes:
        dims: The radices ``(Z, W, 2^history_weeks, P, 2)``.
    """

    dims: tuple[int, int, int, int, int]

    @staticmethod
    def of(spec: ShopSpec) -> ShopLayout:
        return ShopLayout(
            (
                spec.n_types,
                spec.recency_cap_weeks,
                2**spec.history_weeks,
                spec.params.n_pending,
                2,
            )
        )

    @property
    def n_states(self) -> int:
        return int(np.prod(self.dims))

    def encode(self, state: ShopState) -> IntArray:
        """(N,) state index of each customer."""
        index = np.ravel_multi_index(
            (state.type, state.weeks - 1, state.history, state.pending, state.optout), self.dims
        )
        return np.asarray(index, np.int64)

    def decode(self, index: NDArray[np.integer]) -> ShopState:
        """Inverse of :meth:`encode`."""
        z, w, h, d, o = np.unravel_index(np.asarray(index, np.int64), self.dims)
        return ShopState(
            z.astype(np.int64),
            (w + 1).astype(np.int64),
            h.astype(np.int64),
            d.astype(np.int64),
            o.astype(np.int64),
        )

    def all_states(self) -> ShopState:
        """Every state in index order, (n_states,) arrays."""
        return self.decode(np.arange(self.n_states))


@dataclass(frozen=True)
class ShopOptimum:
    """The exact optimum of a shop world over a finite horizon.

    Attributes:
        layout: How true states are numbered.
        values: (H + 1, n_states) optimal expected discounted return from episode week ``t``
            on, currency.
        actions: (H, n_states) optimal action (ties to the lowest index: ``none`` first).
        gamma: Weekly discount factor.
        weeks_of_year: (H,) ISO week of year of each episode week.
    """

    layout: ShopLayout
    values: Float
    actions: NDArray[np.int8]
    gamma: float
    weeks_of_year: IntArray

    def act(self, state: ShopState, week: int) -> IntArray:
        """(N,) optimal actions of customers in ``state`` at episode week ``week``."""
        return self.actions[week, self.layout.encode(state)].astype(np.int64)

    def value(self, state: ShopState, week: int = 0) -> Float:
        """(N,) optimal expected discounted return from episode week ``week`` on."""
        return self.values[week, self.layout.encode(state)]


def _backward(
    spec: ShopSpec,
    gamma: float,
    weeks_of_year: IntArray,
    choose: Callable[[Float, int, ShopState], tuple[Float, IntArray]],
) -> tuple[Float, NDArray[np.int8]]:
    layout = ShopLayout.of(spec)
    states = layout.all_states()
    n, n_actions = layout.n_states, spec.actions.n_actions
    # next-state indices of every (action, outcome o = 2 * purchased + opted out): week-free
    nxt = np.empty((n_actions, 4, n), np.int64)
    for a in range(n_actions):
        act = np.full(n, a, np.int64)
        for o in range(4):
            bought, opted = np.full(n, bool(o & 2)), np.full(n, bool(o & 1))
            nxt[a, o] = layout.encode(next_state(spec, states, act, bought, opted))
    allowed = allowed_actions(spec, states).T  # (A, n)
    horizon = int(weeks_of_year.shape[0])
    values = np.zeros((horizon + 1, n))
    actions = np.zeros((horizon, n), np.int8)
    for t in range(horizon - 1, -1, -1):
        q = np.full((n_actions, n), -np.inf)
        for a in range(n_actions):
            ok = allowed[a]
            act = np.where(ok, a, 0)  # forbidden actions are scored as none, then masked
            r = responses(spec, states, act, int(weeks_of_year[t]))
            reward = expected_reward(spec, states, act, r, gamma)
            pb, px = r.purchase, r.optout
            future = np.zeros(n)
            for o in range(4):
                prob = (pb if o & 2 else 1 - pb) * (px if o & 1 else 1 - px)
                future += prob * values[t + 1][nxt[a, o]]
            q[a] = np.where(ok, reward + gamma * future, -np.inf)
        values[t], chosen = choose(q, t, states)
        actions[t] = chosen
    return values, actions


def solve_shop_optimum(
    spec: ShopSpec, horizon_weeks: int, gamma: float, start_week_of_year: int = 1
) -> ShopOptimum:
    """Backward induction over all true states (see the module docstring).

    Args:
        spec: The shop world.
        horizon_weeks: Episode length ``H``, weeks.
        gamma: Weekly discount factor in (0, 1].
        start_week_of_year: ISO week of year of the first episode week.
    """
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    woy = cyclic_weeks_of_year(start_week_of_year, horizon_weeks)

    def best(q: Float, t: int, states: ShopState) -> tuple[Float, IntArray]:
        chosen = np.argmax(q, axis=0)
        return q[chosen, np.arange(q.shape[1])], chosen

    values, actions = _backward(spec, gamma, woy, best)
    return ShopOptimum(ShopLayout.of(spec), values, actions, gamma, woy)


def evaluate_state_policy(
    spec: ShopSpec,
    policy: StatePolicy,
    horizon_weeks: int,
    gamma: float,
    start_week_of_year: int = 1,
) -> Float:
    """Exact expected discounted return (H + 1, n_states) of a policy over true states;
    forbidden actions are carried out as ``none``, as in :func:`journeyopt.sim.shop.step`."""
    woy = cyclic_weeks_of_year(start_week_of_year, horizon_weeks)

    def follow(q: Float, t: int, states: ShopState) -> tuple[Float, IntArray]:
        a = np.asarray(policy(states, t), np.int64)
        a = np.where(np.isfinite(q[a, np.arange(q.shape[1])]), a, 0)
        return q[a, np.arange(q.shape[1])], a

    values, _ = _backward(spec, gamma, woy, follow)
    return values
