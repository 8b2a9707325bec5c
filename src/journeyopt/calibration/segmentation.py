"""The calibrated world's segments, chosen by the data: the customers file's attribute, or
equal-count tiers of the customers' mean conversion value (``calibration.value_tiers``;
:func:`journeyopt.panel.segments.segment_by_value`).

A customer type the customers file does not record (a business's bulk buyers, its bargain
hunters) often shows in what customers spend per order; a segment is static, so tiers of it
keep the world's summary, dynamics and exact optimum as they are. Both segmentations are
scored like the state summaries (:mod:`journeyopt.calibration.summary`): the conversion,
engagement and opt-out models fitted on the calibration's training customers and scored on its
validation customers (the same split), every customer-week weighted by the fit's confounding
weights computed once, on the customers file's segments (weighted log-likelihoods compare only
under one weighting). The tiers replace the customers file's segments only when their
held-out log-likelihood is better by more than ``calibration.summary.tolerance_se`` standard
errors of the difference (over validation customers): a new segmentation must earn its place.
With ``calibration.summary.forward_weeks`` both are scored forward in time, as the summaries
are (every customer's last weeks, fitted on the weeks before).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.calibration.config import CalibrationConfig
from journeyopt.calibration.design import Design
from journeyopt.calibration.estimate import fit_weights, validation_customers
from journeyopt.calibration.propensity import practice_matrix, propensities
from journeyopt.calibration.scoring import difference_se, scored_rows
from journeyopt.calibration.summary import heldout_loglik
from journeyopt.calibration.weeks import customer_weeks, segment_names
from journeyopt.panel.segments import segment_by_value
from journeyopt.sim.discrete import DiscreteLayout
from journeyopt.sim.world import DiscreteSpec

Float = NDArray[np.float64]


@dataclass(frozen=True)
class SegmentationChoice:
    """The scores of the two segmentations and the one kept.

    Attributes:
        tiers: Value tiers kept (0: the customers file's segments).
        cuts: Their cut points, currency (empty with the customers file's).
        loglik: Held-out log-likelihood per unit validation weight (nats per customer-week) of
            the customers file's segments (key 0) and of the tiers (key ``n``).
        se: Standard error of the tiers' difference to the customers file's, same units.
        seconds: Wall time of the choice, seconds.
    """

    tiers: int
    cuts: tuple[float, ...]
    loglik: dict[int, float]
    se: float
    seconds: float

    def as_meta(self) -> dict[str, Any]:
        """A JSON-ready record (the world's ``meta``, read by the card)."""
        return {
            "n": self.tiers,
            "cuts": list(self.cuts),
            "loglik": {str(k): v for k, v in self.loglik.items()},
            "se": self.se,
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
        panel: The whole panel (every week; its ``segment`` the customers file's).
        fit_weeks: The calibration weeks ``[first, end)``: the tiers read the weeks before
            ``end`` (never the hold-out), both segmentations are scored on these weeks.
        spec: The summary both are scored with.
        cfg: The calibration settings (``value_tiers`` >= 2; seed, validation share, penalties,
            ``summary.tolerance_se``).
        channels, actions, list_divisors: As for
            :func:`~journeyopt.calibration.weeks.customer_weeks`.
        silent_channels: Channels no action uses (:attr:`Design.silent_channels`).
        origin_week: The practice calendar's week 0, as for the fit's propensities.
    """
    started = time.perf_counter()
    first, end = fit_weeks
    tiered, cuts = segment_by_value(panel, end, cfg.value_tiers)
    scores: dict[int, Float] = {}
    weight: Float | None = None
    per_week = 1.0
    for n, variant in ((0, panel), (cfg.value_tiers, tiered)):
        rows = variant[(variant["week"] >= first) & (variant["week"] < end)]
        segments = segment_names(rows)
        layout = DiscreteLayout(spec, len(segments), len(channels), len(actions))
        weeks = customer_weeks(rows, layout, channels, actions, segments, list_divisors)
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
        scores[n] = heldout_loglik(weeks, design, held, cfg.c_grid, weight, scored)[judged]
    diff = scores[cfg.value_tiers] - scores[0]
    se = difference_se(diff)
    gain = float(diff.sum())
    keep = cfg.value_tiers if gain > cfg.summary.tolerance_se * se else 0
    choice = SegmentationChoice(
        tiers=keep,
        cuts=tuple(float(c) for c in cuts) if keep else (),
        loglik={n: float(s.sum()) / per_week for n, s in scores.items()},
        se=se / per_week,
        seconds=time.perf_counter() - started,
    )
    return (tiered if keep else panel), choice
