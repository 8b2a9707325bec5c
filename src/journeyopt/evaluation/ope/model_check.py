"""Is the model world right about the logs? A check of a model-based estimate from the logs
alone (no truth needed).

The overlap diagnostics (:mod:`~journeyopt.evaluation.ope.diagnostics`) judge importance
weights; a model-based estimate (``dm``, ``lt_dm``, the value-to-go of ``lt_dr``) is only as
good as its model world, and nothing in the weights tells. The logs do: the behaviour (logging)
policy's value over the logged weeks is known without any model — the realised discounted
reward of the logged customers, an unbiased on-policy estimate. The check replays the
behaviour policy in the model world from the same customers' logged states over the same
weeks and compares:

- realised, per customer (currency): ``G_k = sum_{t<W} gamma^t r_kt``;
- the model's prediction (currency): ``M_k = q_0(x_k0, a_k0)``, the model's expected
  discounted return over ``W`` weeks after the logged first action, the behaviour policy
  afterwards (:func:`~journeyopt.evaluation.ope.model_value.model_q_values` with the logged
  actions as a one-hot "target": projected onto the discrete states week by week, that is the
  behaviour policy's empirical action distribution in each state);
- the relative gap ``(mean M - mean G) / |mean G|``, with a percentile bootstrap interval
  over customers (the same resamples for ``M`` and ``G``: paired).

The check is an equivalence test (two one-sided tests, TOST): it *passes* only when the
model is shown to be accurate, the gap's whole interval lying within ``+-tolerance``; an
interval that straddles the tolerance fails for want of evidence (small logs fail). The lax
mode (``strict=False``, an explicit opt-out) fails only when the whole interval lies beyond
``+-tolerance``: a model over-predicting by 11.7 % with an interval from 7.9 % passes it,
which is how a wrong world once carried a promotion.

A model that is right about the logging policy's value may still be wrong about one action
whose effect the logging policy's mix averages away; a candidate that leans on that action
inherits the error. :func:`check_actions` therefore checks the model's response to each
action the candidate takes in a material share of its decisions (``min_action_share``): over
the logged decisions that took the action, the model's expected discounted reward over the
``L`` weeks from the decision (``q(x_t, a)``, the logging policy after it; ``L =
action_outcome_weeks``, 2 by default: a response to a contact late in a week lands in the
next) against the realised discounted reward of those weeks, both propensity-weighted
(``w = 1 / propensity``, so decisions the logging policy rarely took, where a candidate
differs from it, count as much as they would if the action were taken everywhere), the same
relative gap and the same equivalence test, bootstrap over customers. An action the logs
never took cannot be checked and fails.

The measured error also widens a model-based interval (:func:`widen`): the bootstrap over
customers holds the model fixed, so its interval excludes the model's error; adding the
largest relative gap the check allows (``max(|gap_low|, |gap_high|)``) times the estimate, in
quadrature, makes the interval honest about it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.evaluation.ope.bootstrap import (
    Interval,
    Statistic,
    bootstrap_replicates,
    check_bootstrap,
)
from journeyopt.evaluation.ope.logged import LoggedTrajectories, logged_weeks
from journeyopt.evaluation.ope.model_value import ValueModel, model_q_values
from journeyopt.sim.world import WorldSpec

Float = NDArray[np.float64]


@dataclass(frozen=True)
class ModelCheckSettings:
    """How the model check is run and judged.

    Attributes:
        tolerance: Largest acceptable relative gap between the model's and the realised
            value of the behaviour policy, in (0, 1) (0.1: 10 %).
        n_boot: Bootstrap replicates over customers.
        confidence: Two-sided confidence of the gap's interval, in (0, 1).
        seed: Seed of the bootstrap.
        strict: Pass only when the gap's whole interval lies within ``+-tolerance`` (the
            equivalence test, the default); ``False`` (lax, an explicit opt-out): fail only
            when it lies wholly beyond.
        min_action_share: :func:`check_actions` checks the actions the candidate takes in at
            least this share of its decisions, in (0, 1].
        action_outcome_weeks: ``L``, the weeks over which :func:`check_actions` compares a
            decision's outcome (the week of the decision and the ``L - 1`` after it: a
            response to a contact late in a week lands in the next).
    """

    tolerance: float = 0.1
    n_boot: int = 500
    confidence: float = 0.95
    seed: int = 0
    strict: bool = True
    min_action_share: float = 0.05
    action_outcome_weeks: int = 2

    def __post_init__(self) -> None:
        if not 0.0 < self.tolerance < 1.0:
            raise ValueError(f"tolerance must be in (0, 1), got {self.tolerance}")
        if not 0.0 < self.min_action_share <= 1.0:
            raise ValueError(f"min_action_share must be in (0, 1], got {self.min_action_share}")
        if self.action_outcome_weeks < 1:
            raise ValueError(f"action_outcome_weeks must be >= 1, got {self.action_outcome_weeks}")
        check_bootstrap(self.n_boot, self.confidence)


@dataclass(frozen=True)
class ModelCheck:
    """The model check of one model world on one set of logs (see the module docstring).

    Attributes:
        weeks: ``W``, logged weeks replayed.
        realised: Realised discounted reward per customer over ``W`` weeks, currency.
        predicted: The model's value of the same, currency.
        gap: Relative gap ``(predicted - realised) / |realised|``.
        gap_low, gap_high: The gap's bootstrap interval at ``confidence``.
        tolerance: Largest acceptable gap.
        strict: Whether the interval had to lie within ``+-tolerance``.
        passed: Strict: whether the whole interval lies within ``+-tolerance``; lax: whether
            some of it does.
        confidence: Two-sided confidence of the interval.
        table: One row per segment (``all`` first): ``segment``, ``customers``, ``realised``,
            ``predicted``, ``gap``.
    """

    weeks: int
    realised: float
    predicted: float
    gap: float
    gap_low: float
    gap_high: float
    tolerance: float
    strict: bool
    passed: bool
    table: pd.DataFrame
    confidence: float = 0.95

    @property
    def error_bound(self) -> float:
        """``max(|gap_low|, |gap_high|)``: the largest relative model error the check allows."""
        return max(abs(self.gap_low), abs(self.gap_high))

    @property
    def reason(self) -> str:
        """Why the check failed (empty when it passed)."""
        if self.passed:
            return ""
        return (
            f"the model world predicts {self.predicted:,.2f} per customer for the logging "
            f"policy over {self.weeks} logged weeks, the logs realised {self.realised:,.2f}: "
            f"{_predicts(self.gap)} by {_pct(self.gap)} "
            f"({_interval_text(self.gap_low, self.gap_high, self.confidence)}, "
            f"{_tolerance_text(self.tolerance, self.strict)})"
        )

    def metrics(self) -> dict[str, float]:
        """The check as ``ope/model_check_*`` metrics."""
        return {
            "ope/model_check_gap": self.gap,
            "ope/model_check_gap_low": self.gap_low,
            "ope/model_check_gap_high": self.gap_high,
            "ope/model_check_passed": float(self.passed),
        }


def logged_actions_one_hot(logged: LoggedTrajectories) -> Float:
    """(K, W, A) the logged actions as probabilities (one per customer-week)."""
    n_actions = logged.masks.shape[2]
    out = np.zeros((*logged.action.shape, n_actions))
    np.put_along_axis(out, logged.action[:, :, None], 1.0, axis=2)
    return out


def behaviour_values(
    logged: LoggedTrajectories, model: WorldSpec | ValueModel, gamma: float
) -> tuple[Float, Float]:
    """``(realised, predicted)``, each (K,): the logged customers' discounted reward over the
    logged weeks and the model's prediction of it (see the module docstring), currency."""
    behaviour = logged_actions_one_hot(logged)
    q = model_q_values(
        model, dict(logged.features), logged.segment, logged.week_of_year, behaviour, gamma
    )
    predicted = np.take_along_axis(q[:, 0], logged.action[:, :1], axis=1)[:, 0]
    discount = gamma ** np.arange(logged.horizon_weeks, dtype=np.float64)
    realised = (logged.reward * discount).sum(axis=1)
    return np.asarray(realised, np.float64), np.asarray(predicted, np.float64)


