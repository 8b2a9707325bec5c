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

Value tiers and behaviour types
    The calibrated world's segments when the customers file does not record a customer's
    type: equal-count tiers of the mean conversion value (:func:`segment_by_value`), or types
    from three behaviour scores (:func:`behaviour_scores`: order value, engagement per contact,
    purchase rate) clustered by a seeded Gaussian mixture (:class:`BehaviourTypes`). The cut
    points and the mixture are fitted on each customer's last state before the hold-out; each
    customer-week's tier or type is read from that week's own state (:func:`row_tiers`,
    :func:`row_types`), as the scorer reads a customer's from their current state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
    """The weekly panel with each row's ``segment`` replaced by its value tier
    (:func:`row_tiers`): the tier of the customer's mean conversion value net of refunds
    (``monetary``) at the start of that week, under the cut points of
    :func:`value_cuts_before`. Mean order value is the RFM score that reveals a customer type
    the customers file does not record (a business's bulk buyers, its bargain hunters). The cut
    points are read from the calibration weeks only, never the hold-out; each week's tier from
    that week's own state (point-in-time, as the scorer reads it), so a customer's tier may
    change from week to week as their history grows.

    Args:
        panel: Rows of :func:`~journeyopt.panel.build.build_panel` (``customer_id``, ``week``,
            ``monetary``, ``segment``).
        end_week: The calibration's first hold-out week: the cut points read the weeks before.
        n_tiers: Number of tiers, >= 2.

    Returns:
        The panel (a copy, ``segment`` as strings) and the cut points (currency).
    """
    cuts = value_cuts_before(panel, end_week, n_tiers)
    out = panel.copy()
    out["segment"] = row_tiers(out, cuts)
    return out, cuts


def value_cuts_before(panel: pd.DataFrame, end_week: int, n_tiers: int) -> NDArray[np.float64]:
    """(n_tiers - 1,) cut points (currency) of :func:`value_tier_cuts` over every customer's
    mean conversion value at the start of their last week before ``end_week``
    (:func:`last_rows_before`; customers without a conversion by then are left out)."""
    monetary = last_rows_before(panel, end_week, ["monetary"])["monetary"]
    return value_tier_cuts(monetary.to_numpy(np.float64), n_tiers)


def row_tiers(rows: pd.DataFrame, cuts: NDArray[np.floating]) -> NDArray[np.str_]:
    """(M,) each panel row's value tier (:func:`value_tier_labels`), read from that row's own
    ``monetary`` (the customer's history before the row's week: point-in-time, as the scorer
    reads it from the state; :data:`NO_PURCHASE_TIER` before the first conversion)."""
    return value_tier_labels(rows["monetary"].to_numpy(np.float64), cuts)


BEHAVIOUR_SCORES: tuple[str, ...] = ("log_value", "engagement_rate", "conversion_rate")
"""The behaviour scores of :func:`behaviour_scores`, in column order."""


def behaviour_scores(features: Mapping[str, NDArray[np.generic]]) -> NDArray[np.float64]:
    """(N, 3) behaviour scores of each customer, from the state features at one week
    (:func:`~journeyopt.panel.state.state_features` with ``spec.lifetime_counts``, or panel
    columns of the same names; everything before that week only):

    - ``log_value``: ``log(1 + monetary)``, the mean conversion value net of refunds (log
      currency);
    - ``engagement_rate``: ``n_engagements / (1 + n_contacts)``, lifetime engagement events per
      contact received (the 1 keeps a never-contacted customer's spontaneous events finite);
    - ``conversion_rate``: ``n_conversions / (1 + tenure_weeks)``, conversions per week of
      tenure (a purchase cycle's inverse).

    A customer without a conversion yet has ``log_value`` NaN (no order value yet; the other
    two scores are read as they are).
    """
    monetary = np.asarray(features["monetary"], np.float64)
    n_eng = np.asarray(features["n_engagements"], np.float64)
    n_contacts = np.asarray(features["n_contacts"], np.float64)
    n_conv = np.asarray(features["n_conversions"], np.float64)
    tenure = np.maximum(np.asarray(features["tenure_weeks"], np.float64), 0.0)
    scores = np.column_stack(
        [np.log1p(np.maximum(monetary, 0.0)), n_eng / (1.0 + n_contacts), n_conv / (1.0 + tenure)]
    )
    scores[~np.isfinite(monetary) | (n_conv <= 0), 0] = np.nan
    return scores


