"""Customer-level outcomes of the holdout: the covariate is measured before the customer was
first scored, so the treatment's own effect in later weeks does not leak into it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from journeyopt.monitoring.exposure import customer_outcomes

START = pd.Timestamp("2024-01-01", tz="UTC")  # a Monday


def panel(revenue: dict[str, list[float]]) -> pd.DataFrame:
    """Panel rows of customers with the given weekly revenue from ``START`` on."""
    rows = [
        {
            "customer_id": customer,
            "week_start": START + pd.Timedelta(weeks=week),
            "revenue": value,
            "action": "none",
            "conversions": int(value > 0),
            "contact_cost": 0.0,
            "opted_out_in_week": False,
            "segment": "freelancer",
        }
        for customer, values in revenue.items()
        for week, value in enumerate(values)
    ]
    return pd.DataFrame(rows)


def test_the_covariate_ends_when_the_customer_was_first_scored() -> None:
    # weeks 0-3 before scoring (revenue 10), scored from week 4 on: treatment earns 30 a week
    weeks = {"T": [10.0] * 4 + [30.0] * 8, "C": [10.0] * 4 + [10.0] * 8}
    since = START + pd.Timedelta(weeks=10)  # measuring weeks 10-11, long after week 4
    groups = pd.DataFrame(
        {
            "customer_id": ["T", "C"],
            "group": ["treatment", "control"],
            "first_week": [since, since],
            "first_scored": [START + pd.Timedelta(weeks=4)] * 2,
        }
    )
    economics = 1.0  # margin rate: the margin is the revenue
    table = customer_outcomes(panel(weeks), groups, since, 4, economics).set_index("customer_id")
    assert table.loc["T", "weeks"] == 2 and table.loc["T", "pre_weeks"] == 4
    np.testing.assert_allclose(table.loc[["T", "C"], "revenue"], [30.0, 10.0])
    np.testing.assert_allclose(table.loc[["T", "C"], "revenue_pre"], [10.0, 10.0])  # weeks 0-3
    # without the first scored week the pre-period ends at since and carries the effect
    legacy = customer_outcomes(
        panel(weeks), groups.drop(columns="first_scored"), since, 4, economics
    ).set_index("customer_id")
    np.testing.assert_allclose(legacy.loc[["T", "C"], "revenue_pre"], [30.0, 10.0])


def test_the_pre_period_reads_up_to_pre_weeks_and_counts_weeks_with_a_conversion() -> None:
    # 10 weeks of history: converting in weeks 6 and 8 only (revenue 5), then scored at 10
    history = [0.0] * 6 + [5.0, 0.0, 5.0, 0.0]
    weeks = {"T": [*history, 20.0, 20.0], "C": [0.0] * 12}
    scored = START + pd.Timedelta(weeks=10)
    groups = pd.DataFrame(
        {"customer_id": ["T", "C"], "group": ["treatment", "control"],
         "first_week": [scored, scored], "first_scored": [scored, scored]}
    )  # fmt: skip
    long = customer_outcomes(panel(weeks), groups, scored, 52, 1.0).set_index("customer_id")
    assert long.loc["T", "pre_weeks"] == 10  # all the history there is, up to the cap
    assert long.loc["T", "active_pre"] == pytest.approx(0.2)
    assert long.loc["T", "revenue_pre"] == pytest.approx(1.0)
    short = customer_outcomes(panel(weeks), groups, scored, 4, 1.0).set_index("customer_id")
    assert short.loc["T", "pre_weeks"] == 4
    assert short.loc["T", "active_pre"] == pytest.approx(0.5)  # weeks 6-9
    assert long.loc["C", "active_pre"] == 0.0
