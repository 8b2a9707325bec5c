"""Refunds in the panel: a refund reverses revenue in the week it is booked (``revenue`` is
net, ``refunds`` and ``refund_amount`` count it), lowers ``monetary`` from the next week on
and leaves the conversion counts alone; the point-in-time rule holds for refunds too."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyopt.data.schema import CanonicalLogs
from journeyopt.panel.build import build_panel, state_at
from journeyopt.panel.config import feature_spec
from journeyopt.panel.state import state_features
from tests.panel.conftest import CHANNELS, make_logs
from tests.panel.windows import panel_config

CFG = panel_config(as_of="2024-02-05")  # a Monday 00:00: weeks 0..4 (from 2024-01-01) complete


def _week(panel: pd.DataFrame, customer: str, week: int) -> pd.Series:
    rows = panel[(panel["customer_id"] == customer) & (panel["week"] == week)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_refund_reverses_revenue_in_the_week_it_is_booked() -> None:
    logs = make_logs(
        [
            ("a", "2024-01-02T10:00", "conversion", 100.0),
            ("a", "2024-01-03T10:00", "conversion", 20.0),
            ("a", "2024-01-16T09:00", "refund", 30.0),  # week 2, no purchase that week
        ]
    )
    panel = build_panel(logs, CFG, CHANNELS)
    week0, week2, week3 = (_week(panel, "a", t) for t in (0, 2, 3))
    assert (week0["revenue"], week0["refunds"], week0["refund_amount"]) == (120.0, 0, 0.0)
    assert (week2["conversions"], week2["revenue"]) == (0, -30.0)
    assert (week2["refunds"], week2["refund_amount"]) == (1, 30.0)
    assert week2["monetary"] == 60.0  # before the refund: 120 / 2
    assert week3["monetary"] == 45.0  # from the next week on: (120 - 30) / 2
    assert (week3["n_conversions"], week3["frequency"]) == (2, 2)  # counts unchanged
    assert week3["recency_weeks"] == 3.0  # the refund is not a purchase
    assert panel["revenue"].sum() == pytest.approx(90.0)


def test_refund_and_purchase_in_one_week_net_out() -> None:
    logs = make_logs(
        [("a", "2024-01-02T10:00", "conversion", 50.0), ("a", "2024-01-04", "refund", 50.0)]
    )
    week0 = _week(build_panel(logs, CFG, CHANNELS), "a", 0)
    assert (week0["conversions"], week0["revenue"], week0["refunds"]) == (1, 0.0, 1)


def test_monetary_is_never_negative() -> None:
    """A refund of a purchase made before the logs begin cannot push ``monetary`` below 0."""
    logs = make_logs(
        [("a", "2024-01-02T10:00", "conversion", 10.0), ("a", "2024-01-09", "refund", 80.0)]
    )
    week2 = _week(build_panel(logs, CFG, CHANNELS), "a", 2)
    assert week2["monetary"] == 0.0


def test_a_refund_after_the_as_of_does_not_change_the_state() -> None:
    events = [
        ("a", "2024-01-02T10:00", "conversion", 100.0),
        ("b", "2024-01-10T10:00", "conversion", 40.0),
    ]
    late = ("a", "2024-01-29T08:00", "refund", 100.0)  # week 4, after the as-of below
    as_of = "2024-01-28T23:00"
    spec = feature_spec(CFG, CHANNELS)
    ids, before = state_at(make_logs(events), CFG, CHANNELS, as_of)
    ids_late, after = state_at(make_logs([*events, late]), CFG, CHANNELS, as_of)
    assert list(ids) == list(ids_late)
    for name, values in state_features(before, spec).items():
        np.testing.assert_array_equal(values, state_features(after, spec)[name], err_msg=name)
    # ... and in the panel it changes week 4's outcome and week 5's features only
    panel = build_panel(make_logs([*events, late]), panel_config(as_of="2024-02-12"), CHANNELS)
    plain = build_panel(make_logs(events), panel_config(as_of="2024-02-12"), CHANNELS)
    changed = (panel != plain) & ~(panel.isna() & plain.isna())
    rows = panel.loc[changed.any(axis=1), ["customer_id", "week"]].values.tolist()
    assert rows == [["a", 4], ["a", 5]]
    assert changed.columns[changed.loc[panel["week"] == 4].any()].tolist() == [
        "revenue",
        "refunds",
        "refund_amount",
    ]
    assert changed.columns[changed.loc[panel["week"] == 5].any()].tolist() == ["monetary"]


ORIGIN = pd.Timestamp("2024-01-01", tz="UTC")  # a Monday
N_WEEKS = 5
SECONDS = N_WEEKS * 7 * 86400
events = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.integers(0, SECONDS - 1),
    st.sampled_from(["conversion", "refund", "engagement", "cancellation"]),
    st.integers(0, 100_000).map(lambda cents: cents / 100),
)


def _logs(ev: list[tuple[str, int, str, float]]) -> CanonicalLogs:
    return make_logs(
        [(c, (ORIGIN + pd.Timedelta(seconds=s)).isoformat(), r, v) for c, s, r, v in ev]
    )


@settings(max_examples=40, deadline=None)
@given(ev=st.lists(events, min_size=1, max_size=20))
def test_net_revenue_is_conversions_minus_refunds(ev: list[tuple[str, int, str, float]]) -> None:
    cfg = panel_config(as_of=str((ORIGIN + pd.Timedelta(weeks=N_WEEKS)).date()))
    panel = build_panel(_logs(ev), cfg, CHANNELS)
    bought = sum(v for _, _, r, v in ev if r == "conversion")
    refunded = sum(v for _, _, r, v in ev if r == "refund")
    assert panel["revenue"].sum() == pytest.approx(bought - refunded, abs=1e-6)
    assert panel["refund_amount"].sum() == pytest.approx(refunded, abs=1e-6)
    assert panel["refunds"].sum() == sum(r == "refund" for _, _, r, _ in ev)
    assert panel["conversions"].sum() == sum(r == "conversion" for _, _, r, _ in ev)
    assert (panel["monetary"].dropna() >= 0).all()