def _segment_rows(
    realised: Float, predicted: Float, segment: NDArray[np.integer], names: Sequence[str]
) -> pd.DataFrame:
    rows = []
    for name, members in [("all", np.ones(segment.shape, bool))] + [
        (n, segment == k) for k, n in enumerate(names)
    ]:
        if not members.any():
            continue
        g, m = float(realised[members].mean()), float(predicted[members].mean())
        rows.append(
            {
                "segment": name,
                "customers": int(members.sum()),
                "realised": g,
                "predicted": m,
                "gap": (m - g) / abs(g) if g != 0 else np.nan,
            }
        )
    return pd.DataFrame.from_records(rows)


def _pct(x: float) -> str:
    return f"{100 * x:+.1f} %"


def _predicts(gap: float) -> str:
    return "over-predicts" if gap > 0 else "under-predicts"


def _interval_text(low: float, high: float, confidence: float) -> str:
    return f"{100 * confidence:g} % CI {_pct(low)} to {_pct(high)}"


def _tolerance_text(tolerance: float, strict: bool) -> str:
    kind = "tolerance" if strict else "lax check, tolerance"
    return f"{kind} {100 * tolerance:g} %"


def passes(gap_low: float, gap_high: float, tolerance: float, strict: bool = True) -> bool:
    """Whether a gap interval ``(gap_low, gap_high)`` passes (see the module docstring):
    strict (equivalence): the whole interval within ``+-tolerance``; lax: not wholly beyond."""
    if not gap_low <= gap_high:
        raise ValueError(f"gap_low must be <= gap_high, got {gap_low} > {gap_high}")
    if strict:
        return -tolerance <= gap_low and gap_high <= tolerance
    return not (gap_low > tolerance or gap_high < -tolerance)


