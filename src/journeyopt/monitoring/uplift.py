"""Real uplift of the champion over the A/B holdout, from customer-level outcomes.

Customers are randomised to ``treatment`` (the champion decides) or ``control`` (today's staff
rules). For customer ``i`` with ``n_i`` exposed weeks (from their first scored week to the end
of the measurement window, whatever was decided later: intent to treat), ``y_i`` is their mean
outcome per week and ``x_i`` the same outcome's mean per week before they were first scored
(the pre-treatment covariate, 0 for customers without pre-period weeks).

The estimator (:func:`regression_uplift`) is the regression adjustment of Lin (2013), the
multi-covariate form of CUPED (Deng et al. 2013): weighted least squares with weights ``n_i`` of

    y_i = b0 + tau * T_i + b1 * (x_i - xbar) + b2 * T_i * (x_i - xbar) + e_i

where ``xbar`` is the exposure-weighted mean of ``x`` over both groups; with several
covariates (a vector ``x_i``) each gets its own slope and interaction. ``tau`` estimates the
uplift per customer-week (treatment minus control); without covariate it is the difference of
the groups' outcomes per customer-week (total outcome / total weeks). The 95 % interval is
either normal with a heteroskedasticity-robust (HC1, one row per customer so clustered by
customer) standard error, or a customer-level bootstrap (resampling customers within each group,
percentile interval). The pre-period covariate removes the variance explained by who the
customers already were, so the interval is narrower without bias.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import stats

Float = NDArray[np.float64]
Bool = NDArray[np.bool_]
BOOTSTRAP_CHUNK = 64
METHODS: tuple[str, ...] = ("regression", "difference")
INTERVALS: tuple[str, ...] = ("normal", "bootstrap")


@dataclass(frozen=True)
class UpliftEstimate:
    """Uplift of one outcome, per customer-week (outcome units: conversions, currency, ...).

    Attributes:
        uplift: Treatment minus control, adjusted for the pre-period covariate.
        ci_low: Lower end of the confidence interval.
        ci_high: Upper end.
        std_error: Standard error of ``uplift`` (the bootstrap's standard deviation with a
            bootstrap interval).
        p_value: Two-sided p-value of "no uplift" (normal approximation).
        treatment_mean: Treatment's outcome per customer-week (unadjusted).
        control_mean: Control's outcome per customer-week (unadjusted).
        treatment_customers: Customers in treatment.
        control_customers: Customers in control.
    """

    uplift: float
    ci_low: float
    ci_high: float
    std_error: float
    p_value: float
    treatment_mean: float
    control_mean: float
    treatment_customers: int
    control_customers: int

    @property
    def relative(self) -> float:
        """``uplift / control_mean`` (NaN when the control mean is 0)."""
        return self.uplift / self.control_mean if self.control_mean != 0 else float("nan")


def _design(treated: Bool, covariate: Float | None, weeks: Float) -> Float:
    """(n, p) design: intercept, treatment, and for each covariate column (n,) or (n, k)
    that varies, its centred value and its interaction with the treatment."""
    t = treated.astype(np.float64)
    columns = [np.ones_like(t), t]
    if covariate is not None:
        matrix = covariate.reshape(covariate.shape[0], -1)
        for x in matrix.T:
            centred = x - np.average(x, weights=weeks)
            if float(np.average(centred**2, weights=weeks)) > 1e-18:
                columns += [centred, t * centred]
    return np.column_stack(columns)


def _wls(z: Float, y: Float, w: Float) -> tuple[Float, Float]:
    """WLS coefficients (p,) and their HC1 covariance (p, p)."""
    zw = z * w[:, None]
    bread = np.linalg.pinv(z.T @ zw)
    beta = bread @ (zw.T @ y)
    resid = y - z @ beta
    meat = (zw * resid[:, None]).T @ (zw * resid[:, None])
    n, p = z.shape
    return beta, bread @ meat @ bread * (n / max(n - p, 1))


def _bootstrap_effects(
    z: Float, y: Float, w: Float, treated: Bool, samples: int, rng: np.random.Generator
) -> Float:
    """(samples,) WLS treatment coefficients of customer resamples drawn within each group."""
    groups = [np.flatnonzero(treated), np.flatnonzero(~treated)]
    effects = np.empty(samples)
    for start in range(0, samples, BOOTSTRAP_CHUNK):
        b = min(BOOTSTRAP_CHUNK, samples - start)
        counts = np.zeros((b, y.shape[0]))
        for rows in groups:
            counts[:, rows] = rng.multinomial(rows.size, np.full(rows.size, 1.0 / rows.size), b)
        weight = counts * w[None, :]
        gram = np.einsum("bn,np,nq->bpq", weight, z, z)
        moment = np.einsum("bn,np,n->bp", weight, z, y)
        effects[start : start + b] = (np.linalg.pinv(gram) @ moment[:, :, None])[:, 1, 0]
    return effects


def regression_uplift(
    outcome: Float,
    weeks: Float,
    treated: Bool,
    covariate: Float | None = None,
    *,
    interval: str = "normal",
    confidence: float = 0.95,
    bootstrap_samples: int = 1000,
    rng: np.random.Generator | None = None,
) -> UpliftEstimate:
    """Uplift per customer-week with its confidence interval (see the module docstring).

    Args:
        outcome: (n,) each customer's mean outcome per exposed week.
        weeks: (n,) exposed weeks of each customer (> 0), the regression weights.
        treated: (n,) the customer is in the treatment group.
        covariate: (n,) the same outcome's mean per week before the window, or (n, k) several
            pre-period covariates (e.g. that mean, conversions, active weeks), or None for
            the plain difference. Columns that do not vary are left out.
        interval: ``normal`` (HC1 standard error) or ``bootstrap`` (percentile, customers
            resampled within groups).
        confidence: Coverage of the interval, in (0, 1).
        bootstrap_samples: Resamples of the bootstrap interval.
        rng: Random generator of the bootstrap (required for it).

    Raises:
        ValueError: Shapes differ, a group has fewer than 2 customers, weeks not > 0, an
            unknown interval or a confidence outside (0, 1).
    """
    y = np.asarray(outcome, np.float64)
    w = np.asarray(weeks, np.float64)
    t = np.asarray(treated, bool)
    if not (y.shape == w.shape == t.shape) or y.ndim != 1:
        raise ValueError(f"outcome, weeks and treated must be (n,) alike: {y.shape}, {w.shape}")
    if covariate is not None and (
        np.ndim(covariate) not in (1, 2) or np.shape(covariate)[0] != y.shape[0]
    ):
        raise ValueError(
            f"covariate must be (n,) or (n, k) like outcome, got {np.shape(covariate)}"
        )
    n_t, n_c = int(t.sum()), int((~t).sum())
    if min(n_t, n_c) < 2:
        raise ValueError(f"each group needs >= 2 customers (treatment {n_t}, control {n_c})")
    if not np.all(w > 0):
        raise ValueError("weeks must be > 0 for every customer")
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {INTERVALS}, got {interval!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x = None if covariate is None else np.asarray(covariate, np.float64)
    z = _design(t, x, w)
    beta, cov = _wls(z, y, w)
    tau = float(beta[1])
    alpha = 1.0 - confidence
    if interval == "normal":
        se = float(np.sqrt(max(cov[1, 1], 0.0)))
        half = float(stats.norm.ppf(1.0 - alpha / 2.0)) * se
        low, high = tau - half, tau + half
    else:
        if rng is None:
            raise ValueError("a bootstrap interval needs rng")
        effects = _bootstrap_effects(z, y, w, t, bootstrap_samples, rng)
        low, high = (float(q) for q in np.quantile(effects, [alpha / 2.0, 1.0 - alpha / 2.0]))
        se = float(effects.std(ddof=1))
    p_value = float(2.0 * stats.norm.sf(abs(tau) / se)) if se > 0 else float("nan")
    return UpliftEstimate(
        uplift=tau,
        ci_low=low,
        ci_high=high,
        std_error=se,
        p_value=p_value,
        treatment_mean=float(np.average(y[t], weights=w[t])),
        control_mean=float(np.average(y[~t], weights=w[~t])),
        treatment_customers=n_t,
        control_customers=n_c,
    )


UPLIFT_COLUMNS: tuple[str, ...] = (
    "grouping",
    "group",
    "outcome",
    "treatment_customers",
    "control_customers",
    "treatment_mean",
    "control_mean",
    "uplift",
    "ci_low",
    "ci_high",
    "relative_uplift",
    "p_value",
)


def uplift_table(
    customers: pd.DataFrame,
    outcomes: Sequence[str],
    groupings: Sequence[str],
    *,
    method: str = "regression",
    interval: str = "normal",
    confidence: float = 0.95,
    bootstrap_samples: int = 1000,
    min_customers: int = 30,
    rng: np.random.Generator | None = None,
) -> pd.DataFrame:
    """Uplift of every outcome, overall and within each group of each grouping column.

    Args:
        customers: One row per customer: ``group`` (``treatment``/``control``), ``weeks``,
            each outcome ``<o>`` and, for ``method="regression"``, ``<o>_pre``; and the
            grouping columns.
        outcomes: Outcome columns to estimate.
        groupings: Columns to break down by (e.g. ``segment``, ``lifecycle``).
        method: ``regression`` (pre-period covariate) or ``difference``.
        interval, confidence, bootstrap_samples, rng: As :func:`regression_uplift`.
        min_customers: Groups with fewer customers in either arm get NaN estimates.

    Returns:
        Columns :data:`UPLIFT_COLUMNS`; ``grouping`` ``all`` (group ``all``) first.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    parts: list[tuple[str, str, pd.DataFrame]] = [("all", "all", customers)]
    for column in groupings:
        for value, rows in customers.groupby(column, sort=True, observed=True):
            parts.append((column, str(value), rows))
    records = []
    for grouping, group, rows in parts:
        treated = (rows["group"] == "treatment").to_numpy()
        enough = min(int(treated.sum()), int((~treated).sum())) >= min_customers
        for outcome in outcomes:
            record: dict[str, object] = {"grouping": grouping, "group": group, "outcome": outcome}
            if enough:
                est = regression_uplift(
                    rows[outcome].to_numpy(np.float64),
                    rows["weeks"].to_numpy(np.float64),
                    treated,
                    rows[f"{outcome}_pre"].to_numpy(np.float64) if method == "regression" else None,
                    interval=interval,
                    confidence=confidence,
                    bootstrap_samples=bootstrap_samples,
                    rng=rng,
                )
                record.update(
                    treatment_customers=est.treatment_customers,
                    control_customers=est.control_customers,
                    treatment_mean=est.treatment_mean,
                    control_mean=est.control_mean,
                    uplift=est.uplift,
                    ci_low=est.ci_low,
                    ci_high=est.ci_high,
                    relative_uplift=est.relative,
                    p_value=est.p_value,
                )
            else:
                record.update(
                    treatment_customers=int(treated.sum()),
                    control_customers=int((~treated).sum()),
                )
            records.append(record)
    return pd.DataFrame.from_records(records).reindex(columns=list(UPLIFT_COLUMNS))
