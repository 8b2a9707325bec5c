"""The weekly calendar's Monday: the start of the UTC week holding an instant, in any zone and
resolution."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyopt.panel.weeks import WEEK, monday_on_or_before

SECONDS = st.integers(min_value=-2_000_000_000, max_value=4_000_000_000)
ZONES = st.sampled_from([None, "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
UNITS = st.sampled_from(["s", "ms", "us", "ns"])


@settings(max_examples=300, deadline=None)
@given(seconds=SECONDS, zone=ZONES, unit=UNITS)
def test_monday_starts_the_utc_week_holding_the_instant(
    seconds: int, zone: str | None, unit: str
) -> None:
    ts = pd.Timestamp(seconds, unit="s").as_unit(unit)
    if zone is not None:
        ts = ts.tz_localize("UTC").tz_convert(zone)
    monday = monday_on_or_before(ts)
    utc = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    assert str(monday.tz) == "UTC"
    assert monday.unit == ts.unit
    assert monday.weekday() == 0 and monday == monday.normalize()
    assert monday <= utc < monday + WEEK


def test_naive_times_are_utc() -> None:
    assert monday_on_or_before(pd.Timestamp("2024-03-17 23:59:59")) == pd.Timestamp(
        "2024-03-11", tz="UTC"
    )
    # Monday 00:30 in Berlin is still Sunday in UTC: the week before
    berlin = pd.Timestamp("2024-03-18 00:30", tz="Europe/Berlin")
    assert monday_on_or_before(berlin) == pd.Timestamp("2024-03-11", tz="UTC")
