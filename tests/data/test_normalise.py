"""Normalisation of e-mails, phone numbers, timestamps and amounts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from journeyopt.data.normalise import (
    normalise_emails,
    normalise_phones,
    parse_amounts,
    parse_propensities,
    parse_timestamps,
)

LOCAL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._", min_size=1, max_size=12)
DOMAIN = st.from_regex(r"[a-z]{1,10}\.(com|de|org)", fullmatch=True)


def _emails(values: list[str]) -> list[str]:
    return normalise_emails(
        pd.Series(values, dtype="str"), lowercase=True, strip_plus=True
    ).tolist()


def _phones(values: list[str]) -> list[str]:
    return normalise_phones(pd.Series(values, dtype="str"), default_country_code="49").tolist()


def test_email_examples() -> None:
    assert _emails([" Anna.B+promo@Example.COM ", "anna.b@example.com", "no-at-sign", ""]) == [
        "anna.b@example.com",
        "anna.b@example.com",
        "",
        "",
    ]
    kept = normalise_emails(pd.Series(["Anna+x@A.com"]), lowercase=False, strip_plus=False)
    assert kept.tolist() == ["Anna+x@A.com"]


@given(
    local=LOCAL, domain=DOMAIN, tag=LOCAL, upper=st.booleans(), pad=st.sampled_from(["", " ", "\t"])
)
def test_email_variants_normalise_to_one_value(
    local: str, domain: str, tag: str, upper: bool, pad: str
) -> None:
    variant = f"{pad}{local}+{tag}@{domain}{pad}"
    variant = variant.upper() if upper else variant
    base, other = _emails([f"{local}@{domain}", variant])
    assert base == other == f"{local}@{domain}"
    assert _emails([base]) == [base]  # idempotent


def test_phone_examples() -> None:
    assert _phones(["030 / 123-4567", "+49 (30) 1234567", "0049 30 1234567", "12", "n/a"]) == [
        "+49301234567",
        "+49301234567",
        "+49301234567",
        "",
        "",
    ]


def test_phone_without_a_country_keeps_national_numbers() -> None:
    """No default country (the schema's, for a business that sets none): a national number is
    not guessed into one country's international form."""
    values = pd.Series(["030 / 123-4567", "0049 30 1234567"], dtype="str")
    assert normalise_phones(values, default_country_code="").tolist() == [
        "0301234567",
        "+49301234567",
    ]


@given(digits=st.from_regex(r"[1-9][0-9]{6,10}", fullmatch=True), style=st.integers(0, 3))
def test_phone_formats_agree(digits: str, style: int) -> None:
    spaced = " ".join(digits[i : i + 3] for i in range(0, len(digits), 3))
    variant = [f"0{spaced}", f"+49 {spaced}", f"0049-{digits}", f"(0{digits[:3]}) {digits[3:]}"][
        style
    ]
    assert _phones([variant]) == [f"+49{digits}"]


def _utc(values: list[str], timezone: str = "Europe/Berlin", fmt: str = "") -> list[pd.Timestamp]:
    ts, reason = parse_timestamps(pd.Series(values, dtype="str"), timezone, fmt)
    assert (reason == "").all(), reason.tolist()
    return ts.tolist()


def test_timestamps_dst_ambiguous_and_nonexistent() -> None:
    # 2024-10-27 02:30 happens twice in Berlin: the first (summer time, UTC+2) is used.
    # 2024-03-31 02:30 does not exist: moved forward to 03:00 summer time.
    got = _utc(["2024-10-27 02:30", "2024-03-31 02:30", "2024-10-27T02:30:00+01:00"])
    assert got == [
        pd.Timestamp("2024-10-27 00:30", tz="UTC"),
        pd.Timestamp("2024-03-31 01:00", tz="UTC"),
        pd.Timestamp("2024-10-27 01:30", tz="UTC"),
    ]


def test_timestamps_with_format_and_zone() -> None:
    assert _utc(["19970101"], "America/New_York", "%Y%m%d") == [
        pd.Timestamp("1997-01-01 05:00", tz="UTC")
    ]


@given(
    instant=st.datetimes(
        min_value=pd.Timestamp("1990-01-01").to_pydatetime(),
        max_value=pd.Timestamp("2035-01-01").to_pydatetime(),
    ),
    offset_minutes=st.integers(-12 * 60, 14 * 60).map(lambda m: m - m % 15),
)
def test_offset_timestamps_are_the_same_instant(instant: object, offset_minutes: int) -> None:
    utc = pd.Timestamp(instant).floor("s").tz_localize("UTC")
    local = (
        utc.tz_convert(f"Etc/GMT{-offset_minutes // 60:+d}") if offset_minutes % 60 == 0 else None
    )
    shifted = (utc + pd.Timedelta(minutes=offset_minutes)).strftime("%Y-%m-%dT%H:%M:%S")
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    text = f"{shifted}{sign}{hours:02d}:{minutes:02d}"
    assert _utc([text]) == [utc]
    if local is not None:
        assert _utc([local.isoformat()]) == [utc]


def test_bad_timestamps_get_reasons() -> None:
    ts, reason = parse_timestamps(pd.Series(["", "yesterday", "2024-13-01"]), "UTC")
    assert ts.isna().all()
    assert reason.tolist() == ["empty timestamp", "unparseable timestamp", "unparseable timestamp"]


@pytest.mark.parametrize(
    ("raw", "value", "reason"),
    [
        ("12.5", 12.5, ""),
        ("", 0.0, ""),
        ("0", 0.0, ""),
        ("-0.01", np.nan, "negative"),
        ("abc", np.nan, "not a number"),
        ("NaN", np.nan, "NaN"),
        ("-inf", np.nan, "infinite"),
        ("1e400", np.nan, "infinite"),
        ("2e7", np.nan, "above data.max_value=1e+07"),
    ],
)
def test_amounts(raw: str, value: float, reason: str) -> None:
    got, why = parse_amounts(pd.Series([raw, "1"], dtype="str"), 1e7)
    assert why.tolist() == [reason, ""]
    assert got.iloc[0] == value or (np.isnan(value) and np.isnan(got.iloc[0]))


def test_propensities() -> None:
    got, why = parse_propensities(pd.Series(["0.25", "", "0", "1", "1.5", "x"]))
    assert why.tolist() == ["", "", "not in (0, 1]", "", "not in (0, 1]", "not a number"]
    assert got.iloc[0] == 0.25 and np.isnan(got.iloc[1]) and got.iloc[3] == 1.0
