"""The held-out rows a calibration candidate is scored on and the standard error of a paired
score difference: one split and one SE for every choice made by held-out likelihood (the state
summary, :mod:`journeyopt.calibration.summary`; the value tiers,
:mod:`journeyopt.calibration.segmentation`; the response models' family,
:func:`journeyopt.calibration.models.choose_families`)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from journeyopt.calibration.weeks import CustomerWeeks

Float = NDArray[np.float64]


def scored_rows(
    weeks: CustomerWeeks, held: NDArray[np.bool_], forward_weeks: int
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """``(rows, customers)`` a candidate is scored on: the (M,) held-out customer-weeks (the
    validation customers' weeks, or with ``forward_weeks`` every customer's last
    ``forward_weeks`` weeks, fitted on the weeks before) and the (K,) customers with at least
    one of them, whose per-customer scores are compared."""
    rows = held[weeks.customer]
    if forward_weeks:
        rows = weeks.week > int(weeks.week.max()) - forward_weeks
    customers = np.bincount(weeks.customer, weights=rows, minlength=held.shape[0]) > 0
    return rows, customers


def difference_se(diff: Float) -> float:
    """Standard error of the sum of (K,) per-customer score differences (customers independent;
    0 with fewer than two)."""
    return float(np.std(diff, ddof=1) * np.sqrt(diff.shape[0])) if diff.shape[0] > 1 else 0.0
