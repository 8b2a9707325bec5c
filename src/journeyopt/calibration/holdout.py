"""Hold-out fidelity: simulate the hold-out weeks in the calibrated world from the customers'
state at the split, replaying the contacts that were logged, and compare with what happened;
plus one-step calibration curves of each response model on the hold-out customer-weeks.

The comparison covers the customers known at the split (later arrivals are in neither side).
Weekly totals of conversions, revenue (amount paid), opt-outs and engagement events (contact
responses) are compared overall, by segment, by lifecycle stage at the week's start and by the
week's action; the simulated side is the mean over ``holdout_runs`` simulations.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.calibration.bgnbd import (
    ReferenceForecast,
    conditional_expected,
    fit_bgnbd,
    repeat_summary,
)
from journeyopt.calibration.config import CalibrationConfig
from journeyopt.calibration.estimate import Estimate, Structure
from journeyopt.calibration.propensity import expected_calibration_error, reliability
from journeyopt.calibration.weeks import (
    UNKNOWN_SEGMENT,
    CustomerWeeks,
    codes_of,
    customer_weeks,
)
from journeyopt.panel.state import LIFECYCLE_STAGES, CustomerState, advance, state_features
from journeyopt.sim.discrete import discrete_state
from journeyopt.sim.dynamics import fitted_responses, sample_outcome_at
from journeyopt.sim.world import WorldSpec

IntArray = NDArray[np.int64]
Float = NDArray[np.float64]

METRICS: tuple[str, ...] = ("conversions", "revenue", "optouts", "engagements")
GROUPINGS: tuple[str, ...] = ("all", "segment", "lifecycle", "action")


@dataclass(frozen=True)
class HoldoutReport:
    """Hold-out comparison.

    Attributes:
        weekly: One row per hold-out week, grouping, group and metric: ``week``,
            ``grouping``, ``group``, ``metric``, ``actual``, ``simulated`` (mean over runs),
            ``simulated_sd`` (across runs).
        totals: ``weekly`` summed over the weeks, with ``rel_error`` = simulated / actual - 1.
        curves: One-step reliability tables: ``model``, ``bin_low``, ``bin_high``,
            ``predicted``, ``observed``, ``weight``.
        one_step: Per model: ``customer_weeks``, ``mean_predicted``, ``mean_observed``,
            ``log_loss`` (nats per customer-week), ``ece``.
        metrics: ``sim/holdout_<metric>_rel_error`` and one-step ECEs for MLflow.
        customers: Customers simulated.
        reference: BG/NBD fitted on the same calibration weeks and its hold-out forecast
            (purchase-only logs; None otherwise).
        tracking: The weekly tracking curves of this world and the references (see
            :func:`tracking_curves`); None when not computed.
        per_customer: Per-customer error of the hold-out totals (what decides targeting), one
            row per predictor (``this world``: the mean of the simulated runs; ``zero``;
            ``own past rate``: each customer's conversion weeks and revenue per week observed
            in the calibration weeks, times the hold-out length): ``predictor``,
            ``conversions_mae``, ``conversions_rmse`` (purchase weeks per customer),
            ``revenue_mae``, ``revenue_rmse`` (currency per customer). None when not computed.
    """

    weekly: pd.DataFrame
    totals: pd.DataFrame
    curves: pd.DataFrame
    one_step: pd.DataFrame
    metrics: dict[str, float]
    customers: int
    reference: ReferenceForecast | None = None
    per_customer: pd.DataFrame | None = None
    tracking: pd.DataFrame | None = None

    def with_reference(self, reference: ReferenceForecast) -> HoldoutReport:
        """This report with the BG/NBD reference and its relative error
        (``sim/holdout_conversions_rel_error_bgnbd``) added."""
        totals = self.totals
        row = totals[(totals["grouping"] == "all") & (totals["metric"] == "conversions")]
        actual = float(row["actual"].sum())
        error = reference.forecast / actual - 1.0 if actual > 0 else float("nan")
        metrics = {**self.metrics, "sim/holdout_conversions_rel_error_bgnbd": error}
        return replace(self, reference=reference, metrics=metrics)


def _groups(
    grouping: str, segment: IntArray, lifecycle: IntArray, action: IntArray, structure: Structure
) -> tuple[IntArray, tuple[str, ...]]:
    """(K,) group code of each customer-week and the group names."""
    if grouping == "all":
        return np.zeros(segment.shape[0], np.int64), ("all",)
    if grouping == "segment":
        return segment, structure.segments
    if grouping == "lifecycle":
        return lifecycle, LIFECYCLE_STAGES
    return action, structure.actions.names


def _week_rows(
    week: int,
    values: dict[str, Float],
    segment: IntArray,
    lifecycle: IntArray,
    action: IntArray,
    structure: Structure,
) -> list[dict[str, object]]:
    """Long rows (week, grouping, group, metric, value) of one week's per-customer values."""
    rows: list[dict[str, object]] = []
    for grouping in GROUPINGS:
        code, names = _groups(grouping, segment, lifecycle, action, structure)
        for metric, v in values.items():
            sums = np.bincount(code, weights=v, minlength=len(names))
            rows.extend(
                {
                    "week": week,
                    "grouping": grouping,
                    "group": names[g],
                    "metric": metric,
                    "value": s,
                }
                for g, s in enumerate(sums)
            )
    return rows