def gap_interval(
    realised: Float, predicted: Float, settings: ModelCheckSettings
) -> tuple[float, float, float]:
    """``(gap, low, high)``: the relative gap ``(mean predicted - mean realised) /
    |mean realised|`` of per-customer (K,) values and its paired percentile bootstrap
    interval over customers at ``settings.confidence``.

    Raises:
        ValueError: The realised values sum to 0 (no relative gap).
    """
    g, m = float(realised.mean()), float(predicted.mean())
    if g == 0:
        raise ValueError("the realised values sum to 0: no relative gap")
    low, high = percentile_interval(gap_replicates(realised, predicted, settings), settings)
    return (m - g) / abs(g), low, high


def percentile_interval(replicates: Float, settings: ModelCheckSettings) -> tuple[float, float]:
    """``(low, high)``: the percentile interval of (n_boot,) bootstrap ``replicates`` at
    ``settings.confidence``."""
    alpha = 1.0 - settings.confidence
    low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def gap_replicates(realised: Float, predicted: Float, settings: ModelCheckSettings) -> Float:
    """(n_boot,) the relative gap of :func:`gap_interval` on each customer resample (inf where
    a resample realised 0); the resamples depend on ``settings.seed`` and the number of
    customers only, so two checks on the same customers are paired resample by resample."""
    ones = np.ones((realised.shape[0], 1))
    g_boot = bootstrap_replicates(
        Statistic(realised[:, None], ones), settings.n_boot, settings.seed
    )
    m_boot = bootstrap_replicates(
        Statistic(predicted[:, None], ones), settings.n_boot, settings.seed
    )
    return np.divide(
        m_boot - g_boot, np.abs(g_boot), out=np.full_like(g_boot, np.inf), where=g_boot != 0
    )


