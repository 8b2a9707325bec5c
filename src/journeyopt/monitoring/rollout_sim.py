"""Synthetic rollouts with a known effect: how often the weekly decision rule of
:mod:`journeyopt.monitoring.rollout` errs, and how many weeks it takes to decide.

Customers (all present from week 0) are split by the rollout's shares into control, canary
and previous. Customer ``i`` converts in a week with probability ``p_i ~ Beta(k m, k (1 - m))``
(mean ``m``, persistent heterogeneity: the same customers convert week after week), a
conversion is worth a lognormal margin of mean ``value_mean``, and a contact (probability
``contact_rate`` a week) costs ``contact_cost``: the weekly outcome is margin net of contact
cost, the rollout's default outcome. The previous policy multiplies ``p_i`` by
``1 + control_lift`` over control, the canary by ``(1 + control_lift) (1 + lift)``. Every
customer has ``pre_weeks`` weeks of history under control conditions before the rollout; the
comparison's covariates come from its last ``serve.rollout.pre_weeks`` weeks (all of it when
shorter), as :func:`journeyopt.monitoring.exposure.customer_outcomes` computes them from a
panel: each customer's margin and conversions per pre-period week, the share of those weeks
with a conversion and the pre-period's length.

Every week the production functions (:func:`~journeyopt.monitoring.rollout.compare_arms`,
:func:`~journeyopt.monitoring.rollout.decide`) look at the data so far; the first decision
other than ``continue`` ends the rollout. A naive fixed-sample 95 % interval recomputed each
week is tracked beside it, to show what the always-valid sequence prevents.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import special, stats

from journeyopt.monitoring.rollout import CONTINUE, compare_arms, decide
from journeyopt.serving.config import RolloutConfig
from journeyopt.serving.rollout import CANARY_ARM, CONTROL_ARM, PREVIOUS_ARM


@dataclass(frozen=True)
class Scenario:
    """A synthetic rollout.

    Attributes:
        customers: Customers in all arms.
        control_share: Share in the control group.
        weeks: Weekly looks at most.
        pre_weeks: Weeks of history before the rollout (the longest pre-period available).
        conversion_rate: Mean weekly conversion probability under control.
        concentration: ``k`` of the Beta heterogeneity (smaller: more heterogeneous).
        value_mean: Mean margin of a conversion, currency.
        contact_rate: Weekly probability of a contact.
        contact_cost: Cost of a contact, currency.
        control_lift: Relative lift of the previous policy's conversion probability over
            control.
        lift: Relative lift of the canary over the previous policy (0: no effect).
    """

    customers: int = 6000
    control_share: float = 0.1
    weeks: int = 26
    pre_weeks: int = 52
    conversion_rate: float = 0.04
    concentration: float = 2.0
    value_mean: float = 60.0
    contact_rate: float = 0.3
    contact_cost: float = 0.5
    control_lift: float = 0.1
    lift: float = 0.0

    @property
    def true_effect(self) -> float:
        """Canary minus previous, margin per customer-week, currency (exact, probabilities
        capped at 1 included)."""
        previous = 1.0 + self.control_lift
        canary = previous * (1.0 + self.lift)
        return (self._capped_rate(canary) - self._capped_rate(previous)) * self.value_mean

    def _capped_rate(self, factor: float) -> float:
        """``E[min(factor * p, 1)]`` for ``p ~ Beta(a, b)``: ``factor * m * I_x(a + 1, b) +
        1 - I_x(a, b)`` at ``x = 1 / factor`` (``I`` the regularised incomplete beta)."""
        m, k = self.conversion_rate, self.concentration
        a, b = k * m, k * (1.0 - m)
        x = min(1.0, 1.0 / factor)
        return float(factor * m * special.betainc(a + 1.0, b, x) + 1.0 - special.betainc(a, b, x))


@dataclass(frozen=True)
class LookResult:
    """One synthetic rollout.

    Attributes:
        decision: The first decision other than ``continue`` (``continue``: none within
            ``weeks``).
        week: Week of that decision (1-based; 0 when none).
        naive_rejected: A fixed-sample 95 % interval against the previous policy excluded 0
            at some weekly look.
        missed: The confidence sequence against the previous policy excluded the true
            effect at some look.
        missed_week: The first such look (0: none).
        half_widths: Half-width of the confidence sequence against the previous policy at
            each look up to the decision (NaN before both arms have 2 customers), outcome
            units per customer-week.
    """

    decision: str
    week: int
    naive_rejected: bool
    missed: bool
    missed_week: int = 0
    half_widths: tuple[float, ...] = ()


def _arms(n: int, scenario: Scenario, canary_share: float, rng: np.random.Generator) -> np.ndarray:
    unit = rng.random(n)
    canary = rng.random(n) < canary_share
    return np.where(
        unit < scenario.control_share, CONTROL_ARM, np.where(canary, CANARY_ARM, PREVIOUS_ARM)
    )


def _weekly(
    p: np.ndarray, weeks: int, scenario: Scenario, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(n, weeks) margin net of contact cost and (n, weeks) conversions per customer-week."""
    converts = rng.random((p.shape[0], weeks)) < p[:, None]
    sigma = 0.8
    values = rng.lognormal(np.log(scenario.value_mean) - sigma**2 / 2, sigma, converts.shape)
    contacts = rng.random(converts.shape) < scenario.contact_rate
    return converts * values - contacts * scenario.contact_cost, converts.astype(np.float64)


