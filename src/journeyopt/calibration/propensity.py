"""Confounding and positivity: weights from the logging policy's propensities, a behaviour
cloning estimate where they were not logged, and the support of every segment x action.

The response models condition on the discrete state (which holds every feature today's staff
rules look at), so the logged actions are ignorable given the state; the weights only make
each action's sample resemble the whole population (stabilised inverse propensity weights
``w = P(a) / pi_b(a | x)``, clipped to ``[1 / max_weight, max_weight]``), which protects the
fit of rarely explored actions against misspecification where the staff concentrate them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from journeyopt.calibration.weeks import CustomerWeeks

Float = NDArray[np.float64]


@dataclass(frozen=True)
class Propensities:
    """The behaviour policy's probability of each logged action.

    Attributes:
        value: (M,) propensity of each customer-week's action.
        source: ``logged`` (all logged), ``estimated`` (behaviour cloning for all),
            ``mixed`` (estimated where missing) or ``none`` (one action only: no weighting).
        calibration: Reliability of the behaviour-cloning classifier on held-out customers:
            one row per probability bin (``bin_low``, ``bin_high``, ``predicted``,
            ``observed``, ``weight``); empty when nothing was estimated.
        ece: Expected calibration error of that classifier (weighted mean |observed -
            predicted| over bins); NaN when nothing was estimated.
    """

    value: Float
    source: str
    calibration: pd.DataFrame
    ece: float


def reliability(predicted: Float, observed: Float, bins: int = 10) -> pd.DataFrame:
    """Binned reliability table of probabilities ``predicted`` (m,) against 0/1 ``observed``.

    Columns: ``bin_low``, ``bin_high``, ``predicted`` (mean), ``observed`` (frequency),
    ``weight`` (rows); empty bins are omitted.
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, predicted, side="right") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(np.float64)
    pred = np.bincount(which, weights=predicted, minlength=bins)
    obs = np.bincount(which, weights=observed, minlength=bins)
    keep = count > 0
    return pd.DataFrame(
        {
            "bin_low": edges[:-1][keep],
            "bin_high": edges[1:][keep],
            "predicted": pred[keep] / count[keep],
            "observed": obs[keep] / count[keep],
            "weight": count[keep],
        }
    )


def expected_calibration_error(table: pd.DataFrame) -> float:
    """Weighted mean absolute gap between observed and predicted over a reliability table."""
    if table.empty:
        return float("nan")
    gap = (table["observed"] - table["predicted"]).abs()
    return float(np.average(gap, weights=table["weight"]))


def behaviour_cloning(
    weeks: CustomerWeeks,
    matrix: sp.csr_matrix,
    validation: NDArray[np.bool_],
    c: float = 1.0,
    max_rows: int = 200_000,
) -> tuple[Float, pd.DataFrame]:
    """Estimate ``pi_b(a | x)`` of the logged actions with a multinomial logistic regression
    on the state design ``matrix`` (M, p); fitted on the customers not in ``validation`` (M,)
    and checked on those: returns the (M,) probabilities of the logged actions (from the fit
    on all customers) and the held-out reliability of the one-vs-rest probabilities. Each
    fit uses at most ``max_rows`` customer-weeks drawn at random."""

    rng = np.random.default_rng(0)

    def fit(rows: NDArray[np.bool_]) -> LogisticRegression:
        index = np.flatnonzero(rows)
        if index.shape[0] > max_rows:  # a subsample is plenty for a few hundred columns
            index = np.sort(rng.choice(index, max_rows, replace=False))
        model = LogisticRegression(C=c, solver="lbfgs", max_iter=500)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(matrix[index], weeks.action[index])
        return model

    held = fit(~validation)
    probs = held.predict_proba(matrix[validation])
    classes = list(held.classes_)
    onehot = np.zeros_like(probs)
    valid_actions = weeks.action[validation]
    for k, a in enumerate(classes):
        onehot[:, k] = valid_actions == a
    table = reliability(probs.reshape(-1), onehot.reshape(-1))
    full = fit(np.ones(weeks.n, bool))
    column = {a: k for k, a in enumerate(full.classes_)}
    all_probs = full.predict_proba(matrix)
    chosen = np.array([column[a] for a in weeks.action])
    return all_probs[np.arange(weeks.n), chosen], table


def propensities(
    weeks: CustomerWeeks, matrix: sp.csr_matrix, validation: NDArray[np.bool_]
) -> Propensities:
    """Logged propensities, completed by behaviour cloning where they are missing."""
    logged = np.isfinite(weeks.propensity) & (weeks.propensity > 0)
    if np.unique(weeks.action).shape[0] < 2:
        return Propensities(np.ones(weeks.n), "none", reliability(np.zeros(0), np.zeros(0)), np.nan)
    if logged.all():
        return Propensities(
            weeks.propensity.copy(), "logged", reliability(np.zeros(0), np.zeros(0)), np.nan
        )
    estimated, table = behaviour_cloning(weeks, matrix, validation)
    value = np.where(logged, weeks.propensity, estimated)
    source = "estimated" if not logged.any() else "mixed"
    return Propensities(value, source, table, expected_calibration_error(table))


def stabilised_weights(weeks: CustomerWeeks, propensity: Float, max_weight: float) -> Float:
    """(M,) ``P(a) / propensity`` clipped to ``[1 / max_weight, max_weight]`` (see the module
    docstring); ``P(a)`` is the action's share of the customer-weeks."""
    share = np.bincount(weeks.action, minlength=len(weeks.actions)) / max(weeks.n, 1)
    w = share[weeks.action] / np.maximum(propensity, 1e-12)
    return np.clip(w, 1.0 / max_weight, max_weight)


def effective_sample_share(weight: Float) -> float:
    """Kish's effective sample size of the (M,) row weights ``weight`` as a share of ``M``,
    ``(sum w)^2 / (M sum w^2)``: 1 for equal weights; small when a few rows carry most of the
    weight (then the weighted fits rest on those few rows). 1 for no rows."""
    w = np.asarray(weight, np.float64)
    squares = float(w @ w)
    return float(w.sum() ** 2 / (w.shape[0] * squares)) if squares > 0 else 1.0


def support_table(weeks: CustomerWeeks, min_support: int) -> pd.DataFrame:
    """Customer-weeks per segment x lifecycle x action, with the positivity flag.

    Columns: ``segment``, ``lifecycle`` (prospect / customer), ``action``, ``weeks``
    (customer-weeks with that logged action), ``conversions``, ``flagged`` (``weeks <
    min_support``: the action's effect there rests on the model's pooling, not on data).
    """
    stage = np.where(weeks.lifecycle == 0, "prospect", "customer")
    frame = pd.DataFrame(
        {
            "segment": np.asarray(weeks.segments, object)[weeks.segment],
            "lifecycle": stage,
            "action": np.asarray(weeks.actions, object)[weeks.action],
            "converted": weeks.converted,
        }
    )
    index = pd.MultiIndex.from_product(
        [list(weeks.segments), ["prospect", "customer"], list(weeks.actions)],
        names=["segment", "lifecycle", "action"],
    )
    grouped = frame.groupby(["segment", "lifecycle", "action"])["converted"]
    table = pd.DataFrame({"weeks": grouped.size(), "conversions": grouped.sum()})
    table = table.reindex(index, fill_value=0).reset_index()
    table["weeks"] = table["weeks"].astype(np.int64)
    table["conversions"] = table["conversions"].astype(np.int64)
    table["flagged"] = table["weeks"] < min_support
    return table
