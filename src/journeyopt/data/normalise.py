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
_DATE_TIME = r"^(1[7-9]|2[01])\d{2}-\d{2}-\d{2}[T ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?"
_ISO_NAIVE_RE = _DATE_TIME + "$"
_ISO_AWARE_RE = _DATE_TIME + r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
_NAN_WORDS = frozenset({"nan", "+nan", "-nan"})
_PHONE_JUNK_RE = r"[\s\-\(\)\./]"
_DECIMAL_COMMA_RE = r"^[+-]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?$"  # 1.234,50 / 49,90 / 7
_LOOKS_DECIMAL_COMMA_RE = r"^[+-]?\d[\d.]*,\d+$"

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
        ``(ts, reason)``: ``ts`` is ``datetime64[ns, UTC]`` with NaT where the value is blank,
        unparseable or outside the years 1677-2262 that a nanosecond timestamp holds;
        ``reason`` is ``"empty timestamp"``, :data:`OUT_OF_RANGE` (placeholders such as
        ``9999-12-31``), ``"unparseable timestamp"`` or ``""``.
    """
    ts, checks = timestamp_checks(values, timezone, fmt)
    return ts, reasons(checks, values.index)


def timestamp_checks(
    values: pd.Series, timezone: str, fmt: str = ""
) -> tuple[pd.Series, list[Check]]:
    """:func:`parse_timestamps` with the reasons as :data:`Check` masks, highest priority
    first (no per-row reason strings: cheap for long tables)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        blank = values.isna().to_numpy()
        ts, out_of_range = _in_range(values.dt.tz_convert("UTC"))
    elif values.dtype.kind == "M":
        blank = values.isna().to_numpy()
        naive, out_of_range = _in_range(values)
        ts = _localise(naive, timezone)
    else:
        text = _as_str(values)
        blank = (text == "").to_numpy()
        if fmt:
            parsed, out_of_range = _in_range(
                pd.to_datetime(text, format=fmt, errors="coerce", utc="%z" in fmt)
            )
            ts = parsed if "%z" in fmt else _localise(parsed, timezone)
        else:
            ts = _parse_iso(text, timezone)
            out_of_range = _iso_out_of_range(text, ts.isna().to_numpy() & ~blank)
    ts = ts.astype(UTC_TS)
    return ts, [
        (blank, "empty timestamp"),
        (out_of_range, OUT_OF_RANGE),
        (ts.isna().to_numpy(), "unparseable timestamp"),
    ]


# The instants a canonical timestamp (nanoseconds since 1970, int64) can hold, a day inside
# pandas' limits so that converting a local time to UTC never leaves them.
_FIRST = pd.Timestamp.min.ceil("D") + pd.Timedelta(days=1)
_LAST = pd.Timestamp.max.floor("D") - pd.Timedelta(days=1)
OUT_OF_RANGE = (
    f"implausible timestamp: outside {_FIRST:%Y-%m-%d}..{_LAST:%Y-%m-%d} "
    "(a placeholder date such as 0001-01-01 or 9999-12-31?)"
)
"""Reason of a timestamp that parses but lies outside the representable range."""


