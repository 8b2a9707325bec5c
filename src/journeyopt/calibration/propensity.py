"""Confounding and positivity: weights from the logging policy's propensities, a behaviour
cloning estimate where they were not logged, and the support of every segment x action.

The response models condition on the discrete state (which holds every feature today's staff
rules look at), so the logged actions are ignorable given the state; the weights only make
each action's sample resemble the whole population (stabilised inverse propensity weights
``w = P(a) / pi_b(a | x)``, clipped to ``[1 / max_weight, max_weight]``), which protects the
fit of rarely explored actions against misspecification where the staff concentrate them.

The same behaviour-cloning fit, tabulated over the discrete states, is today's practice
estimated from the logs (:func:`logged_practice`, a
:class:`~journeyopt.sim.practice.LoggedPractice`): the default baseline and control group of a
calibrated world. Its held-out calibration (ECE, log-loss against a constant-rate model, the
agreement of its most probable action with the logged one) is measured on the validation
customers.
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
from threadpoolctl import threadpool_limits

from journeyopt.calibration.design import N_WEEKS_OF_YEAR, Design
from journeyopt.calibration.weeks import CustomerWeeks
from journeyopt.parallel import run_tasks
from journeyopt.sim.practice import LoggedPractice

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
        cloning: The behaviour-cloning fit (also where every propensity was logged: it is
            today's practice estimated from the logs); None with one action only.
    """

    value: Float
    source: str
    calibration: pd.DataFrame
    ece: float
    cloning: Cloning | None = None


@dataclass(frozen=True)
class Cloning:
    """A behaviour-cloning fit of ``pi_b(a | x)`` and its held-out check.

    Attributes:
        model: The classifier fitted on all customers (classes: the logged action indices).
        chosen: (M,) its probability of each customer-week's logged action.
        calibration: Held-out reliability of the one-vs-rest probabilities (see
            :func:`reliability`).
        diagnostics: Held-out ``ece``, ``log_loss`` and ``constant_log_loss`` (nats per
            customer-week), ``agreement`` and ``constant_agreement``, ``n_validation``, and
            ``propensity_gap`` (mean |probability - logged propensity| where logged).
    """

    model: LogisticRegression
    chosen: Float
    calibration: pd.DataFrame
    diagnostics: dict[str, float]


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


