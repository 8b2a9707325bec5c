"""The fast paths of ingestion agree with their reference implementations.

Timestamps: Arrow's cast of the common ISO 8601 shapes vs the pandas parser (offsets, ``Z``,
fractions, impossible dates, DST gaps and repeated hours). De-duplication: the hash pre-filters
vs plain pandas ``duplicated``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyopt.data.dedup import drop_duplicate_ids, drop_exact
from journeyopt.data.normalise import _parse_iso, _parse_iso_pandas
from journeyopt.data.tables import _fill_empty

# Days around the 2024 DST changes of both zones, plus ordinary and impossible dates.
_DAYS = ["2024-03-10", "2024-03-31", "2024-10-27", "2024-11-03", "2024-02-29", "2023-02-29"]
_DAYS += ["2024-02-30", "2024-04-31", "2024-13-01", "2024-00-10", "1999-12-31", "2024-06-15"]
_OFFSETS = ["", "", "Z", "z", "+02:00", "-05:00", "+0530", "+24:00", " UTC", "+14:00", "-00:00"]


@st.composite
def _iso_strings(draw: st.DrawFn) -> str:
    day = draw(st.sampled_from(_DAYS))
    sep = draw(st.sampled_from(["T", " ", "t"]))
    hour = draw(st.integers(0, 25))
    minute = draw(st.integers(0, 60))
    second = draw(st.integers(0, 61))
    fraction = draw(st.sampled_from(["", ".5", ".123456", ".123456789", ".1234567891"]))
    offset = draw(st.sampled_from(_OFFSETS))
    short = draw(st.booleans())
    clock = f"{hour:02d}:{minute:02d}" if short else f"{hour:02d}:{minute:02d}:{second:02d}"
    return f"{day}{sep}{clock}{'' if short else fraction}{offset}"


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(_iso_strings(), min_size=1, max_size=40),
    timezone=st.sampled_from(["Europe/Berlin", "America/New_York", "UTC", "Asia/Kolkata"]),
)
def test_fast_timestamps_agree_with_pandas(values: list[str], timezone: str) -> None:
    text = pd.Series(values, dtype="str")
    fast = _parse_iso(text, timezone)
    reference = _parse_iso_pandas(text, timezone)
    pd.testing.assert_series_equal(fast, reference)


def test_fast_timestamps_one_bad_value_falls_back() -> None:
    text = pd.Series(["2024-02-30T10:00:00", "2024-03-31T02:30:00", "2024-10-27 02:30:00"])
    got = _parse_iso(text.astype("str"), "Europe/Berlin")
    assert got.isna().tolist() == [True, False, False]
    assert got.iloc[1] == pd.Timestamp("2024-03-31T01:00:00Z")  # gap: first instant after
    assert got.iloc[2] == pd.Timestamp("2024-10-27T00:30:00Z")  # repeated hour: summer time


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.integers(0, 3),
            st.sampled_from([0.0, -0.0, 1.5, float("nan")]),
            st.sampled_from(["", "e1", "e2", "e3"]),
        ),
        max_size=30,
    ),
    categorical=st.booleans(),
)
def test_hash_prefilters_agree_with_duplicated(
    rows: list[tuple[str, int, float, str]], categorical: bool
) -> None:
    frame = pd.DataFrame(rows, columns=["customer_id", "ts", "value", "event_id"])
    frame = frame.astype({"customer_id": "str", "event_id": "str", "value": "float64"})
    frame["ts"] = pd.to_datetime(frame["ts"], unit="h", utc=True)
    if categorical:
        frame["customer_id"] = frame["customer_id"].astype("category")
    frame["source_row"] = np.arange(1, len(frame) + 1)
    keys = ["customer_id", "ts", "value", "event_id"]
    expected = frame.loc[~frame[keys].duplicated()]  # -0.0 == 0.0, NaN == NaN
    got, n = drop_exact(frame)
    assert got["source_row"].tolist() == expected["source_row"].tolist()
    assert n == len(frame) - len(expected)
    ids = got["event_id"]
    expected_ids = got.loc[~(ids.duplicated() & (ids != ""))]
    got_ids, n_ids = drop_duplicate_ids(got)
    assert got_ids["source_row"].tolist() == expected_ids["source_row"].tolist()
    assert n_ids == len(got) - len(expected_ids)


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.sampled_from(["", "email", "phone", "sms"]), min_size=1, max_size=30),
    backup=st.lists(st.sampled_from(["", "email", "phone", "fax"]), min_size=30, max_size=30),
)
def test_filling_empty_categories_by_codes_agrees_with_text(
    values: list[str], backup: list[str]
) -> None:
    """A blank channel takes its action's channel: on the categories' codes, the same labels
    as replacing the text row by row."""
    given_ = pd.Series(values, dtype="category")
    fallback = pd.Series(backup[: len(values)], dtype="category")
    filled = _fill_empty(given_, fallback)
    expected = given_.astype("str").mask(given_.astype("str") == "", fallback.astype("str"))
    assert filled.astype("str").tolist() == expected.tolist()
    assert filled.cat.categories.is_unique
