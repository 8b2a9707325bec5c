"""Off-policy evaluation of contact policies on logged trajectories: every estimator with its
bootstrap interval, the overlap diagnostics, and paired differences between policies.

    logged = logged_trajectories(panel, world, rules, horizon_weeks=13)
    result = evaluate_on_logs(policy, logged, model_world, settings)
    result.table            # one row per estimator: value, ci_low, ci_high, lower_bound
    result.diagnostics      # ESS, zero-target share, weights, by segment

The long-term value over a short importance-weighted window (:func:`evaluate_long_term`):

    logged = logged_trajectories(panel, world, rules, horizon_weeks=2 + 1)  # window + next week
    result = evaluate_long_term(policy, logged, ValueModel(model_world), settings, 52)
    result.table            # lt_dm, lt_dr: value over 52 weeks, currency per customer
    result.diagnostics      # overlap over the 2-week window's cumulative weights
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.agents.baselines import expected_rewards
from journeyopt.agents.policy import Policy
from journeyopt.evaluation.ope.bandit import BanditData
from journeyopt.evaluation.ope.bootstrap import (
    Estimand,
    Interval,
    PairedDifference,
    Statistic,
    bootstrap_interval,
    check_bootstrap,
)
from journeyopt.evaluation.ope.diagnostics import Diagnostics, OverlapThresholds, diagnose
from journeyopt.evaluation.ope.fqe import fitted_q
from journeyopt.evaluation.ope.logged import LoggedTrajectories, target_probabilities
from journeyopt.evaluation.ope.model_value import (
    ValueModel,
    long_term_model_values,
    model_q_values,
    visited_states,
)
from journeyopt.evaluation.ope.sequential import (
    PDIS,
    WPDIS,
    DirectValue,
    LongTermDR,
    SequentialDR,
    Trajectories,
)
from journeyopt.sim.optimum import cyclic_weeks_of_year
from journeyopt.sim.world import WorldSpec

Float = NDArray[np.float64]

ESTIMATORS: tuple[str, ...] = ("pdis", "wpdis", "dm", "dr", "fqe", "dr_fqe")
"""Sequential estimators by name: per-decision IS, weighted PDIS, the model world's direct
value, sequential DR with the model world's values, fitted-Q evaluation, sequential DR with
the fitted-Q values."""

LONG_TERM_ESTIMATORS: tuple[str, ...] = ("lt_dm", "lt_dr")
"""Long-term estimators over a short window (:func:`evaluate_long_term`): the model world's
value over the value horizon from the logged initial states, and the long-term DR (the window
corrected on the logs, the model's value-to-go after it)."""


@dataclass(frozen=True)
class OPESettings:
    """How policies are evaluated on logs.

    Attributes:
        gamma: Weekly discount factor in (0, 1] (the simulator's).
        n_boot: Bootstrap replicates over customers.
        confidence: Confidence of the intervals and of the lower bound, in (0, 1).
        seed: Seed of the bootstrap and of stochastic target policies.
        fqe_ridge: L2 penalty of fitted-Q evaluation.
        thresholds: When the overlap diagnostics fail.
        rollout_customers: Customers simulated in the model world to project the target
            policy onto the states the logs do not hold (``dm``, ``dr``) and those reached
            after the window (long-term estimators).
    """

    gamma: float = 0.995
    n_boot: int = 500
    confidence: float = 0.95
    seed: int = 0
    fqe_ridge: float = 1.0
    thresholds: OverlapThresholds = field(default_factory=OverlapThresholds)
    rollout_customers: int = 2000

    def __post_init__(self) -> None:
        if self.rollout_customers < 1:
            raise ValueError(f"rollout_customers must be >= 1, got {self.rollout_customers}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        check_bootstrap(self.n_boot, self.confidence)


@dataclass(frozen=True)
class LogEvaluation:
    """One policy evaluated on logs.

    Attributes:
        policy: Policy name.
        statistics: Estimator name -> its estimate in ratio form (for paired differences).
        intervals: Estimator name -> point estimate and bootstrap interval.
        diagnostics: Overlap diagnostics.
        model_spread: Estimator name -> standard deviation of its value across the model
            world's ensemble members, currency (empty when no members were given).
        member_values: Estimator name -> (M,) its value in each ensemble member, in the
            members' order (paired differences between policies take them member by member),
            currency per customer (empty when no members were given).
        model_part: Estimator name -> the part of its value that is the model world's alone,
            currency per customer: for ``lt_dr`` the discounted, importance-weighted
            value-to-go after the window (``mean_k gamma^H R_{H-1} v_H``), for ``lt_dm`` the
            whole value (empty for the window-only estimators).
    """

    policy: str
    statistics: dict[str, Statistic]
    intervals: dict[str, Interval]
    diagnostics: Diagnostics
    model_spread: dict[str, float] = field(default_factory=dict)
    member_values: dict[str, tuple[float, ...]] = field(default_factory=dict)
    model_part: dict[str, float] = field(default_factory=dict)

    @property
    def table(self) -> pd.DataFrame:
        """One row per estimator: ``policy``, ``estimator``, ``value``, ``ci_low``,
        ``ci_high``, ``lower_bound``, ``model_sd`` (the ensemble spread, NaN when not
        measured), currency per customer."""
        return pd.DataFrame.from_records(
            {
                "policy": self.policy,
                "estimator": name,
                "value": iv.value,
                "ci_low": iv.ci_low,
                "ci_high": iv.ci_high,
                "lower_bound": iv.lower_bound,
                "model_sd": self.model_spread.get(name, np.nan),
            }
            for name, iv in self.intervals.items()
        )


def trajectories(logged: LoggedTrajectories, target: Float, gamma: float) -> Trajectories:
    """The estimators' view of ``logged`` with the (K, H, A) ``target`` probabilities."""
    return Trajectories(logged.action, logged.reward, logged.propensity, target, gamma)


def evaluate_on_logs(
    policy: Policy,
    logged: LoggedTrajectories,
    model_world: WorldSpec,
    settings: OPESettings,
    estimators: tuple[str, ...] = ESTIMATORS,
) -> LogEvaluation:
    """Every estimator in ``estimators`` for ``policy`` on ``logged`` (see the module docstring).

    Args:
        policy: The target policy; its probabilities are masked by the logs' contact rules.
        logged: Logged trajectories.
        model_world: The world whose value function enters ``dm`` and ``dr`` (the calibrated
            world in production).
        settings: Discount, bootstrap and diagnostics settings.
        estimators: Names from :data:`ESTIMATORS`.
    """
    unknown = [e for e in estimators if e not in ESTIMATORS]
    if unknown:
        raise ValueError(f"unknown estimators {unknown}; known: {list(ESTIMATORS)}")
    target = target_probabilities(policy, logged, settings.seed)
    data = trajectories(logged, target, settings.gamma)
    q_model = q_fqe = None
    if {"dm", "dr"} & set(estimators):
        vm = ValueModel(model_world)
        visited = visited_states(
            vm,
            policy,
            logged.rules,  # the logs' masks' rules: serving's in the gate
            settings.rollout_customers,
            logged.week_of_year,
            settings.seed,
        )
        q_model = model_q_values(
            vm,
            dict(logged.features),
            logged.segment,
            logged.week_of_year,
            target,
            settings.gamma,
            visited=visited,
        )
    if {"fqe", "dr_fqe"} & set(estimators):
        q_fqe = fitted_q(
            logged.features,
            logged.segment,
            len(logged.segment_names),
            logged.action,
            logged.reward,
            target,
            settings.gamma,
            settings.fqe_ridge,
        )
    makers = {
        "pdis": lambda: PDIS().statistic(data),
        "wpdis": lambda: WPDIS().statistic(data),
        "dm": lambda: DirectValue("dm").statistic(data, q_model),
        "dr": lambda: SequentialDR().statistic(data, q_model),
        "fqe": lambda: DirectValue("fqe").statistic(data, q_fqe),
        "dr_fqe": lambda: SequentialDR("dr_fqe").statistic(data, q_fqe),
    }
    statistics = {name: makers[name]() for name in estimators}
    intervals = {
        name: bootstrap_interval(stat, settings.n_boot, settings.confidence, settings.seed)
        for name, stat in statistics.items()
    }
    diagnostics = diagnose(
        data, logged.segment, logged.segment_names, settings.thresholds, model_world.actions.names
    )
    return LogEvaluation(policy.name, statistics, intervals, diagnostics)


def evaluate_long_term(
    policy: Policy,
    logged: LoggedTrajectories,
    model: WorldSpec | ValueModel,
    settings: OPESettings,
    value_horizon_weeks: int,
    members: tuple[WorldSpec | ValueModel, ...] = (),
) -> LogEvaluation:
    """``lt_dm`` and ``lt_dr`` (:data:`LONG_TERM_ESTIMATORS`) for ``policy``: the value over
    ``value_horizon_weeks`` weeks from the first logged week, per customer, currency.

    Args:
        policy: The target policy; its probabilities are masked by the logs' contact rules.
        logged: ``H + 1`` logged weeks: the window of ``H`` weeks and the week after it (its
            state starts the model's value-to-go).
        model: The model world (the calibrated point estimate in production).
        settings: Discount, bootstrap and diagnostics settings.
        value_horizon_weeks: ``V >= H`` (the simulation's horizon).
        members: Other model worlds (the calibrated ensemble's bootstrap members): each gives
            ``lt_dr`` again, and the spread of those values is reported as
            :attr:`LogEvaluation.model_spread` (the bootstrap over customers holds the model
            fixed, so its interval excludes the model's fitting error).

    The overlap diagnostics are those of the ``H``-week window's cumulative weights.
    """
    if logged.horizon_weeks < 2:
        raise ValueError("the long-term estimators need the window plus the week after it")
    target = target_probabilities(policy, logged, settings.seed)
    h = logged.horizon_weeks - 1
    window = Trajectories(
        logged.action[:, :h],
        logged.reward[:, :h],
        logged.propensity[:, :h],
        target[:, :h],
        settings.gamma,
    )

    def long_term(world: WorldSpec | ValueModel) -> tuple[Statistic, Statistic, float]:
        vm = world if isinstance(world, ValueModel) else ValueModel(world)
        woy = cyclic_weeks_of_year(int(logged.week_of_year[0]), value_horizon_weeks)
        visited = visited_states(
            vm, policy, logged.rules, settings.rollout_customers, woy, settings.seed
        )
        q, terminal = long_term_model_values(
            vm,
            dict(logged.features),
            logged.segment,
            logged.week_of_year,
            target,
            settings.gamma,
            value_horizon_weeks,
            visited,
        )
        tail = window.gamma**h * window.cumulative_ratio[:, -1] * terminal
        return (
            DirectValue("lt_dm").statistic(window, q),
            LongTermDR().statistic(window, q, terminal),
            float(tail.mean()),
        )

    lt_dm, lt_dr, tail = long_term(model)
    statistics = {"lt_dm": lt_dm, "lt_dr": lt_dr}
    model_part = {"lt_dm": lt_dm.value(), "lt_dr": tail}
    intervals = {
        name: bootstrap_interval(stat, settings.n_boot, settings.confidence, settings.seed)
        for name, stat in statistics.items()
    }
    spread: dict[str, float] = {}
    per_member: dict[str, tuple[float, ...]] = {}
    if members:
        values = np.array([[s.value() for s in long_term(m)[:2]] for m in members])
        per_member = {"lt_dm": tuple(values[:, 0]), "lt_dr": tuple(values[:, 1])}
        if len(members) > 1:
            spread = {
                "lt_dm": float(values[:, 0].std(ddof=1)),
                "lt_dr": float(values[:, 1].std(ddof=1)),
            }
    world = model.world if isinstance(model, ValueModel) else model
    diagnostics = diagnose(
        window, logged.segment, logged.segment_names, settings.thresholds, world.actions.names
    )
    return LogEvaluation(
        policy.name, statistics, intervals, diagnostics, spread, per_member, model_part
    )


def paired_improvement(
    candidate: LogEvaluation, reference: LogEvaluation, estimator: str, settings: OPESettings
) -> Interval:
    """``candidate - reference`` by ``estimator`` on the same customers and resamples."""
    difference: Estimand = PairedDifference(
        candidate.statistics[estimator], reference.statistics[estimator]
    )
    return bootstrap_interval(difference, settings.n_boot, settings.confidence, settings.seed)


def weekly_bandit_data(
    logged: LoggedTrajectories, target: Float, model_world: WorldSpec
) -> BanditData:
    """Every logged customer-week as one-step data (the value of the next weekly decision),
    with the model world's expected rewards of each action as the reward model."""
    k, h, n_actions = target.shape
    q_hat = np.stack(
        [expected_rewards(model_world, logged.observation(t)) for t in range(h)], axis=1
    )
    return BanditData(
        action=logged.action.reshape(-1),
        reward=logged.reward.reshape(-1),
        propensity=logged.propensity.reshape(-1),
        target=target.reshape(-1, n_actions),
        q_hat=q_hat.reshape(-1, n_actions),
        customer=np.repeat(np.arange(k, dtype=np.int64), h),
    )
