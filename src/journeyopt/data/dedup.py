"""De-duplication of canonical events and contacts; every function returns the rows it removed
as a count so that nothing disappears silently.

Order used by :func:`journeyopt.data.ingest.run_ingest` (events; contacts skip the ``event_id``
and same-day steps):

1. :func:`drop_exact` — identical in every canonical column (after parsing, before identity
   resolution, so a re-exported batch is caught whatever the identity data says).
2. :func:`drop_duplicate_ids` — the same non-empty ``event_id`` twice; the first row in source
   order is kept.
3. identity resolution (raw ids -> resolved ``customer_id``).
4. :func:`drop_near_duplicates` — same resolved customer, same key columns, within a few seconds.
5. :func:`merge_same_day_conversions` — several conversions of one resolved customer on one
   local calendar day become one. Refunds are never merged, neither with each other nor into
   a purchase: each refund line stays its own event, so the panel subtracts it in the week it
   is booked and counts it in ``refunds`` (a purchase refunded the same day nets to zero
   revenue there, and still counts as a conversion).

All functions are vectorised (sorting and group codes, no per-row Python); ``n`` is the number
of input rows.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from journeyopt.data.schema import Role

_NOT_KEYS = ("source_file", "source_row")


def drop_exact(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop rows equal to an earlier row in every column except the source location."""
    keys = [c for c in frame.columns if c not in _NOT_KEYS]
    # Cheap pre-filter on a few columns; the full comparison runs on the candidates only.
    cheap: list[str] = [c for c in ("customer_id", "ts", "value", "action") if c in keys] or keys
    candidate = _repeated(_row_hashes(frame, cheap))
    if not candidate.any():
        return frame, 0
    among = pd.Series(_group_codes(frame.loc[candidate], keys)).duplicated(keep="first")
    dup = np.zeros(len(frame), dtype=bool)
    dup[np.flatnonzero(candidate)[among.to_numpy()]] = True
    return frame.loc[~dup].reset_index(drop=True), int(dup.sum())


def drop_duplicate_ids(frame: pd.DataFrame, column: str = "event_id") -> tuple[pd.DataFrame, int]:
    """Drop rows whose non-empty ``column`` value appeared in an earlier row."""
    ids = frame[column]
    dup = np.zeros(len(frame), dtype=bool)
    candidate = _may_repeat(ids)
    if candidate.any():
        among = ids[candidate]
        dup[candidate] = (among.duplicated(keep="first") & (among != "")).to_numpy()
    if not dup.any():
        return frame, 0
    return frame.loc[~dup].reset_index(drop=True), int(dup.sum())


def _may_repeat(values: pd.Series) -> np.ndarray:
    """Rows whose value may occur more than once: a superset of the repeated values, found
    by sorting 64-bit hashes instead of hashing strings into a table; the caller compares the
    candidates exactly. Shape ``(n,)``, bool."""
    if len(values) < 2 or values.dtype != "str":
        return np.ones(len(values), dtype=bool)
    return _repeated(_string_hashes(values))


def _repeated(hashes: np.ndarray) -> np.ndarray:
    """Where a hash occurs more than once (by sorting). Shape ``(n,)``, bool."""
    ordered = np.sort(hashes)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if not len(repeated):
        return np.zeros(len(hashes), dtype=bool)
    return np.asarray(pd.Series(hashes).isin(repeated).to_numpy())


