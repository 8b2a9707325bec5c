"""The held-out rows a calibration candidate is scored on and the standard error of a paired
score difference: one split and one SE for every choice made by held-out likelihood (the point
fit's penalties, :func:`journeyopt.calibration.models.choose_penalties`; the state summary,
:mod:`journeyopt.calibration.summary`; the value tiers,
:mod:`journeyopt.calibration.segmentation`; the response models' family,
:func:`journeyopt.calibration.models.choose_families`, whose trees' count is early-stopped on
the same split of the training rows, :func:`inner_rows`). By default the split is forward in
time (every customer's last weeks, fitted on the weeks before: a forecast's models are judged
on later weeks, and the choice does not move with the seed); ``forward_weeks`` 0 keeps the
random validation customers."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from journeyopt.calibration.weeks import CustomerWeeks

Float = NDArray[np.float64]


def window_weeks(fitted_weeks: int, forward_weeks: int) -> int:
    """Weeks scored forward in time out of ``fitted_weeks`` calibration weeks:
    ``forward_weeks`` (``calibration.summary.forward_weeks``), at most half the fitted weeks
    (at least as many weeks are fitted before the window as it scores; a history of 20 weeks
    is scored on its last 10), 0 (the validation customers instead) with ``forward_weeks`` 0
    or fewer than two fitted weeks."""
    return min(forward_weeks, fitted_weeks // 2) if forward_weeks > 0 else 0


def forward_window(weeks: CustomerWeeks, forward_weeks: int) -> int:
    """:func:`window_weeks` over the weeks ``weeks`` spans."""
    if not weeks.n:
        return 0
    return window_weeks(int(weeks.week.max()) - int(weeks.week.min()) + 1, forward_weeks)


def scored_rows(
    weeks: CustomerWeeks, held: NDArray[np.bool_], forward_weeks: int
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """``(rows, customers)`` a candidate is scored on: the (M,) held-out customer-weeks and
    the (K,) customers with at least one of them, whose per-customer scores are compared.

    Forward in time (``forward_weeks`` > 0, the default 13 of
    :class:`~journeyopt.calibration.config.SummaryConfig`): every customer's weeks in the last
    :func:`forward_window` fitted weeks, the models fitted on the weeks before them, so every
    scored week of a customer comes after every fitted week of theirs and the split does not
    depend on the seed. ``forward_weeks`` 0: the weeks of the validation customers ``held``
    (K,), a random draw of the calibration's seed, over the same weeks as the fitted ones."""
    window = forward_window(weeks, forward_weeks)
    rows = held[weeks.customer]
    if window:
        rows = weeks.week > int(weeks.week.max()) - window
    customers = np.bincount(weeks.customer, weights=rows, minlength=held.shape[0]) > 0
    return rows, customers


def inner_rows(
    weeks: CustomerWeeks,
    scored: NDArray[np.bool_],
    customers: NDArray[np.bool_],
    forward_weeks: int,
) -> NDArray[np.bool_]:
    """(M,) the inner split of the rows outside ``scored`` (M,), on which a choice made inside
    the training rows is scored (the early stopping of the trees' count,
    :func:`journeyopt.calibration.models.choose_families`): the rows :func:`scored_rows` holds
    out of the training rows alone, by the same rule. Forward (``forward_weeks`` > 0): the
    training rows in the last :func:`forward_window` weeks of the training rows' span, so every
    inner row of a customer comes after every inner-fit row of theirs and the split does not
    depend on the seed. ``forward_weeks`` 0: the training rows of the (K,) inner
    ``customers``."""
    training = ~scored
    rows, _ = scored_rows(weeks.take(training), customers, forward_weeks)
    inner = np.zeros(weeks.n, bool)
    inner[training] = rows
    return inner


def difference_se(diff: Float) -> float:
    """Standard error of the sum of (K,) per-customer score differences (customers independent;
    0 with fewer than two)."""
    return float(np.std(diff, ddof=1) * np.sqrt(diff.shape[0])) if diff.shape[0] > 1 else 0.0