def check_model(
    logged: LoggedTrajectories,
    model: WorldSpec | ValueModel,
    gamma: float,
    settings: ModelCheckSettings | None = None,
) -> ModelCheck:
    """Replay the behaviour policy of ``logged`` in ``model`` (see the module docstring).

    Args:
        logged: Logged trajectories; every logged week is replayed (``W = H``).
        model: The model world (its segments in the logs' order), or its value model.
        gamma: Weekly discount factor.
        settings: Tolerance and bootstrap; defaults of :class:`ModelCheckSettings`.

    Raises:
        ValueError: The logs realised a total reward of 0 (no relative gap).
    """
    limits = settings if settings is not None else ModelCheckSettings()
    realised, predicted = behaviour_values(logged, model, gamma)
    if realised.mean() == 0:
        raise ValueError("the logged customers realised no reward: the model check needs some")
    gap, low, high = gap_interval(realised, predicted, limits)
    return ModelCheck(
        weeks=logged.horizon_weeks,
        realised=float(realised.mean()),
        predicted=float(predicted.mean()),
        gap=gap,
        gap_low=low,
        gap_high=high,
        tolerance=limits.tolerance,
        strict=limits.strict,
        passed=passes(low, high, limits.tolerance, limits.strict),
        table=_segment_rows(realised, predicted, logged.segment, logged.segment_names),
        confidence=limits.confidence,
    )


@dataclass(frozen=True)
class ActionCheck:
    """The model's response to one action checked on the logged decisions that took it (see
    the module docstring).

    Attributes:
        action: The action's name.
        share: Share of the candidate's decisions (target probability mass over the logged
            customer-weeks) that take it.
        decisions: Logged decisions that took it.
        realised: Propensity-weighted realised reward of those decisions per customer,
            currency (NaN when none was logged).
        predicted: The model's propensity-weighted expected reward of the same, currency.
        gap, gap_low, gap_high: Relative gap ``(predicted - realised) / |realised|`` and its
            bootstrap interval over customers (NaN when it cannot be measured).
        tolerance: Largest acceptable gap.
        strict: Whether the interval had to lie within ``+-tolerance``.
        confidence: Two-sided confidence of the interval.
        passed: Whether the check passed (never when nothing was logged to check it on).
        replicates: (n_boot,) the gap on each customer resample (:func:`gap_replicates`,
            paired across the actions of one check), None when it cannot be measured: what
            the gate's per-action bias bound combines with a policy's own action mix
            (:class:`~journeyopt.tracking.promotion.WorldError`).
    """

    action: str
    share: float
    decisions: int
    realised: float
    predicted: float
    gap: float
    gap_low: float
    gap_high: float
    tolerance: float
    strict: bool
    confidence: float
    passed: bool
    replicates: Float | None = field(default=None, repr=False, compare=False)

    @property
    def error_bound(self) -> float:
        """``max(|gap_low|, |gap_high|)``: the largest relative error of the model's response
        to the action the check allows (NaN when it could not be measured)."""
        if not (np.isfinite(self.gap_low) and np.isfinite(self.gap_high)):
            return float("nan")
        return max(abs(self.gap_low), abs(self.gap_high))

    @property
    def reason(self) -> str:
        """Why the check failed (empty when it passed)."""
        if self.passed:
            return ""
        chooses = f"the candidate chooses it in {100 * self.share:.0f} % of its decisions"
        if self.decisions == 0:
            return (
                f"the logs hold no decision that took {self.action!r} to check the model "
                f"world's outcome of it against, and {chooses}"
            )
        if not np.isfinite(self.gap):
            return (
                f"the {self.decisions} logged decisions that took {self.action!r} realised no "
                f"reward to check the model world's outcome of it against, and {chooses}"
            )
        return (
            f"the model world {_predicts(self.gap)} the outcome of {self.action!r} by "
            f"{_pct(self.gap)} ({_interval_text(self.gap_low, self.gap_high, self.confidence)}, "
            f"{_tolerance_text(self.tolerance, self.strict)}), and {chooses}"
        )


