"""Fitting the response models: L2-regularised GLMs on aggregated cells, the penalty chosen by
held-out log-likelihood, refitted on bootstrap resamples of customers.

Binary outcomes (conversion, engagement, opt-out) are logistic regressions. Customer-weeks
sharing a (discrete state, action, week of year) have the same design row, so they are
aggregated into cells with the summed weight of their successes and of their failures: the
weighted log-likelihood is unchanged and a fit costs O(cells), not O(customer-weeks). The
expected list value of a conversion is a Gamma GLM with log link on the converting weeks.

Both are fitted by Newton's method on the penalised likelihood (a few hundred columns: the
Hessian is small and dense), with scikit-learn's parametrisation of the penalties. The penalty
``C`` (inverse L2 strength of the logistic models, against the summed sample weight) is
chosen on the calibration's held-out rows (:func:`journeyopt.calibration.scoring.scored_rows`:
by default every customer's last weeks, fitted on the weeks before) by the weighted held-out
log-likelihood per unit weight, then the model is refitted on all customer-weeks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

Float = NDArray[np.float64]
IntArray = NDArray[np.int64]

NO_EVENT_LOGIT = -50.0
"""Logit of an outcome the logs never show (probability ~2e-22)."""


@dataclass(frozen=True)
class Cells:
    """Unique design rows of ``M`` customer-weeks.

    Attributes:
        matrix: (c, p) sparse design of the ``c`` cells.
        row_cell: (M,) cell of each customer-week.
    """

    matrix: sp.csr_matrix
    row_cell: IntArray

    @staticmethod
    def of(keys: IntArray, build: Callable[[IntArray], sp.csr_matrix]) -> Cells:
        """Cells of rows with integer ``keys`` (M,); ``build(first_rows)`` gives the design of
        one representative row per cell."""
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        return Cells(build(first), inverse.reshape(-1).astype(np.int64))

    def sums(self, weights: Float) -> Float:
        """(c,) summed ``weights`` (M,) per cell."""
        sums = np.bincount(self.row_cell, weights=weights, minlength=self.matrix.shape[0])
        return np.asarray(sums, np.float64)


@dataclass(frozen=True)
class LinearFit:
    """A fitted GLM: ``eta = X @ coef + intercept``.

    Attributes:
        coef: (p,) coefficients.
        intercept: Intercept.
        penalty: The ``C`` (logistic) or ``alpha`` (Gamma) it was fitted with (the held-out
            scores of a choice among penalties are the :class:`PenaltyChoice`'s).
    """

    coef: Float
    intercept: float
    penalty: float

    def eta(self, matrix: sp.spmatrix) -> Float:
        """(m,) linear predictor of (m, q) design rows, ``q <= p`` (leading columns)."""
        q = matrix.shape[1]
        return np.asarray(matrix @ self.coef[:q], np.float64) + self.intercept


def _with_intercept(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """``[X, 1]``: the last coefficient is the (unpenalised) intercept."""
    ones = sp.csr_matrix(np.ones((matrix.shape[0], 1)))
    return sp.hstack([matrix, ones], format="csr")


@threadpool_limits.wrap(limits=1, user_api="blas")
def _newton(
    x: sp.csr_matrix,
    score: Callable[[Float], tuple[float, Float, Float]],
    lam: Float,
    start: Float,
    max_iter: int = 100,
    tol: float = 1e-8,
) -> Float:
    """Maximise ``objective(b) - sum_j lam_j b_j^2 / 2`` (``lam`` (p,) per column, the intercept
    last and unpenalised) by Newton's method with step halving.

    ``score(eta)`` gives, at the linear predictor ``eta = x @ b``, the objective, its
    derivative by ``eta`` (m,) and the (m,) diagonal of minus its second derivative (or of the
    Fisher information). Stops when the largest step is below ``tol``.

    The (p, p) system is solved on one BLAS thread: at a few hundred columns a second thread
    saves nothing, and on a busy machine threads waiting for each other made each solve ten
    times slower. The objectives are summed by numpy, not by BLAS dot products (as
    :func:`logit_loglik`), so the path does not rest on that thread limit: a fit is the same
    to the last digit on any number of BLAS threads (tested). ``x``'s transpose is built
    once, and the Hessian's ``X' diag(d2) X`` scales ``x``'s stored values in place of a
    sparse broadcast product (the same numbers).
    """
    penalty = np.append(lam, 0.0)
    b = start.copy()
    xt = x.T.tocsr()
    nonzero_row = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    obj, d1, d2 = score(np.asarray(x @ b))
    obj -= 0.5 * float((penalty * b * b).sum())
    for _ in range(max_iter):
        grad = np.asarray(xt @ d1) - penalty * b
        scaled = sp.csr_matrix((x.data * d2[nonzero_row], x.indices, x.indptr), shape=x.shape)
        hess = (xt @ scaled).toarray() + np.diag(penalty + 1e-10)
        step = np.linalg.solve(hess, grad)
        for _ in range(30):
            trial = b + step
            t_obj, t_d1, t_d2 = score(np.asarray(x @ trial))
            t_obj -= 0.5 * float((penalty * trial * trial).sum())
            if t_obj >= obj - 1e-12 * abs(obj):
                break
            step = step / 2
        b, obj, d1, d2 = trial, t_obj, t_d1, t_d2
        if float(np.max(np.abs(step))) < tol:
            break
    return b


def _scale(matrix: sp.csr_matrix, scale: Float | None) -> Float:
    return np.ones(matrix.shape[1]) if scale is None else np.asarray(scale, np.float64)


def fit_logistic(
    matrix: sp.csr_matrix,
    positive: Float,
    negative: Float,
    c: float,
    warm: LinearFit | None = None,
    scale: Float | None = None,
) -> LinearFit:
    """Weighted L2 logistic regression on cells, by Newton's method: maximises
    ``sum_i p_i log s(eta_i) + n_i log s(-eta_i) - |coef|^2 / (2 c)`` (scikit-learn's
    ``LogisticRegression(C=c)`` objective with these sample weights; the tests check both agree).

    Args:
        matrix: (c, p) cell designs.
        positive, negative: (c,) summed weights of the successes and failures of each cell.
        c: Inverse L2 strength.
        warm: A previous fit to start from (bootstrap refits).
        scale: (p,) factor on each column's penalty (default 1).
    """
    if positive.sum() <= 0:
        return LinearFit(np.zeros(matrix.shape[1]), NO_EVENT_LOGIT, c)
    if negative.sum() <= 0:
        raise ValueError("an outcome that always happens cannot be fitted")
    keep = (positive + negative) > 0
    x = _with_intercept(matrix[keep])
    pos, total = positive[keep], (positive + negative)[keep]

    def score(eta: Float) -> tuple[float, Float, Float]:
        p = 1.0 / (1.0 + np.exp(-eta))
        terms = pos * -np.logaddexp(0.0, -eta) + (total - pos) * -np.logaddexp(0.0, eta)
        loglik = float(terms.sum())
        return loglik, pos - total * p, total * p * (1.0 - p)

    if warm is not None:
        start = np.append(warm.coef, warm.intercept)
    else:
        start = np.zeros(x.shape[1])
        rate = float(pos.sum() / total.sum())
        start[-1] = np.log(rate / (1.0 - rate))
    b = _newton(x, score, _scale(matrix, scale) / c, start)
    return LinearFit(b[:-1], float(b[-1]), c)


def logit_loglik(logit: Float, positive: Float, negative: Float) -> float:
    """Weighted log-likelihood per unit weight of cells with (c,) ``logit`` and (c,) summed
    weights of their successes and failures (nats; NaN without weight).

    Summed by numpy (pairwise, in a fixed order), not by a BLAS dot product: OpenBLAS splits
    a dot product of more than 10,000 terms among its threads, which made a held-out score's
    last digits depend on the number of cores (and on the BLAS kernel the CPU selects)."""
    terms = positive * -np.logaddexp(0.0, -logit) + negative * -np.logaddexp(0.0, logit)
    total = positive.sum() + negative.sum()
    return float(terms.sum() / total) if total > 0 else float("nan")


def binary_loglik(fit: LinearFit, matrix: sp.csr_matrix, positive: Float, negative: Float) -> float:
    """Weighted log-likelihood per unit weight of cells under ``fit`` (nats,
    :func:`logit_loglik`)."""
    return logit_loglik(fit.eta(matrix), positive, negative)


def _same_score(a: float, b: float) -> bool:
    """Equal held-out scores, NaN (not scored) equal to NaN."""
    return a == b or (np.isnan(a) and np.isnan(b))


GRID_STEP = 10.0
"""Factor between a penalty grid's winning edge and the value tried beyond it (a decade)."""


@dataclass(frozen=True)
class PenaltyChoice:
    """A penalty chosen by held-out score on a grid, extended beyond a winning edge.

    Attributes:
        value: The chosen penalty.
        scores: Every penalty tried -> its held-out score (higher is better: log-likelihood
            per unit weight, or minus the mean Gamma deviance), the grid's and the extensions'.
        edge: ``smallest`` or ``largest`` when the chosen penalty is the smallest or largest
            value of the choice and the value a decade beyond it was not tried (no extension
            left) or scored better without beating it clearly (:func:`choose_penalty`): the
            best may lie beyond. Empty when a value beyond scored worse, when the choice lies
            inside, when the grid has one value (a fixed penalty) or when no penalty could be
            scored.

    Two choices are equal when their values, edges and scores are, a score that could not be
    computed (NaN: no held-out weight) equal to another such: with NaN != NaN, the same
    choice made twice (one worker or several) compared unequal.
    """

    value: float
    scores: dict[float, float]
    edge: str = ""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PenaltyChoice):
            return NotImplemented
        return (
            self.value == other.value
            and self.edge == other.edge
            and self.scores.keys() == other.scores.keys()
            and all(_same_score(s, other.scores[p]) for p, s in self.scores.items())
        )

    def as_meta(self) -> dict[str, object]:
        return {
            "chosen": self.value,
            "edge": self.edge,
            "scores": {f"{p:g}": s for p, s in sorted(self.scores.items())},
        }