@dataclass(frozen=True)
class BehaviourTypes:
    """Customer types read from behaviour: a Gaussian mixture with diagonal covariances over
    the standardised :func:`behaviour_scores`, each customer the type of highest posterior.

    Attributes:
        mean: (3,) mean of the scores the mixture was fitted on (units of each score).
        scale: (3,) their standard deviation (> 0), same units.
        weights: (K,) mixing weights (sum 1).
        centres: (K, 3) component means, standardised scores; types are ordered by
            ``log_value`` (type 1 the lowest), then the other scores.
        variances: (K, 3) component variances, standardised units (> 0).
    """

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    centres: tuple[tuple[float, ...], ...]
    variances: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        k, d = len(self.weights), len(BEHAVIOUR_SCORES)
        if k < 2 or len(self.centres) != k or len(self.variances) != k:
            raise ValueError("behaviour types need >= 2 components with centres and variances")
        if len(self.mean) != d or len(self.scale) != d or min(self.scale) <= 0:
            raise ValueError(f"behaviour types need {d} score means and positive scales")
        if any(len(c) != d for c in (*self.centres, *self.variances)):
            raise ValueError(f"behaviour type centres and variances need {d} scores each")
        if min(min(v) for v in self.variances) <= 0:
            raise ValueError("behaviour type variances must be > 0")

    @property
    def n_types(self) -> int:
        return len(self.weights)

    @property
    def names(self) -> tuple[str, ...]:
        """``"type k/K"`` for ``k = 1..K``."""
        return tuple(f"type {k}/{self.n_types}" for k in range(1, self.n_types + 1))

    @property
    def unknown(self) -> str:
        """The label of a customer with no state to read (first seen later): the type of the
        largest weight."""
        return self.names[int(np.argmax(self.weights))]

    def codes(self, scores: NDArray[np.floating]) -> NDArray[np.int64]:
        """(N,) type index (0-based) of scores (N, 3): the type of highest posterior given
        the scores a customer has (a NaN score, e.g. no order value before the first
        conversion, is left out: the diagonal mixture's marginal over the others; no score at
        all: the type of the largest weight)."""
        z = (np.asarray(scores, np.float64) - np.array(self.mean)) / np.array(self.scale)
        centres, var = np.array(self.centres), np.array(self.variances)
        seen = np.isfinite(z)[:, None, :]
        # log N(z | centre, diag var) over the seen scores + log weight, (N, K)
        dev = (np.nan_to_num(z)[:, None, :] - centres[None, :, :]) ** 2 / var[None, :, :]
        terms = np.where(seen, dev + np.log(var)[None, :, :], 0.0)
        logp = -0.5 * terms.sum(axis=2) + np.log(np.array(self.weights))[None, :]
        return np.argmax(logp, axis=1).astype(np.int64)

    def labels(self, features: Mapping[str, NDArray[np.generic]]) -> NDArray[np.str_]:
        """(N,) type label (:attr:`names`) of each customer from their state features."""
        return np.asarray(self.names)[self.codes(behaviour_scores(features))]

    def centres_in_units(self) -> list[dict[str, float]]:
        """Each type's centre in the scores' own units (``log_value`` as currency,
        ``exp(score) - 1``), with its weight: the card's and ``calibration.json``'s record."""
        raw = np.array(self.centres) * np.array(self.scale) + np.array(self.mean)
        return [
            {
                "weight": float(w),
                "mean_value": float(np.expm1(row[0])),
                "engagement_rate": float(row[1]),
                "conversion_rate": float(row[2]),
            }
            for w, row in zip(self.weights, raw, strict=True)
        ]

    def as_dict(self) -> dict[str, list[float] | list[list[float]]]:
        """A JSON/YAML-ready record (``world.yaml``'s ``segment_types``)."""
        return {
            "mean": list(self.mean),
            "scale": list(self.scale),
            "weights": list(self.weights),
            "centres": [list(c) for c in self.centres],
            "variances": [list(v) for v in self.variances],
        }

    @staticmethod
    def from_dict(raw: Mapping[str, Any]) -> BehaviourTypes:
        """Read :meth:`as_dict`'s record."""

        def rows(key: str) -> tuple[tuple[float, ...], ...]:
            return tuple(tuple(float(x) for x in r) for r in raw[key])

        def flat(key: str) -> tuple[float, ...]:
            return tuple(float(x) for x in raw[key])

        return BehaviourTypes(
            flat("mean"), flat("scale"), flat("weights"), rows("centres"), rows("variances")
        )


