"""The CDNOW comparison's distributions of each customer's hold-out count: the world's exact
distribution of counted purchase weeks (``compare.purchase_weeks_pmf``) has the exact
expectation as its mean and matches simulated customers; transaction days compound it; the
median is the lower median and minimises the expected absolute error; the ranked probability
score is a point forecast's absolute error and ``E|N - y| - E|N - N'| / 2`` of a distribution."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from journeyopt.sim.world import load_world

from .test_cdnow_expectation import simulated_purchase_weeks, tenure_two_states
from .test_cdnow_window import _compare


def test_purchase_weeks_distribution_has_the_expectation_as_mean_and_matches_simulation() -> None:
    compare = _compare()
    base = load_world("coworking")
    small = replace(
        base.discrete,
        tenure_cap_weeks=8,
        contact_cap_weeks=2,
        engagement_cap_weeks=3,
        recency_cap_weeks=12,
    )  # 24,000 states: fast
    world = replace(base, discrete=small)
    rng = np.random.default_rng(3)
    start = tenure_two_states(world, 40, rng)
    weeks = np.arange(20, 30, dtype=np.int64)  # 10 weeks of year, tenure passes its cap
    counted = np.ones(weeks.shape[0])
    counted[0], counted[-1] = 5 / 7, 2 / 7  # the edge weeks by day share
    pmf = compare.purchase_weeks_pmf(world, start, weeks, counted)
    assert pmf.shape == (40, 11) and np.all(pmf >= -1e-15)
    np.testing.assert_allclose(pmf.sum(axis=1), 1.0, atol=1e-12)
    expected = compare.expected_weeks(world, start, weeks) @ counted
    np.testing.assert_allclose(pmf @ np.arange(11.0), expected, atol=1e-10)
    # simulated customers, each purchase week counted with its week's probability
    runs = 2000
    bought = simulated_purchase_weeks(world, start, weeks, runs, rng)
    kept = rng.random(bought.shape) < counted
    count = (bought.astype(bool) & kept).sum(axis=1)
    assert count.max() >= 2  # customers buy in several weeks: more than a purchase-or-not
    for n in range(4):
        seen = np.mean(count.reshape(start.shape[0], runs) == n, axis=1)
        se = np.sqrt(np.maximum(seen * (1 - seen), 1e-3) / runs)
        assert np.all(np.abs(seen - pmf[:, n]) < 5 * se), n


def test_compound_distribution_of_transaction_days() -> None:
    compare = _compare()
    count = np.array([[0.5, 0.3, 0.2]])  # purchase weeks 0, 1, 2
    per_week = np.array([0.0, 0.75, 0.25])  # 1 or 2 transaction days a purchase week
    days = compare.compound_pmf(count, per_week)
    expected = [0.5, 0.3 * 0.75, 0.3 * 0.25 + 0.2 * 0.75**2, 0.2 * 2 * 0.75 * 0.25, 0.2 / 16]
    np.testing.assert_allclose(days[0], expected)
    assert days @ np.arange(5.0) == pytest.approx((0.3 + 0.4) * 1.25)


def test_median_is_the_lower_median_and_minimises_the_absolute_error() -> None:
    compare = _compare()
    pmf = np.array([[0.5, 0.5, 0.0], [0.4, 0.2, 0.4], [0.3, 0.1, 0.6], [0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(compare.median_count(pmf), [0, 1, 2, 2])
    rng = np.random.default_rng(0)
    random = rng.dirichlet(np.full(8, 0.3), 200)
    median = compare.median_count(random)
    counts = np.arange(8)
    loss = random @ np.abs(counts[:, None] - counts[None, :])  # (K, m) E|N - m|
    np.testing.assert_allclose(loss[np.arange(200), median], loss.min(axis=1), atol=1e-12)


def test_ranked_probability_score_generalises_the_absolute_error() -> None:
    compare = _compare()
    actual = np.array([0, 3, 1])
    point = np.eye(6)[[2, 2, 5]]  # point forecasts 2, 2, 5
    np.testing.assert_allclose(compare.ranked_probability_score(point, actual), [2, 1, 4])
    rng = np.random.default_rng(1)
    pmf = rng.dirichlet(np.ones(6), 3)
    counts = np.arange(6.0)
    spread = np.einsum("ki,kj,ij->k", pmf, pmf, np.abs(counts[:, None] - counts[None, :]))
    crps = pmf @ np.abs(counts[:, None] - actual[None, :]) - 0.5 * spread[:, None]
    np.testing.assert_allclose(compare.ranked_probability_score(pmf, actual), np.diag(crps))
    with pytest.raises(ValueError, match="beyond"):
        compare.ranked_probability_score(pmf, np.array([0, 6, 1]))
