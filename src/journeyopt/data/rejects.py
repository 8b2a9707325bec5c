"""The rejects table: rows that could not be used, with where they came from and why.

One row per rejected source row (the first problem found), written to ``rejects.csv``:

table
    Canonical table the row was meant for (``events``, ``contacts``, ``identities``,
    ``customers``).
source_file
    File the row came from, relative to ``data.path``.
source_row
    1-based row number over the file's data rows (the header is not counted; every physical
    line after it is one row, so ``source_row + 1`` is the line number in a text editor).
column
    Canonical column that failed (empty for whole-row problems such as a ragged row).
reason
    What is wrong, e.g. ``unparseable timestamp``, ``negative``, ``unknown kind 'foo'``.
raw
    The raw row as read (fields joined by the delimiter).
"""

from __future__ import annotations

import pandas as pd

REJECT_COLUMNS: tuple[str, ...] = ("table", "source_file", "source_row", "column", "reason", "raw")

FILE_COL = "_source_file"
ROW_COL = "_source_row"
"""Bookkeeping columns of a raw frame: the file (relative to ``data.path``) and data row."""


def empty_rejects() -> pd.DataFrame:
    """A rejects table with no rows."""
    frame = pd.DataFrame({c: pd.Series([], dtype="str") for c in REJECT_COLUMNS})
    return frame.astype({"source_row": "int64"})


def make_rejects(
    table: str,
    source_file: pd.Series,
    source_row: pd.Series,
    column: pd.Series | str,
    reason: pd.Series | str,
    raw: pd.Series,
) -> pd.DataFrame:
    """Rejects rows from aligned Series of length ``k`` (or scalars for ``column``/``reason``)."""
    frame = pd.DataFrame(
        {
            "table": table,
            "source_file": source_file.astype("str").to_numpy(),
            "source_row": source_row.astype("int64").to_numpy(),
            "column": column if isinstance(column, str) else column.astype("str").to_numpy(),
            "reason": reason if isinstance(reason, str) else reason.astype("str").to_numpy(),
            "raw": raw.astype("str").to_numpy(),
        },
        index=pd.RangeIndex(len(source_row)),
    )
    return frame.loc[:, list(REJECT_COLUMNS)]


def raw_text(raw: pd.DataFrame, delimiter: str) -> pd.Series:
    """The data columns of ``raw`` (``k`` rows) joined back into one line of text per row."""
    data_cols = [c for c in raw.columns if c not in (FILE_COL, ROW_COL)]
    if not data_cols:
        return pd.Series("", index=raw.index, dtype="str")
    sep = " " if delimiter == "whitespace" else delimiter
    parts = [raw[c].astype("str").fillna("") for c in data_cols]
    text = parts[0]
    for part in parts[1:]:
        text = text + sep + part
    return text


def concat_rejects(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """All rejects in one table, ordered by table, file and row."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_rejects()
    frame = pd.concat(parts, ignore_index=True)
    return frame.sort_values(["table", "source_file", "source_row"], kind="stable").reset_index(
        drop=True
    )
