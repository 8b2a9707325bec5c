"""Drift between a reference window (the weeks a world was calibrated on) and the newest weeks.

Three checks, each deciding on an effect size *and* a significance test, so that large samples
do not flag trivial shifts and small samples do not flag noise:

population drift
    Per panel feature, overall and per segment, one week drawn per customer in each window:
    population stability index ``PSI = sum_b (c_b - r_b) ln(c_b / r_b)`` over ``B`` quantile
    bins of the reference (missing values, "never", are a bin of their own; shares floored at
    1e-4) and the two-sample Kolmogorov-Smirnov test. One row per customer and window keeps the
    samples independent.
action-mix drift
    Shares of the logged actions over the customer-weeks of each window: PSI over the actions
    and the chi-square test of homogeneity.
response drift
    Per action, a world's one-step predicted probability of a conversion (and, for contacts, of
    an opt-out) given each customer-week's state against what happened: the ratio observed /
    predicted and the calibration z-score ``(sum y - sum p) / sqrt(sum p (1 - p))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import stats

from journeyopt.monitoring.config import DriftThresholds
from journeyopt.panel.segments import TYPE_COLUMNS
from journeyopt.panel.state import LIFECYCLE_STAGES
from journeyopt.sim.discrete import summarise
from journeyopt.sim.dynamics import response_probabilities
from journeyopt.sim.world import WorldSpec

Float = NDArray[np.float64]
MIN_SHARE = 1e-4


def _binned(values: Float, edges: Float) -> NDArray[np.int64]:
    """Bin index of each value: ``searchsorted`` on the edges, NaN in the last bin."""
    index = np.searchsorted(edges, values, side="right").astype(np.int64)
    return np.where(np.isnan(values), edges.shape[0] + 1, index)


def psi(reference: Float, current: Float, bins: int = 10) -> float:
    """Population stability index of ``current`` (m,) against ``reference`` (n,).

    Bins are the reference's ``bins``-quantiles (merged where they coincide, so a count feature
    with few values gets one bin per value), plus one bin for NaN.
    """
    ref = np.asarray(reference, np.float64)
    cur = np.asarray(current, np.float64)
    finite = ref[~np.isnan(ref)]
    quantiles = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    edges = np.unique(np.quantile(finite, quantiles)) if finite.size else np.zeros(0)
    n_bins = edges.shape[0] + 2
    r = np.bincount(_binned(ref, edges), minlength=n_bins) / max(ref.size, 1)
    c = np.bincount(_binned(cur, edges), minlength=n_bins) / max(cur.size, 1)
    return share_psi(r, c)


def share_psi(reference: Float, current: Float) -> float:
    """PSI of two (K,) share vectors (each floored at 1e-4 and renormalised)."""
    r = np.maximum(np.asarray(reference, np.float64), MIN_SHARE)
    c = np.maximum(np.asarray(current, np.float64), MIN_SHARE)
    r, c = r / r.sum(), c / c.sum()
    return float(np.sum((c - r) * np.log(c / r)))


def ks_test(reference: Float, current: Float) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value over the non-missing values
    (``(0, 1)`` when either side has none)."""
    ref = reference[~np.isnan(reference)]
    cur = current[~np.isnan(current)]
    if ref.size == 0 or cur.size == 0:
        return 0.0, 1.0
    result = stats.ks_2samp(ref, cur)
    return float(result.statistic), float(result.pvalue)


def feature_values(frame: pd.DataFrame, feature: str) -> Float:
    """A panel feature as floats (``lifecycle`` as its stage code)."""
    column = frame[feature]
    if feature == "lifecycle":
        codes = pd.Categorical(column.astype(str), categories=list(LIFECYCLE_STAGES)).codes
        return np.asarray(codes, np.float64)
    return column.to_numpy(np.float64, na_value=np.nan)