def choose_penalty(
    grid: Sequence[float],
    score: Callable[[float], float],
    extensions: int,
    strong_is_small: bool,
    fallback: float,
    beats: Callable[[float, float], bool] | None = None,
) -> PenaltyChoice:
    """The penalty of ``grid`` with the best held-out ``score`` (higher is better; ties: the
    stronger penalty), each scored from the strongest to the weakest.

    When the best is the grid's smallest or largest value (of a grid of two or more values),
    the value a decade beyond it (:data:`GRID_STEP`) is scored too and replaces it when it
    scores better and ``beats(beyond, edge)`` (e.g. by more than a tolerance of standard
    errors; None: scoring better suffices), up to ``extensions`` times: the configured grid
    is the range the penalty is expected in, left only on evidence. A choice whose next value
    beyond was not tried, or scored better without beating it, is marked
    (:attr:`PenaltyChoice.edge`).

    Args:
        grid: The configured candidates.
        score: Held-out score of a penalty.
        extensions: Most values tried beyond the grid (0: the grid as given).
        strong_is_small: The smaller value penalises more (logistic ``C``), else the larger
            (Gamma ``alpha``).
        fallback: The choice when no score is finite.
        beats: Whether a value beyond the edge beats the edge, given that it scores better.
    """
    scores = {p: score(p) for p in sorted(grid, reverse=not strong_is_small)}
    finite = {p: s for p, s in scores.items() if np.isfinite(s)}
    if not finite:
        return PenaltyChoice(float(fallback), scores)
    chosen = max(sorted(finite, reverse=not strong_is_small), key=lambda p: finite[p])
    low, high = min(scores), max(scores)  # the choice's range: the grid, then the extensions

    def beyond_edge() -> float | None:
        """The value a decade beyond the chosen one when it is an edge of the range."""
        if len(scores) < 2 or low < chosen < high:
            return None
        beyond = chosen / GRID_STEP if chosen == low else chosen * GRID_STEP
        return float(f"{beyond:.12g}")  # 0.0003, not 0.00030000000000000003

    beyond = beyond_edge()
    for _ in range(extensions):
        if beyond is None:
            break
        scores[beyond] = score(beyond)
        if not scores[beyond] > scores[chosen] or (beats is not None and not beats(beyond, chosen)):
            break
        chosen = beyond
        low, high = min(low, chosen), max(high, chosen)
        beyond = beyond_edge()
    edge = ""
    if beyond is not None and not scores.get(beyond, np.inf) <= scores[chosen]:
        edge = "smallest" if chosen == low else "largest"
    return PenaltyChoice(float(chosen), scores, edge)