def _pre_period(
    base: np.ndarray, scenario: Scenario, settings: RolloutConfig, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The covariate columns of :func:`journeyopt.monitoring.exposure.customer_outcomes` over
    the last ``min(settings.pre_weeks, scenario.pre_weeks)`` weeks of history (all zero
    without a pre-period, as for a customer without history)."""
    margin, converts = _weekly(base, scenario.pre_weeks, scenario, rng)
    used = min(settings.pre_weeks, scenario.pre_weeks)
    n = base.shape[0]
    if used == 0:
        zero = np.zeros(n)
        return {"margin_pre": zero, "conversions_pre": zero, "active_pre": zero,
                "pre_weeks": zero}  # fmt: skip
    margin, converts = margin[:, -used:], converts[:, -used:]
    return {
        "margin_pre": margin.mean(axis=1),
        "conversions_pre": converts.mean(axis=1),
        "active_pre": (converts > 0).mean(axis=1),
        "pre_weeks": np.full(n, float(used)),
    }


def simulate_rollout(
    scenario: Scenario, settings: RolloutConfig, rng: np.random.Generator
) -> LookResult:
    """Run one synthetic rollout week by week (see the module docstring)."""
    return simulate_rollouts(scenario, (settings,), rng)[0]


MEASURED = ("canary_share", "alpha", "min_exposure_weeks", "outcome", "pre_weeks", "covariates")
"""The :class:`RolloutConfig` fields that shape the data and the confidence sequences (the
rest, e.g. ``min_exposure_rollback_weeks`` and ``loss_budget``, only shape the decision)."""


def simulate_rollouts(
    scenario: Scenario, settings: tuple[RolloutConfig, ...], rng: np.random.Generator
) -> tuple[LookResult, ...]:
    """One synthetic rollout looked at week by week under each of ``settings`` (same
    customers, same outcomes, same comparisons: the decision rules compared on one draw).

    Raises:
        ValueError: No settings, or settings that differ in a :data:`MEASURED` field.
    """
    if not settings or any(
        getattr(s, name) != getattr(settings[0], name) for s in settings for name in MEASURED
    ):
        raise ValueError(f"settings must share {MEASURED}; they differ in the decision only")
    first = settings[0]
    n = scenario.customers
    arm = _arms(n, scenario, first.canary_share, rng)
    m, k = scenario.conversion_rate, scenario.concentration
    base = rng.beta(k * m, k * (1.0 - m), n)
    factor = np.where(arm == CONTROL_ARM, 1.0, 1.0 + scenario.control_lift)
    factor = factor * np.where(arm == CANARY_ARM, 1.0 + scenario.lift, 1.0)
    pre = _pre_period(base, scenario, first, rng)
    post = np.cumsum(_weekly(np.clip(base * factor, 0, 1), scenario.weeks, scenario, rng)[0], 1)
    z = float(stats.norm.ppf(0.975))
    naive, missed_week = False, 0
    widths: list[float] = []
    results: list[LookResult | None] = [None] * len(settings)
    for week in range(1, scenario.weeks + 1):
        customers = pd.DataFrame(
            {
                "group": arm,
                "weeks": week,
                "margin": post[:, week - 1] / week,
                **pre,
                "segment": "(unknown)",
            }
        )
        vs_previous = compare_arms(customers, "margin", PREVIOUS_ARM, first)
        vs_control = compare_arms(customers, "margin", CONTROL_ARM, first)
        if vs_previous is not None:
            half = z * vs_previous.std_error
            naive |= abs(vs_previous.estimate) > half  # a null effect: any exclusion of 0
            covered = vs_previous.low <= scenario.true_effect <= vs_previous.high
            missed_week = missed_week or (0 if covered else week)
        widths.append(
            (vs_previous.high - vs_previous.low) / 2 if vs_previous is not None else np.nan
        )
        for i, rule in enumerate(settings):
            if results[i] is not None:
                continue
            verdict = decide(vs_previous, vs_control, rule)
            if verdict.decision != CONTINUE:
                results[i] = LookResult(
                    verdict.decision, week, naive, missed_week > 0, missed_week, tuple(widths)
                )
        if all(r is not None for r in results):
            break
    end = LookResult(CONTINUE, 0, naive, missed_week > 0, missed_week, tuple(widths))
    return tuple(r if r is not None else end for r in results)


def error_rates(
    scenario: Scenario, settings: RolloutConfig, experiments: int, seed: int
) -> pd.DataFrame:
    """``experiments`` synthetic rollouts of ``scenario``: one row each (decision, week,
    naive_rejected, missed), seeded by ``seed``."""
    return error_rates_many(scenario, (settings,), experiments, seed)[0]


def error_rates_many(
    scenario: Scenario, settings: tuple[RolloutConfig, ...], experiments: int, seed: int
) -> list[pd.DataFrame]:
    """:func:`error_rates` of each of ``settings`` on the same ``experiments`` rollouts
    (:func:`simulate_rollouts`), one frame each."""
    rng = np.random.default_rng(seed)
    rows = [simulate_rollouts(scenario, settings, rng) for _ in range(experiments)]
    return [pd.DataFrame([r[i].__dict__ for r in rows]) for i in range(len(settings))]


def with_lift(scenario: Scenario, lift: float) -> Scenario:
    """``scenario`` with another canary lift."""
    return replace(scenario, lift=lift)
