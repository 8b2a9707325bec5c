"""De-duplication: exact, event_id, near-duplicates, same-day conversion merge; counts add up."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyopt.data.dedup import (
    drop_duplicate_ids,
    drop_exact,
    drop_near_duplicates,
    merge_same_day_conversions,
)


def _events(rows: list[tuple[str, str, str, float, str]]) -> pd.DataFrame:
    """rows: (customer_id, ts (UTC ISO), kind, value, event_id)."""
    frame = pd.DataFrame(rows, columns=["customer_id", "ts", "kind", "value", "event_id"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame["role"] = np.where(frame["kind"] == "purchase", "conversion", "engagement")
    frame["source_row"] = np.arange(1, len(frame) + 1)
    return frame


def test_exact_and_event_id() -> None:
    frame = _events(
        [
            ("a", "2024-01-01 10:00", "visit", 0.0, "e1"),
            ("a", "2024-01-01 10:00", "visit", 0.0, "e1"),  # exact duplicate (other row number)
            ("a", "2024-01-02 10:00", "visit", 0.0, "e1"),  # same event_id, different content
            ("b", "2024-01-02 10:00", "visit", 0.0, ""),
            ("b", "2024-01-02 11:00", "visit", 0.0, ""),  # empty ids are never duplicates
        ]
    )
    frame, n_exact = drop_exact(frame)
    frame, n_id = drop_duplicate_ids(frame)
    assert (n_exact, n_id) == (1, 1)
    assert frame["source_row"].tolist() == [1, 4, 5]


def test_near_duplicates_burst_collapses_to_first() -> None:
    frame = _events(
        [
            ("a", "2024-01-01 10:00:50", "visit", 0.0, ""),
            ("a", "2024-01-01 10:00:00", "visit", 0.0, ""),
            ("a", "2024-01-01 10:01:40", "visit", 0.0, ""),  # 50 s after the previous
            ("a", "2024-01-01 10:00:10", "purchase", 5.0, ""),  # other kind
            ("b", "2024-01-01 10:00:10", "visit", 0.0, ""),  # other customer
            ("a", "2024-01-01 10:03:00", "visit", 0.0, ""),  # 80 s later: kept
        ]
    )
    kept, n = drop_near_duplicates(frame, ["customer_id", "kind", "value"], 60)
    assert n == 2
    assert kept["source_row"].tolist() == [2, 4, 5, 6]
    assert drop_near_duplicates(frame, ["customer_id", "kind", "value"], 0)[1] == 0


def test_same_day_conversions_merge_in_local_time() -> None:
    frame = _events(
        [
            ("a", "1997-01-01 15:00", "purchase", 10.0, ""),
            ("a", "1997-01-02 03:00", "purchase", 5.0, ""),  # 22:00 on Jan 1 in New York
            ("a", "1997-01-02 15:00", "purchase", 1.0, ""),
            ("a", "1997-01-01 16:00", "visit", 0.0, ""),
        ]
    )
    merged, n = merge_same_day_conversions(frame, "America/New_York")
    assert n == 1
    assert merged["value"].tolist() == [15.0, 1.0, 0.0]
    assert merged["source_row"].tolist() == [1, 3, 4]


EVENT = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.integers(0, 3 * 86_400),  # seconds after 2024-01-01 UTC
    st.sampled_from(["visit", "purchase"]),
    st.sampled_from([0.0, 5.0, 7.5]),
    st.sampled_from(["", "", "e1", "e2"]),
)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(EVENT, max_size=40), seconds=st.sampled_from([0, 30, 600]))
def test_dedup_counts_reconcile_and_conserve_value(
    rows: list[tuple[str, int, str, float, str]], seconds: int
) -> None:
    start = pd.Timestamp("2024-01-01", tz="UTC")
    frame = _events([(c, str(start + pd.Timedelta(seconds=s)), k, v, e) for c, s, k, v, e in rows])
    out, n_exact = drop_exact(frame)
    out, n_id = drop_duplicate_ids(out)
    out, n_near = drop_near_duplicates(out, ["customer_id", "kind", "value"], seconds)
    before_merge = out["value"].sum()
    out, n_merged = merge_same_day_conversions(out, "Europe/Berlin")
    assert len(out) + n_exact + n_id + n_near + n_merged == len(frame)
    assert np.isclose(out["value"].sum(), before_merge)  # merging keeps the money
    assert not out.duplicated(["customer_id", "ts", "kind", "value", "event_id"]).any()
    ids = out.loc[out["event_id"] != "", "event_id"]
    assert ids.is_unique
    conv = out[out["role"] == "conversion"]
    day = conv["ts"].dt.tz_convert("Europe/Berlin").dt.date
    assert not pd.DataFrame({"c": conv["customer_id"], "d": day}).duplicated().any()
