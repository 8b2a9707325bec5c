"""RFM scores and the cohort retention table, checked by hand on the CDNOW sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from journeyopt.data.schema import CanonicalLogs
from journeyopt.panel.cohorts import retention_table
from journeyopt.panel.segments import (
    customer_snapshot,
    lifecycle_counts,
    quintile_scores,
    rfm_distribution,
    rfm_scores,
    segment_counts,
)
from tests.panel.conftest import make_logs
from tests.panel.windows import panel_config

AS_OF = pd.Timestamp("1998-07-01", tz="UTC")  # a Wednesday; its week starts 1998-06-29
WEEK_START = pd.Timestamp("1998-06-29")


def test_quintile_scores_give_ties_the_same_score() -> None:
    values = np.array([1.0, 2.0, 2.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    assert quintile_scores(values, higher_is_better=True).tolist() == [1, 1, 1, 1, 3, 3, 4, 4, 5, 5]
    lower = quintile_scores(values, higher_is_better=False).tolist()
    assert lower == [5, 4, 4, 4, 3, 3, 2, 2, 1, 1]


def _by_hand_purchases(raw: pd.DataFrame) -> pd.DataFrame:
    """Purchase days before the as-of week (same-day lines merged), computed with pandas."""
    days = raw.loc[raw["date"] < WEEK_START].groupby(["customer_id", "date"], as_index=False)
    return days["dollars"].sum()


def test_rfm_of_a_cdnow_customer_by_hand(
    cdnow_logs: CanonicalLogs, cdnow_raw: pd.DataFrame
) -> None:
    snapshot = customer_snapshot(cdnow_logs, panel_config(), (), AS_OF)
    rfm = rfm_scores(snapshot).set_index("customer_id")
    days = _by_hand_purchases(cdnow_raw)
    per = days.groupby("customer_id").agg(
        last=("date", "max"), n=("date", "size"), total=("dollars", "sum")
    )
    last_monday = per["last"] - pd.to_timedelta(per["last"].dt.day_of_week, unit="D")
    per["recency"] = (WEEK_START - last_monday).dt.days / 7
    per["monetary"] = per["total"] / per["n"]
    assert len(rfm) == len(per)
    for customer in ("00004", "00021", "00367"):
        mine = per.loc[customer]
        assert rfm.loc[customer, "recency_weeks"] == mine["recency"]
        assert rfm.loc[customer, "n_conversions"] == mine["n"]
        assert rfm.loc[customer, "monetary"] == pytest.approx(mine["monetary"])
        r = 1 + 5 * int((per["recency"] > mine["recency"]).sum()) // len(per)
        f = 1 + 5 * int((per["n"] < mine["n"]).sum()) // len(per)
        m = 1 + 5 * int((per["monetary"] < mine["monetary"] - 1e-9).sum()) // len(per)
        assert rfm.loc[customer, ["r_score", "f_score", "m_score"]].tolist() == [r, f, m]
        assert rfm.loc[customer, "rfm_cell"] == f"{r}{f}{m}"
    assert rfm.loc["00004", "recency_weeks"] == 29.0  # last purchase 1997-12-12
    assert rfm_distribution(rfm.reset_index()).sum().tolist() == [len(per)] * 3


def test_lifecycle_and_segment_counts_on_cdnow(
    cdnow_logs: CanonicalLogs, cdnow_raw: pd.DataFrame
) -> None:
    snapshot = customer_snapshot(cdnow_logs, panel_config(), (), AS_OF)
    assert len(snapshot) == cdnow_raw["customer_id"].nunique() == 2357
    per = _by_hand_purchases(cdnow_raw).groupby("customer_id")["date"].max()
    recency = (WEEK_START - (per - pd.to_timedelta(per.dt.day_of_week, unit="D"))).dt.days / 7
    counts = lifecycle_counts(snapshot).set_index("lifecycle")["customers"]
    assert counts["active"] == int((recency <= 26).sum())
    assert counts["lapsed"] == int((recency > 26).sum())
    assert counts["prospect"] == counts["opted_out"] == 0
    segments = segment_counts(snapshot, cdnow_logs.customers).set_index("segment")
    assert segments.loc["all", "total"] == 2357


def test_cohort_retention_of_cdnow_by_hand(
    cdnow_logs: CanonicalLogs, cdnow_raw: pd.DataFrame
) -> None:
    cohorts = retention_table(cdnow_logs.events, AS_OF)
    months = cdnow_raw.assign(month=cdnow_raw["date"].dt.to_period("M"))
    first = months.groupby("customer_id")["month"].min()
    january = set(first.index[first == pd.Period("1997-01", "M")])
    buyers = {
        m: set(months.loc[months["month"] == pd.Period(m, "M"), "customer_id"])
        for m in ("1997-02", "1997-04", "1998-06")
    }
    assert list(cohorts.retention.index) == ["1997-01", "1997-02", "1997-03"]
    assert cohorts.sizes["1997-01"] == len(january)
    table = cohorts.retention
    assert table.loc["1997-01", 0] == 1.0
    assert table.loc["1997-01", 1] == pytest.approx(len(january & buyers["1997-02"]) / len(january))
    assert table.loc["1997-01", 3] == pytest.approx(len(january & buyers["1997-04"]) / len(january))
    assert table.loc["1997-01", 17] == pytest.approx(
        len(january & buyers["1998-06"]) / len(january)
    )
    assert table.columns.tolist() == list(range(18))  # 1998-07 starts at as-of: no column
    assert np.isnan(table.loc["1997-03", 16])  # 1998-07: starts at as-of
    assert cohorts.to_frame().columns[:3].tolist() == ["cohort", "customers", "0"]


def test_cohorts_ignore_conversions_after_as_of_and_non_buyers() -> None:
    logs = make_logs(
        [
            ("a", "2024-01-05T10:00", "conversion", 5.0),
            ("a", "2024-03-05T10:00", "conversion", 5.0),
            ("b", "2024-01-05T10:00", "engagement", 0.0),
            ("c", "2024-02-10T10:00", "conversion", 5.0),
        ]
    )
    cohorts = retention_table(logs.events, pd.Timestamp("2024-02-20", tz="UTC"))
    assert cohorts.sizes.to_dict() == {"2024-01": 1, "2024-02": 1}
    assert cohorts.retention.loc["2024-01"].tolist() == [1.0, 0.0]
    assert cohorts.retention.loc["2024-02", 0] == 1.0 and np.isnan(
        cohorts.retention.loc["2024-02", 1]
    )