def _row_hashes(frame: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """A 64-bit hash per row of the ``keys`` columns: equal rows, equal hashes (the converse
    only almost surely). Shape ``(n,)``, uint64."""
    hashes = np.zeros(len(frame), dtype=np.uint64)
    for key in keys:
        hashes = _mix(hashes * np.uint64(0x9E3779B97F4A7C15) + _column_bits(frame[key]))
    return hashes


def _column_bits(values: pd.Series) -> np.ndarray:
    """64 bits per value, equal for equal values. Shape ``(n,)``, uint64."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy().astype(np.int64).view(np.uint64)
    if values.dtype.kind == "f":
        x = values.to_numpy(dtype=np.float64) + 0.0  # -0.0 -> 0.0
        return np.where(np.isnan(x), np.nan, x).view(np.uint64)
    if values.dtype.kind in "iub":
        return values.to_numpy().astype(np.int64).view(np.uint64)
    if values.dtype.kind == "M":
        return np.asarray(values.array.asi8).view(np.uint64)
    if values.dtype == "str":
        return _string_hashes(values)
    return pd.factorize(values, use_na_sentinel=False)[0].astype(np.int64).view(np.uint64)


def _mix(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: spreads every input bit over the output. Shape kept."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _string_hashes(values: pd.Series) -> np.ndarray:
    """DuckDB's 64-bit hash of each string (multithreaded). Shape ``(n,)``, uint64."""
    table = pa.table({"v": pa.array(values, type=pa.large_string())})
    with duckdb.connect() as con:
        con.register("strings", table)
        return np.asarray(con.execute("SELECT hash(v) AS h FROM strings").fetchnumpy()["h"])


def _epoch_ns(ts: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 nanoseconds since the epoch. Shape ``(n,)``."""
    return ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]").view(np.int64)


def _group_codes(frame: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """One int64 code per row identifying its combination of ``keys``. Shape ``(n,)``.

    Each column is factorized on its own (fast for strings) and the codes are combined
    arithmetically, re-factorizing the running code before it could overflow.
    """
    code = np.zeros(len(frame), dtype=np.int64)
    n_codes = 1
    for key in keys:
        column_code, k = _codes(frame[key])
        if n_codes * k >= 2**62:
            code, running = pd.factorize(code)
            n_codes = max(len(running), 1)
        code = code * k + column_code
        n_codes *= k
    return code


def _codes(values: pd.Series) -> tuple[np.ndarray, int]:
    """Int codes of one column (equal values, equal codes; missing values share a code) and an
    upper bound of the codes + 1. A categorical's own codes are used: no hashing."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy().astype(np.int64) + 1, len(values.cat.categories) + 1
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return codes, max(len(uniques), 1)


def drop_near_duplicates(
    frame: pd.DataFrame, keys: list[str], seconds: int
) -> tuple[pd.DataFrame, int]:
    """Drop rows that repeat the previous row of the same ``keys`` within ``seconds``.

    Rows are compared in time order within each group; a burst in which each row follows the
    previous one within ``seconds`` collapses into its first row. ``seconds == 0`` disables.
    Returns the remaining rows in their original order and the number dropped.
    """
    if seconds <= 0 or len(frame) < 2:
        return frame, 0
    group = _group_codes(frame, keys)
    ts = _epoch_ns(frame["ts"])
    order = np.lexsort((np.arange(len(frame)), ts, group))
    same_group = group[order][1:] == group[order][:-1]
    close = np.diff(ts[order]) <= seconds * 1_000_000_000
    dup = np.zeros(len(frame), dtype=bool)
    dup[order[1:]] = same_group & close
    if not dup.any():
        return frame, 0
    return frame.loc[~dup].reset_index(drop=True), int(dup.sum())


def local_day(ts: pd.Series, timezone: str) -> pd.Series:
    """Calendar day (midnight, naive) of UTC timestamps in ``timezone``. Shape ``(n,)``."""
    return ts.dt.tz_convert(timezone).dt.tz_localize(None).dt.floor("D")


def _conversion_days(frame: pd.DataFrame, timezone: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the conversions in ``frame`` and, per conversion, a code of its
    (customer, local day). Shapes ``(k,)``."""
    is_conv = (frame["role"] == Role.CONVERSION.value).to_numpy()
    conv = frame.loc[is_conv]
    day = local_day(conv["ts"], timezone)
    keys = pd.DataFrame({"customer_id": conv["customer_id"], "day": day}).reset_index(drop=True)
    return np.flatnonzero(is_conv), _group_codes(keys, ["customer_id", "day"])


def split_oversized_days(
    frame: pd.DataFrame, timezone: str, max_value: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The conversions of one customer on one local day whose values sum above ``max_value``
    (currency; an overflow to infinity included) cannot be merged into one plausible
    conversion: ``(kept, oversized)``, each in the original order. Run before
    :func:`merge_same_day_conversions`, which then never produces an absurd or infinite value.
    """
    positions, group = _conversion_days(frame, timezone)
    if len(positions) < 2:
        return frame, frame.iloc[:0]
    values = frame["value"].to_numpy()[positions]
    with np.errstate(over="ignore"):
        totals = np.bincount(group, weights=values, minlength=group.max() + 1)
    oversized = np.zeros(len(frame), dtype=bool)
    oversized[positions] = ~(totals[group] <= max_value)
    if not oversized.any():
        return frame, frame.iloc[:0]
    return frame.loc[~oversized].reset_index(drop=True), frame.loc[oversized]


def merge_same_day_conversions(frame: pd.DataFrame, timezone: str) -> tuple[pd.DataFrame, int]:
    """Merge conversions of one customer on one local day into the day's first conversion,
    whose ``value`` becomes the day's sum (currency). Other roles, refunds included, are
    untouched.

    Returns the events in their original order and the number of rows merged away.
    """
    is_conv = (frame["role"] == Role.CONVERSION.value).to_numpy()
    if is_conv.sum() < 2:
        return frame, 0
    conv = frame.loc[is_conv]
    day = local_day(conv["ts"], timezone)
    keys = pd.DataFrame({"customer_id": conv["customer_id"], "day": day}).reset_index(drop=True)
    group = _group_codes(keys, ["customer_id", "day"])
    ts = _epoch_ns(conv["ts"])
    order = np.lexsort((np.arange(len(conv)), ts, group))
    first = np.ones(len(conv), dtype=bool)
    first[order[1:]] = group[order][1:] != group[order][:-1]
    totals = np.bincount(group, weights=conv["value"].to_numpy(), minlength=group.max() + 1)
    values = conv["value"].to_numpy().copy()
    values[first] = totals[group[first]]
    keep = np.ones(len(frame), dtype=bool)
    conv_positions = np.flatnonzero(is_conv)
    keep[conv_positions[~first]] = False
    out = frame.copy()
    out.loc[is_conv, "value"] = values
    return out.loc[keep].reset_index(drop=True), int((~first).sum())
