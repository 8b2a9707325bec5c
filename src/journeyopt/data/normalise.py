"""Vectorised parsing and normalisation of raw column values.

Every function takes a pandas Series of length ``n`` (strings from CSV, or typed values from
Parquet) and returns Series of the same length and index; nothing loops over rows in Python.
Parse failures are not raised: they come back as a per-row reason (empty string when the value
is fine), so the caller can quarantine exactly the failing rows.

Time zones: values with an explicit offset (``+02:00``, ``-0500``, ``Z``) keep it; naive values
are local time in the source's zone. A local time that occurs twice (the hour repeated when
daylight-saving time ends) is read as the first occurrence (summer time); a local time that does
not exist (the hour skipped when it starts) is moved to the first valid instant after the gap
(``02:30`` -> ``03:00`` summer time). Neither is an error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from journeyopt.data.schema import UTC_TS

_OFFSET_RE = r"[T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|z|UTC|[+-]\d{2}(:?\d{2})?)$"
_NAN_WORDS = frozenset({"nan", "+nan", "-nan"})
_PHONE_JUNK_RE = r"[\s\-\(\)\./]"

OK = ""
"""Reason meaning "no problem"."""


def is_blank(values: pd.Series) -> pd.Series:
    """True where a value is missing or only whitespace. Shape ``(n,)``, bool."""
    if values.dtype.kind in "Mmfiub":
        return values.isna()
    return values.isna() | (values.astype("str").str.strip() == "")


def _as_str(values: pd.Series) -> pd.Series:
    return values.astype("str").str.strip().fillna("")


def parse_timestamps(
    values: pd.Series, timezone: str, fmt: str = ""
) -> tuple[pd.Series, pd.Series]:
    """Parse timestamps and convert them to UTC.

    Args:
        values: Raw timestamps, shape ``(n,)``: strings (ISO 8601 unless ``fmt``), or datetimes
            (naive ones are local time in ``timezone``).
        timezone: IANA zone of naive values.
        fmt: ``strftime`` format; empty for ISO 8601 (each value may have its own offset).

    Returns:
        ``(ts, reason)``: ``ts`` is ``datetime64[ns, UTC]`` with NaT where the value is blank or
        unparseable; ``reason`` is ``"empty timestamp"``, ``"unparseable timestamp"`` or ``""``.
    """
    blank = is_blank(values)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        ts = values.dt.tz_convert("UTC")
    elif values.dtype.kind == "M":
        ts = _localise(values, timezone)
    else:
        text = _as_str(values)
        if fmt:
            parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc="%z" in fmt)
            ts = parsed if "%z" in fmt else _localise(parsed, timezone)
        else:
            ts = _parse_iso(text, timezone)
    ts = ts.astype(UTC_TS)
    reason = pd.Series(OK, index=values.index, dtype="str")
    reason = reason.mask(ts.isna(), "unparseable timestamp").mask(blank, "empty timestamp")
    return ts, reason


def _parse_iso(text: pd.Series, timezone: str) -> pd.Series:
    """ISO 8601 strings, some with an offset and some naive, to UTC."""
    has_offset = pd.Series(
        pc.match_substring_regex(pa.array(text, type=pa.string()), _OFFSET_RE).to_numpy(
            zero_copy_only=False
        ),
        index=text.index,
    )
    out = pd.Series(pd.NaT, index=text.index, dtype=UTC_TS)
    if has_offset.any():
        aware = text[has_offset].str.replace(r"\s*UTC$", "Z", regex=True)
        out[has_offset] = pd.to_datetime(aware, format="ISO8601", errors="coerce", utc=True)
    naive = ~has_offset
    if naive.any():
        parsed = pd.to_datetime(text[naive], format="ISO8601", errors="coerce")
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):  # defensive: mixed input
            out[naive] = parsed.dt.tz_convert("UTC")
        else:
            out[naive] = _localise(parsed, timezone)
    return out


def _localise(naive: pd.Series, timezone: str) -> pd.Series:
    """Naive local datetimes in ``timezone`` to UTC (DST rules in the module docstring)."""
    first_occurrence = np.ones(len(naive), dtype=bool)
    local = naive.dt.tz_localize(timezone, ambiguous=first_occurrence, nonexistent="shift_forward")
    return local.dt.tz_convert("UTC")


def parse_amounts(
    values: pd.Series, max_value: float, *, blank_default: float | None = 0.0
) -> tuple[pd.Series, pd.Series]:
    """Parse non-negative, finite currency amounts (``value``, ``cost``).

    Args:
        values: Raw amounts, shape ``(n,)``, strings or numbers.
        max_value: Largest plausible amount (currency units); larger values are rejected.
        blank_default: Amount used for blank values; ``None`` leaves them NaN (the caller fills
            them, e.g. a contact's catalogue cost).

    Returns:
        ``(amount, reason)``: float64 amounts (NaN where rejected or blank without default) and
        the reason per row: ``"not a number"``, ``"NaN"``, ``"infinite"``, ``"negative"``,
        ``"above data.max_value=<max>"`` or ``""``.
    """
    blank = is_blank(values)
    number, nan_word = _to_float(values)
    reason = pd.Series(OK, index=values.index, dtype="str")
    reason = reason.mask(number.isna() & ~blank, "not a number")
    reason = reason.mask(nan_word, "NaN")
    reason = reason.mask(np.isinf(number), "infinite")
    reason = reason.mask(
        np.isfinite(number) & (number > max_value), f"above data.max_value={max_value:g}"
    )
    reason = reason.mask(np.isfinite(number) & (number < 0), "negative")
    if blank_default is not None:
        number = number.mask(blank, blank_default)
    return number.where(reason == OK), reason


def _to_float(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Floats from strings or numbers; also flags literal NaN spellings. Shapes ``(n,)``."""
    if values.dtype.kind in "fiub":
        number = values.astype("float64")
        return number, number.isna() & values.notna()
    text = _as_str(values)
    try:  # fast path: Arrow's C++ parser; fails as a whole on any bad value
        arr = pa.array(text.mask(text == "", None), type=pa.string())
        number = pd.Series(
            pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), index=text.index
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        number = pd.to_numeric(text, errors="coerce").astype("float64")
    nan_word = text.str.lower().isin(_NAN_WORDS)
    return number, nan_word


def parse_propensities(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Logging-policy propensities: in ``(0, 1]``, or blank (NaN: not logged). Shapes ``(n,)``."""
    blank = is_blank(values)
    number, nan_word = _to_float(values)
    reason = pd.Series(OK, index=values.index, dtype="str")
    reason = reason.mask(number.isna() & ~blank & ~nan_word, "not a number")
    reason = reason.mask(number.notna() & ~((number > 0) & (number <= 1)), "not in (0, 1]")
    return number.where(reason == OK), reason


def normalise_emails(values: pd.Series, *, lowercase: bool, strip_plus: bool) -> pd.Series:
    """E-mail addresses in comparable form: trimmed, optionally lower-cased, ``local+tag@``
    optionally reduced to ``local@``. Values without exactly one ``@`` become ``""`` (they
    cannot identify anyone). Shape ``(n,)``, str."""
    text = _as_str(values).str.replace(r"\s+", "", regex=True)
    if lowercase:
        text = text.str.lower()
    if strip_plus:
        text = text.str.replace(r"\+[^@]*@", "@", regex=True)
    valid = text.str.fullmatch(r"[^@]+@[^@]+")
    return text.where(valid, "")


def normalise_phones(values: pd.Series, *, default_country_code: str) -> pd.Series:
    """Phone numbers in E.164-like form: spaces, dashes, dots, slashes and parentheses removed;
    ``00`` -> ``+``; a national leading ``0`` -> ``+<default_country_code>``. Values with fewer
    than 5 digits or other characters become ``""``. Shape ``(n,)``, str."""
    text = _as_str(values).str.replace(_PHONE_JUNK_RE, "", regex=True)
    text = text.str.replace(r"^00", "+", regex=True)
    text = text.str.replace(r"^0", f"+{default_country_code}", regex=True)
    valid = text.str.fullmatch(r"\+?\d{5,}")
    return text.where(valid, "")


def normalise_text(values: pd.Series) -> pd.Series:
    """Trimmed strings with missing values as ``""``. Shape ``(n,)``, str."""
    return _as_str(values)
