"""Always-valid inference for a rollout looked at every week: the normal-mixture confidence
sequence.

A fixed-sample 95 % interval recomputed every week and acted on the first time it excludes
zero errs far more often than 5 % (with 20 weekly looks, about 25 % under no effect). A
*confidence sequence* ``(L_t, U_t)`` covers the true effect at every look at once:
``P(for all t: L_t <= theta <= U_t) >= 1 - alpha``, so a rollout may stop the first week its
bound crosses zero.

For an estimate ``theta_t`` of an effect with standard error ``s_t`` after an exposure of
``t`` units (customer-weeks), the asymptotic confidence sequence of Waudby-Smith, Arbour,
Sinha, Kennedy and Ramdas (2023, "Time-uniform central limit theory and asymptotic confidence
sequences", Ann. Statist.; Howard, Ramdas, McAuliffe and Sekhon 2021, "Time-uniform,
nonparametric, nonasymptotic confidence sequences", Ann. Statist., eq. (14)) with the
Gaussian mixture of precision ``rho**2`` is

    theta_t +- s_t * sqrt( 2 (t rho^2 + 1) / (t rho^2) * log( sqrt(t rho^2 + 1) / alpha ) )

(``s_t = sigma / sqrt(t)``: the per-unit standard deviation is read off the estimator's own
standard error, so the customer-clustered, regression-adjusted error of
:func:`journeyopt.monitoring.uplift.regression_uplift` carries over). It is the interval form
of the mixture sequential probability ratio test (mSPRT, Johari, Koomen, Pekelis and Walsh
2017) with mixing variance ``tau^2 = sigma^2 rho^2``. ``rho`` is chosen so the sequence is
tightest at the planned minimum exposure ``t*`` (Howard et al. 2021, eq. (3.13)):
``rho^2 = (-2 log alpha + log(-2 log alpha + 1)) / t*``.

Why written here: the maintained libraries of the field do not fit this project's pins:
``spotify-confidence`` needs ``pandas < 3`` (4.x) or ``numpy < 2`` (3.x and older) and its
sequential test is a group-sequential design with a planned final sample size, not an
always-valid one; ``expectation`` (0.6) needs Python >= 3.12. The formula is a few lines of
numpy; its error rate under weekly looks is measured by simulation
(``experiments/rollout/``, ``tests/monitoring/test_sequential.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def mixture_precision(alpha: float, planned_exposure: float) -> float:
    """``rho**2`` of the normal mixture tightest at ``planned_exposure`` units (Howard et al.
    2021, eq. (3.13)).

    Raises:
        ValueError: ``alpha`` outside (0, 1) or ``planned_exposure`` not > 0.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not planned_exposure > 0.0:
        raise ValueError(f"planned_exposure must be > 0, got {planned_exposure}")
    log_term = -2.0 * math.log(alpha)
    return (log_term + math.log(log_term + 1.0)) / planned_exposure


def radius_factor(exposure: float, rho2: float, alpha: float) -> float:
    """How many standard errors the confidence sequence reaches either side of the estimate
    after ``exposure`` units (about 3.2 at the planned exposure for ``alpha = 0.05``, against
    1.96 for a single look)."""
    if not exposure > 0.0:
        return math.inf
    v = exposure * rho2
    return math.sqrt(2.0 * (v + 1.0) / v * math.log(math.sqrt(v + 1.0) / alpha))


@dataclass(frozen=True)
class SequenceBound:
    """The confidence sequence at one look.

    Attributes:
        estimate: The effect's estimate.
        std_error: Its standard error.
        exposure: Units of exposure behind it (customer-weeks).
        low: Lower bound of the confidence sequence.
        high: Upper bound.
    """

    estimate: float
    std_error: float
    exposure: float
    low: float
    high: float


def confidence_sequence(
    estimate: float, std_error: float, exposure: float, alpha: float, planned_exposure: float
) -> SequenceBound:
    """The normal-mixture confidence sequence at one look (see the module docstring).

    Args:
        estimate: The effect's estimate at this look.
        std_error: Its standard error (>= 0).
        exposure: Units behind the estimate so far (customer-weeks; > 0).
        alpha: Error level over all looks together, in (0, 1).
        planned_exposure: Exposure at which the sequence is tightest (the minimum exposure
            before a decision), same units as ``exposure``.
    """
    rho2 = mixture_precision(alpha, planned_exposure)
    half = std_error * radius_factor(exposure, rho2, alpha)
    return SequenceBound(estimate, std_error, exposure, estimate - half, estimate + half)