def fit_behaviour_types(scores: NDArray[np.floating], n_types: int, seed: int) -> BehaviourTypes:
    """Behaviour types fitted to the finite rows of ``scores`` (N, 3) (:func:`behaviour_scores`):
    scikit-learn's ``GaussianMixture`` (diagonal covariances, k-means++ start, 3 restarts,
    ``random_state=seed``) on the standardised scores.

    Raises:
        ValueError: ``n_types < 2`` or fewer than ``10 * n_types`` customers with a score.
    """
    from sklearn.mixture import GaussianMixture

    if n_types < 2:
        raise ValueError(f"n_types must be >= 2, got {n_types}")
    x = np.asarray(scores, np.float64)
    x = x[np.isfinite(x).all(axis=1)]
    if x.shape[0] < 10 * n_types:
        raise ValueError(f"{x.shape[0]} customers with a conversion: too few for {n_types} types")
    mean = x.mean(axis=0)
    scale = np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
    z = (x - mean) / scale
    mixture = GaussianMixture(
        n_types, covariance_type="diag", n_init=3, init_params="k-means++", random_state=seed
    ).fit(z)
    order = np.lexsort(mixture.means_.T[::-1])  # by log_value, then the other scores
    return BehaviourTypes(
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        weights=tuple(float(v) for v in mixture.weights_[order]),
        centres=tuple(tuple(float(v) for v in row) for row in mixture.means_[order]),
        variances=tuple(tuple(float(v) for v in row) for row in mixture.covariances_[order]),
    )


def last_rows_before(panel: pd.DataFrame, end_week: int, columns: Sequence[str]) -> pd.DataFrame:
    """Each customer's panel row of their last week before ``end_week`` (``columns`` only,
    indexed by ``customer_id``): their state at its start, built from earlier weeks only."""
    before = panel.loc[panel["week"] < end_week, ["customer_id", "week", *columns]]
    last = before.loc[before.groupby("customer_id", observed=True)["week"].idxmax()]
    return last.set_index("customer_id")[list(columns)]


def behaviour_types_before(
    panel: pd.DataFrame, end_week: int, n_types: int, seed: int
) -> BehaviourTypes:
    """The behaviour types (:class:`BehaviourTypes`, ``n_types`` of them) fitted on every
    customer with a conversion, from their state at the start of their last week before
    ``end_week`` (the calibration's first hold-out week; the rows the value tiers' cut points
    read, :func:`value_cuts_before`). Each panel row is then typed from its own state
    (:func:`row_types`).

    Args:
        panel: Rows of :func:`~journeyopt.panel.build.build_panel` with the lifetime counts
            (``panel.lifetime_counts``).
        end_week: Weeks from it on are not read.
        n_types: Number of types, >= 2.
        seed: Seed of the mixture's starts.
    """
    last = last_rows_before(panel, end_week, TYPE_COLUMNS)
    scores = behaviour_scores({c: last[c].to_numpy(np.float64) for c in TYPE_COLUMNS})
    return fit_behaviour_types(scores, n_types, seed)


TYPE_COLUMNS: tuple[str, ...] = (
    "monetary",
    "n_engagements",
    "n_contacts",
    "n_conversions",
    "tenure_weeks",
)
"""The panel columns (state features) :func:`behaviour_scores` reads."""


def row_types(rows: pd.DataFrame, types: BehaviourTypes) -> NDArray[np.str_]:
    """(M,) each panel row's behaviour type, read from that row's own state (the customer's
    history before the row's week: point-in-time, as the scorer reads it from the state)."""
    return types.labels({c: rows[c].to_numpy(np.float64) for c in TYPE_COLUMNS})


def segment_by_types(panel: pd.DataFrame, types: BehaviourTypes) -> pd.DataFrame:
    """A copy of ``panel`` whose ``segment`` is each row's behaviour type (:func:`row_types`):
    a customer's type may change from week to week as their history grows; the calibrated
    world keeps each customer's type of the week it starts them in."""
    out = panel.copy()
    out["segment"] = row_types(out, types)
    return out