def _in_range(parsed: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Datetimes of any resolution (naive, or UTC) -> nanosecond resolution, with values
    outside ``_FIRST.._LAST`` set to NaT: ``(ts, out_of_range)``, shapes ``(n,)``."""
    aware = isinstance(parsed.dtype, pd.DatetimeTZDtype)
    first, last = (
        (_FIRST.tz_localize("UTC"), _LAST.tz_localize("UTC")) if aware else (_FIRST, _LAST)
    )
    out_of_range = (parsed.notna() & ((parsed < first) | (parsed > last))).to_numpy()
    if out_of_range.any():
        parsed = parsed.mask(out_of_range)
    return parsed.astype(UTC_TS if aware else "M8[ns]"), out_of_range


def _iso_out_of_range(text: pd.Series, unparsed: np.ndarray) -> np.ndarray:
    """Which of the ``unparsed`` ISO 8601 texts are dates outside the representable range
    (re-read in microseconds; only the failed rows). Shape ``(n,)``, bool."""
    out = np.zeros(len(text), dtype=bool)
    if unparsed.any():
        wide = pd.to_datetime(
            text[unparsed].str.replace(r"\s*UTC$", "Z", regex=True),
            format="ISO8601",
            errors="coerce",
            utc=True,
        )
        out[unparsed] = _in_range(wide)[1]
    return out


Check = tuple[np.ndarray, str]
"""A boolean row mask, shape ``(n,)``, and the reason it stands for."""


def reasons(checks: list[Check], index: pd.Index) -> pd.Series:
    """Per-row reason (``""`` when no check matches): the first matching check wins.
    Shape ``(n,)``, str."""
    reason = np.full(len(index), OK, dtype=object)
    for mask, why in reversed(checks):
        reason[mask] = why
    return pd.Series(reason, index=index, dtype="str")


def _parse_iso(text: pd.Series, timezone: str) -> pd.Series:
    """ISO 8601 strings, some with an offset and some naive, to UTC.

    The common shapes (``YYYY-MM-DD[T ]HH:MM:SS[.f]`` with ``Z``, ``+HH:MM`` or no offset) are
    parsed in C++ by Arrow; anything else, and any batch Arrow refuses, by pandas.
    """
    out = pd.Series(pd.NaT, index=text.index, dtype=UTC_TS)
    rest = np.arange(len(text))  # positions not parsed yet
    for shape, aware in ((_ISO_NAIVE_RE, False), (_ISO_AWARE_RE, True)):
        todo = text if len(rest) == len(text) else text.iloc[rest]
        arr = pa.array(todo, type=pa.large_string())
        fits = _matches(arr, shape)
        parsed = _cast_iso(arr.filter(pa.array(fits)), aware) if fits.any() else None
        if parsed is not None:
            at = rest[fits]
            out.iloc[at] = parsed if aware else _localise(pd.Series(parsed), timezone).array
            rest = rest[~fits]
    if len(rest):
        out.iloc[rest] = _parse_iso_pandas(text.iloc[rest], timezone).array
    return out


def _parse_iso_pandas(text: pd.Series, timezone: str) -> pd.Series:
    """The reference parser of :func:`_parse_iso`: any ISO 8601 shape pandas reads."""
    arr = pa.array(text, type=pa.large_string())
    has_offset = pd.Series(_matches(arr, _OFFSET_RE), index=text.index)
    out = pd.Series(pd.NaT, index=text.index, dtype=UTC_TS)
    if has_offset.any():
        aware = text[has_offset].str.replace(r"\s*UTC$", "Z", regex=True)
        parsed = pd.to_datetime(aware, format="ISO8601", errors="coerce", utc=True)
        out[has_offset] = _in_range(parsed)[0]
    naive = ~has_offset
    if naive.any():
        parsed = pd.to_datetime(text[naive], format="ISO8601", errors="coerce")
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):  # defensive: mixed input
            out[naive] = _in_range(parsed.dt.tz_convert("UTC"))[0]
        else:
            out[naive] = _localise(_in_range(parsed)[0], timezone)
    return out


def _matches(arr: pa.Array | pa.ChunkedArray, pattern: str) -> np.ndarray:
    """Where the strings of ``arr`` match the regex ``pattern``. Shape ``(n,)``, bool."""
    return np.asarray(pc.match_substring_regex(arr, pattern).to_numpy(zero_copy_only=False))


def _cast_iso(arr: pa.Array | pa.ChunkedArray, aware: bool) -> pd.DatetimeIndex | None:
    """Arrow's ISO 8601 cast of ``k`` strings of one common shape: UTC instants (``aware``) or
    naive datetimes; ``None`` if Arrow refuses any value (e.g. 30 February): pandas decides."""
    try:
        cast = pc.cast(arr, pa.timestamp("ns", tz="UTC" if aware else None))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    naive = pd.DatetimeIndex(np.asarray(cast.to_numpy(zero_copy_only=False), dtype="M8[ns]"))
    return naive.tz_localize("UTC") if aware else naive


def _localise(naive: pd.Series, timezone: str) -> pd.Series:
    """Naive local datetimes in ``timezone`` to UTC (DST rules in the module docstring)."""
    first_occurrence = np.ones(len(naive), dtype=bool)
    local = naive.dt.tz_localize(timezone, ambiguous=first_occurrence, nonexistent="shift_forward")
    return local.dt.tz_convert("UTC")


def parse_amounts(
    values: pd.Series,
    max_value: float,
    *,
    blank_default: float | None = 0.0,
    decimal: str = ".",
) -> tuple[pd.Series, pd.Series]:
    """Parse non-negative, finite currency amounts (``value``, ``cost``).

    Args:
        values: Raw amounts, shape ``(n,)``, strings or numbers.
        max_value: Largest plausible amount (currency units); larger values are rejected.
        blank_default: Amount used for blank values; ``None`` leaves them NaN (the caller fills
            them, e.g. a contact's catalogue cost).
        decimal: Decimal separator of text values, ``.`` or ``,`` (see :func:`_to_float`).

    Returns:
        ``(amount, reason)``: float64 amounts (NaN where rejected or blank without default) and
        the reason per row: ``"not a number"`` (with a hint when the value looks like a
        decimal comma and ``decimal`` is ``.``), ``"NaN"``, ``"infinite"``, ``"negative"``,
        ``"above data.max_value=<max>"`` or ``""``.
    """
    number, checks = amount_checks(values, max_value, blank_default=blank_default, decimal=decimal)
    return number, reasons(checks, values.index)


def amount_checks(
    values: pd.Series,
    max_value: float,
    *,
    blank_default: float | None = 0.0,
    decimal: str = ".",
    signed: bool = False,
) -> tuple[pd.Series, list[Check]]:
    """:func:`parse_amounts` with the reasons as :data:`Check` masks, highest priority first.

    ``signed``: negative amounts are kept (no ``"negative"`` check; ``max_value`` bounds the
    absolute amount), for the caller to decide per row (refunds, see
    :func:`journeyopt.data.tables.parse_events`)."""
    blank = is_blank(values).to_numpy()
    number, nan_word = _to_float(values, decimal)
    x = number.to_numpy()
    finite = np.isfinite(x)
    unparsed = np.isnan(x) & ~blank
    checks = [
        (finite & (x < 0) & (not signed), "negative"),
        (finite & (np.abs(x) > max_value), f"above data.max_value={max_value:g}"),
        (np.isinf(x), "infinite"),
        (nan_word, "NaN"),
        (unparsed & _looks_decimal_comma(values, unparsed, decimal), _DECIMAL_HINT),
        (unparsed, "not a number"),
    ]
    if blank_default is not None:
        number = number.mask(blank, blank_default)
    return number.where(~_any(checks)), checks


def _any(checks: list[Check]) -> np.ndarray:
    """Rows matched by any check. Shape ``(n,)``, bool."""
    out = np.zeros(len(checks[0][0]), dtype=bool)
    for mask, _ in checks:
        out |= mask
    return out


_DECIMAL_HINT = "not a number (a decimal comma? set data.decimal=',')"


def _looks_decimal_comma(values: pd.Series, rows: np.ndarray, decimal: str) -> np.ndarray:
    """Rows of ``rows`` whose text reads like ``49,90`` while ``decimal`` is ``.``.
    Shape ``(n,)``, bool."""
    out = np.zeros(len(values), dtype=bool)
    if decimal == "." and rows.any() and values.dtype.kind not in "fiub":
        text = _as_str(values[rows])
        out[rows] = text.str.match(_LOOKS_DECIMAL_COMMA_RE).to_numpy(dtype=bool)
    return out


def _from_decimal_comma(text: pd.Series) -> pd.Series:
    """Text amounts written with a decimal comma in the dot notation Arrow parses:
    ``1.234,50`` -> ``1234.50``, ``49,90`` -> ``49.90``. A value with a ``.`` or ``,`` in any
    other place (``49.90``, ``1,2,3``) becomes ``"?"`` (not a number): in a decimal-comma
    export it is ambiguous. Shape ``(n,)``, str."""
    fits = text.str.match(_DECIMAL_COMMA_RE).to_numpy(dtype=bool)
    converted = text.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    other = text.str.contains(r"[.,]", regex=True).to_numpy(dtype=bool)
    return text.mask(fits, converted).mask(~fits & other, "?")


def _to_float(values: pd.Series, decimal: str = ".") -> tuple[pd.Series, np.ndarray]:
    """Floats from strings (decimal separator ``decimal``) or numbers; also flags literal NaN
    spellings. Shapes ``(n,)``."""
    if values.dtype.kind in "fiub":
        number = values.astype("float64")
        return number, (number.isna() & values.notna()).to_numpy()
    text = _as_str(values)
    if decimal == ",":
        text = _from_decimal_comma(text)
    try:  # fast path: Arrow's C++ parser; fails as a whole on any bad value
        arr = pa.array(text.mask(text == "", None), type=pa.large_string())
        number = pd.Series(
            pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), index=text.index
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        number = pd.to_numeric(text, errors="coerce").astype("float64")
    missing = number.isna().to_numpy()  # a NaN spelling never parses to a number
    nan_word = np.zeros(len(text), dtype=bool)
    if missing.any():
        nan_word[missing] = text[missing].str.lower().isin(_NAN_WORDS).to_numpy()
    return number, nan_word


def parse_propensities(values: pd.Series, decimal: str = ".") -> tuple[pd.Series, pd.Series]:
    """Logging-policy propensities: in ``(0, 1]``, or blank (NaN: not logged). Shapes ``(n,)``."""
    number, checks = propensity_checks(values, decimal)
    return number, reasons(checks, values.index)


def propensity_checks(values: pd.Series, decimal: str = ".") -> tuple[pd.Series, list[Check]]:
    """:func:`parse_propensities` with the reasons as :data:`Check` masks, highest priority
    first."""
    blank = is_blank(values).to_numpy()
    number, nan_word = _to_float(values, decimal)
    x = number.to_numpy()
    known = ~np.isnan(x)
    with np.errstate(invalid="ignore"):
        in_range = (x > 0) & (x <= 1)
    checks = [
        (known & ~in_range, "not in (0, 1]"),
        (~known & ~blank & ~nan_word, "not a number"),
    ]
    return number.where(~_any(checks)), checks


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
    ``00`` -> ``+``; a national leading ``0`` -> ``+<default_country_code>`` (kept as written
    when ``default_country_code`` is empty). Values with fewer than 5 digits or other
    characters become ``""``. Shape ``(n,)``, str."""
    text = _as_str(values).str.replace(_PHONE_JUNK_RE, "", regex=True)
    text = text.str.replace(r"^00", "+", regex=True)
    if default_country_code:
        text = text.str.replace(r"^0", f"+{default_country_code}", regex=True)
    valid = text.str.fullmatch(r"\+?\d{5,}")
    return text.where(valid, "")


def normalise_text(values: pd.Series) -> pd.Series:
    """Trimmed strings with missing values as ``""``. Shape ``(n,)``, str."""
    return _as_str(values)