def choose_logistic(
    train: tuple[sp.csr_matrix, Float, Float],
    valid: tuple[sp.csr_matrix, Float, Float],
    grid: Sequence[float],
    scale: Float | None = None,
    extensions: int = 0,
    beats: Callable[[LinearFit, LinearFit], bool] | None = None,
    fits: dict[float, LinearFit] | None = None,
) -> PenaltyChoice:
    """The ``C`` with the best held-out log-likelihood (:func:`choose_penalty`; ties: the
    smaller ``C``; ``extensions`` values tried beyond a winning edge of ``grid``, each taken
    when it scores better and ``beats(its fit, the edge's fit)``, None: always).

    The fits follow the regularisation path from the strongest penalty (smallest ``C``), each
    started from the fit of the nearest ``C`` already tried: the same optimum (Newton's
    tolerance) in fewer iterations than from the intercept-only start. ``fits``, when given,
    receives every ``C``'s fit (a later choice starts from the chosen one)."""
    fits = {} if fits is None else fits

    def score(c: float) -> float:
        warm = fits[min(fits, key=lambda k: abs(np.log(k / c)))] if fits else None
        fits[c] = fit_logistic(*train, c, warm=warm, scale=scale)
        return binary_loglik(fits[c], *valid)

    def beyond_beats(c: float, edge: float) -> bool:
        return beats is None or beats(fits[c], fits[edge])

    return choose_penalty(grid, score, extensions, True, grid[0], beyond_beats)


