"""BG/NBD reference model: parameter recovery on data drawn from the model, the published
CDNOW estimates, the conditional forecast against simulation, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from journeyopt.calibration.bgnbd import (
    BGNBD,
    conditional_expected,
    conditional_pmf,
    fit_bgnbd,
    log_likelihood,
    repeat_summary,
    simulate_bgnbd,
)

TRUTH = BGNBD(r=0.25, alpha=4.4, a=0.8, b=2.4)
"""The paper's estimates on the CDNOW sample (weeks)."""


def test_fit_recovers_the_parameters_of_simulated_customers() -> None:
    rng = np.random.default_rng(0)
    age = rng.uniform(27.0, 39.0, 20_000)
    x, t_x = simulate_bgnbd(TRUTH, age, rng)
    fitted = fit_bgnbd(x, t_x, age)
    for name, tol in (("r", 0.15), ("alpha", 0.2), ("a", 0.25), ("b", 0.3)):
        assert getattr(fitted, name) == pytest.approx(getattr(TRUTH, name), rel=tol), name
    gain = np.mean(log_likelihood(fitted, x, t_x, age) - log_likelihood(TRUTH, x, t_x, age))
    assert 0.0 <= gain < 1e-3  # the optimum is at least as likely as the truth, and close


def test_likelihood_of_a_single_customer_matches_the_closed_form() -> None:
    x, t_x, age = np.array([2.0]), np.array([10.0]), np.array([30.0])
    r, alpha, a, b = TRUTH.r, TRUTH.alpha, TRUTH.a, TRUTH.b
    from scipy.special import beta, gamma

    common = gamma(r + 2) * alpha**r / gamma(r)
    expected = common * (
        beta(a, b + 2) / beta(a, b) / (alpha + 30) ** (r + 2)
        + beta(a + 1, b + 1) / beta(a, b) / (alpha + 10) ** (r + 2)
    )
    assert np.exp(log_likelihood(TRUTH, x, t_x, age))[0] == pytest.approx(expected, rel=1e-10)


def test_conditional_forecast_matches_simulation() -> None:
    rng = np.random.default_rng(1)
    params = BGNBD(r=0.5, alpha=5.0, a=1.5, b=3.0)
    n, calib, horizon = 60_000, 30.0, 20.0
    age = np.full(n, calib + horizon)
    x_all, _ = simulate_bgnbd(params, age, rng)
    # the same seed draws the same rates, dropouts and inter-purchase times: x_cal and t_cal
    # are the same customers seen at the end of the calibration period
    x_cal, t_cal = simulate_bgnbd(params, np.full(n, calib), np.random.default_rng(1))
    forecast = conditional_expected(params, horizon, x_cal, t_cal, np.full(n, calib))
    assert float(np.mean(forecast)) == pytest.approx(float(np.mean(x_all - x_cal)), rel=0.05)


CUSTOMERS = (
    np.array([0.0, 0.0, 1.0, 2.0, 5.0, 20.0, 40.0]),
    np.array([0.0, 0.0, 3.0, 10.0, 30.0, 35.0, 38.0]),
    np.array([2.0, 38.0, 38.0, 30.0, 36.0, 38.0, 38.5]),
)
"""(x, t_x, T) of customers from new to heavy and lapsed (weeks)."""


@pytest.mark.parametrize("params", [TRUTH, BGNBD(r=0.5, alpha=5.0, a=1.5, b=3.0)])
def test_conditional_pmf_sums_to_one_with_the_conditional_expectation_as_mean(
    params: BGNBD,
) -> None:
    pmf = conditional_pmf(params, 39.0, *CUSTOMERS, max_count=300)
    assert pmf.shape == (7, 301) and np.all(pmf >= 0.0)
    np.testing.assert_allclose(pmf.sum(axis=1), 1.0, atol=1e-9)
    mean = pmf @ np.arange(301.0)
    np.testing.assert_allclose(mean, conditional_expected(params, 39.0, *CUSTOMERS), atol=1e-6)
    # a lapsed heavy buyer is more likely to buy nothing than a recent one of the same count
    lapsed = conditional_pmf(params, 39.0, np.array([5.0]), np.array([5.0]), np.array([38.0]), 0)
    assert lapsed[0, 0] > pmf[4, 0]


def test_conditional_probability_of_no_purchase_matches_the_closed_form() -> None:
    """P(X(t) = 0 | x, t_x, T) written out directly (Fader & Hardie 2019, "A step-by-step
    derivation of the BG/NBD model", eq. 34)."""
    from scipy.special import beta

    r, alpha, a, b = TRUTH.r, TRUTH.alpha, TRUTH.a, TRUTH.b
    x, t_x, age = CUSTOMERS
    t = 39.0
    dropped = np.where(x > 0, beta(a + 1, np.maximum(b + x - 1, 1e-12)), 0.0) / (alpha + t_x) ** (
        r + x
    )
    expected = (beta(a, b + x) / (alpha + age + t) ** (r + x) + dropped) / (
        beta(a, b + x) / (alpha + age) ** (r + x) + dropped
    )
    pmf = conditional_pmf(TRUTH, t, x, t_x, age, max_count=0)
    np.testing.assert_allclose(pmf[:, 0], expected, rtol=1e-10)


def test_conditional_pmf_matches_simulation() -> None:
    rng = np.random.default_rng(2)
    params = BGNBD(r=0.5, alpha=5.0, a=1.5, b=3.0)
    n, calib, horizon = 40_000, 30.0, 20.0
    x_all, _ = simulate_bgnbd(params, np.full(n, calib + horizon), rng)
    # the same seed: the same customers seen at the end of the calibration period
    x_cal, t_cal = simulate_bgnbd(params, np.full(n, calib), np.random.default_rng(2))
    pmf = conditional_pmf(params, horizon, x_cal, t_cal, np.full(n, calib), max_count=5)
    future = (x_all - x_cal).astype(np.int64)
    for count in range(6):
        seen = float(np.mean(future == count))
        se = np.sqrt(seen * (1.0 - seen) / n)
        assert abs(float(pmf[:, count].mean()) - seen) < 4.0 * se + 1e-4, count


def test_repeat_summary_counts_from_the_first_purchase() -> None:
    customer = np.array([0, 0, 0, 1, 2])
    time = np.array([1.0, 3.0, 9.0, 5.0, 50.0])
    x, t_x, age = repeat_summary(customer, time, end=10.0)
    np.testing.assert_array_equal(x[:2], [2.0, 0.0])
    np.testing.assert_array_equal(t_x[:2], [8.0, 0.0])
    np.testing.assert_array_equal(age[:2], [9.0, 5.0])
    assert np.isnan(x[2])  # first purchase after the end: not in the cohort


@pytest.mark.parametrize(
    ("x", "t_x", "age", "match"),
    [
        ([1.0], [5.0], [3.0], "t_x <= T"),
        ([-1.0], [0.0], [3.0], "x >= 0"),
        ([1.0, 2.0], [1.0], [3.0], "same shape"),
    ],
)
def test_fit_rejects_inconsistent_data(
    x: list[float], t_x: list[float], age: list[float], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        fit_bgnbd(np.array(x), np.array(t_x), np.array(age))


def test_parameters_must_be_positive() -> None:
    with pytest.raises(ValueError, match="alpha must be > 0"):
        BGNBD(r=1.0, alpha=0.0, a=1.0, b=1.0)
