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
   local calendar day become one.

All functions are vectorised (sorting and group codes, no per-row Python); ``n`` is the number
of input rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from journeyopt.data.schema import Role

_NOT_KEYS = ("source_file", "source_row")


def drop_exact(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop rows equal to an earlier row in every column except the source location."""
    keys = [c for c in frame.columns if c not in _NOT_KEYS]
    # Cheap pre-filter on a few columns; the full comparison runs on the candidates only.
    cheap: list[str] = [c for c in ("customer_id", "ts", "value", "action") if c in keys] or keys
    candidate = pd.Series(_group_codes(frame, cheap)).duplicated(keep=False).to_numpy()
    if not candidate.any():
        return frame, 0
    among = pd.Series(_group_codes(frame.loc[candidate], keys)).duplicated(keep="first")
    dup = np.zeros(len(frame), dtype=bool)
    dup[np.flatnonzero(candidate)[among.to_numpy()]] = True
    return frame.loc[~dup].reset_index(drop=True), int(dup.sum())


def drop_duplicate_ids(frame: pd.DataFrame, column: str = "event_id") -> tuple[pd.DataFrame, int]:
    """Drop rows whose non-empty ``column`` value appeared in an earlier row."""
    ids = frame[column]
    dup = (ids.duplicated(keep="first") & (ids != "")).to_numpy()
    return frame.loc[~dup].reset_index(drop=True), int(dup.sum())


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
        column_code, uniques = pd.factorize(frame[key], use_na_sentinel=False)
        k = max(len(uniques), 1)
        if n_codes * k >= 2**62:
            code, running = pd.factorize(code)
            n_codes = max(len(running), 1)
        code = code * k + column_code
        n_codes *= k
    return code


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
    return frame.loc[~dup].reset_index(drop=True), int(dup.sum())


def local_day(ts: pd.Series, timezone: str) -> pd.Series:
    """Calendar day (midnight, naive) of UTC timestamps in ``timezone``. Shape ``(n,)``."""
    return ts.dt.tz_convert(timezone).dt.tz_localize(None).dt.floor("D")


def merge_same_day_conversions(frame: pd.DataFrame, timezone: str) -> tuple[pd.DataFrame, int]:
    """Merge conversions of one customer on one local day into the day's first conversion,
    whose ``value`` becomes the day's sum (currency). Other roles are untouched.

    Returns the events in their original order and the number of rows merged away.
    """
    is_conv = (frame["role"] == Role.CONVERSION.value).to_numpy()
    if is_conv.sum() < 2:
        return frame, 0
    conv = frame.loc[is_conv]
    day = local_day(conv["ts"], timezone)
    keys = pd.DataFrame({"customer_id": conv["customer_id"].to_numpy(), "day": day.to_numpy()})
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
