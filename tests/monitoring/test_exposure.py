"""Customer-level outcomes of the holdout: the covariate is measured before the customer was
first scored, so the treatment's own effect in later weeks does not leak into it."""

from __future__ import annotations

import numpy as np
import pandas as pd

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
