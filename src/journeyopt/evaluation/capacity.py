"""A weekly capacity per action in simulation: a price on the action (a Lagrange multiplier).

Serving holds a capacity exactly, batch by batch, every arm (control included) to its share in
proportion to its customers (:func:`journeyopt.serving.guards.guard_capacity`): the same
weekly share per customer as here.
A simulated policy decides customer by customer, so the capacity is held *on average*: each
contact of an action with a capacity costs a price ``lambda_a`` (currency) more, and
``lambda_a`` is the smallest price at which the optimum of the priced world gives the action
to at most the allowed weekly share of customers (``capacity / capacity_customers``), found
by bisection in simulation. The priced optimum is then evaluated in the real world (without
the price): the value it gives up against the unconstrained optimum is what the capacity
costs (:func:`capacity_metrics`, reported by ``journeyopt-compare``).

With several capacities the prices are found one action after the other (each with the
others' prices fixed), once: the shares are then within the targets up to their interplay,
which the reported shares show.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from journeyopt.agents.baselines import OptimumPolicy
from journeyopt.evaluation.simulate import EvaluationResult, evaluate_policies
from journeyopt.sim.optimum import OptimalPolicy, cyclic_weeks_of_year, solve_optimum
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.world import WorldSpec

CAPACITY_POLICY = "optimum_capacity"
"""Name of the priced optimum in evaluation tables."""


@dataclass(frozen=True)
class CapacityPrices:
    """Prices that hold a simulated optimum to weekly capacities on average.

    Attributes:
        prices: Action -> price added to each of its contacts, currency.
        targets: Action -> weekly share of customers its capacity allows.
        shares: Action -> weekly share of customers the priced optimum gives it.
        unconstrained: Action -> weekly share the unpriced optimum gives it.
        optimum: The priced world's optimum (acting in the real world).
        priced: The priced world.
    """

    prices: dict[str, float]
    targets: dict[str, float]
    shares: dict[str, float]
    unconstrained: dict[str, float]
    optimum: OptimalPolicy
    priced: WorldSpec


def priced_world(world: WorldSpec, prices: Mapping[str, float]) -> WorldSpec:
    """``world`` whose actions cost ``prices`` (currency per contact) more."""
    names = world.actions.names
    costs = tuple(
        c + float(prices.get(n, 0.0)) for n, c in zip(names, world.actions.costs, strict=True)
    )
    return replace(world, actions=replace(world.actions, costs=costs))


@dataclass(frozen=True)
class _Simulation:
    """How the prices are searched: horizon, discount, calendar, customers, seed and rules."""

    horizon_weeks: int
    gamma: float
    start_week_of_year: int
    n_customers: int
    seed: int
    rules: ContactRules

    def optimum(self, world: WorldSpec) -> OptimalPolicy:
        weeks = cyclic_weeks_of_year(self.start_week_of_year, self.horizon_weeks)
        return solve_optimum(world, self.horizon_weeks, self.gamma, weeks, rules=self.rules)

    def shares(self, world: WorldSpec, optimum: OptimalPolicy) -> np.ndarray:
        """(A,) weekly share of customers the optimum of ``world`` gives each action."""
        result = evaluate_policies(
            world,
            [OptimumPolicy(world, optimum)],
            n_customers=self.n_customers,
            horizon_weeks=self.horizon_weeks,
            gamma=self.gamma,
            seed=self.seed,
            start_week_of_year=self.start_week_of_year,
            rules=self.rules,
            optimum=optimum,
            reference=None,
        )
        counts = result.runs[0].action_counts
        return np.asarray(counts.mean(axis=0) / self.horizon_weeks, np.float64)


def capacity_prices(
    world: WorldSpec,
    targets: Mapping[str, float],
    rules: ContactRules,
    *,
    horizon_weeks: int,
    gamma: float,
    start_week_of_year: int,
    n_customers: int,
    seed: int,
    iterations: int = 10,
) -> CapacityPrices:
    """The smallest prices holding the world's optimum to ``targets`` on average.

    For each action with a target: price 0 if the unpriced optimum already stays within it;
    otherwise the price doubles from 1 % of the world's largest mean conversion value until
    the share is within the target, then ``iterations`` bisection steps narrow it (the upper,
    feasible end is kept).

    Args:
        world: The world.
        targets: Action -> weekly share of customers allowed (``RulesConfig.capacity_shares``).
        rules: The contact rules the optimum acts under.
        horizon_weeks, gamma, start_week_of_year: The simulation.
        n_customers: Customers simulated for each share.
        seed: Seed of the simulations (the same customers for every price).
        iterations: Bisection steps per action.
    """
    sim = _Simulation(horizon_weeks, gamma, start_week_of_year, n_customers, seed, rules)
    names = world.actions.names
    base_optimum = sim.optimum(world)
    base_shares = sim.shares(world, base_optimum)
    prices: dict[str, float] = {a: 0.0 for a in targets}
    shares = base_shares
    optimum = base_optimum
    step = 0.01 * float(np.max(world.params.mean_value))
    for action, target in targets.items():
        a = names.index(action)
        if shares[a] <= target:
            continue
        low, high = 0.0, step
        for _ in range(40):  # a price as large as needed: at worst the action is never worth it
            prices[action] = high
            optimum = sim.optimum(priced_world(world, prices))
            shares = sim.shares(world, optimum)
            if shares[a] <= target:
                break
            low, high = high, 2.0 * high
        for _ in range(iterations):
            middle = 0.5 * (low + high)
            prices[action] = middle
            trial = sim.optimum(priced_world(world, prices))
            trial_shares = sim.shares(world, trial)
            if trial_shares[a] <= target:
                high, optimum, shares = middle, trial, trial_shares
            else:
                low = middle
        prices[action] = high
    return CapacityPrices(
        prices=prices,
        targets=dict(targets),
        shares={a: float(shares[names.index(a)]) for a in targets},
        unconstrained={a: float(base_shares[names.index(a)]) for a in targets},
        optimum=optimum,
        priced=priced_world(world, prices),
    )


def capacity_policy(prices: CapacityPrices) -> OptimumPolicy:
    """The priced optimum as a policy (named :data:`CAPACITY_POLICY`)."""
    return OptimumPolicy(prices.priced, prices.optimum, name=CAPACITY_POLICY)


def capacity_metrics(result: EvaluationResult, prices: CapacityPrices) -> dict[str, float]:
    """What the capacities cost, from an evaluation holding ``optimum`` and the priced
    optimum (:func:`capacity_policy`) on the same customers.

    Returns:
        ``eval/capacity_value_lost`` (mean discounted value per customer the priced optimum
        gives up against the unconstrained optimum, currency, with a 95 % interval),
        ``eval/capacity_pct_lost`` (of the unconstrained optimum's value) and per action
        ``eval/capacity_price/<action>`` (currency per contact), ``.../share`` and
        ``.../target`` (weekly share of customers) and ``.../unconstrained_share``.
    """
    runs = {run.name: run for run in result.runs}
    free, capped = runs["optimum"], runs[CAPACITY_POLICY]
    lost = free.value - capped.value
    n = lost.shape[0]
    half = 1.96 * float(np.std(lost, ddof=1)) / np.sqrt(n) if n > 1 else float("nan")
    mean = float(np.mean(lost))
    out = {
        "eval/capacity_value_lost": mean,
        "eval/capacity_value_lost_ci_low": mean - half,
        "eval/capacity_value_lost_ci_high": mean + half,
        "eval/capacity_pct_lost": 100.0 * mean / float(np.mean(free.value)),
    }
    for action, price in prices.prices.items():
        out[f"eval/capacity_price/{action}"] = price
        out[f"eval/capacity_share/{action}"] = prices.shares[action]
        out[f"eval/capacity_target/{action}"] = prices.targets[action]
        out[f"eval/capacity_unconstrained_share/{action}"] = prices.unconstrained[action]
    return out
