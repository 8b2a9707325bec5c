"""The card's per-customer hold-out errors against naive references and its one verdict line."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from journeyopt.calibration.card import (
    MAX_POLICY_MARE,
    MIN_POLICY_SPEARMAN,
    MIN_SIM_TO_REAL,
    verdict_line,
    verdict_reasons,
)
from journeyopt.calibration.holdout import (
    HoldoutReport,
    bgnbd_customer_forecast,
    customer_totals,
    per_customer_errors,
)
from journeyopt.calibration.pipeline import CalibrationResult


def _report(world_mae: float, total_error: float) -> HoldoutReport:
    per_customer = pd.DataFrame(
        {
            "predictor": ["this world", "zero", "own past rate"],
            "conversions_mae": [world_mae, 0.8, 0.9],
            "conversions_rmse": [1.0, 1.2, 1.3],
            "revenue_mae": [world_mae * 10, 8.0, 9.0],
            "revenue_rmse": [10.0, 12.0, 13.0],
        }
    )
    totals = pd.DataFrame(
        {
            "grouping": ["all", "all"],
            "group": ["all", "all"],
            "metric": ["conversions", "revenue"],
            "actual": [100.0, 1000.0],
            "simulated": [100.0 * (1 + total_error), 1000.0],
            "rel_error": [total_error, 0.0],
        }
    )
    empty = pd.DataFrame()
    return HoldoutReport(empty, totals, empty, empty, {}, 10, per_customer=per_customer)


def test_a_world_beating_the_references_is_good_enough() -> None:
    assert verdict_reasons(True, _report(0.5, 0.02), None) == []
    assert "good enough" in verdict_line(True, _report(0.5, 0.02), None)
    assert "NOT" not in verdict_line(True, _report(0.5, 0.02), None)


@pytest.mark.parametrize(
    ("identified", "world_mae", "total_error", "reason"),
    [
        (True, 0.85, 0.02, "no better than zero"),
        (True, 0.95, 0.02, "zero or own past rate"),
        (True, 0.5, 0.25, "conversions total is off by +25"),
        (False, 0.5, 0.02, "do not identify what a contact does"),
    ],
)
def test_the_verdict_says_why_a_world_is_not_good_enough(
    identified: bool, world_mae: float, total_error: float, reason: str
) -> None:
    line = verdict_line(identified, _report(world_mae, total_error), None)
    assert line.startswith("**Verdict: NOT good enough")
    assert reason in line


def test_per_customer_errors_are_mae_and_rmse() -> None:
    actual = np.array([[0.0, 0.0], [2.0, 20.0], [1.0, 5.0]])
    table = per_customer_errors(actual, {"zero": np.zeros((3, 2)), "exact": actual.copy()})
    zero = table.set_index("predictor").loc["zero"]
    assert zero["conversions_mae"] == pytest.approx(1.0)
    assert zero["conversions_rmse"] == pytest.approx(np.sqrt(5 / 3))
    assert zero["revenue_mae"] == pytest.approx(25 / 3)
    exact = table.set_index("predictor").loc["exact"]
    assert exact["conversions_mae"] == 0 and exact["revenue_rmse"] == 0


def test_own_past_rate_scales_each_customers_weekly_rate() -> None:
    panel = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "b", "b"],
            "conversions": [1, 0, 2, 0, 0, 0],
            "revenue": [10.0, 0.0, 30.0, 0.0, 0.0, 0.0],
        }
    )
    index = {"a": 0, "b": 1, "c": 2}
    np.testing.assert_allclose(customer_totals(panel, index), [[2.0, 40.0], [0.0, 0.0], [0.0, 0.0]])
    # a: 2 conversion weeks in 4 weeks observed -> 0.5 a week, 13 weeks -> 6.5
    np.testing.assert_allclose(
        customer_totals(panel, index, 13), [[6.5, 130.0], [0.0, 0.0], [0.0, 0.0]]
    )


def test_the_card_reports_per_customer_errors_and_a_verdict(
    small_calibration: CalibrationResult,
) -> None:
    holdout = small_calibration.holdout
    assert holdout is not None and holdout.per_customer is not None
    table = holdout.per_customer.set_index("predictor")
    assert list(table.index) == ["this world", "zero", "own past rate"]
    assert (table.to_numpy() >= 0).all()
    card = (small_calibration.output_dir / "card.md").read_text()
    assert "**Verdict:" in card.splitlines()[2]
    assert "Per customer (what decides targeting)" in card
    base = small_calibration.estimate.calibrated.world.base
    assert base is not None
    assert f"- starting population: the logs' {base.n_customers:,} customers as of" in card
    assert (small_calibration.output_dir / "holdout_per_customer.csv").is_file()
    assert "sim/holdout_customer_conversions_mae" in small_calibration.metrics
    # the verdict agrees with the card's own numbers
    reasons = verdict_reasons(True, holdout, small_calibration.policies)
    assert ("NOT good enough" in card) == bool(reasons)
    # the card prints the targets the verdict applies, not other numbers
    assert small_calibration.policies is not None
    assert f"(target <= {100 * MAX_POLICY_MARE:g} %)" in card
    assert f"(target >= {MIN_POLICY_SPEARMAN:g})" in card
    assert f"(target >= {100 * MIN_SIM_TO_REAL:g} %)" in card
    worse = replace(holdout, per_customer=holdout.per_customer.assign(conversions_mae=1.0))
    assert verdict_reasons(True, worse, None)


def test_bgnbd_forecasts_each_buyers_holdout_purchase_weeks() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for c in range(300):
        rate = rng.gamma(1.0, 0.1)
        for week in range(40):
            rows.append((f"c{c}", week, int(rng.random() < rate)))
    panel = pd.DataFrame(rows, columns=["customer_id", "week", "conversions"])
    index = {f"c{c}": c for c in range(300)} | {"never": 300}
    forecast = bgnbd_customer_forecast(panel, index, first_holdout=40, horizon=13)
    assert forecast.shape == (301, 2)
    assert np.isnan(forecast[:, 1]).all()  # BG/NBD forecasts no spend
    assert forecast[300, 0] == 0.0
    buyers = panel.groupby("customer_id")["conversions"].sum().reindex(list(index)).fillna(0)
    frequent = buyers.to_numpy() >= 8
    assert (forecast[:, 0] >= 0).all()
    assert forecast[frequent, 0].mean() > forecast[~frequent & (buyers.to_numpy() > 0), 0].mean()