def action_shares(target: Float) -> Float:
    """(A,) share of a policy's decisions per action: its (K, H, A) probabilities averaged
    over the customer-weeks."""
    if target.ndim != 3 or target.shape[0] < 1 or target.shape[1] < 1:
        raise ValueError(f"target must be a (K, H, A) array with K, H >= 1, got {target.shape}")
    return np.asarray(target.mean(axis=(0, 1)), np.float64)


@dataclass(frozen=True)
class ActionOutcomes:
    """What followed each logged decision and what the model predicted for each action.

    Attributes:
        realised: (K, H) discounted reward over the ``L`` weeks from each logged week,
            currency (0 where fewer than ``L`` weeks follow).
        predicted: (K, H, A) the model's expected discounted reward over the same weeks after
            each action, the logging policy afterwards (0 where fewer than ``L`` follow).
        complete: (H,) whether ``L`` logged weeks follow the week.
    """

    realised: Float
    predicted: Float
    complete: NDArray[np.bool_]


def action_outcomes(
    logged: LoggedTrajectories, model: WorldSpec | ValueModel, gamma: float, weeks: int
) -> ActionOutcomes:
    """The outcome of every logged decision over ``weeks`` weeks (the week of the decision and
    the ones after it) and the model's prediction of it for every action (see
    :class:`ActionOutcomes`)."""
    if not 1 <= weeks <= logged.horizon_weeks:
        raise ValueError(f"weeks must be in 1..{logged.horizon_weeks}, got {weeks}")
    vm = model if isinstance(model, ValueModel) else ValueModel(model)
    k, h, n_actions = logged.masks.shape
    realised, predicted = np.zeros((k, h)), np.zeros((k, h, n_actions))
    discount = gamma ** np.arange(weeks, dtype=np.float64)
    for t in range(h - weeks + 1):
        part = logged_weeks(logged, t, t + weeks)
        q = model_q_values(
            vm,
            dict(part.features),
            part.segment,
            part.week_of_year,
            logged_actions_one_hot(part),
            gamma,
        )
        predicted[:, t] = q[:, 0]
        realised[:, t] = (part.reward * discount).sum(axis=1)
    complete = np.arange(h) <= h - weeks
    return ActionOutcomes(realised, predicted, complete)


def action_check(
    name: str,
    share: float,
    decisions: int,
    realised: Float,
    predicted: Float,
    limits: ModelCheckSettings,
) -> ActionCheck:
    """One action's check: the model's against the realised outcome of the logged decisions
    that took it, from per-customer propensity-weighted sums (the one per-action comparison:
    the gate's :func:`check_actions` over discounted rewards, the calibration card's
    by-action calibration over one week's conversions, revenue and opt-outs).

    Args:
        name: The action's name.
        share: Share of the decisions (the candidate's, or the logs') that take it.
        decisions: Logged decisions that took it.
        realised: (K,) per customer, ``sum_t w_kt y_kt`` over the customer's decisions that
            took it, ``w = 1 / propensity``, ``y`` the realised outcome (0 for a customer
            without such a decision).
        predicted: (K,) the same sums of the model's expected outcome.
        limits: Tolerance, strictness and bootstrap.
    """
    n, g, m = decisions, realised, predicted
    gap = low = high = np.nan
    replicates = None
    if n > 0 and g.sum() != 0:
        replicates = gap_replicates(g, m, limits)
        gap = (m.mean() - g.mean()) / abs(g.mean())
        low, high = percentile_interval(replicates, limits)
    measured = bool(np.isfinite(low) and np.isfinite(high))
    return ActionCheck(
        action=name,
        share=share,
        decisions=n,
        realised=float(g.mean()) if n > 0 else np.nan,
        predicted=float(m.mean()) if n > 0 else np.nan,
        gap=float(gap),
        gap_low=float(low),
        gap_high=float(high),
        tolerance=limits.tolerance,
        strict=limits.strict,
        confidence=limits.confidence,
        passed=measured and passes(low, high, limits.tolerance, limits.strict),
        replicates=replicates,
    )


