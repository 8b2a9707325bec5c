"""Customer segments at an as-of date: lifecycle stages and RFM scores.

Both are read off the customers' state at the start of the week containing the as-of date
(:func:`~journeyopt.panel.build.state_at`), so they use the panel's own features: complete weeks
only, and the same numbers the policies see.

RFM scores
    Over the customers with at least one conversion: ``recency_weeks`` (weeks since the last
    conversion, lower is better), ``n_conversions`` (lifetime conversions, higher is better) and
    ``monetary`` (mean conversion value, currency, higher is better). Each is scored 1..5 by the
    share of scored customers that are strictly worse: ``score = 1 + floor(5 * worse / n)``. Tied
    customers therefore always get the same score (the lowest score their group reaches), and a
    score 5 customer is better than at least 80 % of the others. The RFM cell is the three
    digits ``"<R><F><M>"`` (``"555"`` is the best cell).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.data.schema import CanonicalLogs
from journeyopt.panel.build import state_at
from journeyopt.panel.config import PanelConfig, feature_spec
from journeyopt.panel.state import LIFECYCLE_STAGES, CustomerState, FeatureSpec, state_features

N_SCORES = 5
RFM_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "recency_weeks",
    "n_conversions",
    "monetary",
    "r_score",
    "f_score",
    "m_score",
    "rfm_cell",
)


def customer_snapshot(
    logs: CanonicalLogs,
    cfg: PanelConfig,
    contact_channels: Sequence[str],
    as_of: str | pd.Timestamp,
) -> pd.DataFrame:
    """Every customer known at ``as_of`` with their features at the start of its week.

    Returns:
        One row per customer: ``customer_id`` and every feature of
        :func:`~journeyopt.panel.state.state_features` (``lifecycle`` categorical).
    """
    ids, state = state_at(logs, cfg, contact_channels, as_of)
    return snapshot_of_state(ids, state, feature_spec(cfg, contact_channels))


def snapshot_of_state(
    ids: NDArray[np.object_], state: CustomerState, spec: FeatureSpec
) -> pd.DataFrame:
    """:func:`customer_snapshot` of a state already at hand (e.g. the panel walk's last).

    Args:
        ids: (N,) ``customer_id`` in state order.
        state: The customers' state.
        spec: The feature windows.
    """
    features = state_features(state, spec)
    frame = pd.DataFrame({"customer_id": pd.array(ids, dtype="str"), **features})
    frame["lifecycle"] = pd.Categorical.from_codes(
        features["lifecycle"].astype(np.int8), categories=pd.Index(LIFECYCLE_STAGES)
    )
    return frame


def quintile_scores(values: NDArray[np.floating], higher_is_better: bool) -> NDArray[np.int8]:
    """(n,) scores 1..5: ``1 + floor(5 * (number of strictly worse values) / n)``."""
    n = values.shape[0]
    ordered = np.sort(values)
    if higher_is_better:
        worse = np.searchsorted(ordered, values, side="left")
    else:
        worse = n - np.searchsorted(ordered, values, side="right")
    return (1 + (N_SCORES * worse) // max(n, 1)).astype(np.int8)


def rfm_scores(snapshot: pd.DataFrame) -> pd.DataFrame:
    """RFM scores of the customers of ``snapshot`` with at least one conversion.

    Args:
        snapshot: Output of :func:`customer_snapshot`.

    Returns:
        Columns :data:`RFM_COLUMNS`, one row per converted customer, in snapshot order.
    """
    buyers = snapshot.loc[snapshot["n_conversions"] > 0]
    recency = buyers["recency_weeks"].to_numpy(np.float64)
    frequency = buyers["n_conversions"].to_numpy(np.float64)
    monetary = buyers["monetary"].to_numpy(np.float64)
    r = quintile_scores(recency, higher_is_better=False)
    f = quintile_scores(frequency, higher_is_better=True)
    m = quintile_scores(monetary, higher_is_better=True)
    cells = pd.Series(r.astype(str)) + pd.Series(f.astype(str)) + pd.Series(m.astype(str))
    return pd.DataFrame(
        {
            "customer_id": buyers["customer_id"].to_numpy(),
            "recency_weeks": recency,
            "n_conversions": buyers["n_conversions"].to_numpy(np.int32),
            "monetary": monetary,
            "r_score": r,
            "f_score": f,
            "m_score": m,
            "rfm_cell": cells.to_numpy(),
        }
    )


def rfm_distribution(rfm: pd.DataFrame) -> pd.DataFrame:
    """Customers per score (rows 1..5) for each of ``r_score``, ``f_score``, ``m_score``."""
    scores = range(1, N_SCORES + 1)
    return pd.DataFrame(
        {
            column: rfm[column].value_counts().reindex(scores, fill_value=0).to_numpy()
            for column in ("r_score", "f_score", "m_score")
        },
        index=pd.Index(scores, name="score"),
    )


def lifecycle_counts(snapshot: pd.DataFrame) -> pd.DataFrame:
    """Customers per lifecycle stage (every stage of ``LIFECYCLE_STAGES``, in order).

    Returns:
        Columns ``lifecycle``, ``customers``, ``share`` (of all customers in ``snapshot``).
    """
    counts = snapshot["lifecycle"].value_counts().reindex(list(LIFECYCLE_STAGES), fill_value=0)
    total = max(int(counts.sum()), 1)
    return pd.DataFrame(
        {
            "lifecycle": list(LIFECYCLE_STAGES),
            "customers": counts.to_numpy(np.int64),
            "share": counts.to_numpy(np.float64) / total,
        }
    )


def segment_counts(snapshot: pd.DataFrame, customers: pd.DataFrame) -> pd.DataFrame:
    """Customers per static ``segment`` (rows) and lifecycle stage (columns), with totals.

    Args:
        snapshot: Output of :func:`customer_snapshot`.
        customers: The canonical customers table (may have no rows).

    Returns:
        Columns ``segment``, one per stage of ``LIFECYCLE_STAGES``, ``total``; one row per
        segment (``"(unknown)"`` for customers without one), sorted, then an ``"all"`` row.
    """
    segment = snapshot[["customer_id"]].merge(
        customers[["customer_id", "segment"]], on="customer_id", how="left"
    )["segment"]
    labels = segment.fillna("").replace("", "(unknown)").to_numpy()
    table = pd.crosstab(
        pd.Series(labels, name="segment"), snapshot["lifecycle"].to_numpy(), dropna=False
    ).reindex(columns=list(LIFECYCLE_STAGES), fill_value=0)
    table.loc["all"] = table.sum(axis=0)
    table["total"] = table.sum(axis=1)
    table.columns.name = None
    return table.reset_index().astype({c: np.int64 for c in [*LIFECYCLE_STAGES, "total"]})


NO_PURCHASE_TIER = "value none"
"""Value tier label of a customer without a conversion yet (no mean conversion value)."""


def value_tier_cuts(monetary: NDArray[np.floating], n_tiers: int) -> NDArray[np.float64]:
    """(n_tiers - 1,) cut points (currency) splitting the customers' mean conversion values
    into ``n_tiers`` equal-count tiers (the ``k / n_tiers`` quantiles of the finite values of
    ``monetary`` (N,); NaN, no conversion yet, is left out).

    Raises:
        ValueError: ``n_tiers < 2`` or no finite value.
    """
    if n_tiers < 2:
        raise ValueError(f"n_tiers must be >= 2, got {n_tiers}")
    values = np.asarray(monetary, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("no customer has a conversion value to cut into tiers")
    return np.quantile(values, np.arange(1, n_tiers) / n_tiers).astype(np.float64)


def value_tier_labels(
    monetary: NDArray[np.floating], cuts: NDArray[np.floating]
) -> NDArray[np.str_]:
    """(N,) value tier of each customer's mean conversion value ``monetary`` (N,, currency):
    ``"value k/n"`` with ``k = 1 + (number of cuts <= the value)``, ``n = len(cuts) + 1``
    (1 the lowest); :data:`NO_PURCHASE_TIER` where the value is NaN (no conversion yet)."""
    values = np.asarray(monetary, np.float64)
    n = len(cuts) + 1
    tier = 1 + np.searchsorted(np.asarray(cuts, np.float64), values, side="right")
    labels = np.array([f"value {k}/{n}" for k in range(1, n + 1)])
    return np.where(np.isfinite(values), labels[np.minimum(tier, n) - 1], NO_PURCHASE_TIER)


def segment_by_value(
    panel: pd.DataFrame, end_week: int, n_tiers: int
) -> tuple[pd.DataFrame, NDArray[np.float64]]:
    """The weekly panel with each customer's ``segment`` replaced by their value tier: the
    ``n_tiers``-quantile tier of their mean conversion value net of refunds (``monetary``) at
    the start of their last week before ``end_week`` (the calibration's first hold-out week),
    the same tier in every week of theirs. Mean order value is the RFM score that reveals a
    customer type the customers file does not record (a business's bulk buyers, its
    bargain hunters); the tier is read from the calibration weeks only, never the hold-out.

    Args:
        panel: Rows of :func:`~journeyopt.panel.build.build_panel` (``customer_id``, ``week``,
            ``monetary``, ``segment``).
        end_week: Weeks from it on are not read (a customer seen only then has no tier:
            :data:`NO_PURCHASE_TIER`).
        n_tiers: Number of tiers, >= 2.

    Returns:
        The panel (a copy, ``segment`` as strings) and the cut points (currency) of
        :func:`value_tier_cuts` over the customers with a conversion before ``end_week``.
    """
    before = panel[panel["week"] < end_week]
    last = before.loc[before.groupby("customer_id", observed=True)["week"].idxmax()]
    monetary = last.set_index("customer_id")["monetary"].astype(np.float64)
    cuts = value_tier_cuts(monetary.to_numpy(), n_tiers)
    tiers = pd.Series(value_tier_labels(monetary.to_numpy(), cuts), index=monetary.index)
    out = panel.copy()
    labels = out["customer_id"].map(tiers)
    out["segment"] = labels.fillna(NO_PURCHASE_TIER).astype(str).to_numpy()
    return out, cuts
