"""The calibrated world's segments, chosen by the data: the customers file's attribute,
equal-count tiers of the customers' mean conversion value (``calibration.value_tiers``;
:func:`journeyopt.panel.segments.segment_by_value`) or customer types read from behaviour
(``calibration.behaviour_types``; :class:`journeyopt.panel.segments.BehaviourTypes`).

A customer type the customers file does not record (a business's bulk buyers, its bargain
hunters) often shows in what customers spend per order, how often they engage and how often
they buy; a segment is static in the world, so tiers or types keep the world's summary,
dynamics and exact optimum as they are. The tiers' cut points and the types' mixture are fitted
on the weeks before the hold-out; the tier or type of every customer-week is read from that
week's own state (point-in-time, as the scorer reads them), so it may change from week to week
as a customer's history grows, and the calibrated world starts each customer in the tier or type
of the week it starts them in. Every candidate is scored like the state
summaries (:mod:`journeyopt.calibration.summary`): the conversion, engagement and opt-out models
fitted and scored on the calibration's split (:func:`~journeyopt.calibration.scoring.scored_rows`),
every customer-week weighted by the fit's confounding weights computed once, on the customers
file's segments (weighted log-likelihoods compare only under one weighting). Stepwise: the
customers file's segments, then the value tiers, then each number of types in increasing order;
a candidate replaces the one kept before it only when its held-out log-likelihood is better by
more than ``calibration.summary.tolerance_se`` standard errors of the difference (over the
scored customers): a new segmentation must earn its place. Scored forward in time
(``calibration.summary.forward_weeks``), the tiers and the types' mixture are read from the
weeks before the scored ones; the kept one is then read again from every calibration week.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.calibration.config import CalibrationConfig
from journeyopt.calibration.design import Design
from journeyopt.calibration.estimate import fit_weights, validation_customers
from journeyopt.calibration.propensity import practice_matrix, propensities
from journeyopt.calibration.scoring import difference_se, scored_rows, window_weeks
from journeyopt.calibration.summary import heldout_loglik
from journeyopt.calibration.weeks import customer_weeks, segment_names
from journeyopt.panel.segments import (
    BehaviourTypes,
    behaviour_types_before,
    row_tiers,
    row_types,
    segment_by_types,
    segment_by_value,
    value_cuts_before,
)
from journeyopt.sim.discrete import DiscreteLayout
from journeyopt.sim.world import DiscreteSpec

Float = NDArray[np.float64]


FILE = "customers file"
"""Key of the customers file's segments among the candidates."""


def value_key(n: int) -> str:
    """Key of ``n`` value tiers among the candidates."""
    return f"value tiers {n}"


def types_key(n: int) -> str:
    """Key of ``n`` behaviour types among the candidates."""
    return f"behaviour types {n}"


@dataclass(frozen=True)
class SegmentationChoice:
    """The scores of the candidate segmentations and the one kept.

    Attributes:
        kept: Key of the kept candidate (:data:`FILE`, :func:`value_key`, :func:`types_key`).
        tiers: Value tiers kept (0: not value tiers).
        cuts: Their cut points, currency (empty unless value tiers are kept).
        types: The behaviour types kept (None: not behaviour types).
        loglik: Held-out log-likelihood per unit validation weight (nats per customer-week) of
            each candidate, by key, in the order scored.
        se: Standard error of each candidate's difference to the segmentation it was compared
            with (the one kept before it), same units; the customers file's is 0.
        centres: Each behaviour-type candidate's type centres in the scores' own units
            (:meth:`BehaviourTypes.centres_in_units`), by key.
        seconds: Wall time of the choice, seconds.
    """

    kept: str
    tiers: int
    cuts: tuple[float, ...]
    types: BehaviourTypes | None
    loglik: dict[str, float]
    se: dict[str, float]
    centres: dict[str, list[dict[str, float]]]
    seconds: float

    def as_meta(self) -> dict[str, Any]:
        """The value tiers' JSON-ready record (the world's ``meta["value_tiers"]``, read by the
        card): ``n`` tiers kept, their cuts, the scores of the customers file's (key ``"0"``)
        and of the tiers (key ``"<n>"``), the SE of their difference."""
        n = next(int(k.rsplit(" ", 1)[1]) for k in self.loglik if k.startswith("value tiers"))
        return {
            "n": self.tiers,
            "cuts": list(self.cuts),
            "loglik": {"0": self.loglik[FILE], str(n): self.loglik[value_key(n)]},
            "se": self.se[value_key(n)],
            "seconds": self.seconds,
        }

    def segmentation_meta(self) -> dict[str, Any]:
        """The whole choice as a JSON-ready record (``meta["segmentation"]``)."""
        return {
            "kept": self.kept,
            "loglik": dict(self.loglik),
            "se": dict(self.se),
            "centres": dict(self.centres),
            "value_cuts": list(self.cuts),
            "types": self.types.as_dict() if self.types is not None else None,
            "seconds": self.seconds,
        }


