"""The GLM solvers agree with scikit-learn's estimators on the same objective."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import GammaRegressor, LogisticRegression
from threadpoolctl import threadpool_limits

from journeyopt.calibration.fit import (
    Cells,
    LinearFit,
    binary_loglik,
    choose_gamma,
    fit_gamma,
    fit_logistic,
    gamma_deviance,
    logit_loglik,
)
from journeyopt.calibration.propensity import cloning_fit, effective_sample_share


@pytest.fixture
def design() -> sp.csr_matrix:
    return sp.random(3000, 20, density=0.25, random_state=1, format="csr")


@pytest.mark.parametrize("c", [0.1, 10.0])
def test_logistic_matches_sklearn_on_weighted_rows(design: sp.csr_matrix, c: float) -> None:
    rng = np.random.default_rng(0)
    p = 1 / (1 + np.exp(-(design @ rng.normal(size=20) - 1)))
    w = rng.integers(1, 5, design.shape[0]).astype(float)
    y = rng.random(design.shape[0]) < p
    ours = fit_logistic(design, w * y, w * ~y, c)
    ref = LogisticRegression(C=c, tol=1e-10, max_iter=10_000).fit(design, y, sample_weight=w)
    np.testing.assert_allclose(ours.coef, ref.coef_[0], atol=1e-5)
    assert ours.intercept == pytest.approx(ref.intercept_[0], abs=1e-5)


def test_aggregated_cells_give_the_row_level_fit() -> None:
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 40, 5000)
    onehot = sp.csr_matrix((np.ones(40), (np.arange(40), np.arange(40))))
    cells = Cells.of(keys, lambda first: onehot[keys[first]])
    y = rng.random(5000) < 0.2 + 0.01 * keys
    aggregated = fit_logistic(cells.matrix, cells.sums(y * 1.0), cells.sums(~y * 1.0), 1.0)
    rows = fit_logistic(onehot[keys], y * 1.0, ~y * 1.0, 1.0)
    np.testing.assert_allclose(aggregated.coef, rows.coef[np.unique(keys)], atol=1e-6)


def test_gamma_matches_sklearn(design: sp.csr_matrix) -> None:
    rng = np.random.default_rng(2)
    mu = np.exp(0.3 * (design @ rng.normal(size=20)) + 2)
    y = rng.gamma(3.0, mu / 3.0)
    w = rng.integers(1, 5, design.shape[0]).astype(float)
    ours = fit_gamma(design, y, w, 1e-3)
    ref = GammaRegressor(alpha=1e-3, tol=1e-12, max_iter=10_000).fit(design, y, sample_weight=w)
    np.testing.assert_allclose(ours.coef, ref.coef_, atol=1e-5)


def test_an_outcome_never_seen_has_negligible_probability(design: sp.csr_matrix) -> None:
    n = design.shape[0]
    fit = fit_logistic(design, np.zeros(n), np.ones(n), 1.0)
    assert np.all(1 / (1 + np.exp(-fit.eta(design))) < 1e-15)


def test_the_fits_are_the_same_on_any_number_of_blas_threads() -> None:
    """What the calibration writes (penalty scores, coefficients, confounding weights and their
    effective sample share) does not move with the BLAS thread count: the GLMs' objectives
    are summed by numpy and solved on one thread; behaviour cloning (11,000 coefficients:
    above OpenBLAS's 10,000 a dot product is split among threads) runs on one thread; the
    effective sample share sums by numpy."""
    rng = np.random.default_rng(6)
    n = 12_000
    x = sp.random(n, 30, density=0.3, random_state=6, format="csr")
    cols = rng.integers(0, 2_200, (n, 6))
    states = sp.csr_matrix((np.ones(6 * n), (np.repeat(np.arange(n), 6), cols.ravel())))
    action = rng.integers(0, 5, n)
    w, negative = 3 * rng.random(n), 5 * rng.random(n)
    y = rng.gamma(2.0, 10.0, n)
    results = set()
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            logistic = fit_logistic(x, w, negative, 0.1)
            gamma = fit_gamma(x, y, w, 1e-3)
            cloned = cloning_fit(states, action, 1.0)
            results.add(
                (
                    logistic.coef.tobytes(),
                    gamma.coef.tobytes(),
                    cloned.coef_.tobytes(),
                    effective_sample_share(w),
                )
            )
    assert len(results) == 1


def test_a_held_out_score_is_the_same_on_any_number_of_blas_threads() -> None:
    """The held-out scores a penalty or a tree count is chosen by (written to the world's
    ``calibration.json``) are summed without BLAS: OpenBLAS splits a long dot product among
    its threads, so the sum's last digits moved with the machine's cores (a coworking
    calibration's opt-out model at C 0.03: -0.09724684199327421 on one or three threads,
    ...423 on two or four)."""
    rng = np.random.default_rng(3)
    n = 40_000  # OpenBLAS threads a dot product of more than 10,000 elements
    matrix = sp.random(n, 8, density=0.5, random_state=3, format="csr")
    fit = LinearFit(rng.normal(size=8), -2.0, 1.0)
    positive, negative = rng.random(n), 5 * rng.random(n)
    y, log_mean = rng.gamma(2.0, 10.0, n), rng.normal(3.0, 0.5, n)
    scores = set()
    for threads in (1, 2, 3, 4):
        with threadpool_limits(limits=threads, user_api="blas"):
            scores.add(
                (
                    binary_loglik(fit, matrix, positive, negative),
                    logit_loglik(fit.eta(matrix), positive, negative),
                    gamma_deviance(y, log_mean, positive),
                )
            )
    assert len(scores) == 1, scores


def test_the_gamma_deviance_is_the_standard_weighted_one() -> None:
    """``2 sum w (-log(y / mu) + (y - mu) / mu) / sum w``, rows of zero weight left out (even
    a value the Gamma family cannot hold), and 0 where every value is its mean."""
    rng = np.random.default_rng(4)
    y, log_mean = rng.gamma(2.0, 10.0, 500), rng.normal(3.0, 0.5, 500)
    w = rng.integers(0, 4, 500).astype(float)
    mu = np.exp(log_mean)
    expected = 2.0 * np.sum(w * (-np.log(y / mu) + (y - mu) / mu)) / np.sum(w)
    assert gamma_deviance(y, log_mean, w) == pytest.approx(expected, rel=1e-12)
    assert gamma_deviance(np.where(w > 0, y, 0.0), log_mean, w) == gamma_deviance(y, log_mean, w)
    assert gamma_deviance(mu, log_mean, w) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(gamma_deviance(y, log_mean, np.zeros(500)))


def test_the_penalty_choice_scores_the_value_glm_as_the_family_choice(
    design: sp.csr_matrix,
) -> None:
    """The alpha of the value GLM is chosen by the very deviance its GLM is later compared
    with the trees by (``models.choose_families``: ``gamma_deviance`` of the held-out rows at
    the GLM's log means): the same score to the last digit."""
    rng = np.random.default_rng(5)
    y = rng.gamma(2.0, np.exp(0.3 * (design @ rng.normal(size=20)) + 2) / 2.0)
    held = (rng.random(design.shape[0]) < 0.3).astype(float)
    train = (design, y, 1.0 - held)
    choice = choose_gamma(train, (design, y, held), [1e-3])
    glm = fit_gamma(*train, 1e-3)
    assert choice.scores[1e-3] == -gamma_deviance(y, glm.eta(design), held)