def _by_segment(frame: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    parts = [("all", "all", frame)]
    labels = frame["segment"].astype(str).replace("", "(unknown)")
    parts += [("segment", str(s), frame[labels == s]) for s in sorted(labels.unique())]
    return parts


def population_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str],
    thresholds: DriftThresholds,
) -> pd.DataFrame:
    """PSI and KS of every feature, overall and per segment.

    Args:
        reference: One row per customer (a panel row of theirs in the reference window).
        current: The same for the current window.
        features: Panel feature columns.
        thresholds: ``psi``, ``ks_alpha``, ``min_rows``, ``bins``.

    Returns:
        ``grouping``, ``group``, ``feature``, ``n_reference``, ``n_current``,
        ``reference_mean``, ``current_mean``, ``psi``, ``ks_statistic``, ``ks_pvalue``,
        ``drifted``.
    """
    current_parts = {(g, s): rows for g, s, rows in _by_segment(current)}
    records = []
    for grouping, group, ref_rows in _by_segment(reference):
        cur_rows = current_parts.get((grouping, group), current.iloc[0:0])
        for feature in features:
            r, c = feature_values(ref_rows, feature), feature_values(cur_rows, feature)
            value = psi(r, c, thresholds.bins) if r.size and c.size else float("nan")
            ks_stat, ks_p = ks_test(r, c)
            enough = min(r.size, c.size) >= thresholds.min_rows
            records.append(
                {
                    "grouping": grouping,
                    "group": group,
                    "feature": feature,
                    "n_reference": int(r.size),
                    "n_current": int(c.size),
                    "reference_mean": float(np.nanmean(r)) if np.isfinite(r).any() else np.nan,
                    "current_mean": float(np.nanmean(c)) if np.isfinite(c).any() else np.nan,
                    "psi": value,
                    "ks_statistic": ks_stat,
                    "ks_pvalue": ks_p,
                    "drifted": bool(
                        enough and value > thresholds.psi and ks_p < thresholds.ks_alpha
                    ),
                }
            )
    return pd.DataFrame.from_records(records)


def action_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    actions: Sequence[str],
    thresholds: DriftThresholds,
) -> pd.DataFrame:
    """Action mix of the customer-weeks of each window, overall and per segment.

    Returns:
        ``grouping``, ``group``, ``n_reference``, ``n_current``, ``share_reference_<a>`` and
        ``share_current_<a>`` per action, ``psi``, ``chi2``, ``chi2_pvalue``, ``drifted``.

    Raises:
        ValueError: A logged action is not in ``actions``.
    """
    for frame in (reference, current):
        unknown = set(frame["action"].astype(str)) - set(actions)
        if unknown:
            raise ValueError(f"logged actions {sorted(unknown)} are not in {list(actions)}")
    current_parts = {(g, s): rows for g, s, rows in _by_segment(current)}
    records = []
    for grouping, group, ref_rows in _by_segment(reference):
        cur_rows = current_parts.get((grouping, group), current.iloc[0:0])
        counts = np.array(
            [
                rows["action"]
                .astype(str)
                .value_counts()
                .reindex(list(actions), fill_value=0)
                .to_numpy()
                for rows in (ref_rows, cur_rows)
            ],
            np.float64,
        )
        totals = counts.sum(axis=1)
        record: dict[str, object] = {
            "grouping": grouping,
            "group": group,
            "n_reference": int(totals[0]),
            "n_current": int(totals[1]),
        }
        shares = counts / np.maximum(totals, 1)[:, None]
        for k, action in enumerate(actions):
            record[f"share_reference_{action}"] = shares[0, k]
            record[f"share_current_{action}"] = shares[1, k]
        used = counts.sum(axis=0) > 0
        chi2, p = float("nan"), 1.0
        if min(totals) > 0 and used.sum() > 1:
            chi2_result = stats.chi2_contingency(counts[:, used])
            chi2, p = float(chi2_result.statistic), float(chi2_result.pvalue)
        value = share_psi(shares[0], shares[1]) if min(totals) > 0 else float("nan")
        enough = min(totals) >= thresholds.min_rows
        record.update(
            psi=value,
            chi2=chi2,
            chi2_pvalue=p,
            drifted=bool(enough and value > thresholds.action_psi and p < thresholds.chi2_alpha),
        )
        records.append(record)
    return pd.DataFrame.from_records(records)


_READ = ("monetary", *TYPE_COLUMNS)
"""The panel columns a world's segments may be read from (value tiers, behaviour types)."""


def world_segments(panel: pd.DataFrame, world: WorldSpec) -> NDArray[np.int64]:
    """(M,) each panel row's customer type index into ``world.segments``; -1 when the row's
    segment is not one of the world's (a one-segment world takes every row). A world whose
    segments are value tiers or behaviour types reads each row's tier or type from its state,
    as the scorer does (:meth:`~journeyopt.sim.world.WorldSpec.segment_labels`)."""
    names = [s.name for s in world.segments]
    if len(names) == 1:
        return np.zeros(len(panel), np.int64)
    index = {name: k for k, name in enumerate(names)}
    labels = panel["segment"].astype(str).to_numpy()
    read = world.segment_labels({c: panel[c].to_numpy() for c in _READ if c in panel})
    if read is not None:  # value tiers or behaviour types, read from each row's state
        labels = read.astype(object)
    return np.array([index.get(s, -1) for s in labels], np.int64).reshape(-1)