def simulate_holdout(
    world: WorldSpec,
    state: CustomerState,
    segment: IntArray,
    actions: IntArray,
    weeks_of_year: IntArray,
    structure: Structure,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, Float]:
    """One simulation of ``H`` hold-out weeks for ``K`` customers replaying ``actions`` (H, K)
    (actions on an opted-out channel are carried out as ``none``).

    Returns:
        Long rows as :func:`_week_rows` (``value`` column), and (K, 2) each customer's
        simulated conversion weeks and revenue (currency) over the ``H`` weeks.
    """
    rows: list[dict[str, object]] = []
    per_customer = np.zeros((state.n_customers, 2))
    # a copy: the walk below advances in place, and every run starts from the same state (a
    # slice would share the ring buffers, so a run's contacts would leak into the next one's)
    state = state.take(np.arange(state.n_customers))
    for t in range(actions.shape[0]):
        features = state_features(state, world.features)
        lifecycle = np.asarray(features["lifecycle"], np.int64)
        x = discrete_state(features, segment, world)
        out = sample_outcome_at(world, x, actions[t], int(weeks_of_year[t]), rng)
        values = {
            "conversions": out.converted.astype(np.float64),
            "revenue": out.paid,
            "optouts": out.opted_out.astype(np.float64),
            "engagements": out.engaged.astype(np.float64),
        }
        rows += _week_rows(t, values, segment, lifecycle, out.actions, structure)
        per_customer[:, 0] += values["conversions"]
        per_customer[:, 1] += values["revenue"]
        state = advance(state, out.activity, inplace=True)
    return pd.DataFrame.from_records(rows), per_customer


def customer_totals(panel: pd.DataFrame, index: dict[str, int], weeks: int | None = None) -> Float:
    """(K, 2) each indexed customer's conversion weeks and revenue (currency) in ``panel``'s
    rows; divided by the customer's number of rows there and multiplied by ``weeks`` when
    ``weeks`` is given (a per-week rate over ``weeks`` weeks; 0 for customers without rows)."""
    return _totals(panel, _customer_codes(panel, index), len(index), weeks)


def _totals(panel: pd.DataFrame, who: IntArray, k: int, weeks: int | None) -> Float:
    """:func:`customer_totals` from the rows' customer codes ``who`` (-1: not indexed) among
    ``k`` customers."""
    known = who >= 0
    conv = np.bincount(
        who[known], (panel["conversions"].to_numpy()[known] > 0).astype(np.float64), k
    )
    rev = np.bincount(who[known], panel["revenue"].to_numpy(np.float64)[known], k)
    out = np.column_stack([conv, rev]).astype(np.float64)
    if weeks is None:
        return out
    rows = np.bincount(who[known], minlength=k).astype(np.float64)
    return np.where(rows[:, None] > 0, out / np.maximum(rows, 1.0)[:, None] * weeks, 0.0)