def check_actions(
    logged: LoggedTrajectories,
    model: WorldSpec | ValueModel,
    target: Float,
    gamma: float,
    settings: ModelCheckSettings | None = None,
) -> tuple[ActionCheck, ...]:
    """Check the model's response to every action a candidate takes in at least
    ``settings.min_action_share`` of its decisions (see the module docstring), most used
    first.

    Args:
        logged: Logged trajectories (their decisions, propensities and rewards), at least
            ``settings.action_outcome_weeks`` weeks.
        model: The model world (its actions in the logs' order), or its value model.
        target: (K, H, A) the candidate's probabilities in the logged states
            (:func:`~journeyopt.evaluation.ope.logged.target_probabilities`).
        gamma: Weekly discount factor.
        settings: Tolerance, bootstrap, ``min_action_share`` and ``action_outcome_weeks``.
    """
    limits = settings if settings is not None else ModelCheckSettings()
    if target.shape != logged.masks.shape:
        raise ValueError(f"target must have shape {logged.masks.shape}, got {target.shape}")
    shares = action_shares(target)
    used = material_actions(shares, limits.min_action_share)
    if not used:
        return ()
    every = check_every_action(logged, model, gamma, shares, limits)
    return tuple(every[a] for a in used)


def material_actions(shares: Float, min_share: float) -> list[int]:
    """The actions with at least ``min_share`` of the (A,) ``shares``, most used first: those
    :func:`check_actions` checks."""
    return [int(a) for a in np.argsort(-shares, kind="stable") if shares[a] >= min_share]


def check_every_action(
    logged: LoggedTrajectories,
    model: WorldSpec | ValueModel,
    gamma: float,
    shares: Float,
    settings: ModelCheckSettings | None = None,
) -> tuple[ActionCheck, ...]:
    """The model's response to every action of the catalogue checked on the logged decisions
    that took it (see the module docstring), in the actions' index order: the rows of
    :func:`check_actions` and the per-action errors of the gate's bias bound
    (:class:`~journeyopt.tracking.promotion.WorldError`), which must count every action a
    compared policy takes, however rarely. One pass of the model over the logged weeks.

    Args:
        logged: Logged trajectories, at least ``settings.action_outcome_weeks`` weeks.
        model: The model world (its actions in the logs' order), or its value model.
        gamma: Weekly discount factor.
        shares: (A,) share of the decisions that take each action (the candidate's, reported
            in each check).
        settings: Tolerance, bootstrap and ``action_outcome_weeks``.
    """
    limits = settings if settings is not None else ModelCheckSettings()
    world = model.world if isinstance(model, ValueModel) else model
    if shares.shape != (world.actions.n_actions,):
        raise ValueError(f"shares must have shape ({world.actions.n_actions},), got {shares.shape}")
    weeks = min(limits.action_outcome_weeks, logged.horizon_weeks)
    outcomes = action_outcomes(logged, model, gamma, weeks)
    out = []
    for a in range(world.actions.n_actions):
        took = (logged.action == a) & outcomes.complete[None, :]
        weight = np.where(took, 1.0 / logged.propensity, 0.0)
        out.append(
            action_check(
                world.actions.names[a],
                float(shares[a]),
                int(took.sum()),
                (weight * outcomes.realised).sum(axis=1),
                (weight * outcomes.predicted[:, :, a]).sum(axis=1),
                limits,
            )
        )
    return tuple(out)


def widen(interval: Interval, relative_error: float) -> Interval:
    """``interval`` widened by ``relative_error * |value|`` in quadrature on each side (the
    bootstrap's half-widths and the model's error taken as independent); the lower bound
    likewise."""
    if relative_error < 0:
        raise ValueError(f"relative_error must be >= 0, got {relative_error}")
    v = interval.value
    extra = relative_error * abs(v)
    return Interval(
        value=v,
        ci_low=v - float(np.hypot(v - interval.ci_low, extra)),
        ci_high=v + float(np.hypot(interval.ci_high - v, extra)),
        lower_bound=v - float(np.hypot(v - interval.lower_bound, extra)),
        confidence=interval.confidence,
        n_boot=interval.n_boot,
    )
