"""What the fidelity card checks beyond the hold-out totals: calibration by action on the
logged decisions, the weekly tracking curve and the spread of every figure across the
ensemble, and the verdict's reasons drawn from them.

- **By action** (:func:`action_calibration`): on the hold-out's logged decisions, for each
  action and each response the world models — conversion (at least one in the week), revenue
  (the week's list value) and opt-out — the world's expected outcome given the customer's
  state at the decision and the action taken, against the realised outcome. Both are
  propensity-weighted (``w = 1 / propensity``: the logged propensity, else today's practice
  estimated from the logs), summed per customer and compared by the one per-action comparison
  of the promotion gate's model check
  (:func:`journeyopt.evaluation.ope.model_check.action_check`): relative gap
  ``(sum w predicted - sum w realised) / |sum w realised|``, percentile bootstrap over
  customers. An action is *material* when at least ``card.min_action_share`` of the logged
  decisions took it; it fails when the gap's whole interval lies beyond
  ``+-card.action_tolerance`` (the model check's lax test: the data show the world wrong).
- **Weekly tracking** (:func:`tracking_mape`): the hold-out's weekly conversion and revenue
  totals, this world's (mean of the runs) and the references' (each customer's own past rate,
  BG/NBD for purchase logs) against the actual; MAPE = mean over the weeks with a non-zero
  actual of ``|predicted - actual| / actual``. The world fails when its MAPE exceeds the best
  reference's by more than ``card.mape_slack``.
- **Ensemble spread** (:func:`spread_table`): every figure above and the hold-out's totals and
  per-customer errors recomputed with each bootstrap member of the ensemble (the same
  simulations' random numbers); SD and min-max across members, and each SD's 95 % interval
  (:func:`sd_interval`: a handful of members tells the spread only roughly). The world fails
  when the spread of the hold-out conversion or revenue total's relative error is shown to
  exceed ``card.max_ensemble_sd``: the whole interval of its SD lies above it (as an action
  is flagged only when its whole interval lies beyond the tolerance). With five members the
  SD's interval runs from 0.6 to 2.9 times it, so the point SD alone would decide a world near
  the limit by which customers the resamples drew.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.stats import chi2

from journeyopt.calibration.config import CardConfig
from journeyopt.calibration.holdout import HoldoutReport
from journeyopt.calibration.weeks import UNKNOWN_SEGMENT, CustomerWeeks, customer_weeks
from journeyopt.evaluation.ope.logged import logged_trajectories
from journeyopt.evaluation.ope.model_check import (
    ModelCheckSettings,
    action_check,
    check_actions,
    logged_actions_one_hot,
    passes,
)
from journeyopt.sim.behaviour import contact_rules
from journeyopt.sim.discrete import DiscreteLayout, allowed_actions
from journeyopt.sim.dynamics import Responses, fitted_responses, response_probabilities
from journeyopt.sim.world import WorldSpec

Float = NDArray[np.float64]

RESPONSES: tuple[str, ...] = ("conversions", "revenue", "optouts")
"""The responses checked by action (opt-outs for contact actions only)."""
TRACKED: tuple[str, ...] = ("conversions", "revenue")
"""The metrics of the weekly tracking curve."""
WORLD = "this world"
GAP_COLUMNS: tuple[str, ...] = ("gap", "gap_low", "gap_high")


@dataclass(frozen=True)
class Decisions:
    """The hold-out's logged decisions in a world's discrete terms.

    Attributes:
        weeks: The customer-weeks (state, action, realised outcomes).
        propensity: (M,) the logging policy's probability of each logged action.
        propensity_source: ``logged``, ``estimated`` (today's practice estimated from the
            logs), ``mixed`` or ``none`` (no propensity known: unweighted).
    """

    weeks: CustomerWeeks
    propensity: Float
    propensity_source: str


def holdout_decisions(
    world: WorldSpec,
    hold: pd.DataFrame,
    list_divisors: Float | None,
    origin_week: int = 0,
) -> Decisions:
    """The logged decisions of the panel rows ``hold`` (customers of the world's segments).

    Args:
        world: The world (its discrete numbering, actions, segments, today's practice).
        hold: Panel rows of the hold-out weeks.
        list_divisors: (A,) revenue under each action over its list value (see
            :func:`journeyopt.calibration.weeks.customer_weeks`); None: revenue is list value.
        origin_week: Panel week of the campaign calendar's week 0 (today's practice's cycles).
    """
    layout = DiscreteLayout.of(world)
    channels, actions = world.features.contact_channels, world.actions.names
    weeks = holdout_weeks(hold, layout, channels, actions, world.segment_names, list_divisors)
    return logged_decisions(world, weeks, origin_week)


def holdout_weeks(
    hold: pd.DataFrame,
    layout: DiscreteLayout,
    channels: Sequence[str],
    actions: Sequence[str],
    segments: Sequence[str],
    list_divisors: Float | None,
) -> CustomerWeeks:
    """The customer-weeks of the panel rows ``hold`` of customers of ``segments`` (the part of
    :func:`holdout_decisions` that needs no fitted world; arguments as
    :func:`~journeyopt.calibration.weeks.customer_weeks`)."""
    known = hold["segment"].astype(str).replace("", UNKNOWN_SEGMENT).isin(segments)
    return customer_weeks(hold[known], layout, channels, actions, segments, list_divisors)


def logged_decisions(world: WorldSpec, weeks: CustomerWeeks, origin_week: int = 0) -> Decisions:
    """The decisions of the hold-out customer-weeks ``weeks`` (:func:`holdout_weeks` in the
    world's numbering) with their logging propensities, today's practice's (the world's
    estimate) where none was logged; ``origin_week`` as :func:`holdout_decisions`."""
    layout = DiscreteLayout.of(world)
    logged = np.isfinite(weeks.propensity) & (weeks.propensity > 0)
    propensity = np.where(logged, weeks.propensity, np.nan)
    practice = world.logged_practice
    missing = ~logged
    if missing.any() and practice is not None and practice.state_logit.shape[0] == layout.n_states:
        masks = allowed_actions(layout.decode(weeks.state), world)
        for week in np.unique(weeks.week[missing]):
            rows = np.flatnonzero(missing & (weeks.week == week))
            probs = practice.state_probabilities(
                weeks.state[rows],
                int(weeks.week_of_year[rows[0]]),
                int(week) - origin_week,
                masks[rows],
            )
            propensity[rows] = probs[np.arange(rows.shape[0]), weeks.action[rows]]
    estimated = np.isfinite(propensity) & (propensity > 0)
    source = (
        "logged"
        if logged.all()
        else "none"
        if not estimated.any()
        else "estimated"
        if not logged.any() and estimated.all()
        else "mixed"
    )
    return Decisions(weeks, np.where(estimated, propensity, 1.0), source)


def expected_responses(world: WorldSpec, weeks: CustomerWeeks) -> dict[str, Float]:
    """(M,) the world's expected outcome of each customer-week given its state and logged
    action: ``conversions`` (probability of at least one), ``revenue`` (expected list value,
    currency) and ``optouts`` (probability)."""
    out = {name: np.zeros(weeks.n) for name in RESPONSES}
    layout = DiscreteLayout.of(world)
    for woy in np.unique(weeks.week_of_year):
        rows = np.flatnonzero(weeks.week_of_year == woy)
        state, action = weeks.state[rows], weeks.action[rows]
        r: Responses = (
            fitted_responses(world.responses, state, action, int(woy))
            if world.responses is not None
            else response_probabilities(world, layout.decode(state), action, int(woy))
        )
        out["conversions"][rows] = r.convert
        out["revenue"][rows] = r.convert * r.value
        out["optouts"][rows] = r.optout
    return out


def realised_responses(weeks: CustomerWeeks) -> dict[str, Float]:
    """(M,) the realised outcome of each customer-week (as :func:`expected_responses`)."""
    return {
        "conversions": weeks.converted.astype(np.float64),
        "revenue": weeks.list_value.astype(np.float64),
        "optouts": weeks.opted_out.astype(np.float64),
    }


def check_settings(settings: CardConfig, seed: int) -> ModelCheckSettings:
    """The gate's model-check settings the card's by-action rows use: the card's tolerance,
    bootstrap size and confidence, the lax test (flag an action only when its whole interval
    lies beyond the tolerance)."""
    return ModelCheckSettings(
        tolerance=settings.action_tolerance,
        n_boot=settings.n_boot,
        confidence=settings.confidence,
        seed=seed,
        strict=False,
    )


def action_calibration(
    world: WorldSpec, decisions: Decisions, settings: CardConfig, seed: int = 0
) -> pd.DataFrame:
    """The world's calibration by action on the logged decisions (see the module docstring).

    Returns:
        One row per action and response (actions in the catalogue's order; no opt-out row
        for ``none``): ``action``, ``response``, ``decisions``, ``share`` (of the logged
        decisions), ``realised`` and ``predicted`` (propensity-weighted means per decision;
        conversions and opt-outs as probabilities, revenue in currency), ``gap``,
        ``gap_low``, ``gap_high`` (relative gap and its interval at ``settings.confidence``;
        NaN when nothing realised), ``material``, ``flagged`` (material and the interval
        wholly beyond ``+-settings.action_tolerance``).
    """
    weeks = decisions.weeks
    limits = check_settings(settings, seed)
    predicted, realised = expected_responses(world, weeks), realised_responses(weeks)
    k = weeks.customer_ids.shape[0]
    weight = 1.0 / decisions.propensity
    rows = []
    for a, name in enumerate(world.actions.names):
        took = weeks.action == a
        n = int(took.sum())
        share = float(took.mean()) if weeks.n else 0.0
        w_sum = float(weight[took].sum())
        w = np.where(took, weight, 0.0)
        for response in RESPONSES:
            if response == "optouts" and a == 0:
                continue
            g = np.bincount(weeks.customer, w * realised[response], k).astype(np.float64)
            m = np.bincount(weeks.customer, w * predicted[response], k).astype(np.float64)
            check = action_check(name, share, n, g, m, limits)
            material = share >= settings.min_action_share
            rows.append(
                {
                    "action": name,
                    "response": response,
                    "decisions": n,
                    "share": share,
                    "realised": float(g.sum()) / w_sum if w_sum > 0 else np.nan,
                    "predicted": float(m.sum()) / w_sum if w_sum > 0 else np.nan,
                    "gap": check.gap,
                    "gap_low": check.gap_low,
                    "gap_high": check.gap_high,
                    "material": material,
                    "flagged": material
                    and bool(np.isfinite(check.gap_low) and np.isfinite(check.gap_high))
                    and not passes(check.gap_low, check.gap_high, limits.tolerance, strict=False),
                }
            )
    return pd.DataFrame.from_records(rows)


def value_calibration(
    world: WorldSpec,
    hold: pd.DataFrame,
    settings: CardConfig,
    gamma: float,
    prices: str = "paid",
    seed: int = 0,
) -> pd.DataFrame:
    """The world's value of each action over ``settings.value_weeks`` weeks from the logged
    decisions that took it (the week of the decision and the ones after, the logging policy
    afterwards) against the realised discounted reward of those weeks: the gate's
    :func:`~journeyopt.evaluation.ope.model_check.check_actions` with the logged decisions as
    the "candidate" (its shares: the logs'), on the customers present in every hold-out week.

    The logged trajectories carry the world's own rules (opt-outs, actions it cannot value),
    not the configured ``rules``: the value reads the logged decisions only (each action's
    outcome, then the logging policy's projection on the world's states), never the masks, so
    no rule changes it; and the configured rules are the rules policies are *served* under,
    which the logs may not have followed nor the panel counted (a cap's window no candidate
    summary reads is not in the panel).

    Returns:
        Rows as :func:`action_calibration`, response ``value (<L> weeks)``; ``realised`` and
        ``predicted`` per decision, currency (empty when the world's actions are not
        identified or the hold-out is shorter than ``L`` weeks).
    """
    n_weeks = int(hold["week"].nunique())
    if settings.value_weeks < 1 or n_weeks < settings.value_weeks:
        return pd.DataFrame()
    logged = logged_trajectories(hold, world, contact_rules(world), n_weeks, prices)
    limits = replace(
        check_settings(settings, seed),
        min_action_share=settings.min_action_share,
        action_outcome_weeks=settings.value_weeks,
    )
    checks = check_actions(logged, world, logged_actions_one_hot(logged), gamma, limits)
    weight = 1.0 / logged.propensity
    rows = []
    for check in checks:
        took = logged.action == world.actions.names.index(check.action)
        took[:, n_weeks - settings.value_weeks + 1 :] = False  # fewer than L weeks follow
        w_sum = float(weight[took].sum()) / logged.n_customers
        measured = bool(np.isfinite(check.gap_low) and np.isfinite(check.gap_high))
        rows.append(
            {
                "action": check.action,
                "response": f"value ({settings.value_weeks} weeks)",
                "decisions": check.decisions,
                "share": check.share,
                "realised": check.realised / w_sum if w_sum > 0 else np.nan,
                "predicted": check.predicted / w_sum if w_sum > 0 else np.nan,
                "gap": check.gap,
                "gap_low": check.gap_low,
                "gap_high": check.gap_high,
                "material": True,
                "flagged": measured and not check.passed,
            }
        )
    return pd.DataFrame.from_records(rows)


def tracking_mape(tracking: pd.DataFrame) -> pd.DataFrame:
    """Weekly tracking MAPE of each predictor of :attr:`HoldoutReport.tracking`: one row per
    predictor, ``<metric>_mape`` for each tracked metric (a share; mean over the weeks whose
    actual is non-zero of ``|predicted - actual| / actual``; NaN without such a week or
    without a forecast of the metric)."""
    rows = []
    for predictor in tracking["predictor"].unique():
        row: dict[str, object] = {"predictor": predictor}
        for metric in TRACKED:
            part = tracking[(tracking["predictor"] == predictor) & (tracking["metric"] == metric)]
            actual = part["actual"].to_numpy(np.float64)
            keep = actual != 0
            predicted = part["predicted"].to_numpy(np.float64)
            errors = np.abs(predicted[keep] - actual[keep]) / np.abs(actual[keep])
            row[f"{metric}_mape"] = float(np.mean(errors)) if keep.any() else np.nan
        rows.append(row)
    return pd.DataFrame.from_records(rows)


def card_figures(holdout: HoldoutReport, by_action: pd.DataFrame | None) -> dict[str, float]:
    """The card's figures of one world, by name: the hold-out totals' relative errors, this
    world's per-customer MAE and RMSE, its weekly tracking MAPE and the by-action gaps."""
    out: dict[str, float] = {}
    overall = holdout.totals[holdout.totals["grouping"] == "all"]
    for metric, error in zip(overall["metric"], overall["rel_error"], strict=True):
        out[f"hold-out {metric} total, rel. error"] = float(error)
    if holdout.per_customer is not None:
        table = holdout.per_customer
        for column in table.columns[1:]:
            value = _lookup(table, "predictor", WORLD, column)
            out[f"per customer {str(column).replace('_', ' ')}"] = value
    if holdout.tracking is not None:
        mape = tracking_mape(holdout.tracking)
        for metric in TRACKED:
            out[f"weekly {metric} MAPE"] = _lookup(mape, "predictor", WORLD, f"{metric}_mape")
    if by_action is not None:
        for action, response, gap in zip(
            by_action["action"],
            by_action["response"],
            by_action["gap"].to_numpy(np.float64),
            strict=True,
        ):
            out[f"{action} {response} gap"] = float(gap)
    return out


def _lookup(table: pd.DataFrame, key: str, name: str, column: str) -> float:
    """``table[column]`` in the row whose ``key`` is ``name`` (NaN without such a row or
    column)."""
    if column not in table.columns:
        return float("nan")
    rows = np.flatnonzero(table[key].astype(str).to_numpy() == name)
    return float(table[column].to_numpy(np.float64)[rows[0]]) if rows.size else float("nan")


def _sd(values: Float) -> float:
    """Standard deviation (``ddof=1``) of the finite ``values``; NaN with fewer than two."""
    v = values[np.isfinite(values)]
    return float(np.std(v, ddof=1)) if v.size >= 2 else float("nan")


SD_CONFIDENCE = 0.95
"""Coverage of the interval printed beside each ensemble SD (:func:`sd_interval`)."""


def sd_interval(sd: float, members: int, confidence: float = SD_CONFIDENCE) -> tuple[float, float]:
    """The ``confidence`` interval of the spread an SD (``ddof=1``) of ``members`` values
    estimates: ``(n - 1) sd^2 / sigma^2`` is chi-square with ``n - 1`` degrees of freedom for
    normal values, so with 5 members sigma lies within 0.60 to 2.87 times the SD measured
    (95 %), with 30 within 0.80 to 1.34 times. NaN with fewer than two members or no SD."""
    if members < 2 or not np.isfinite(sd):
        return float("nan"), float("nan")
    df = members - 1
    tail = (1.0 - confidence) / 2.0
    low = sd * np.sqrt(df / chi2.ppf(1.0 - tail, df))
    high = sd * np.sqrt(df / chi2.ppf(tail, df))
    return float(low), float(high)


def sd_interval_text(spread: pd.DataFrame, figure: str) -> str:
    """``95 % interval 1.2 to 5.6 from 5 members; `` of ``figure``'s SD in a
    :func:`spread_table` (points: 100 x the figure's unit; empty without an interval)."""
    low, high, n = (
        _lookup(spread, "figure", figure, column)
        for column in ("members_sd_low", "members_sd_high", "members")
    )
    if not (np.isfinite(low) and np.isfinite(high)):
        return ""
    return (
        f"{100 * SD_CONFIDENCE:g} % interval {100 * low:.1f} to {100 * high:.1f} from "
        f"{int(n)} members; "
    )


def spread_table(point: dict[str, float], members: list[dict[str, float]]) -> pd.DataFrame:
    """One row per figure: ``figure``, ``value`` (the point world's), ``members`` (the members
    with a finite value), ``members_sd`` (standard deviation across them, ``ddof=1``; NaN
    with fewer than two), ``members_sd_low`` and ``members_sd_high`` (its
    :data:`SD_CONFIDENCE` interval, :func:`sd_interval`), ``members_min``, ``members_max``."""
    rows = []
    for name, value in point.items():
        v = np.array([m.get(name, np.nan) for m in members], np.float64)
        v = v[np.isfinite(v)]
        sd = _sd(v)
        low, high = sd_interval(sd, int(v.size))
        rows.append(
            {
                "figure": name,
                "value": value,
                "members": int(v.size),
                "members_sd": sd,
                "members_sd_low": low,
                "members_sd_high": high,
                "members_min": float(v.min()) if v.size else np.nan,
                "members_max": float(v.max()) if v.size else np.nan,
            }
        )
    return pd.DataFrame.from_records(rows)


@dataclass(frozen=True)
class CardFidelity:
    """The card's by-action calibration, weekly tracking and ensemble spread.

    Attributes:
        by_action: :func:`action_calibration` of the point world (``members_sd``: SD of the
            gap across members, NaN without an ensemble).
        tracking: The weekly tracking curves (:attr:`HoldoutReport.tracking`), with one
            ``member <k>`` predictor per re-simulated ensemble member.
        mape: :func:`tracking_mape` of this world and the references (members left out),
            ``<metric>_mape_sd`` across members.
        spread: :func:`spread_table` of every figure; None without an ensemble.
        propensity_source: Where the by-action weights come from (see :class:`Decisions`).
        settings: The verdict's thresholds.
    """

    by_action: pd.DataFrame
    tracking: pd.DataFrame
    mape: pd.DataFrame
    spread: pd.DataFrame | None
    propensity_source: str
    settings: CardConfig

    def reasons(self) -> list[str]:
        """Why these checks say the world is not good enough (empty: they pass)."""
        out = []
        s = self.settings
        acts = self.by_action
        for k in np.flatnonzero(acts["flagged"].to_numpy(bool)):
            gap, low, high = (float(acts[c].to_numpy(np.float64)[k]) for c in GAP_COLUMNS)
            verb = "over-predicts" if gap > 0 else "under-predicts"
            out.append(
                f"it {verb} the {acts['response'].iloc[k]} of {acts['action'].iloc[k]!r} by "
                f"{100 * gap:+.1f} % ({100 * s.confidence:g} % CI {100 * low:+.1f} % to "
                f"{100 * high:+.1f} %, tolerance {100 * s.action_tolerance:g} %)"
            )
        predictors = self.mape["predictor"].astype(str).to_numpy()
        for metric in TRACKED:
            world = _lookup(self.mape, "predictor", WORLD, f"{metric}_mape")
            refs = {
                name: _lookup(self.mape, "predictor", name, f"{metric}_mape")
                for name in predictors
                if name != WORLD
            }
            refs = {name: v for name, v in refs.items() if np.isfinite(v)}
            if not refs or not np.isfinite(world):
                continue
            best = min(refs, key=lambda name: refs[name])
            if world > refs[best] + s.mape_slack:
                out.append(
                    f"its weekly {metric} tracking MAPE {100 * world:.1f} % is above "
                    f"{best}'s {100 * refs[best]:.1f} %"
                )
        if self.spread is not None:
            for metric in TRACKED:
                name = f"hold-out {metric} total, rel. error"
                sd = _lookup(self.spread, "figure", name, "members_sd")
                low = _lookup(self.spread, "figure", name, "members_sd_low")
                if np.isfinite(low) and low > s.max_ensemble_sd:
                    out.append(
                        f"its ensemble members' hold-out {metric} totals spread by SD "
                        f"{100 * sd:.1f} points ({sd_interval_text(self.spread, name)}at most "
                        f"{100 * s.max_ensemble_sd:g})"
                    )
        return out

    def metrics(self) -> dict[str, float]:
        """``sim/`` metrics for MLflow: weekly MAPEs, flagged actions, ensemble SDs."""
        flagged = float(self.by_action["flagged"].to_numpy(bool).sum())
        out: dict[str, float] = {"sim/card_actions_flagged": flagged}
        for metric in TRACKED:
            value = _lookup(self.mape, "predictor", WORLD, f"{metric}_mape")
            if np.isfinite(value):
                out[f"sim/holdout_weekly_{metric}_mape"] = value
            if self.spread is not None:
                name = f"hold-out {metric} total, rel. error"
                sd = _lookup(self.spread, "figure", name, "members_sd")
                if np.isfinite(sd):
                    out[f"sim/ensemble_sd_holdout_{metric}_rel_error"] = sd
        return out


def card_fidelity(
    world: WorldSpec,
    holdout: HoldoutReport,
    decisions: Decisions,
    settings: CardConfig,
    members: list[tuple[WorldSpec, HoldoutReport]] | None = None,
    seed: int = 0,
    value_rows: pd.DataFrame | None = None,
    by_actions: list[pd.DataFrame] | None = None,
) -> CardFidelity:
    """The card's by-action calibration, weekly tracking and ensemble spread.

    Args:
        world: The point world.
        holdout: Its hold-out report (with its tracking curves).
        decisions: The hold-out's logged decisions (:func:`holdout_decisions`).
        settings: The verdict's thresholds and the bootstrap.
        members: Each ensemble member and its hold-out report on the same customers and
            random numbers; None or empty: no spread.
        seed: Seed of the by-action bootstrap.
        value_rows: The point world's multi-week value by action (:func:`value_calibration`),
            added to the by-action table (no spread: one value model per member costs too
            much); None: none.
        by_actions: :func:`action_calibration` of ``world`` and of each member, in that order,
            when already computed (the calibration computes them beside each world's
            hold-out simulation); None: computed here.
    """
    if holdout.tracking is None:
        raise ValueError("the hold-out report has no tracking curves")
    worlds = [world, *(w for w, _ in members or [])]
    if by_actions is None:
        by_actions = [action_calibration(w, decisions, settings, seed) for w in worlds]
    if len(by_actions) != len(worlds):
        raise ValueError(f"{len(by_actions)} by-action tables for {len(worlds)} worlds")
    by_action = by_actions[0]
    mape = tracking_mape(holdout.tracking)
    tracking = holdout.tracking
    spread = None
    if members:
        member_actions = by_actions[1:]
        gaps = np.array([m["gap"].to_numpy(np.float64) for m in member_actions])
        sd = [_sd(gaps[:, j]) for j in range(gaps.shape[1])]
        by_action = by_action.assign(members_sd=sd)
        member_figures = [
            card_figures(report, acts)
            for (_, report), acts in zip(members, member_actions, strict=True)
        ]
        spread = spread_table(card_figures(holdout, by_action), member_figures)
        curves = [
            report.tracking[report.tracking["predictor"] == WORLD].assign(predictor=f"member {k}")
            for k, (_, report) in enumerate(members)
            if report.tracking is not None
        ]
        tracking = pd.concat([tracking, *curves], ignore_index=True)
        member_mape = tracking_mape(pd.concat(curves, ignore_index=True))
        for metric in TRACKED:
            column = f"{metric}_mape"
            mape_sd = _sd(member_mape[column].to_numpy(np.float64))
            mape[f"{column}_sd"] = np.where(mape["predictor"] == WORLD, mape_sd, np.nan)
    else:
        by_action = by_action.assign(members_sd=np.nan)
    if value_rows is not None and not value_rows.empty:
        by_action = pd.concat([by_action, value_rows.assign(members_sd=np.nan)], ignore_index=True)
    return CardFidelity(by_action, tracking, mape, spread, decisions.propensity_source, settings)


def tracking_figure(tracking: pd.DataFrame) -> plt.Figure:
    """The weekly tracking curves: actual, this world (+- SD across runs), each ensemble
    member (thin) and each reference, conversions (left) and revenue (right)."""
    fig, axes = plt.subplots(1, len(TRACKED), figsize=(12, 4), squeeze=False)
    for ax, metric in zip(axes[0], TRACKED, strict=True):
        part = tracking[tracking["metric"] == metric]
        world = part[part["predictor"] == WORLD].sort_values("week")
        ax.plot(world["week"], world["actual"], "k.-", label="actual")
        for k, (name, curve) in enumerate(part.groupby("predictor", sort=False)):
            curve = curve.sort_values("week")
            if str(name).startswith("member "):
                ax.plot(curve["week"], curve["predicted"], color="C0", lw=0.6, alpha=0.5)
            elif name != WORLD:
                ax.plot(curve["week"], curve["predicted"], f"C{k + 1}--", label=str(name))
        plot_simulated_weeks(
            ax, metric, world["week"], world["predicted"], world["predicted_sd"], WORLD, lw=2
        )
        ax.set_xlabel("panel week")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_simulated_weeks(
    ax: plt.Axes,
    metric: str,
    week: pd.Series,
    simulated: pd.Series,
    simulated_sd: pd.Series,
    label: str,
    lw: float | None = None,
) -> None:
    """One hold-out metric's simulated weekly totals on ``ax``: the curve (``label``, line
    width ``lw``, matplotlib's default when None), its +- one-SD band across the simulation
    runs, and the panel's title."""
    ax.plot(week, simulated, "C0-", lw=lw, label=label)
    ax.fill_between(week, simulated - simulated_sd, simulated + simulated_sd, color="C0", alpha=0.2)
    ax.set_title(f"hold-out {metric} per week")