def fit_gamma(
    matrix: sp.csr_matrix, y: Float, weight: Float, alpha: float, scale: Float | None = None
) -> LinearFit:
    """Weighted Gamma GLM with log link, E[y] = exp(X @ coef + intercept), ``y > 0``, by Fisher
    scoring: minimises ``sum_i w_i d(y_i, mu_i) / (2 sum_i w_i) + alpha / 2 |coef|^2`` with
    ``d`` the Gamma deviance (scikit-learn's ``GammaRegressor(alpha)`` objective)."""
    keep = (weight > 0) & (y > 0)
    if not keep.any():
        raise ValueError("no conversion with a positive value to fit the value model on")
    x = _with_intercept(matrix[keep])
    yk, wk = y[keep], weight[keep]
    total = float(wk.sum())

    def score(eta: Float) -> tuple[float, Float, Float]:
        mu = np.exp(eta)
        return -0.5 * gamma_deviance(yk, eta, wk), wk * (yk - mu) / mu / total, wk / total

    start = np.zeros(x.shape[1])
    start[-1] = np.log(float(np.average(yk, weights=wk)))
    b = _newton(x, score, alpha * _scale(matrix, scale), start)
    return LinearFit(b[:-1], float(b[-1]), alpha)


def gamma_unit_deviance(y: Float, log_mean: Float) -> Float:
    """(m,) Gamma unit deviance ``d(y, mu) = 2 (-log(y / mu) + (y - mu) / mu)`` of values
    ``y > 0`` at (m,) log means ``log mu`` (0 where ``y = mu``): the one definition behind the
    value model's fit (:func:`fit_gamma`), its held-out scores (:func:`gamma_deviance`) and
    its per-customer scores (:func:`journeyopt.calibration.models.value_per_customer`)."""
    r = y * np.exp(-log_mean)
    return np.asarray(2.0 * (r - 1.0 - np.log(r)), np.float64)


def gamma_deviance(y: Float, log_mean: Float, weight: Float) -> float:
    """Weighted mean Gamma deviance ``sum_i w_i d(y_i, mu_i) / sum_i w_i``
    (:func:`gamma_unit_deviance`; lower is better; NaN without weight) of (m,) values
    ``y > 0`` at (m,) log means; rows of zero weight are left out. Every Gamma deviance the
    value model is fitted, or its GLM and trees compared, by.

    Summed by numpy, not by a BLAS dot product whose last digits depend on its threads (as
    :func:`logit_loglik`)."""
    keep = weight > 0
    total = float(weight[keep].sum())
    if not total > 0:
        return float("nan")
    w = weight[keep]
    return float((w * gamma_unit_deviance(y[keep], log_mean[keep])).sum() / total)


def choose_gamma(
    train: tuple[sp.csr_matrix, Float, Float],
    valid: tuple[sp.csr_matrix, Float, Float],
    grid: Sequence[float],
    scale: Float | None = None,
    extensions: int = 0,
    beats: Callable[[LinearFit, LinearFit], bool] | None = None,
) -> PenaltyChoice:
    """The ``alpha`` with the lowest held-out deviance (:func:`choose_penalty`, scored by
    minus the deviance; ties: the larger ``alpha``; ``extensions`` values tried beyond a
    winning edge of ``grid``, each taken when it scores better and ``beats(its fit, the
    edge's fit)``, None: always)."""
    fits: dict[float, LinearFit] = {}

    def score(alpha: float) -> float:
        fits[alpha] = fit_gamma(*train, alpha, scale)
        matrix, y, weight = valid
        return -gamma_deviance(y, fits[alpha].eta(matrix), weight)

    def beyond_beats(alpha: float, edge: float) -> bool:
        return beats is None or beats(fits[alpha], fits[edge])

    return choose_penalty(grid, score, extensions, False, grid[-1], beyond_beats)


def bootstrap_multiplicity(n_customers: int, rng: np.random.Generator) -> Float:
    """(K,) how often each customer is drawn in a resample of ``K`` with replacement."""
    return np.bincount(rng.integers(n_customers, size=n_customers), minlength=n_customers).astype(
        np.float64
    )