def response_drift(
    panel: pd.DataFrame, world: WorldSpec, window: str, thresholds: DriftThresholds
) -> pd.DataFrame:
    """One-step calibration of ``world`` on the customer-weeks of ``panel``, per action.

    A customer's first panel week is left out (the week they appear, not one the world
    simulates), as are rows whose segment the world does not know.

    Returns:
        ``window``, ``model`` (``conversion``, ``opt_out``), ``action``, ``customer_weeks``,
        ``predicted`` (mean probability), ``observed`` (mean outcome), ``ratio`` (observed /
        predicted), ``z``, ``drifted``.

    Raises:
        ValueError: A logged action is not in the world's catalogue.
    """
    rows = panel[panel["tenure_weeks"].to_numpy() > 0]
    segment = world_segments(rows, world)
    rows, segment = rows[segment >= 0], segment[segment >= 0]
    names = world.actions.names
    action_index = {a: k for k, a in enumerate(names)}
    unknown = set(rows["action"].astype(str)) - set(action_index)
    if unknown:
        raise ValueError(f"logged actions {sorted(unknown)} are not in the world's {names}")
    action = rows["action"].astype(str).map(action_index).to_numpy(np.int64)
    features = {c: rows[c].to_numpy() for c in rows.columns}
    summary = summarise(features, segment, world)
    woy = rows["week_of_year"].to_numpy(np.int64)
    p_convert = np.empty(len(rows))
    p_optout = np.empty(len(rows))
    for week in np.unique(woy):
        at = np.flatnonzero(woy == week)
        part = summary._replace(
            **{k: v[at] for k, v in summary._asdict().items() if isinstance(v, np.ndarray)}
        )
        responses = response_probabilities(world, part, action[at], int(week))
        p_convert[at], p_optout[at] = responses.convert, responses.optout
    converted = rows["conversions"].to_numpy() > 0
    opted_out = rows["opted_out_in_week"].to_numpy(bool)
    records = []
    for k, name in enumerate(names):
        here = action == k
        models = [("conversion", p_convert, converted)]
        if k > 0:
            models.append(("opt_out", p_optout, opted_out))
        for model, p, y in models:
            records.append(_calibration_row(window, model, name, p[here], y[here], thresholds))
    return pd.DataFrame.from_records(records)


def _calibration_row(
    window: str, model: str, action: str, p: Float, y: NDArray[np.bool_], th: DriftThresholds
) -> dict[str, object]:
    n = int(p.size)
    predicted = float(p.mean()) if n else float("nan")
    observed = float(y.mean()) if n else float("nan")
    spread = float(np.sqrt(np.sum(p * (1.0 - p)))) if n else 0.0
    z = float((y.sum() - p.sum()) / spread) if spread > 0 else float("nan")
    ratio = observed / predicted if n and predicted > 0 else float("nan")
    drifted = bool(
        n >= th.min_rows
        and np.isfinite(z)
        and abs(z) >= th.response_z
        and abs(ratio - 1.0) > th.response_ratio
    )
    return {
        "window": window,
        "model": model,
        "action": action,
        "customer_weeks": n,
        "predicted": predicted,
        "observed": observed,
        "ratio": ratio,
        "z": z,
        "drifted": drifted,
    }


@dataclass(frozen=True)
class DriftFindings:
    """The three checks and the verdict a weekly cycle acts on.

    Attributes:
        population: :func:`population_drift` rows.
        actions: :func:`action_drift` rows.
        responses: :func:`response_drift` rows of both windows (empty without a world).
        reasons: One readable line per drifted row (empty: no drift).
    """

    population: pd.DataFrame
    actions: pd.DataFrame
    responses: pd.DataFrame
    reasons: tuple[str, ...]

    @property
    def drift_detected(self) -> bool:
        """Whether any check found drift."""
        return bool(self.reasons)


def drift_reasons(
    population: pd.DataFrame, actions: pd.DataFrame, responses: pd.DataFrame
) -> tuple[str, ...]:
    """One line per drifted row; responses count in the ``current`` window only."""
    reasons = [
        f"population: {r.feature} ({r.grouping} {r.group}) PSI {r.psi:.3f}, "
        f"KS p={r.ks_pvalue:.2g}, mean {r.reference_mean:.3g} -> {r.current_mean:.3g}"
        for r in population[population["drifted"]].itertuples()
    ]
    reasons += [
        f"action mix ({r.grouping} {r.group}): PSI {r.psi:.3f}, chi-square p={r.chi2_pvalue:.2g}"
        for r in actions[actions["drifted"]].itertuples()
    ]
    if not responses.empty:
        current = responses[(responses["window"] == "current") & responses["drifted"]]
        reasons += [
            f"response: {r.model} after {r.action} observed {r.observed:.4f} vs predicted "
            f"{r.predicted:.4f} (ratio {r.ratio:.2f}, z {r.z:.1f})"
            for r in current.itertuples()
        ]
    return tuple(reasons)
