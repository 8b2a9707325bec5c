"""The weekly panel: calendar, columns, decisions, consent, lifecycle, streaming."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from journeyopt.panel.build import build_panel, iter_panel, state_at, walk_panel, write_panel
from journeyopt.panel.config import feature_spec
from journeyopt.panel.state import LIFECYCLE_STAGES, CustomerState, state_features
from tests.panel.conftest import CHANNELS, make_logs
from tests.panel.windows import feature_windows, panel_config

# 2024-01-01 is a Monday: week t starts on 2024-01-01 + 7t days.
CFG = panel_config(as_of="2024-02-05")  # a Monday 00:00: weeks 0..4 are complete


def _rows(panel: pd.DataFrame, customer: str) -> pd.DataFrame:
    return panel.loc[panel["customer_id"] == customer].set_index("week")


def test_columns_calendar_and_complete_weeks() -> None:
    logs = make_logs([("a", "2024-01-03T10:00", "engagement", 0.0)])
    panel = build_panel(logs, CFG, CHANNELS)
    spec = feature_spec(CFG, CHANNELS)
    expected = ["customer_id", "week", "week_start", "week_of_year"]
    expected += ["segment", "company_size", "acquisition_channel", *spec.feature_names]
    expected += ["action", "propensity", "n_contacts", "contact_cost", "conversions", "revenue"]
    expected += ["refunds", "refund_amount", "engagements", "cancellations", "opted_out_in_week"]
    assert list(panel.columns) == expected
    assert panel["week"].tolist() == [0, 1, 2, 3, 4]
    assert panel["week_start"].iloc[1] == pd.Timestamp("2024-01-08", tz="UTC")
    assert panel["week_of_year"].tolist() == [1, 2, 3, 4, 5]
    assert (panel["segment"] == "").all()
    assert list(panel["lifecycle"].cat.categories) == list(LIFECYCLE_STAGES)
    one_ns_early = panel_config(as_of="2024-02-04T23:59:59.999999999")
    assert build_panel(logs, one_ns_early, CHANNELS)["week"].max() == 3


def test_outcomes_and_first_decision_of_the_week() -> None:
    logs = make_logs(
        [
            ("a", "2024-01-02T09:00", "conversion", 30.0),
            ("a", "2024-01-03T09:00", "conversion", 20.0),
            ("a", "2024-01-04T09:00", "cancellation", 0.0),
            ("a", "2024-01-10T09:00", "engagement", 0.0),
        ],
        contacts=[
            ("a", "2024-01-01T08:00", "none", "", 0.0, 0.7),  # explicit no-contact decision
            ("a", "2024-01-05T08:00", "personal_call", "phone", 6.0, 0.2),
            ("a", "2024-01-09T08:00", "newsletter", "email", 0.05, float("nan")),
        ],
    )
    a = _rows(build_panel(logs, CFG, CHANNELS), "a")
    assert a.loc[0, ["conversions", "revenue", "cancellations"]].tolist() == [2, 50.0, 1]
    assert (a.loc[0, "action"], a.loc[0, "propensity"]) == ("none", 0.7)
    assert (a.loc[0, "n_contacts"], a.loc[0, "contact_cost"]) == (1, 6.0)
    assert a.loc[1, "action"] == "newsletter" and np.isnan(a.loc[1, "propensity"])
    assert a.loc[2, "action"] == "none" and np.isnan(a.loc[2, "propensity"])
    assert a.loc[1, "monetary"] == 25.0 and a.loc[1, "n_cancellations"] == 1
    assert a.loc[1, "contacts_4w_phone"] == 1 and a.loc[1, "contacts_4w_email"] == 0
    assert a.loc[2, "contacts_4w"] == 2 and a.loc[2, "engagements_4w"] == 1


def _cells(panel: pd.DataFrame) -> dict[tuple[str, int, str], object]:
    cells = {}
    for row in panel.astype({"lifecycle": str, "action": str}).to_dict("records"):
        for column, value in row.items():
            if column not in ("customer_id", "week"):
                cells[(row["customer_id"], row["week"], column)] = value
    return cells


def _changed(before: pd.DataFrame, after: pd.DataFrame) -> set[tuple[str, int, str]]:
    old, new = _cells(before), _cells(after)
    assert old.keys() == new.keys()
    same = {k for k in old if old[k] == new[k] or (pd.isna(old[k]) and pd.isna(new[k]))}  # type: ignore[call-overload]
    return set(old) - same


def test_moving_an_event_one_second_changes_exactly_the_affected_cells() -> None:
    base = [
        ("a", "2024-01-01T10:00", "engagement", 0.0),
        ("b", "2024-01-02T10:00", "conversion", 5.0),
    ]
    sunday = make_logs([*base, ("a", "2024-01-14T23:59:59.5", "conversion", 40.0)])
    monday = make_logs([*base, ("a", "2024-01-15T00:00:00.5", "conversion", 40.0)])
    changed = _changed(build_panel(sunday, CFG, CHANNELS), build_panel(monday, CFG, CHANNELS))
    expected = {("a", 1, "conversions"), ("a", 1, "revenue")}
    expected |= {("a", 2, c) for c in ("conversions", "revenue", "recency_weeks", "frequency")}
    expected |= {("a", 2, c) for c in ("monetary", "n_conversions", "lifecycle")}
    expected |= {("a", 3, "recency_weeks"), ("a", 4, "recency_weeks")}
    assert changed == expected


@pytest.mark.parametrize(
    ("events", "email", "phone"),
    [
        ([("opt_out", "email")], True, False),
        ([("opt_out", "")], True, True),  # no channel: every channel
        ([("opt_out", "sms")], True, True),  # not a contact channel: every channel
        ([("opt_out", "email"), ("opt_in", "email")], False, False),  # the last one wins
        ([("opt_in", "email"), ("opt_out", "email")], True, False),
        ([("opt_out", ""), ("opt_in", "email")], False, True),
        ([("opt_out", ""), ("opt_in", "")], False, False),
    ],
)
def test_consent_last_event_of_the_week_wins(
    events: list[tuple[str, str]], email: bool, phone: bool
) -> None:
    rows = [("a", f"2024-01-0{2 + i}T12:00", role, 0.0, ch) for i, (role, ch) in enumerate(events)]
    a = _rows(build_panel(make_logs(rows), CFG, CHANNELS), "a")
    assert (a.loc[0, "opted_out_email"], a.loc[0, "opted_out_phone"]) == (False, False)
    assert (a.loc[1, "opted_out_email"], a.loc[1, "opted_out_phone"]) == (email, phone)
    assert a.loc[0, "opted_out_in_week"] == any(role == "opt_out" for role, _ in events)
    assert a.loc[1, "lifecycle"] == ("opted_out" if email and phone else "prospect")


def test_opt_out_wins_a_tie_at_the_same_instant() -> None:
    ts = "2024-01-02T12:00"
    logs = make_logs([("a", ts, "opt_in", 0.0, "email"), ("a", ts, "opt_out", 0.0, "email")])
    assert bool(_rows(build_panel(logs, CFG, CHANNELS), "a").loc[1, "opted_out_email"])


def test_lifecycle_prospect_active_lapsed_opted_out() -> None:
    logs = make_logs(
        [
            ("a", "2024-01-01T10:00", "engagement", 0.0),
            ("a", "2024-01-09T10:00", "conversion", 10.0),  # week 1
            ("a", "2024-02-01T10:00", "opt_out", 0.0),  # week 4
        ]
    )
    cfg = panel_config(as_of="2024-02-12", lapse_weeks=2)
    stages = _rows(build_panel(logs, cfg, CHANNELS), "a")["lifecycle"].astype(str).tolist()
    assert stages == ["prospect", "prospect", "active", "active", "lapsed", "opted_out"]


def test_customer_rows_start_at_the_first_activity_including_sign_up() -> None:
    customers = pd.DataFrame(
        {
            "customer_id": ["b"],
            "segment": ["freelancer"],
            "company_size": ["1"],
            "signup_date": pd.to_datetime(["2024-01-16"], utc=True).as_unit("ns"),
            "acquisition_channel": ["web"],
        }
    )
    logs = make_logs(
        [
            ("a", "2024-01-01T10:00", "engagement", 0.0),
            ("b", "2024-01-30T10:00", "conversion", 9.0),
        ],
        customers=customers,
    )
    b = _rows(build_panel(logs, CFG, CHANNELS), "b")
    assert b.index.tolist() == [2, 3, 4]
    assert b["tenure_weeks"].tolist() == [0, 1, 2]
    assert set(b["segment"]) == {"freelancer"} and set(b["acquisition_channel"]) == {"web"}


def _sample_logs() -> object:
    return make_logs(
        [
            ("a", "2024-01-01T10:00", "engagement", 0.0),
            ("a", "2024-01-12T10:00", "conversion", 12.0),
            ("b", "2024-01-10T10:00", "conversion", 30.0),
            ("b", "2024-01-24T10:00", "opt_out", 0.0, "phone"),
            ("c", "2024-01-31T10:00", "engagement", 0.0),
        ],
        contacts=[("a", "2024-01-16T08:00", "newsletter", "email", 0.05, 0.5)],
    )


def test_iter_panel_matches_build_panel_and_write_panel_round_trips(tmp_path: Path) -> None:
    logs = _sample_logs()
    panel = build_panel(logs, CFG, CHANNELS)  # type: ignore[arg-type]
    weeks = list(iter_panel(logs, CFG, CHANNELS))  # type: ignore[arg-type]
    assert [int(w["week"].iloc[0]) for w in weeks] == list(range(5))
    pd.testing.assert_frame_equal(pd.concat(weeks, ignore_index=True), panel)
    path = tmp_path / "panel.parquet"
    assert write_panel(logs, CFG, CHANNELS, path) == len(panel)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(pd.read_parquet(path), panel)


@pytest.mark.parametrize("as_of", ["2024-01-22", "2024-01-24T10:00", "2024-01-28T23:59:59"])
def test_state_at_equals_the_panel_features_of_that_week(as_of: str) -> None:
    logs = _sample_logs()
    panel = build_panel(logs, panel_config(as_of="2024-03-04"), CHANNELS)  # type: ignore[arg-type]
    ids, state = state_at(logs, CFG, CHANNELS, as_of)  # type: ignore[arg-type]
    assert list(ids) == ["a", "b"]  # c's first activity is after as_of
    features = state_features(state, feature_spec(CFG, CHANNELS))
    rows = panel.loc[panel["week"] == 3].set_index("customer_id").loc[list(ids)]
    for name, values in features.items():
        expected = rows[name].cat.codes if name == "lifecycle" else rows[name]
        np.testing.assert_array_equal(values, expected.to_numpy(), err_msg=name)


def test_the_walks_state_at_a_week_is_state_at_its_monday() -> None:
    """The calibration's state at the split comes from the panel's own walk (no second
    aggregation of the logs): the same customers and state as state_at, every week."""
    logs = _sample_logs()
    cfg = panel_config(as_of="2024-02-19")  # weeks 0..6 complete
    panel, walk = walk_panel(logs, cfg, CHANNELS, through_as_of=True)  # type: ignore[arg-type]
    assert panel["week"].max() == 6
    for week in range(8):
        monday = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(weeks=week)
        ids, state = walk.state_at_week(week)
        expected_ids, expected = state_at(logs, cfg, CHANNELS, monday)  # type: ignore[arg-type]
        assert list(ids) == list(expected_ids), week
        assert state.week == expected.week == week
        for field in fields(state):
            np.testing.assert_array_equal(
                getattr(state, field.name), getattr(expected, field.name), err_msg=field.name
            )
    with pytest.raises(ValueError, match="not within"):
        walk.state_at_week(9)


def test_taking_customers_keeps_ring_buffers_contiguous() -> None:
    """advance writes one week-slot row per ring; a transposed layout would make every write
    strided (the simulator's hot path), so take must return C-contiguous rings."""
    spec = feature_windows(contact_channels=("email", "phone"))
    state = CustomerState.new(spec, 0, np.zeros(50, np.int64))
    picked = state.take(np.array([3, 1, 4, 1, 5]))
    for ring in (picked.conversions_ring, picked.contacts_ring, picked.engagements_ring):
        assert ring.flags.c_contiguous
        assert ring.shape[1] == 5
    assert np.shares_memory(state.take(slice(0, 10)).conversions_ring, state.conversions_ring)
