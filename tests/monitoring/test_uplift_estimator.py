"""The uplift estimator on synthetic customers with a known effect: unbiased, intervals that
cover the truth about 95 % of the time, narrower with the pre-period covariate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray

from journeyopt.monitoring.uplift import regression_uplift, uplift_table

EFFECT = 0.1


def customers(
    seed: int, n: int = 2000, effect: float = EFFECT
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_], NDArray[np.float64]]:
    """(outcome per week, exposed weeks, treated, pre-period mean) of ``n`` customers whose
    propensity to buy varies a lot and persists from the pre-period into the window."""
    rng = np.random.default_rng(seed)
    appetite = rng.gamma(2.0, 0.5, n)
    weeks = rng.integers(1, 13, n).astype(np.float64)
    treated = rng.random(n) < 0.5
    pre = appetite + rng.normal(0.0, 0.3, n)
    outcome = appetite + effect * treated + rng.normal(0.0, 1.0, n) / np.sqrt(weeks)
    return outcome, weeks, treated, pre


@pytest.mark.parametrize("adjusted", [True, False])
def test_unbiased_with_nominal_coverage(adjusted: bool) -> None:
    estimates, covered = [], 0
    seeds = 300
    for seed in range(seeds):
        y, w, t, x = customers(seed)
        est = regression_uplift(y, w, t, x if adjusted else None)
        estimates.append(est.uplift)
        covered += est.ci_low <= EFFECT <= est.ci_high
    spread = float(np.std(estimates))
    assert abs(np.mean(estimates) - EFFECT) < 3 * spread / np.sqrt(seeds)
    assert 0.92 <= covered / seeds <= 0.98


def test_covariate_narrows_the_interval() -> None:
    y, w, t, x = customers(0)
    adjusted = regression_uplift(y, w, t, x)
    plain = regression_uplift(y, w, t)
    assert adjusted.std_error < 0.7 * plain.std_error


def test_bootstrap_interval_covers() -> None:
    covered, seeds = 0, 40
    rng = np.random.default_rng(0)
    for seed in range(seeds):
        y, w, t, x = customers(seed, n=800)
        est = regression_uplift(y, w, t, x, interval="bootstrap", bootstrap_samples=150, rng=rng)
        covered += est.ci_low <= EFFECT <= est.ci_high
    assert 0.85 <= covered / seeds <= 1.0


def test_no_effect_gives_no_uplift_and_the_plain_difference_without_covariate() -> None:
    y, w, t, _ = customers(1, effect=0.0)
    est = regression_uplift(y, w, t)
    difference = np.average(y[t], weights=w[t]) - np.average(y[~t], weights=w[~t])
    assert est.uplift == pytest.approx(difference)
    assert est.ci_low < 0.0 < est.ci_high


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"treated": np.zeros(10, bool)}, "each group needs"),
        ({"weeks": np.zeros(10)}, "weeks must be > 0"),
        ({"interval": "jackknife"}, "interval must be"),
        ({"confidence": 1.5}, "confidence"),
        ({"interval": "bootstrap"}, "needs rng"),
        ({"covariate": np.zeros(3)}, "covariate must be"),
    ],
)
def test_invalid_inputs(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "outcome": np.arange(10.0),
        "weeks": np.ones(10),
        "treated": np.arange(10) % 2 == 0,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        regression_uplift(**args)  # type: ignore[arg-type]


def test_table_by_segment_marks_small_groups() -> None:
    y, w, t, x = customers(2, n=600)
    frame = pd.DataFrame(
        {"group": np.where(t, "treatment", "control"), "weeks": w, "spend": y, "spend_pre": x}
    )
    frame["segment"] = np.where(np.arange(600) < 20, "tiny", "large")
    table = uplift_table(frame, ["spend"], ["segment"], min_customers=30)
    assert list(table["group"]) == ["all", "large", "tiny"]
    assert table.loc[table["group"] == "tiny", "uplift"].isna().all()
    assert table.loc[table["group"] == "large", "uplift"].notna().all()


def test_several_covariates_narrow_the_interval_further_and_stay_unbiased() -> None:
    """Two independent noisy pre-period views of the same persistent appetite (e.g. the
    value's mean and the conversions): both together explain more of it than one alone."""
    estimates, one, both = [], [], []
    for seed in range(60):
        rng = np.random.default_rng(seed)
        n = 2000
        appetite = rng.gamma(2.0, 0.5, n)
        w = rng.integers(1, 13, n).astype(np.float64)
        t = rng.random(n) < 0.5
        x1, x2 = (appetite + rng.normal(0.0, 0.6, n) for _ in range(2))
        y = appetite + EFFECT * t + rng.normal(0.0, 1.0, n) / np.sqrt(w)
        two = regression_uplift(y, w, t, np.column_stack([x1, x2]))
        estimates.append(two.uplift)
        one.append(regression_uplift(y, w, t, x1).std_error)
        both.append(two.std_error)
    assert float(np.mean(both)) < 0.9 * float(np.mean(one))
    spread = float(np.std(estimates))
    assert abs(np.mean(estimates) - EFFECT) < 3 * spread / np.sqrt(len(estimates))
    constant = np.column_stack([x1, np.ones_like(x1)])  # a column that does not vary: left out
    assert regression_uplift(y, w, t, constant).std_error == pytest.approx(
        regression_uplift(y, w, t, x1).std_error
    )
    with pytest.raises(ValueError, match=r"\(n,\) or \(n, k\)"):
        regression_uplift(y, w, t, np.zeros((3, 2)))