@threadpool_limits.wrap(limits=1, user_api="blas")
def cloning_fit(matrix: sp.csr_matrix, action: NDArray[np.int64], c: float) -> LogisticRegression:
    """The multinomial logistic regression of the logged ``action`` (m,) on the state design
    ``matrix`` (m, p) (L-BFGS, at most 500 iterations), on one BLAS thread: with more than
    about 10,000 coefficients (classes x columns) L-BFGS's and scikit-learn's dot products are
    split among OpenBLAS's threads, so the fit (and every weight and table after it) moved
    in its last digits with the number of cores (and two threads on a busy machine took 20
    times as long as one)."""
    model = LogisticRegression(C=c, solver="lbfgs", max_iter=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(matrix, action)
    return model


def behaviour_cloning(
    weeks: CustomerWeeks,
    matrix: sp.csr_matrix,
    validation: NDArray[np.bool_],
    c: float = 1.0,
    max_rows: int = 200_000,
    workers: int = 1,
) -> Cloning:
    """Estimate ``pi_b(a | x)`` of the logged actions with a multinomial logistic regression
    on the state design ``matrix`` (M, p); fitted on the customers not in ``validation`` (M,)
    and checked on those (see :class:`Cloning`); the returned model and the (M,) probabilities
    of the logged actions are the fit on all customers. Each fit uses at most ``max_rows``
    customer-weeks drawn at random (seeded); the two fits (with their predictions) are two
    tasks on ``workers`` processes (:func:`journeyopt.parallel.run_tasks`)."""

    rng = np.random.default_rng(0)

    def sample(rows: NDArray[np.bool_]) -> NDArray[np.int64]:
        index = np.flatnonzero(rows)
        if index.shape[0] > max_rows:  # a subsample is plenty for a few hundred columns
            index = np.sort(rng.choice(index, max_rows, replace=False))
        return index

    def fit(index: NDArray[np.int64]) -> LogisticRegression:
        return cloning_fit(matrix[index], weeks.action[index], c)

    # both samples are drawn before either fit, in the order of one fit after the other
    held_rows, full_rows = sample(~validation), sample(np.ones(weeks.n, bool))

    def held_fit() -> tuple[LogisticRegression, Float]:
        model = fit(held_rows)
        return model, model.predict_proba(matrix[validation])

    def full_fit() -> tuple[LogisticRegression, Float]:
        model = fit(full_rows)
        column = np.full(int(max(model.classes_.max(), weeks.action.max())) + 1, -1, np.int64)
        column[model.classes_] = np.arange(model.classes_.shape[0])
        chosen = column[weeks.action]
        if (chosen < 0).any():
            raise KeyError(f"actions {sorted(set(weeks.action[chosen < 0]))} were never fitted")
        return model, model.predict_proba(matrix)[np.arange(weeks.n), chosen]

    (held, probs), (full, chosen_probs) = run_tasks([held_fit, full_fit], workers)
    classes = list(held.classes_)
    onehot = np.zeros_like(probs)
    valid_actions = weeks.action[validation]
    for k, a in enumerate(classes):
        onehot[:, k] = valid_actions == a
    table = reliability(probs.reshape(-1), onehot.reshape(-1))
    diagnostics = _held_out(weeks, validation, probs, onehot, classes)
    diagnostics["ece"] = expected_calibration_error(table)
    return Cloning(full, chosen_probs, table, diagnostics)


def _held_out(
    weeks: CustomerWeeks,
    validation: NDArray[np.bool_],
    probs: Float,
    onehot: Float,
    classes: list[int],
) -> dict[str, float]:
    """Held-out log-loss and agreement of ``probs`` (m, K) on the validation rows, against a
    constant-rate model (each action's share of the fitted rows)."""
    eps = 1e-12
    n_valid = probs.shape[0]
    if n_valid == 0:
        return {"n_validation": 0.0}
    rate = np.array([np.mean(weeks.action[~validation] == a) for a in classes])
    hit = onehot.astype(bool)
    logged_valid = hit.any(axis=1)  # a validation action the fit never saw counts as eps
    p_model = np.where(logged_valid, (probs * onehot).sum(axis=1), 0.0)
    p_const = np.where(logged_valid, onehot @ rate, 0.0)
    out = {
        "n_validation": float(n_valid),
        "log_loss": float(-np.mean(np.log(np.maximum(p_model, eps)))),
        "constant_log_loss": float(-np.mean(np.log(np.maximum(p_const, eps)))),
        "agreement": float(np.mean(hit[np.arange(n_valid), probs.argmax(axis=1)])),
        "constant_agreement": float(np.mean(hit[:, int(np.argmax(rate))])),
    }
    logged = weeks.propensity[validation]
    known = np.isfinite(logged) & (logged > 0)
    if known.any():
        out["propensity_gap"] = float(np.mean(np.abs(p_model[known] - logged[known])))
    return out


def propensities(
    weeks: CustomerWeeks,
    matrix: sp.csr_matrix,
    validation: NDArray[np.bool_],
    workers: int = 1,
) -> Propensities:
    """Logged propensities, completed by behaviour cloning where they are missing (its two
    fits on ``workers`` processes)."""
    logged = np.isfinite(weeks.propensity) & (weeks.propensity > 0)
    if np.unique(weeks.action).shape[0] < 2:
        return Propensities(np.ones(weeks.n), "none", reliability(np.zeros(0), np.zeros(0)), np.nan)
    cloning = behaviour_cloning(weeks, matrix, validation, workers=workers)
    if logged.all():
        return Propensities(
            weeks.propensity.copy(),
            "logged",
            reliability(np.zeros(0), np.zeros(0)),
            np.nan,
            cloning,
        )
    value = np.where(logged, weeks.propensity, cloning.chosen)
    source = "estimated" if not logged.any() else "mixed"
    return Propensities(value, source, cloning.calibration, cloning.diagnostics["ece"], cloning)


def cycle_columns(week: NDArray[np.integer], cycles: tuple[int, ...]) -> sp.csr_matrix:
    """(M, sum(cycles)) one-hot of the week of each campaign cycle, ``week % c`` for ``c`` in
    ``cycles`` (weeks), in that order; ``week`` (M,) is the week index from the calendar's
    origin (the panel's week 0)."""
    w = np.asarray(week, np.int64)
    m = w.shape[0]
    offsets = np.cumsum([0, *cycles])
    cols = [offsets[k] + w % c for k, c in enumerate(cycles)]
    rows = np.tile(np.arange(m), len(cycles))
    data = np.ones(m * len(cycles))
    width = int(offsets[-1])
    if not cycles:
        return sp.csr_matrix((m, 0))
    return sp.csr_matrix((data, (rows, np.concatenate(cols))), shape=(m, width))


def practice_matrix(
    design: Design, weeks: CustomerWeeks, cycles: tuple[int, ...], origin_week: int = 0
) -> sp.csr_matrix:
    """(M, p) design of the logging policy: the state columns of ``design`` (with its season
    block when seasonal) and the weeks of the campaign ``cycles`` counted from the panel week
    ``origin_week`` (the calendar's week 0)."""
    layout = design.layout
    state = design.matrix(
        layout.decode(weeks.state), np.zeros(weeks.n, np.int64), weeks.week_of_year
    )
    return sp.hstack([state, cycle_columns(weeks.week - origin_week, cycles)], format="csr")


def logged_practice(
    cloning: Cloning,
    design: Design,
    cycles: tuple[int, ...],
    action_names: tuple[str, ...],
    segment_names: tuple[str, ...],
    channels: tuple[str, ...],
    calendar_origin: str = "",
) -> LoggedPractice:
    """Today's practice estimated from the logs: ``cloning`` (fitted on
    :func:`practice_matrix` columns) tabulated per discrete state, week of year and week of
    each cycle (see :class:`~journeyopt.sim.practice.LoggedPractice`)."""
    model = cloning.model
    n_actions = len(action_names)
    classes = np.asarray(model.classes_, np.int64)
    coef = np.asarray(model.coef_, np.float64)
    intercept = np.asarray(model.intercept_, np.float64)
    if classes.shape[0] == 2 and coef.shape[0] == 1:  # binary: logit of the second class
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.array([0.0, intercept[0]])
    n_sa = design.n_state_action_columns
    states = design.layout.all_states()
    state_part = design.matrix(states, np.zeros(design.layout.n_states, np.int64), None)
    known = np.asarray(state_part @ coef[:, :n_sa].T) + intercept  # (n_states, K)
    state_logit = np.full((design.layout.n_states, n_actions), -np.inf)
    state_logit[:, classes] = known
    season = np.zeros((N_WEEKS_OF_YEAR, n_actions))
    start = n_sa
    if design.seasonal:
        season[:, classes] = coef[:, start : start + N_WEEKS_OF_YEAR].T
        start += N_WEEKS_OF_YEAR
    tables = []
    for c in cycles:
        table = np.zeros((c, n_actions))
        table[:, classes] = coef[:, start : start + c].T
        tables.append(table)
        start += c
    return LoggedPractice(
        action_names=action_names,
        segment_names=segment_names,
        channels=channels,
        discrete=design.layout.spec,
        state_logit=state_logit,
        season_logit=season,
        cycles=cycles,
        cycle_logit=tuple(tables),
        calendar_origin=calendar_origin,
        diagnostics=dict(cloning.diagnostics),
    )


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
    squares = float((w * w).sum())  # numpy's sum: a BLAS dot's last digits vary with threads
    return float(w.sum() ** 2 / (w.shape[0] * squares)) if squares > 0 else 1.0


def contacts_identified(weeks: CustomerWeeks, min_support: int) -> bool:
    """The logs identify contact effects: an action other than ``none`` exists and at least
    ``min_support`` customer-weeks took one (the contacted weeks of :func:`support_table`)."""
    contact = np.array([a != "none" for a in weeks.actions], np.bool_)
    if not (contact.any() and weeks.segments):
        return False
    return int(np.count_nonzero(contact[weeks.action])) >= min_support


def support_table(weeks: CustomerWeeks, min_support: int) -> pd.DataFrame:
    """Customer-weeks per segment x lifecycle x action, with the positivity flag.

    Columns: ``segment``, ``lifecycle`` (prospect / customer), ``action``, ``weeks``
    (customer-weeks with that logged action), ``conversions``, ``flagged`` (``weeks <
    min_support``: the action's effect there rests on the model's pooling, not on data).
    """
    stages = ("prospect", "customer")
    index = pd.MultiIndex.from_product(
        [list(weeks.segments), list(stages), list(weeks.actions)],
        names=["segment", "lifecycle", "action"],
    )
    # each customer-week's row of the table, counted by bincount (a groupby of the labels of
    # millions of customer-weeks took seconds)
    row = (weeks.segment * len(stages) + (weeks.lifecycle != 0)) * len(weeks.actions)
    row = row + weeks.action
    counts = np.bincount(row, minlength=len(index)).astype(np.int64)
    converted = np.asarray(weeks.converted, np.bool_)
    conversions = np.bincount(row[converted], minlength=len(index)).astype(np.int64)
    table = pd.DataFrame({"weeks": counts, "conversions": conversions}, index=index)
    table = table.reset_index()
    table["flagged"] = table["weeks"] < min_support
    return table
