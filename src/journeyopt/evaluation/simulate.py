"""Simulation evaluation: every policy on the same customers with common random numbers.

Every policy starts from the same initial customers (one draw of the world's initial
population) and meets the same random numbers: the world's generator is re-created from the
same seed for each policy, and the dynamics draw a fixed number of random numbers per
customer-week whatever the actions (a test checks it), so customer ``i``'s ``u`` in week ``t``
is the same under every policy. Policies draw their own randomness from a separate generator.
Paired differences between policies therefore have much smaller variance than independent runs.

Metrics per policy (and per customer type), for ``N`` customers over ``H`` weeks:

- ``value``: mean discounted return ``sum_t gamma^t r_t`` per customer, currency, with a 95 %
  confidence interval (normal approximation, ``1.96 * sd / sqrt(N)``);
- ``pct_of_optimum``: ``100 * value / V*`` with ``V*`` the exact expected optimal value of the
  same initial states (the DP's ``values[0]``), not a simulated estimate; the optimum is solved
  under the contact rules of the evaluation (every rule the discrete summary represents; the
  others, ``EvaluationResult.optimum_unseen_rules``, are outside ``V*`` and applied to its
  actions by the guard);
- ``uplift``: mean paired difference to the reference policy (today's staff rules), with its
  95 % confidence interval;
- ``contacts_per_customer_week``, ``optout_rate`` (share of customers who opted out of at least
  one channel within the horizon), and undiscounted ``revenue`` (amount paid), ``contact_cost``
  and ``discount_cost`` per customer, currency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.agents.baselines import make_baseline
from journeyopt.agents.policy import Observation, Policy
from journeyopt.evaluation.config import EvaluationConfig
from journeyopt.panel.state import CustomerState, state_features
from journeyopt.sim.behaviour import contact_rules, world_under_rules
from journeyopt.sim.config import SimulatorConfig
from journeyopt.sim.discrete import discrete_state
from journeyopt.sim.env import EpisodeClock, step_customers
from journeyopt.sim.optimum import OptimalPolicy, cyclic_weeks_of_year, solve_optimum
from journeyopt.sim.population import starting_population
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.world import WorldSpec

Float = NDArray[np.float64]
IntArray = NDArray[np.int64]

Z95 = 1.959963984540054
"""Two-sided 95 % quantile of the standard normal."""


@dataclass(frozen=True)
class PolicyRun:
    """Per-customer results of one policy, each (N,).

    Attributes:
        name: Policy name.
        value: Discounted return, currency.
        revenue: Amount paid over the horizon (undiscounted), currency.
        contact_cost: Contact costs over the horizon (undiscounted), currency.
        discount_cost: Margin given away by discounts (undiscounted), currency.
        contacts: Contacts carried out.
        opted_out: Opted out of at least one channel within the horizon.
        forbidden: Forbidden actions the policy requested (carried out as ``none``).
        action_counts: (N, A) weeks each action was carried out (``none`` included).
        action_value: (N, A) the discounted return attributed to each action, currency: each
            week's reward split equally among the carried-out actions of the last
            ``outcome_weeks`` weeks (that week's and the ones before it, those within the
            horizon), so the row sums to ``value`` (:func:`simulate_policy`); the weights of
            the gate's per-action bias bound (docs/ope.md).
    """

    name: str
    value: Float
    revenue: Float
    contact_cost: Float
    discount_cost: Float
    contacts: IntArray
    opted_out: NDArray[np.bool_]
    forbidden: IntArray
    action_counts: NDArray[np.int64]
    action_value: Float | None = None


@dataclass(frozen=True)
class EvaluationResult:
    """The evaluation of several policies on the same customers.

    Attributes:
        table: One row per policy and customer type (``segment == "all"`` for everybody),
            columns as in :func:`summary_table`.
        runs: Per-customer results of each policy.
        optimum_value: (N,) exact optimal expected value of each customer's initial state.
        segment: (N,) customer type index.
        segment_names: Customer type names.
        horizon_weeks, gamma, seed, start_week_of_year: The settings.
        optimum_rules: The contact rules the optimum planned under, in one line.
        optimum_unseen_rules: The rules of the evaluation the optimum's plan did not see
            (:attr:`journeyopt.sim.optimum.OptimalPolicy.unseen_rules`); empty: none.
    """

    table: pd.DataFrame
    runs: tuple[PolicyRun, ...]
    optimum_value: Float
    segment: IntArray
    segment_names: tuple[str, ...]
    horizon_weeks: int
    gamma: float
    seed: int
    start_week_of_year: int
    optimum_rules: str = "opt-outs only"
    optimum_unseen_rules: tuple[str, ...] = ()


def simulate_policy(
    world: WorldSpec,
    policy: Policy,
    state: CustomerState,
    segment: IntArray,
    clock: EpisodeClock,
    gamma: float,
    world_rng: np.random.Generator,
    policy_rng: np.random.Generator,
    rules: ContactRules,
    outcome_weeks: int = 1,
) -> PolicyRun:
    """Roll ``N`` customers forward ``clock.horizon_weeks`` weeks under ``policy``.

    Args:
        world: The world.
        policy: The policy; its actions are guarded by ``rules``'s masks.
        state: Initial state of the customers (not modified).
        segment: (N,) customer type index.
        clock: Horizon and weeks of year.
        gamma: Weekly discount factor.
        world_rng: The world's randomness (common random numbers: same seed for every policy).
        policy_rng: The policy's own randomness.
        rules: Contact rules giving the masks.
        outcome_weeks: ``L`` >= 1: a week's reward is attributed to the actions of the last
            ``L`` weeks (:attr:`PolicyRun.action_value`), as the per-action model check
            compares a decision's ``L``-week outcome.
    """
    if outcome_weeks < 1:
        raise ValueError(f"outcome_weeks must be >= 1, got {outcome_weeks}")
    n = segment.shape[0]
    totals = {k: np.zeros(n) for k in ("value", "revenue", "contact", "discount")}
    contacts = np.zeros(n, np.int64)
    forbidden = np.zeros(n, np.int64)
    action_counts = np.zeros((n, world.actions.n_actions), np.int64)
    opted_out = np.zeros(n, bool)
    action_value = np.zeros((n, world.actions.n_actions))
    recent = np.full((n, outcome_weeks), -1, np.int64)  # the last L actions, -1: before t=0
    rows = np.arange(n)
    state = state.take(slice(None))
    for t in range(clock.horizon_weeks):
        woy = int(clock.weeks_of_year[t])
        features = state_features(state, world.features)
        masks = rules.masks(features, segment=segment, week_of_year=woy)
        seen = Observation(features, segment, woy, t, world.segment_names)
        actions, _ = policy.act(seen, masks, policy_rng)
        step = step_customers(world, state, features, segment, masks, actions, woy, world_rng)
        out = step.outcome
        totals["value"] += gamma**t * out.reward
        totals["revenue"] += out.paid
        totals["contact"] += out.contact_cost
        totals["discount"] += out.discount_cost
        contacts += out.actions != 0
        action_counts[np.arange(n), out.actions] += 1
        recent[:, t % outcome_weeks] = out.actions
        share = gamma**t * out.reward / min(t + 1, outcome_weeks)  # reward per recent action
        for j in range(min(t + 1, outcome_weeks)):
            action_value[rows, recent[:, j]] += share  # one cell per customer: no repeats
        forbidden += step.forbidden
        opted_out |= out.opted_out
        state = step.state
    return PolicyRun(
        name=policy.name,
        value=totals["value"],
        revenue=totals["revenue"],
        contact_cost=totals["contact"],
        discount_cost=totals["discount"],
        contacts=contacts,
        opted_out=opted_out,
        forbidden=forbidden,
        action_counts=action_counts,
        action_value=action_value,
    )


class CommonRandomNumbers(NamedTuple):
    """One seed split three ways (see the module docstring): the customers, the world's
    randomness and the policies' randomness. Every run re-creates the world's and the policy's
    generators from their seeds, so every policy, in every world, meets the same numbers.

    Attributes:
        population: Seed of the starting population.
        world: Seed of the world's generator.
        policy: Seed of the policy's generator.
    """

    population: np.random.SeedSequence
    world: np.random.SeedSequence
    policy: np.random.SeedSequence

    @staticmethod
    def of(seed: int) -> CommonRandomNumbers:
        return CommonRandomNumbers(*np.random.SeedSequence(seed).spawn(3))

    def customers(
        self, world: WorldSpec, n_customers: int, horizon_weeks: int
    ) -> tuple[CustomerState, IntArray]:
        """State and (N,) customer type of ``world``'s starting population
        (:func:`~journeyopt.sim.population.starting_population`)."""
        rng = np.random.default_rng(self.population)
        return starting_population(world, n_customers, rng, horizon_weeks)

    def generators(self) -> tuple[np.random.Generator, np.random.Generator]:
        """Fresh ``(world_rng, policy_rng)`` of :func:`simulate_policy`, the same at every
        call."""
        return np.random.default_rng(self.world), np.random.default_rng(self.policy)


def mean_ci(x: Float) -> tuple[float, float, float]:
    """Mean of ``x`` (n,) and its 95 % confidence interval (normal approximation)."""
    n = x.shape[0]
    mean = float(np.mean(x))
    half = Z95 * float(np.std(x, ddof=1)) / np.sqrt(n) if n > 1 else float("nan")
    return mean, mean - half, mean + half


def _rows(
    run: PolicyRun,
    reference: PolicyRun | None,
    optimum_value: Float,
    rows: NDArray[np.bool_],
    horizon_weeks: int,
) -> dict[str, float]:
    value, low, high = mean_ci(run.value[rows])
    if reference is not None:
        uplift, u_low, u_high = mean_ci(run.value[rows] - reference.value[rows])
    else:
        uplift = u_low = u_high = float("nan")
    return {
        "customers": int(rows.sum()),
        "value": value,
        "value_ci_low": low,
        "value_ci_high": high,
        "pct_of_optimum": 100.0 * value / float(np.mean(optimum_value[rows])),
        "uplift": uplift,
        "uplift_ci_low": u_low,
        "uplift_ci_high": u_high,
        "contacts_per_customer_week": float(np.mean(run.contacts[rows])) / horizon_weeks,
        "optout_rate": float(np.mean(run.opted_out[rows])),
        "revenue": float(np.mean(run.revenue[rows])),
        "contact_cost": float(np.mean(run.contact_cost[rows])),
        "discount_cost": float(np.mean(run.discount_cost[rows])),
        "forbidden_per_customer": float(np.mean(run.forbidden[rows])),
    }


def summary_table(
    runs: Sequence[PolicyRun],
    optimum_value: Float,
    segment: IntArray,
    segment_names: Sequence[str],
    horizon_weeks: int,
    reference: str | None = "staff_rules",
) -> pd.DataFrame:
    """One row per policy and customer type (``"all"`` first), see the module docstring.

    Columns: ``policy``, ``segment``, ``customers``, ``value`` (+ ``value_ci_low/high``),
    ``pct_of_optimum``, ``uplift`` (+ ``uplift_ci_low/high``; NaN without the reference),
    ``contacts_per_customer_week``, ``optout_rate``, ``revenue``, ``contact_cost``,
    ``discount_cost``, ``forbidden_per_customer``.
    """
    ref = next((r for r in runs if r.name == reference), None)
    groups = [("all", np.ones(segment.shape[0], bool))]
    groups += [(name, segment == k) for k, name in enumerate(segment_names)]
    records = [
        {"policy": run.name, "segment": name, **_rows(run, ref, optimum_value, rows, horizon_weeks)}
        for run in runs
        for name, rows in groups
        if rows.any()
    ]
    return pd.DataFrame.from_records(records)


def evaluate_policies(
    world: WorldSpec,
    policies: Sequence[Policy],
    n_customers: int = 10_000,
    horizon_weeks: int = 52,
    gamma: float = 0.995,
    seed: int = 0,
    start_week_of_year: int = 1,
    rules: ContactRules | None = None,
    optimum: OptimalPolicy | None = None,
    reference: str | None = "staff_rules",
    outcome_weeks: int = 1,
) -> EvaluationResult:
    """Evaluate ``policies`` on the same ``n_customers`` with common random numbers.

    Args:
        world: The world.
        policies: Policies with distinct names.
        n_customers: Customers drawn from the world's starting population
            (:func:`~journeyopt.sim.population.starting_population`).
        horizon_weeks: Weeks simulated per customer.
        gamma: Weekly discount factor in (0, 1].
        seed: Seed of the population, the world's randomness and the policies' randomness.
        start_week_of_year: ISO week of year of the first week.
        rules: Contact rules giving the masks; default the world's own (opt-outs only).
        optimum: The solved optimum for ``% of optimum``; solved here under ``rules`` when
            omitted (it must match the horizon, discount factor and weeks of year).
        reference: Name of the policy uplifts are measured against (None: no uplift).
        outcome_weeks: Weeks over which a week's reward is attributed to the actions before
            it (:attr:`PolicyRun.action_value`).
    """
    names = [p.name for p in policies]
    if len(set(names)) != len(names):
        raise ValueError(f"policy names must be distinct, got {names}")
    if n_customers < 2:
        raise ValueError(f"n_customers must be >= 2, got {n_customers}")
    clock = EpisodeClock.of(horizon_weeks, start_week_of_year)
    weeks_of_year = cyclic_weeks_of_year(start_week_of_year, horizon_weeks)
    if optimum is None:
        optimum = solve_optimum(world, horizon_weeks, gamma, weeks_of_year, rules=rules)
    elif (
        optimum.horizon_weeks != horizon_weeks
        or optimum.gamma != gamma
        or not np.array_equal(optimum.weeks_of_year, weeks_of_year)
    ):
        raise ValueError("the optimum was solved for another horizon, gamma or calendar")
    rules = rules if rules is not None else contact_rules(world)
    world = world_under_rules(world, rules)  # its state counts what the rules read
    common = CommonRandomNumbers.of(seed)
    state, segment = common.customers(world, n_customers, horizon_weeks)
    features = state_features(state, world.features)
    optimum_value = optimum.value(discrete_state(features, segment, world), 0)
    runs = tuple(
        simulate_policy(
            world, policy, state, segment, clock, gamma, *common.generators(), rules, outcome_weeks
        )
        for policy in policies
    )
    table = summary_table(
        runs, optimum_value, segment, world.segment_names, horizon_weeks, reference
    )
    return EvaluationResult(
        table=table,
        runs=runs,
        optimum_value=optimum_value,
        segment=segment,
        segment_names=world.segment_names,
        horizon_weeks=horizon_weeks,
        gamma=gamma,
        seed=seed,
        start_week_of_year=start_week_of_year,
        optimum_rules=optimum.rules,
        optimum_unseen_rules=optimum.unseen_rules,
    )


def evaluate_with_baselines(
    world: WorldSpec,
    sim: SimulatorConfig,
    ev: EvaluationConfig,
    learned: Sequence[Policy] = (),
    optimum: OptimalPolicy | None = None,
) -> EvaluationResult:
    """``learned`` policies and the baselines of ``ev`` in ``world`` on common random numbers,
    under the contact rules ``sim.rules`` (the rules the policies are served under), with the
    world's exact optimum for ``% of optimum`` (solved here unless given, under ``sim.rules``:
    it plans under every rule the discrete summary represents; a rule it cannot see, listed in
    ``EvaluationResult.optimum_unseen_rules``, still turns a forbidden planned contact into
    ``none``, and ``% of optimum`` then compares with a value that ignores that rule)."""
    rules = sim.contact_rules(world)
    if optimum is None:
        weeks = cyclic_weeks_of_year(sim.start_week_of_year, sim.horizon_weeks)
        optimum = solve_optimum(world, sim.horizon_weeks, sim.gamma, weeks, rules=rules)
    practice = (
        ev.staff.practice_for(world, "evaluation.staff") if "staff_rules" in ev.policies else None
    )
    if practice is not None:  # the world counts what the practice's state reads
        world = practice.world_for(world)
    baselines = [make_baseline(name, world, practice, optimum) for name in ev.policies]
    return evaluate_policies(
        world,
        [*learned, *baselines],
        n_customers=ev.n_customers,
        horizon_weeks=sim.horizon_weeks,
        gamma=sim.gamma,
        seed=ev.seed,
        start_week_of_year=sim.start_week_of_year,
        rules=rules,
        optimum=optimum,
        reference=ev.reference if ev.reference in ev.policies else None,
    )