def bgnbd_customer_forecast(
    fit_panel: pd.DataFrame, index: dict[str, int], first_holdout: int, horizon: int
) -> Float:
    """(K, 2) BG/NBD's per-customer forecast of hold-out purchase weeks (fitted on the
    indexed customers' purchase weeks before ``first_holdout``; 0 for customers without one)
    and revenue (NaN: BG/NBD forecasts no spend)."""
    out = np.column_stack([np.zeros(len(index)), np.full(len(index), np.nan)])
    out[:, 0] = bgnbd_cumulative(fit_panel, index, first_holdout, np.array([horizon]))[0]
    return out


def bgnbd_cumulative(
    fit_panel: pd.DataFrame, index: dict[str, int], first_holdout: int, horizons: IntArray
) -> Float:
    """(len(horizons), K) BG/NBD's forecast of each indexed customer's purchase weeks in the
    first ``horizons[j]`` hold-out weeks (fitted as :func:`bgnbd_customer_forecast`; 0 for
    customers without a purchase before ``first_holdout``)."""
    bought = fit_panel[fit_panel["conversions"].to_numpy() > 0]
    who = _customer_codes(bought, index)
    known = who >= 0
    out = np.zeros((horizons.shape[0], len(index)))
    if not known.any():
        return out
    week = bought["week"].to_numpy(np.float64)[known]
    x, t_x, age = repeat_summary(who[known], week, first_holdout - 0.5)
    cohort = np.flatnonzero(~np.isnan(x))
    x, t_x, age = x[cohort], t_x[cohort], age[cohort] + 0.5
    params = fit_bgnbd(x, t_x, age)
    for j, h in enumerate(horizons):
        out[j, cohort] = conditional_expected(params, float(h), x, t_x, age)
    return out


