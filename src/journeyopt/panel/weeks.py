"""The weekly calendar: weeks start on Monday 00:00 UTC.

A week index ``t`` counts whole weeks from an origin Monday; week ``t`` covers
``[origin + 7t days, origin + 7(t+1) days)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

WEEK = pd.Timedelta(days=7)
_WEEK_NS = WEEK.value
_DAY_NS = pd.Timedelta(days=1).value
_FIRST_MONDAY_NS = pd.Timestamp("1970-01-05").value  # the first Monday after the epoch


def monday_on_or_before(ts: pd.Timestamp) -> pd.Timestamp:
    """The Monday 00:00 UTC that starts the week containing ``ts`` (naive means UTC), in
    ``ts``'s resolution.

    Integer arithmetic on the UTC nanoseconds (1970-01-05 was a Monday): a third of the cost of
    ``normalize`` and ``weekday``, which matters once per scoring request.
    """
    ts = pd.Timestamp(ts)
    ns = (ts if ts.tzinfo is None else ts.tz_convert("UTC")).as_unit("ns").value
    monday = (ns - _FIRST_MONDAY_NS) // _WEEK_NS * _WEEK_NS + _FIRST_MONDAY_NS
    return pd.Timestamp(monday, tz="UTC").as_unit(ts.unit)


def week_index(ts: pd.Series | pd.DatetimeIndex, origin: pd.Timestamp) -> NDArray[np.int64]:
    """Week index of each UTC timestamp relative to the Monday ``origin`` (floor division)."""
    values = pd.DatetimeIndex(ts).tz_convert("UTC").as_unit("ns").asi8
    week_ns = WEEK.value
    return np.floor_divide(values - origin.as_unit("ns").value, week_ns).astype(np.int64)


def week_start(origin: pd.Timestamp, week: int | NDArray[np.int64]) -> pd.DatetimeIndex:
    """Start instant (Monday 00:00 UTC) of week index ``week``."""
    weeks = np.atleast_1d(np.asarray(week, dtype=np.int64))
    return pd.DatetimeIndex(origin + weeks * WEEK)


def week_of_year(origin: pd.Timestamp, week: int | NDArray[np.int64]) -> NDArray[np.int16]:
    """ISO week of year (1..53) of week index ``week``, (len(week),) (at least 1).

    Day arithmetic in numpy on the start instants' dates in ``origin``'s time zone (what
    ``DatetimeIndex.isocalendar`` reads, at a hundredth of its cost per call: the panel asks
    once per week): the ISO week is the one holding the Thursday of the date's Monday-based
    week, counted from the first of that Thursday's year.
    """
    starts = week_start(origin, week)
    local = starts.tz_localize(None) if starts.tz is not None else starts
    days = local.as_unit("ns").asi8 // _DAY_NS  # days since 1970-01-01, a Thursday
    thursday = days - (days + 3) % 7 + 3
    year_start = thursday.astype("datetime64[D]").astype("datetime64[Y]").astype("datetime64[D]")
    weeks = (thursday - year_start.astype(np.int64)) // 7 + 1
    return weeks.astype(np.int16)
