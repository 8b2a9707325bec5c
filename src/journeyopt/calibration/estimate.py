"""From customer-weeks to a :class:`~journeyopt.calibration.calibrated.CalibratedWorld`:
weights, penalties, the point fit, the bootstrap ensemble and the world's assembly."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.calibration.calibrated import (
    CalibratedWorld,
    population_spec,
    reference_states,
    summarise_fit,
)
from journeyopt.calibration.config import CalibrationConfig
from journeyopt.calibration.design import Design
from journeyopt.calibration.fit import bootstrap_multiplicity
from journeyopt.calibration.models import (
    FamilyChoice,
    FitData,
    Fits,
    Penalties,
    choose_families,
    choose_penalties,
    refit_models,
    table_features,
    tabulate,
)
from journeyopt.calibration.propensity import (
    Propensities,
    contacts_identified,
    effective_sample_share,
    logged_practice,
    practice_matrix,
    propensities,
    stabilised_weights,
    support_table,
)
from journeyopt.calibration.scoring import forward_window, scored_rows
from journeyopt.calibration.weeks import CustomerWeeks
from journeyopt.panel.state import FeatureSpec
from journeyopt.sim.discrete import DiscreteLayout
from journeyopt.sim.rules import ActionCatalog
from journeyopt.sim.world import FittedResponses, SegmentSpec, WorldSpec
from journeyopt.timing import Stopwatch

Float = NDArray[np.float64]


@dataclass(frozen=True)
class Structure:
    """What the logs' source fixes about the world (not fitted).

    Attributes:
        name: World name.
        actions: Action catalogue of the source, ``none`` first.
        features: Feature windows (contact channels = the source's).
        layout: Discrete state numbering.
        segments: Segment names.
        currency: Currency of amounts and costs (``data.economics.currency``).
        margin_rate: Share of a conversion's list value that is margin
            (``data.economics.margin_rate``).
    """

    name: str
    actions: ActionCatalog
    features: FeatureSpec
    layout: DiscreteLayout
    segments: tuple[str, ...]
    currency: str
    margin_rate: float


@dataclass(frozen=True)
class Estimate:
    """A calibration's fitted world and the diagnostics the card reports.

    Attributes:
        calibrated: The world and its ensemble.
        penalties: Chosen penalties.
        propensities: Propensities and the behaviour-cloning check.
        support: Positivity table (:func:`~journeyopt.calibration.propensity.support_table`).
        identified: The logs identify contact effects.
        visits: (n_states,) calibration customer-weeks in each discrete state.
        weight_ess_share: Effective sample size of the confounding weights of the binary
            models as a share of the customer-weeks (1 without weights; see
            :func:`~journeyopt.calibration.propensity.effective_sample_share`).
        families: Binary model name -> its choice between the GLM and the GLM with trees
            (``calibration.response_model`` ``lightgbm`` or ``auto``; empty with ``glm``).
    """

    calibrated: CalibratedWorld
    penalties: Penalties
    propensities: Propensities
    support: pd.DataFrame
    identified: bool
    visits: NDArray[np.int64]
    weight_ess_share: float = 1.0
    families: Mapping[str, FamilyChoice] = field(default_factory=dict)


def validation_customers(
    n_customers: int, share: float, rng: np.random.Generator
) -> NDArray[np.bool_]:
    """(K,) a random ``share`` of the customers, held out to choose penalties."""
    held = np.zeros(n_customers, bool)
    held[rng.permutation(n_customers)[: max(1, round(share * n_customers))]] = True
    return held


def fit_weights(weeks: CustomerWeeks, props: Propensities, cfg: CalibrationConfig) -> Float:
    """(M,) row weights of the binary response models: the stabilised inverse propensity
    weights of ``props`` with ``calibration.weighting: stabilised`` (and more than one logged
    action), else ones. The fit and the choice of the state summary
    (:mod:`journeyopt.calibration.summary`) both weigh by this."""
    if props.source != "none" and cfg.weighting == "stabilised":
        return stabilised_weights(weeks, props.value, cfg.max_weight)
    return np.ones(weeks.n)


def _value_shape(fits: Fits, data: FitData, segment: int) -> float:
    """Gamma shape of the list value around its fitted mean in a segment (method of moments
    on ``value / fitted mean``), clipped to [0.2, 100]."""
    rows = data.value_rows
    keep = data.weeks.segment[rows] == segment
    if keep.sum() < 2:
        return 1.0
    log_mean = fits.value.eta(data.value_matrix[keep])
    if "value" in fits.trees:  # the mean the world's table holds
        log_mean = log_mean + fits.trees["value"].logit(
            data.value_features[data.value_cells.row_cell][keep]
        )
    ratio = data.weeks.list_value[rows][keep] / np.exp(log_mean)
    var = float(np.var(ratio / np.mean(ratio)))
    return float(np.clip(1.0 / var if var > 0 else 100.0, 0.2, 100.0))


def _segments(
    structure: Structure,
    responses: FittedResponses,
    fits: Fits,
    data: FitData,
    shares: Float,
    company_sizes: Sequence[Mapping[str, float]],
    visits: Float,
) -> tuple[SegmentSpec, ...]:
    out = []
    for k, name in enumerate(structure.segments):
        summary = summarise_fit(responses, structure.layout, structure.actions.names, k, visits)
        ref_value = summary.pop("reference_value")
        out.append(
            SegmentSpec(
                name=name,
                share=float(shares[k]),
                kinds={"conversion": (1.0, ref_value)},
                value_shape=_value_shape(fits, data, k),
                company_sizes=dict(company_sizes[k]),
                prospect_logit=summary["prospect_logit"],
                return_logit=summary["return_logit"],
                lapsed_logit=summary["lapsed_logit"],
                habit_decay_weeks=summary["habit_decay_weeks"],
                loyalty_logit=summary["loyalty_logit"],
                engagement_logit=summary["engagement_logit"],
                engagement_value_lift=max(summary["engagement_value_lift"], 1e-6),
                inquiry_rate=summary["inquiry_rate"],
                action_logit=summary["action_logit"],
                action_engagement=summary["action_engagement"],
                optout=summary["optout"],
                fatigue_response=summary["fatigue_response"],
                fatigue_optout=summary["fatigue_optout"],
            )
        )
    return tuple(out)


def estimate(
    weeks: CustomerWeeks,
    structure: Structure,
    cfg: CalibrationConfig,
    last_state: pd.DataFrame,
    meta: Mapping[str, Any],
    clock: Stopwatch | None = None,
) -> Estimate:
    """Fit the calibrated world.

    Args:
        weeks: Calibration customer-weeks.
        structure: What the source fixes.
        cfg: Calibration settings.
        last_state: Panel rows of the last calibration week (one per customer present then):
            the initial population, segment shares and company sizes come from it.
        meta: Fingerprint and config, stored with the world.
        clock: Times the stages ``propensities``, ``penalties``, ``point_fit`` (with the
            world's assembly) and ``ensemble`` (a new one when None).
    """
    clock = clock if clock is not None else Stopwatch()
    rng = np.random.default_rng(cfg.seed)
    held = validation_customers(weeks.customer_ids.shape[0], cfg.validation_share, rng)
    validation = held[weeks.customer]
    used = set(structure.actions.channels[1:])
    silent = tuple(j for j, c in enumerate(structure.features.contact_channels) if c not in used)
    design = Design(structure.layout, structure.actions.n_actions, cfg.seasonal, silent)
    cycles = cfg.cycles()
    calendar = meta.get("practice_calendar", {})  # the cycles' week 0: logging's first week
    origin_week = int(calendar.get("week", weeks.week.min() if weeks.n else 0))
    matrix = practice_matrix(design, weeks, cycles, origin_week)
    props = propensities(weeks, matrix, validation, cfg.workers)
    practice = (
        logged_practice(
            props.cloning,
            design,
            cycles,
            structure.actions.names,
            structure.segments,
            structure.features.contact_channels,
            str(calendar.get("monday", "")),
        )
        if props.cloning is not None
        else None
    )
    weight = fit_weights(weeks, props, cfg)
    support = support_table(weeks, cfg.min_support)
    clock.lap("propensities")
    identified = contacts_identified(weeks, cfg.min_support)
    decisions = support.groupby("action")["weeks"].sum()
    unsupported = tuple(
        a
        for a in structure.actions.names[1:]
        if int(decisions.get(a, 0)) < cfg.min_action_decisions
    )
    data = FitData.of(weeks, design, weight)
    # the penalties are chosen on the rows the summary's candidates are scored on: by default
    # (``summary.forward_weeks``) every customer's last weeks, fitted on the weeks before (how
    # much to smooth decides how the models extrapolate to later weeks, as the summary does)
    scored, judged = scored_rows(weeks, held, cfg.summary.forward_weeks)
    window = forward_window(weeks, cfg.summary.forward_weeks)
    penalties = choose_penalties(
        data,
        scored,
        cfg.c_grid,
        cfg.alpha_grid,
        cfg.workers,
        cfg.grid_extensions,
        cfg.summary.tolerance_se,
        cfg.action_penalty,
    )
    families: dict[str, FamilyChoice] = {}
    if cfg.response_model != "glm":  # trees where they win on held-out customers
        penalties, families = choose_families(
            data,
            penalties,
            scored,
            judged,
            cfg.summary.forward_weeks,
            cfg.response_model,
            cfg.summary.tolerance_se,
            cfg.lightgbm,
            cfg.seed,
            cfg.workers,
        )
    clock.lap("penalties")
    ones = np.ones(weeks.n)
    (point,) = refit_models(
        data, penalties, [ones], workers=cfg.workers, boost=cfg.lightgbm, seed=cfg.seed
    )
    clock.lap("point_fit")
    # every resample is drawn before any refit, in the same order as one at a time
    resamples = [
        bootstrap_multiplicity(weeks.customer_ids.shape[0], rng)[weeks.customer]
        for _ in range(cfg.ensemble_size)
    ]
    refits = refit_models(
        data,
        penalties,
        resamples,
        warm=point,
        workers=cfg.workers,
        boost=cfg.lightgbm,
        seed=cfg.seed,
    )
    # the point fit and every member tabulated in one pass over the design's blocks
    features = table_features(design) if penalties.rounds else None
    responses, *members = tabulate(
        [point, *refits], design, weeks.week_of_year, identified, features
    )
    clock.lap("ensemble")

    visits = np.bincount(weeks.state, minlength=structure.layout.n_states).astype(np.int64)
    labels = last_state["segment"].astype(str).replace("", "all").to_numpy()
    shares = np.array([np.mean(labels == s) for s in structure.segments])
    shares = shares / shares.sum()
    sizes = []
    for s in structure.segments:
        counts = last_state.loc[labels == s, "company_size"].astype(str).replace("", "unknown")
        freq = counts.value_counts(normalize=True)
        sizes.append({str(k): float(v) for k, v in freq.items()} or {"unknown": 1.0})
    population = population_spec(
        last_state["n_conversions"].to_numpy(np.int64),
        last_state["recency_weeks"].to_numpy(np.float64),
        structure.features.lapse_weeks,
    )
    kinds = {a: "engagement" for a in (*structure.actions.names[1:], "inquiry", "arrival")}
    world = WorldSpec(
        name=structure.name,
        currency=structure.currency,
        channels=structure.features.contact_channels,
        actions=structure.actions,
        margin_rate=structure.margin_rate,
        fatigue_decay_weeks=1.0,
        engagement_decay_weeks=1.0,
        segments=_segments(
            structure, responses, point, data, shares, sizes, visits.astype(np.float64)
        ),
        seasonality=(),
        population=population,
        discrete=structure.layout.spec,
        features=structure.features,
        engagement_kinds=kinds,
        responses=responses,
        logged_practice=practice,
        unsupported_actions=unsupported,
    )
    calibrated = CalibratedWorld(
        world,
        tuple(replace(world, responses=m) for m in members),
        {
            **meta,
            "penalties": {
                "binary": penalties.binary,
                "value_alpha": penalties.value,
                "action": penalties.action,
            },
            # every value tried, its held-out score, and whether the choice is at an edge
            "penalty_choices": {n: c.as_meta() for n, c in penalties.choices.items()},
            # the action effects' factor: every factor's score, each action weighing the same
            "action_penalty_choices": {n: c.as_meta() for n, c in penalties.action_choices.items()},
            "penalty_grid_extensions": cfg.grid_extensions,
            # how this world's optimum is planned (CalibratedWorld.optimum)
            "planning": {"pessimism": cfg.pessimism},
            # the rows the penalties were chosen on: weeks scored forward (0: the seed's
            # validation customers)
            "validation_forward_weeks": window,
            "response_model": cfg.response_model,
            "response_families": {name: f.as_meta() for name, f in families.items()},
            "actions_identified": identified,
            "action_decisions": {a: int(decisions.get(a, 0)) for a in structure.actions.names},
            "unsupported_actions": list(unsupported),
            "propensities": props.source,
            "behaviour_cloning_ece": props.ece,
            "practice": dict(practice.diagnostics) if practice is not None else {},
            "reference_states": {
                name: reference_states(structure.layout, k)["lapsed"]
                for k, name in enumerate(structure.segments)
            },
        },
    )
    clock.lap("point_fit")
    return Estimate(
        calibrated,
        penalties,
        props,
        support,
        identified,
        visits,
        effective_sample_share(weight),
        families,
    )