def tracking_curves(
    weekly: pd.DataFrame,
    weeks: IntArray,
    references: dict[str, Float],
) -> pd.DataFrame:
    """The hold-out's weekly tracking curves: one row per week, metric (``conversions``,
    ``revenue``) and predictor (``this world`` from ``weekly``'s overall rows, then each
    reference): ``week``, ``metric``, ``predictor``, ``actual``, ``predicted``,
    ``predicted_sd`` (across runs; 0 for a reference).

    Args:
        weekly: :attr:`HoldoutReport.weekly` (panel week indices ``weeks``).
        weeks: (H,) the hold-out's panel week indices.
        references: Predictor name -> (H, 2) its forecast of each week's total conversion
            weeks and revenue (NaN: no forecast of that metric).
    """
    overall = weekly[weekly["grouping"] == "all"]
    frames = []
    for j, metric in enumerate(("conversions", "revenue")):
        part = overall[overall["metric"] == metric].set_index("week").reindex(weeks)
        actual = part["actual"].to_numpy(np.float64)
        frames.append(
            pd.DataFrame(
                {
                    "week": weeks,
                    "metric": metric,
                    "predictor": "this world",
                    "actual": actual,
                    "predicted": part["simulated"].to_numpy(np.float64),
                    "predicted_sd": part["simulated_sd"].to_numpy(np.float64),
                }
            )
        )
        for name, forecast in references.items():
            if not np.isfinite(forecast[:, j]).all():
                continue
            frames.append(
                pd.DataFrame(
                    {
                        "week": weeks,
                        "metric": metric,
                        "predictor": name,
                        "actual": actual,
                        "predicted": forecast[:, j],
                        "predicted_sd": 0.0,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def per_customer_errors(actual: Float, predictions: dict[str, Float]) -> pd.DataFrame:
    """MAE and RMSE of each predictor's (K, 2) per-customer (conversion weeks, revenue)
    against ``actual`` (K, 2); one row per predictor."""
    rows = []
    for name, predicted in predictions.items():
        err = predicted - actual
        mae, rmse = np.abs(err).mean(axis=0), np.sqrt((err**2).mean(axis=0))
        rows.append(
            {
                "predictor": name,
                "conversions_mae": float(mae[0]),
                "conversions_rmse": float(rmse[0]),
                "revenue_mae": float(mae[1]),
                "revenue_rmse": float(rmse[1]),
            }
        )
    return pd.DataFrame.from_records(rows)


def _actual(
    hold: pd.DataFrame,
    index: dict[str, int],
    segment: IntArray,
    weeks: IntArray,
    structure: Structure,
) -> pd.DataFrame:
    """What happened, as long rows (``value``), for the customers in ``index``."""
    rows: list[dict[str, object]] = []
    who_all = _customer_codes(hold, index)
    known = hold[who_all >= 0]
    who_all = who_all[who_all >= 0]
    lifecycle_all = codes_of(known["lifecycle"].astype(str), LIFECYCLE_STAGES)
    action_all = codes_of(known["action"].astype(str), structure.actions.names)
    week_all = known["week"].to_numpy(np.int64)
    for t, week in enumerate(weeks):
        at = week_all == week
        part = known[at]
        values = {
            "conversions": (part["conversions"].to_numpy() > 0).astype(np.float64),
            "revenue": part["revenue"].to_numpy(np.float64),
            "optouts": part["opted_out_in_week"].to_numpy(bool).astype(np.float64),
            "engagements": (part["engagements"].to_numpy() > 0).astype(np.float64),
        }
        rows += _week_rows(
            t, values, segment[who_all[at]], lifecycle_all[at], action_all[at], structure
        )
    return pd.DataFrame.from_records(rows)


def _customer_codes(hold: pd.DataFrame, index: dict[str, int]) -> IntArray:
    """(M,) index of each hold-out row's customer in ``index`` (-1: not simulated)."""
    ids = pd.Index(list(index), dtype=object)
    return np.asarray(ids.get_indexer(pd.Index(hold["customer_id"].astype(str))), np.int64)


def logged_actions(
    hold: pd.DataFrame, index: dict[str, int], weeks: IntArray, actions: tuple[str, ...]
) -> IntArray:
    """(H, K) the logged action of each customer in each hold-out week (``none`` if absent)."""
    out = np.zeros((weeks.shape[0], len(index)), np.int64)
    week_pos = {int(w): t for t, w in enumerate(weeks)}
    codes = _customer_codes(hold, index)
    known = hold[codes >= 0]
    t = known["week"].map(week_pos).to_numpy(np.int64)
    k = codes[codes >= 0]
    a = codes_of(known["action"].astype(str), actions)
    if t.size:
        out[t, k] = a
    return out


def one_step_weeks(
    hold: pd.DataFrame, structure: Structure, list_divisors: NDArray[np.float64] | None
) -> CustomerWeeks:
    """The hold-out customer-weeks of the world's segments, in the world's discrete terms
    (what :func:`one_step_curves` checks the response models on)."""
    known = hold["segment"].astype(str).replace("", UNKNOWN_SEGMENT).isin(structure.segments)
    return customer_weeks(
        hold[known],
        structure.layout,
        structure.features.contact_channels,
        structure.actions.names,
        structure.segments,
        list_divisors,
    )


def one_step_curves(
    world: WorldSpec,
    hold: pd.DataFrame,
    structure: Structure,
    list_divisors: NDArray[np.float64] | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reliability of the fitted conversion, engagement and opt-out probabilities on the
    hold-out customer-weeks, given their actual state and logged action."""
    return one_step_of(world, one_step_weeks(hold, structure, list_divisors))


def one_step_of(world: WorldSpec, weeks: CustomerWeeks) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`one_step_curves` on the customer-weeks of :func:`one_step_weeks`."""
    assert world.responses is not None
    curves, summary = [], []
    probs = {"convert": [], "engage": [], "optout": []}  # type: dict[str, list[tuple[Float, Float]]]
    for woy in np.unique(weeks.week_of_year):
        rows = weeks.week_of_year == woy
        r = fitted_responses(world.responses, weeks.state[rows], weeks.action[rows], int(woy))
        probs["convert"].append((r.convert, weeks.converted[rows].astype(np.float64)))
        probs["engage"].append((r.engage, weeks.engaged[rows].astype(np.float64)))
        contacted = weeks.action[rows] > 0
        probs["optout"].append(
            (r.optout[contacted], weeks.opted_out[rows][contacted].astype(np.float64))
        )
    for model, parts in probs.items():
        p = np.concatenate([x for x, _ in parts]) if parts else np.zeros(0)
        y = np.concatenate([y for _, y in parts]) if parts else np.zeros(0)
        if p.size == 0:
            continue
        table = reliability(p, y, bins=10)
        table.insert(0, "model", model)
        curves.append(table)
        q = np.clip(p, 1e-12, 1 - 1e-12)
        summary.append(
            {
                "model": model,
                "customer_weeks": int(p.size),
                "mean_predicted": float(p.mean()),
                "mean_observed": float(y.mean()),
                "log_loss": float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))),
                "ece": expected_calibration_error(table),
            }
        )
    return pd.concat(curves, ignore_index=True), pd.DataFrame.from_records(summary)


@dataclass(frozen=True)
class HoldoutData:
    """What every world's hold-out report of one calibration shares (computed once by
    :func:`holdout_data`; only the simulations and the model checks depend on the world).

    Attributes:
        state: The ``K`` simulated customers' state at the start of the first hold-out week.
        segment: (K,) their segment codes.
        weeks: (H,) the hold-out's panel week indices.
        week_of_year: (H,) their weeks of year.
        actions: (H, K) the logged actions replayed.
        actual: What happened, as long rows (``week`` = position 0..H-1, ``grouping``,
            ``group``, ``metric``, ``actual``).
        actual_totals: (K, 2) each customer's hold-out conversion weeks and revenue.
        predictions: The per-customer reference predictors (``zero``, ``own past rate``, and
            ``BG/NBD`` for purchase-only logs), each (K, 2).
        references: The weekly reference forecasts, each (H, 2).
        one_step: The hold-out customer-weeks of :func:`one_step_weeks`.
    """

    state: CustomerState
    segment: IntArray
    weeks: IntArray
    week_of_year: IntArray
    actions: IntArray
    actual: pd.DataFrame
    actual_totals: Float
    predictions: dict[str, Float]
    references: dict[str, Float]
    one_step: CustomerWeeks

    @property
    def customers(self) -> int:
        return int(self.segment.shape[0])


def holdout_data(
    identified: bool,
    structure: Structure,
    hold: pd.DataFrame,
    ids: NDArray[np.object_],
    state: CustomerState,
    fit_panel: pd.DataFrame,
    list_divisors: NDArray[np.float64] | None,
) -> HoldoutData:
    """The world-independent part of :func:`holdout_report` (arguments as there;
    ``identified``: the logs identify contact effects, else BG/NBD is a reference)."""
    seg_of = (
        fit_panel.drop_duplicates("customer_id")
        .set_index("customer_id")["segment"]
        .astype(str)
        .replace("", UNKNOWN_SEGMENT)
    )
    seg_index = {s: k for k, s in enumerate(structure.segments)}
    labels = seg_of.reindex(pd.Index(ids.astype(str))).fillna("").to_numpy()
    keep = np.flatnonzero(np.isin(labels, structure.segments))
    state = state.take(keep)
    customer_ids = ids[keep].astype(str)
    segment = np.array([seg_index[s] for s in labels[keep]], np.int64)
    index = {c: k for k, c in enumerate(customer_ids)}
    weeks = np.sort(hold["week"].unique()).astype(np.int64)
    woy = hold.drop_duplicates("week").set_index("week")["week_of_year"].reindex(weeks).to_numpy()
    actions = logged_actions(hold, index, weeks, structure.actions.names)
    fit_codes = _customer_codes(fit_panel, index)  # once: the fit panel is most of the log
    predictions = {
        "zero": np.zeros((len(index), 2)),
        "own past rate": _totals(fit_panel, fit_codes, len(index), weeks.shape[0]),
    }
    own_rate = _totals(fit_panel, fit_codes, len(index), 1).sum(axis=0)
    references = {"own past rate": np.tile(own_rate, (weeks.shape[0], 1))}
    if not identified:  # purchase logs: BG/NBD is the reference model
        horizons = np.arange(1, weeks.shape[0] + 1)
        cumulative = bgnbd_cumulative(fit_panel, index, int(weeks[0]), horizons)
        predictions["BG/NBD"] = np.column_stack([cumulative[-1], np.full(len(index), np.nan)])
        weekly_bgnbd = np.diff(cumulative.sum(axis=1), prepend=0.0)
        references["BG/NBD"] = np.column_stack([weekly_bgnbd, np.full(weeks.shape[0], np.nan)])
    actual = _actual(hold, index, segment, weeks, structure).rename(columns={"value": "actual"})
    return HoldoutData(
        state,
        segment,
        weeks,
        woy,
        actions,
        actual,
        customer_totals(hold, index),
        predictions,
        references,
        one_step_weeks(hold, structure, list_divisors),
    )


def holdout_report(
    est: Estimate,
    structure: Structure,
    hold: pd.DataFrame,
    ids: NDArray[np.object_],
    state: CustomerState,
    fit_panel: pd.DataFrame,
    cfg: CalibrationConfig,
    list_divisors: NDArray[np.float64] | None,
) -> HoldoutReport:
    """Simulate the hold-out and compare (see the module docstring).

    Args:
        est: The calibration.
        structure: The world's structure.
        hold: Panel rows of the hold-out weeks.
        ids: (K0,) customer ids of ``state`` (every customer known at the split).
        state: Their state at the start of the first hold-out week.
        fit_panel: Panel rows of the calibration weeks (for the customers' segments).
        cfg: Calibration settings (runs, seed).
        list_divisors: (A,) revenue under each action over its list value (undone for the
            value model's one-step check; see ``customer_weeks``).
    """
    data = holdout_data(est.identified, structure, hold, ids, state, fit_panel, list_divisors)
    return world_holdout(est.calibrated.world, data, structure, cfg)


def world_holdout(
    world: WorldSpec, data: HoldoutData, structure: Structure, cfg: CalibrationConfig
) -> HoldoutReport:
    """:func:`holdout_report` of ``world`` on the shared :class:`HoldoutData` (the same
    customers and, through ``cfg.seed``, the same random numbers for every world)."""
    weeks = data.weeks
    rng = np.random.default_rng(cfg.seed + 1)
    runs, simulated_totals = [], []
    for r in range(cfg.holdout_runs):
        rows, totals_r = simulate_holdout(
            world, data.state, data.segment, data.actions, data.week_of_year, structure, rng
        )
        runs.append(rows.assign(run=r))
        simulated_totals.append(totals_r)
    sim = pd.concat(runs, ignore_index=True)
    zero = data.predictions["zero"]
    predictions = {
        "this world": np.mean(simulated_totals, axis=0) if simulated_totals else zero,
        **data.predictions,
    }
    per_customer = per_customer_errors(data.actual_totals, predictions)
    keys = ["week", "grouping", "group", "metric"]
    simulated = sim.groupby(keys, sort=False)["value"].agg(["mean", "std"]).reset_index()
    simulated.columns = [*keys, "simulated", "simulated_sd"]
    weekly = data.actual.merge(simulated, on=keys, how="outer").fillna(0.0)
    weekly["week"] = weeks[weekly["week"].to_numpy(np.int64)]
    totals = weekly.groupby(["grouping", "group", "metric"], sort=False)[
        ["actual", "simulated"]
    ].sum()
    totals = totals.reset_index()
    with np.errstate(divide="ignore", invalid="ignore"):
        totals["rel_error"] = totals["simulated"] / totals["actual"] - 1.0
    curves, one_step = one_step_of(world, data.one_step)
    overall = totals[totals["grouping"] == "all"]
    errors = dict(zip(overall["metric"], overall["rel_error"].to_numpy(np.float64), strict=True))
    metrics = {
        f"sim/holdout_{m}_rel_error": float(errors[m])
        for m in METRICS
        if m in errors and np.isfinite(errors[m])
    }
    eces = dict(zip(one_step["model"], one_step["ece"].to_numpy(np.float64), strict=True))
    metrics.update({f"sim/one_step_{model}_ece": float(e) for model, e in eces.items()})
    world_row = per_customer.iloc[0]
    metrics.update(
        {f"sim/holdout_customer_{k}": float(world_row[k]) for k in per_customer.columns[1:]}
    )
    tracking = tracking_curves(weekly, weeks, data.references)
    return HoldoutReport(
        weekly,
        totals,
        curves,
        one_step,
        metrics,
        data.customers,
        per_customer=per_customer,
        tracking=tracking,
    )