def choose_segments(
    panel: pd.DataFrame,
    fit_weeks: tuple[int, int],
    spec: DiscreteSpec,
    cfg: CalibrationConfig,
    channels: Sequence[str],
    actions: Sequence[str],
    list_divisors: Float | None,
    silent_channels: tuple[int, ...],
    origin_week: int = 0,
) -> tuple[pd.DataFrame, SegmentationChoice]:
    """The panel with the segments the data choose (see the module docstring).

    Args:
        panel: The whole panel (every week; its ``segment`` the customers file's; with
            ``cfg.behaviour_types`` its lifetime counts, ``panel.lifetime_counts``).
        fit_weeks: The calibration weeks ``[first, end)``: the tiers and types read the weeks
            before ``end`` (never the hold-out), every candidate is scored on these weeks.
        spec: The summary the candidates are scored with.
        cfg: The calibration settings (``value_tiers`` and/or ``behaviour_types``; seed,
            validation share, penalties, ``summary.tolerance_se``).
        channels, actions, list_divisors: As for
            :func:`~journeyopt.calibration.weeks.customer_weeks`.
        silent_channels: Channels no action uses (:attr:`Design.silent_channels`).
        origin_week: The practice calendar's week 0, as for the fit's propensities.
    """
    started = time.perf_counter()
    first, end = fit_weeks
    fit = panel.loc[(panel["week"] >= first) & (panel["week"] < end)].copy()
    fitted = int(fit["week"].max()) - int(fit["week"].min()) + 1 if len(fit) else 0
    # scored forward in time: the labels scored are read before the scored weeks; read at the
    # end they would carry those weeks' own outcomes
    read_at = end - window_weeks(fitted, cfg.summary.forward_weeks)
    candidates = _candidates(panel, read_at, cfg)
    own = fit["segment"].to_numpy()
    scores: dict[str, Float] = {}
    weight: Float | None = None
    per_week = 1.0
    for key in candidates.keys:  # one fit-week copy, its segment set in turn
        if key == FILE:
            fit["segment"] = own
        elif key in candidates.types:  # each row's type from its own state
            fit["segment"] = row_types(fit, candidates.types[key])
        else:  # each row's tier from its own state
            fit["segment"] = row_tiers(fit, np.asarray(candidates.cuts[key], np.float64))
        segments = segment_names(fit)
        layout = DiscreteLayout(spec, len(segments), len(channels), len(actions))
        weeks = customer_weeks(fit, layout, channels, actions, segments, list_divisors)
        rng = np.random.default_rng(cfg.seed)  # the estimate's split: same seed, same draw
        held = validation_customers(weeks.customer_ids.shape[0], cfg.validation_share, rng)
        design = Design(layout, len(actions), cfg.seasonal, silent_channels)
        if weight is None:  # the fit's weights on the customers file's segments, once
            matrix = practice_matrix(design, weeks, cfg.cycles(), origin_week)
            weight = fit_weights(weeks, propensities(weeks, matrix, held[weeks.customer]), cfg)
        if weeks.n != weight.shape[0]:  # the same rows, only their segment differs
            raise ValueError("the segmentations give different customer-weeks")
        scored, judged = scored_rows(weeks, held, cfg.summary.forward_weeks)
        per_week = max(float(weight[scored].sum()), 1e-12)
        scores[key] = heldout_loglik(weeks, design, held, cfg.c_grid, weight, scored)[judged]
        del weeks
    del fit
    kept = FILE
    se: dict[str, float] = {FILE: 0.0}
    for key in candidates.keys[1:]:  # each must beat the one kept before it
        diff = scores[key] - scores[kept]
        se[key] = difference_se(diff) / per_week
        if float(diff.sum()) / per_week > cfg.summary.tolerance_se * se[key]:
            kept = key
    choice = SegmentationChoice(
        kept=kept,
        tiers=cfg.value_tiers if kept.startswith("value tiers") else 0,
        cuts=candidates.cuts.get(kept, ()),
        types=candidates.types.get(kept),
        loglik={key: float(s.sum()) / per_week for key, s in scores.items()},
        se=se,
        centres={key: t.centres_in_units() for key, t in candidates.types.items()},
        seconds=time.perf_counter() - started,
    )
    if kept == FILE:
        return panel, choice
    # the kept segmentation read again from every calibration week
    if choice.types is not None:
        types = choice.types
        if read_at != end:
            types = behaviour_types_before(panel, end, types.n_types, cfg.seed)
        return segment_by_types(panel, types), replace(choice, types=types)
    tiered, cuts = segment_by_value(panel, end, cfg.value_tiers)
    return tiered, replace(choice, cuts=tuple(float(c) for c in cuts))


@dataclass(frozen=True)
class _Candidates:
    """The candidate segmentations fitted on the weeks before one week: the value tiers' cut
    points and the behaviour types, by key (each labels a panel row from its own state)."""

    keys: tuple[str, ...]
    cuts: dict[str, tuple[float, ...]]
    types: dict[str, BehaviourTypes]


def _candidates(panel: pd.DataFrame, end: int, cfg: CalibrationConfig) -> _Candidates:
    """The candidates of ``cfg`` fitted on the weeks before ``end``: the customers file's, the
    value tiers, the behaviour types in increasing number."""
    keys = [FILE]
    cuts: dict[str, tuple[float, ...]] = {}
    types: dict[str, BehaviourTypes] = {}
    if cfg.value_tiers:
        key = value_key(cfg.value_tiers)
        keys.append(key)  # labelled row by row (row_tiers), not per customer
        cuts[key] = tuple(float(c) for c in value_cuts_before(panel, end, cfg.value_tiers))
    for k in sorted(cfg.behaviour_types):
        key = types_key(k)
        keys.append(key)  # labelled row by row (row_types), not per customer
        types[key] = behaviour_types_before(panel, end, k, cfg.seed)
    return _Candidates(tuple(keys), cuts, types)
