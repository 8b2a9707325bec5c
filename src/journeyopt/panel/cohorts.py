"""Acquisition cohorts and their retention table.

A customer's acquisition month is the calendar month (UTC) of their first conversion: customers
who never converted belong to no cohort. For cohort month ``c`` and ``m`` months since
acquisition, retention is the share of the cohort's customers with at least one conversion in
calendar month ``c + m``; month 0 is 1 by definition. Like the panel, the table observes the
half-open window before the as-of instant: conversions at or after it are ignored, cells whose
month starts at or after it are NaN, and the month containing it may be partial.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.data.schema import Role
from journeyopt.panel.aggregate import to_ns


@dataclass(frozen=True)
class Cohorts:
    """A retention table.

    Attributes:
        retention: Index ``cohort`` (``"YYYY-MM"``), columns ``0 .. M`` (months since
            acquisition); share of the cohort with a conversion in that month, NaN after as-of.
        sizes: Customers per cohort (same index).
    """

    retention: pd.DataFrame
    sizes: pd.Series

    def to_frame(self) -> pd.DataFrame:
        """One row per cohort: ``cohort``, ``customers``, then one column per month offset."""
        frame = self.retention.copy()
        frame.columns = [str(c) for c in frame.columns]
        frame.insert(0, "customers", self.sizes)
        return frame.reset_index()


def _month_number(ns: NDArray[np.int64]) -> NDArray[np.int64]:
    """Months since 1970-01 (UTC) of ns timestamps."""
    return ns.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)


def _month_label(month: int) -> str:
    return str(np.datetime64(month, "M"))


def retention_table(events: pd.DataFrame, as_of: pd.Timestamp) -> Cohorts:
    """The cohort retention table of canonical ``events`` before ``as_of`` (UTC)."""
    conversions = events.loc[events["role"] == Role.CONVERSION.value]
    ns = to_ns(conversions["ts"])
    keep = ns < as_of.as_unit("ns").value
    months = pd.DataFrame(
        {
            "customer_id": conversions["customer_id"].to_numpy()[keep],
            "month": _month_number(ns[keep]),
        }
    ).drop_duplicates()
    if months.empty:
        empty = pd.DataFrame(index=pd.Index([], name="cohort", dtype=str))
        return Cohorts(retention=empty, sizes=pd.Series([], dtype=np.int64, index=empty.index))
    months["cohort"] = months.groupby("customer_id")["month"].transform("min")
    months["offset"] = months["month"] - months["cohort"]
    counts = months.groupby(["cohort", "offset"]).size().unstack("offset", fill_value=0)
    sizes = counts[0]
    # The last month with observable time: the month of the instant just before ``as_of``.
    as_of_month = int(_month_number(np.array([as_of.as_unit("ns").value - 1]))[0])
    offsets = np.arange(as_of_month - int(counts.index.min()) + 1)
    counts = counts.reindex(columns=offsets, fill_value=0)
    retention = counts.to_numpy(np.float64) / sizes.to_numpy(np.float64)[:, None]
    future = counts.index.to_numpy()[:, None] + offsets[None, :] > as_of_month
    retention[future] = np.nan
    index = pd.Index([_month_label(int(c)) for c in counts.index], name="cohort")
    return Cohorts(
        retention=pd.DataFrame(retention, index=index, columns=offsets.tolist()),
        sizes=pd.Series(sizes.to_numpy(np.int64), index=index, name="customers"),
    )


def plot_retention(cohorts: Cohorts, path: str | Path) -> None:
    """Save the retention table as a heatmap PNG (cohorts down, months since acquisition across)."""
    table = cohorts.retention
    n_rows, n_cols = table.shape
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * n_cols + 2), max(3.0, 0.3 * n_rows + 1.5)))
    try:
        image = ax.imshow(
            np.ma.masked_invalid(table.to_numpy(np.float64)),
            aspect="auto",
            cmap="viridis",
            vmin=0.0,
            vmax=1.0,
        )
        ax.set_yticks(range(n_rows), list(table.index))
        step = max(1, n_cols // 24)
        ax.set_xticks(range(0, n_cols, step), [str(c) for c in table.columns[::step]])
        ax.set_xlabel("months since acquisition (first conversion)")
        ax.set_ylabel("acquisition month")
        ax.set_title("share of the cohort converting in the month")
        fig.colorbar(image, ax=ax, label="retention")
        fig.tight_layout()
        fig.savefig(str(path), dpi=100)
    finally:
        plt.close(fig)
