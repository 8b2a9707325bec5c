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

By default the check *fails* when the model is shown to be off by more than ``tolerance``:
the gap's whole interval lies beyond ``+-tolerance`` (few false alarms on small logs). A
*strict* check fails unless the model is shown to be accurate: the whole interval must lie
within ``+-tolerance`` (small logs then fail for want of evidence). A model that is wrong
about the policy that made the logs cannot be trusted with another policy; one that is right
about it may still be wrong about actions the logs rarely took (the check is necessary, not
sufficient).

The measured error also widens a model-based interval (:func:`widen`): the bootstrap over
customers holds the model fixed, so its interval excludes the model's error; adding the
largest relative gap the check allows (``max(|gap_low|, |gap_high|)``) times the estimate, in
quadrature, makes the interval honest about it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.evaluation.ope.bootstrap import (
    Interval,
    Statistic,
    bootstrap_replicates,
    check_bootstrap,
)
from journeyopt.evaluation.ope.logged import LoggedTrajectories
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
        strict: Fail unless the gap's whole interval lies within ``+-tolerance``; default:
            fail only when it lies wholly beyond.
    """

    tolerance: float = 0.1
    n_boot: int = 500
    confidence: float = 0.95
    seed: int = 0
    strict: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.tolerance < 1.0:
            raise ValueError(f"tolerance must be in (0, 1), got {self.tolerance}")
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
        passed: False when the whole interval lies beyond ``+-tolerance`` (strict: when any
            of it does).
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
            f"policy over {self.weeks} logged weeks, the logs realised {self.realised:,.2f} "
            f"(gap {100 * self.gap:+.1f} %, interval {100 * self.gap_low:+.1f} to "
            f"{100 * self.gap_high:+.1f} %, "
            f"{'must lie within' if self.strict else 'tolerance'} {100 * self.tolerance:g} %)"
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


def passes(gap_low: float, gap_high: float, tolerance: float, strict: bool) -> bool:
    """Whether a gap interval ``(gap_low, gap_high)`` passes (see the module docstring)."""
    if strict:
        return -tolerance <= gap_low and gap_high <= tolerance
    return not (gap_low > tolerance or gap_high < -tolerance)


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
    k = realised.shape[0]
    ones = np.ones((k, 1))
    g_boot = bootstrap_replicates(Statistic(realised[:, None], ones), limits.n_boot, limits.seed)
    m_boot = bootstrap_replicates(Statistic(predicted[:, None], ones), limits.n_boot, limits.seed)
    gaps = (m_boot - g_boot) / np.abs(g_boot)
    alpha = 1.0 - limits.confidence
    low, high = (float(x) for x in np.quantile(gaps, [alpha / 2, 1 - alpha / 2]))
    g, m = float(realised.mean()), float(predicted.mean())
    passed = passes(low, high, limits.tolerance, limits.strict)
    return ModelCheck(
        weeks=logged.horizon_weeks,
        realised=g,
        predicted=m,
        gap=(m - g) / abs(g),
        gap_low=low,
        gap_high=high,
        tolerance=limits.tolerance,
        strict=limits.strict,
        passed=passed,
        table=_segment_rows(realised, predicted, logged.segment, logged.segment_names),
    )


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
