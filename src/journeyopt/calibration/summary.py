"""The calibrated world's state summary, chosen by the data.

A few candidate summaries (:class:`~journeyopt.sim.world.DiscreteSpec`: the configured caps,
or each recency, conversions and tenure cap listed in ``calibration.summary``, with each
contact-pattern length and last-action setting of it) are compared by the held-out
log-likelihood of the response models: for each candidate the conversion, engagement and
opt-out models are fitted on the calibration's training customers (the penalty chosen on the
validation customers, as :func:`~journeyopt.calibration.models.choose_penalties` does) and
scored on its validation customers — the same split of customers
(:func:`~journeyopt.calibration.estimate.validation_customers` with the calibration's seed);
with ``calibration.summary.forward_weeks = V`` instead fitted on every customer's weeks before
the last ``V`` fitted weeks and scored on those (forward in time).
Fits and scores weigh each customer-week by the confounding weights the calibration's own
fit uses (:func:`~journeyopt.calibration.estimate.fit_weights`), computed once, on the first
scored candidate's state: weighted log-likelihoods are comparable only under one weighting.
With logged propensities they are the fit's weights whatever the summary; where behaviour
cloning fills in missing propensities, the fit of the chosen summary re-estimates them on its
own state, so its weights differ from the selection's by that estimate's difference.
Scores are per customer, so the standard error of the difference between two candidates is
that of a sum over independent customers. The chosen summary is the smallest (fewest states)
within ``tolerance_se`` standard errors of the best: a larger state must earn its place; among
candidates of the same size the one without purchase-rate terms, then the better score.

The panel must hold what every candidate reads: :func:`summary_panel_config` adds the
pattern's window and the contact actions to the panel's rule features (the one state code,
:mod:`journeyopt.panel.state`, counts them).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import combinations, product
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.calibration.config import CalibrationConfig, SummaryConfig
from journeyopt.calibration.design import Design
from journeyopt.calibration.estimate import fit_weights, validation_customers
from journeyopt.calibration.fit import choose_logistic, fit_logistic
from journeyopt.calibration.models import BINARY_MODELS, FitData, binary_per_customer
from journeyopt.calibration.propensity import (
    effective_sample_share,
    practice_matrix,
    propensities,
)
from journeyopt.calibration.scoring import difference_se, scored_rows
from journeyopt.calibration.weeks import CustomerWeeks, customer_weeks
from journeyopt.panel.config import PanelConfig
from journeyopt.sim.discrete import DiscreteLayout
from journeyopt.sim.optimum import solve_optimum
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.summary_rules import unseen_rules
from journeyopt.sim.world import DiscreteSpec, WorldSpec, gap_within

Float = NDArray[np.float64]


@dataclass(frozen=True)
class SummaryCandidate:
    """One candidate summary and its held-out score.

    Attributes:
        spec: The candidate's caps and components.
        n_states: Its number of discrete states (all segments).
        loglik: Held-out log-likelihood of the conversion, engagement and opt-out models
            summed, nats per validation customer-week (weighted: per unit of the validation
            customer-weeks' summed confounding weight); NaN when not scored (too many states).
        se: Standard error of its difference to the best candidate, same units (0 for the
            best; NaN when not scored).
        chosen: Whether it is the chosen summary.
        seconds: Wall time of its scoring (its customer-weeks, design and the three models'
            penalty paths), seconds; NaN when not scored.
        unseen_rules: The configured contact rules it cannot represent, one line each with
            the reason (:func:`journeyopt.sim.summary_rules.unseen_rules`; empty: every rule).
    """

    spec: DiscreteSpec
    n_states: int
    loglik: float
    se: float
    chosen: bool
    seconds: float = float("nan")
    unseen_rules: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``pattern 4w + last action`` style name of the candidate's optional components."""
        parts = []
        if self.spec.contact_pattern_weeks:
            by = " by channel" if self.spec.contact_pattern_by_channel else ""
            parts.append(f"pattern {self.spec.contact_pattern_weeks}w{by}")
        if self.spec.last_action:
            lasting = self.spec.lasting_actions
            parts.append(f"last lasting action {'/'.join(lasting)}" if lasting else "last action")
        if self.spec.tenure_cap_weeks:
            parts.append(f"tenure {self.spec.tenure_cap_weeks}w")
        if self.spec.gap_cap_weeks:
            width = self.spec.gap_bin_weeks
            bins = f", {width}w bins" if width > 1 else ""
            parts.append(f"gap {self.spec.gap_cap_weeks}w{bins}")
        if self.spec.rate_levels:
            parts.append(f"purchase rate ({self.spec.rate_levels} levels)")
        if self.spec.recency_bins_weeks:
            parts.append(f"recency columns to {self.spec.recency_bins_weeks}w")
        return " + ".join(parts) or "base"


@dataclass(frozen=True)
class SummarySelection:
    """The candidates, their scores and the chosen summary.

    Attributes:
        candidates: Every candidate, in the order tried.
        n_validation_weeks: Validation customer-weeks the scores are per.
        tolerance_se: The tolerance the choice used.
        seconds: Wall time of the whole selection (weights included), seconds.
        weight_ess_share: Kish's effective sample share of the confounding weights the
            candidates were fitted and scored with (1: unweighted).
        forward_weeks: Scored on every customer's last this many weeks (0: on the validation
            customers over the same weeks).
        rules: The configured contact rules, one line (``opt-outs only``: none).
        rules_cost: ``(gap, se)`` when the best scored candidate misses more rules than
            the chosen one: the chosen one's held-out log-likelihood below that best (same
            units as ``loglik``) and the SE of the difference; None otherwise.
    """

    candidates: tuple[SummaryCandidate, ...]
    n_validation_weeks: int
    tolerance_se: float
    seconds: float = float("nan")
    weight_ess_share: float = 1.0
    forward_weeks: int = 0
    rules: str = "opt-outs only"
    rules_cost: tuple[float, float] | None = None

    @property
    def chosen(self) -> SummaryCandidate:
        return next(c for c in self.candidates if c.chosen)

    def as_meta(self) -> dict[str, Any]:
        """A JSON-ready record (the world's ``meta``, read by the card)."""
        return {
            "n_validation_weeks": self.n_validation_weeks,
            "tolerance_se": self.tolerance_se,
            "seconds": self.seconds,
            "weight_ess_share": self.weight_ess_share,
            "forward_weeks": self.forward_weeks,
            "rules": self.rules,
            "rules_cost": list(self.rules_cost) if self.rules_cost is not None else None,
            "candidates": [
                {
                    "label": c.label,
                    "recency_cap_weeks": c.spec.recency_cap_weeks,
                    "conversions_cap": c.spec.conversions_cap,
                    "contact_pattern_weeks": c.spec.contact_pattern_weeks,
                    "contact_pattern_by_channel": c.spec.contact_pattern_by_channel,
                    "last_action": c.spec.last_action,
                    "tenure_cap_weeks": c.spec.tenure_cap_weeks,
                    "gap_cap_weeks": c.spec.gap_cap_weeks,
                    "gap_bin_weeks": c.spec.gap_bin_weeks,
                    "rate_levels": c.spec.rate_levels,
                    "recency_bins_weeks": c.spec.recency_bins_weeks,
                    "lasting_actions": list(c.spec.lasting_actions),
                    "n_states": c.n_states,
                    "loglik": c.loglik,
                    "se": c.se,
                    "chosen": c.chosen,
                    "seconds": c.seconds,
                    "unseen_rules": list(c.unseen_rules),
                }
                for c in self.candidates
            ],
        }


def candidate_specs(
    caps: DiscreteSpec,
    cfg: SummaryConfig,
    history_weeks: int | None = None,
    actions: Sequence[str] = (),
) -> tuple[DiscreteSpec, ...]:
    """The candidate summaries: ``caps`` alone when the selection is off, else ``caps`` with
    every (recency cap, conversions cap, tenure cap, pattern length, pattern by channel or
    not, last action, gap cap, purchase rate, recency columns) of ``cfg`` (an empty cap list:
    ``caps``' own; a gap cap above the candidate's recency cap lowered to it,
    :func:`~journeyopt.sim.world.gap_within`),
    smallest caps first (duplicates dropped; a purchase rate's levels lowered to the candidate's
    conversions cap, off first). With ``cfg.lasting_max_actions`` each candidate with the last
    action is followed by its lasting variants (:func:`lasting_variants` over the contacts of
    the catalogue ``actions``, ``none`` first). With
    ``history_weeks`` each candidate's caps are lowered to the fitted history
    (:meth:`~journeyopt.sim.world.DiscreteSpec.within_history`)."""
    if not cfg.select:
        return (caps,)

    def listed(values: Sequence[int], configured: int) -> list[int]:
        return sorted(set(values)) if values else [configured]

    def gap(cap: int, recency_cap: int) -> tuple[int, int]:
        return gap_within(cap, caps.gap_bin_weeks, recency_cap)

    grid = product(
        listed(cfg.recency_caps, caps.recency_cap_weeks),
        listed(cfg.conversions_caps, caps.conversions_cap),
        listed(cfg.tenure_caps, caps.tenure_cap_weeks),
        sorted(set(cfg.pattern_weeks)),
        sorted(set(cfg.pattern_by_channel)),
        sorted(set(cfg.last_action)),
        listed(cfg.gap_caps, caps.gap_cap_weeks),
        sorted(set(cfg.rate_levels)),  # off first: on a tie in states it wins
        listed(cfg.recency_bins, caps.recency_bins_weeks),
    )
    specs = [
        replace(
            caps,
            recency_cap_weeks=r,
            conversions_cap=k,
            tenure_cap_weeks=t,
            contact_pattern_weeks=w,
            contact_pattern_by_channel=by_channel and w > 0,
            last_action=last,
            gap_cap_weeks=gap(g, r)[0],
            gap_bin_weeks=gap(g, r)[1],
            rate_levels=min(rate, k),
            lasting_actions=caps.lasting_actions if last else (),
            recency_bins_weeks=bins if 0 < bins < r else 0,
        )
        for r, k, t, w, by_channel, last, g, rate, bins in grid
    ]
    specs = [v for s in specs for v in (s, *lasting_variants(s, actions, cfg.lasting_max_actions))]
    if history_weeks is not None:
        specs = [s.within_history(history_weeks)[0] for s in specs]
    return tuple(dict.fromkeys(specs))


def lasting_variants(
    spec: DiscreteSpec, actions: Sequence[str], max_actions: int
) -> tuple[DiscreteSpec, ...]:
    """``spec`` with the last *lasting* action for every set of 1..``max_actions`` of the
    catalogue's contacts (``actions[1:]``; fewer than all of them: all is the plain last
    action), smaller sets first, in catalogue order; none when ``spec`` keeps no last action
    or already names its lasting actions."""
    contacts = tuple(actions[1:])
    if not spec.last_action or spec.lasting_actions or max_actions < 1:
        return ()
    sizes = range(1, min(max_actions, len(contacts) - 1) + 1)
    return tuple(
        replace(spec, lasting_actions=chosen) for m in sizes for chosen in combinations(contacts, m)
    )


def summary_panel_config(
    panel: PanelConfig, specs: Sequence[DiscreteSpec], actions: Sequence[str]
) -> PanelConfig:
    """``panel`` with the rule features every summary of ``specs`` reads: a contact window as
    long as the longest pattern, the contact actions (catalogue order, first) for the last
    action, each action's weeks since its last contact for the last lasting action, the
    previous gap between conversions; ``panel`` itself when none needs them."""
    weeks = max((s.contact_pattern_weeks for s in specs), default=0)
    last = any(s.last_action for s in specs)
    if any(s.gap_cap_weeks for s in specs):
        panel = replace(panel, conversion_gap=True)
    if any(s.lasting_actions for s in specs):
        panel = replace(panel, action_recency=True)
    if not weeks and not last:
        return panel
    windows = list(dict.fromkeys([*panel.rule_windows, *([weeks] if weeks else [])]))
    counted = [*actions[1:], *panel.rule_actions] if last else list(panel.rule_actions)
    return replace(
        panel,
        rule_windows=windows,
        rule_actions=list(dict.fromkeys(counted)),
        recent_contacts=True,
    )


def heldout_loglik(
    weeks: CustomerWeeks,
    design: Design,
    held: NDArray[np.bool_],
    c_grid: Sequence[float],
    weight: Float | None = None,
    validation: NDArray[np.bool_] | None = None,
) -> Float:
    """(K,) held-out log-likelihood of each customer's weeks (nats; 0 for training customers):
    each binary response model fitted on the training customers with the penalty of
    ``c_grid`` that scores best on the validation customers ``held`` (K,); every
    customer-week's term, in the fits and the scores, weighted by ``weight`` (M,) (None:
    unweighted), as the calibration's fit weighs it. ``validation`` (M,): the held-out
    customer-weeks instead of the validation customers' (e.g. every customer's last weeks);
    the rest are fitted."""
    validation = held[weeks.customer] if validation is None else validation
    weight = np.ones(weeks.n) if weight is None else np.asarray(weight, np.float64)
    data = FitData.of(weeks, design, weight)
    train_w = (~validation).astype(np.float64)
    valid_w = validation.astype(np.float64)
    scale = design.penalty_scale()
    per_customer = np.zeros(held.shape[0])
    for name in BINARY_MODELS:
        train = data.binary(name, train_w)
        if train[1].sum() <= 0:
            continue  # never happens in training: the model predicts "never" for every row
        c = choose_logistic(train, data.binary(name, valid_w), list(c_grid), scale).value
        fit = fit_logistic(*train, c, scale=scale)
        per_customer += binary_per_customer(data, name, fit.eta(data.cells.matrix), validation)
    return per_customer


def select_summary(
    fit_panel: pd.DataFrame,
    specs: Sequence[DiscreteSpec],
    cfg: CalibrationConfig,
    channels: Sequence[str],
    actions: Sequence[str],
    segments: Sequence[str],
    list_divisors: Float | None,
    silent_channels: tuple[int, ...],
    origin_week: int = 0,
    rules: ContactRules | None = None,
) -> SummarySelection:
    """Score every candidate of ``specs`` on the calibration's validation customers and choose
    (see the module docstring); with ``rules``, among the candidates that represent every rule
    (:func:`~journeyopt.sim.summary_rules.unseen_rules`) when any does, else among those that
    miss the fewest.

    Args:
        fit_panel: The calibration weeks' panel rows (built with :func:`summary_panel_config`).
        specs: The candidates (:func:`candidate_specs`).
        cfg: The calibration settings (seed, validation share, penalties, the selection's).
        channels, actions, segments, list_divisors: As for
            :func:`~journeyopt.calibration.weeks.customer_weeks`.
        silent_channels: Channels no action uses (:attr:`Design.silent_channels`).
        origin_week: The practice calendar's week 0 (the first logged decision's panel week),
            as for the fit's propensities.
        rules: The business's contact rules (None: opt-outs only, which every summary
            represents).
    """
    started = time.perf_counter()
    scores: list[Float | None] = []
    sizes: list[int] = []
    seconds: dict[int, float] = {}
    n_valid = 0
    per_week = 1.0
    weight: Float | None = None
    for k, spec in enumerate(specs):
        layout = DiscreteLayout(spec, len(segments), len(channels), len(actions))
        sizes.append(layout.n_states)
        if layout.n_states > cfg.summary.max_states:
            scores.append(None)
            continue
        start = time.perf_counter()
        weeks = customer_weeks(fit_panel, layout, channels, actions, segments, list_divisors)
        rng = np.random.default_rng(cfg.seed)  # the estimate's split: same seed, same draw
        held = validation_customers(weeks.customer_ids.shape[0], cfg.validation_share, rng)
        design = Design(layout, len(actions), cfg.seasonal, silent_channels)
        if weight is None:  # the fit's weights, once: one weighting for every candidate
            cycles = cfg.cycles()
            matrix = practice_matrix(design, weeks, cycles, origin_week)
            weight = fit_weights(weeks, propensities(weeks, matrix, held[weeks.customer]), cfg)
        rows, judged = scored_rows(weeks, held, cfg.summary.forward_weeks)
        n_valid = int(rows.sum())
        scores.append(heldout_loglik(weeks, design, held, cfg.c_grid, weight, rows)[judged])
        per_week = max(float(weight[rows].sum()), 1e-12)
        seconds[k] = time.perf_counter() - start
    scored = [k for k, s in enumerate(scores) if s is not None]
    if not scored:
        raise ValueError("every candidate summary has more than calibration.summary.max_states")
    totals = {k: float(np.sum(scores[k])) for k in scored}  # type: ignore[arg-type]
    unseen = [unseen_rules(rules, spec) if rules is not None else () for spec in specs]
    fewest = min(len(unseen[k]) for k in scored)  # 0: some candidate sees every rule
    pool = [k for k in scored if len(unseen[k]) == fewest]
    best = max(pool, key=lambda k: totals[k])
    se = {}
    for k in scored:
        se[k] = difference_se(scores[best] - scores[k])  # type: ignore[operator]
    within = [k for k in pool if totals[best] - totals[k] <= cfg.summary.tolerance_se * se[k]]
    # equal sizes: the purchase-rate terms off first, then the better score (e.g. one lasting
    # action against another: the same states, no simpler one)
    chosen = min(within, key=lambda k: (sizes[k], specs[k].rate_levels > 0, -totals[k], k))
    top = max(scored, key=lambda k: totals[k])
    cost = None
    if top not in pool:  # the rules ruled out the best candidate: what that cost
        gap = difference_se(scores[top] - scores[chosen])  # type: ignore[operator]
        cost = ((totals[top] - totals[chosen]) / per_week, gap / per_week)
    candidates = tuple(
        SummaryCandidate(
            spec,
            sizes[k],
            totals[k] / per_week if k in totals else float("nan"),
            se[k] / per_week if k in se else float("nan"),
            k == chosen,
            seconds.get(k, float("nan")),
            unseen[k],
        )
        for k, spec in enumerate(specs)
    )
    return SummarySelection(
        candidates,
        n_valid,
        cfg.summary.tolerance_se,
        time.perf_counter() - started,
        effective_sample_share(weight) if weight is not None else 1.0,
        cfg.summary.forward_weeks,
        rules.summary() if rules is not None else "opt-outs only",
        cost,
    )


def selection_meta(
    selection: SummarySelection | None,
    world: WorldSpec,
    horizon_weeks: int,
    gamma: float,
    rules: ContactRules | None = None,
    dp_seconds: float = float("nan"),
) -> dict[str, Any]:
    """The card's record of the state summary: the candidates (when chosen by the data), the
    world's state count and the time of one exact DP solve over ``horizon_weeks`` (seconds;
    NaN when the world cannot value contacts), planned under the represented ``rules``;
    ``dp_seconds`` (not NaN): the time of that solve, made already (no second solve)."""
    layout = DiscreteLayout.of(world)
    seconds = dp_seconds
    if seconds != seconds and (world.responses is None or world.responses.actions_identified):
        start = time.perf_counter()
        solve_optimum(world, horizon_weeks, gamma, rules=rules)
        seconds = time.perf_counter() - start
    record: dict[str, Any] = selection.as_meta() if selection is not None else {}
    return {
        **record,
        "n_states": layout.n_states,
        "n_actions": world.actions.n_actions,
        "dp_horizon_weeks": horizon_weeks,
        "dp_seconds": round(seconds, 3),
    }


def summary_lines(meta: Mapping[str, Any]) -> list[str]:
    """The card's section on the state summary (none when it was not chosen by the data):
    its candidates, its state count and one exact DP solve's time; the scoring's timings stay
    in ``calibration.json``, so the same config and seed give the same card up to that one
    solve time."""
    record = meta.get("summary_selection")
    if not record:
        return []
    lines = [
        "## State summary, chosen by the data",
        "",
        f"Held-out log-likelihood of the conversion, engagement and opt-out models (nats per "
        f"customer-week over {record.get('n_validation_weeks', 0):,} validation customer-weeks"
        + (
            f", every customer's last {record['forward_weeks']} fitted weeks, the models fitted "
            "on the weeks before"
            if record.get("forward_weeks")
            else ""
        )
        + "; "
        f"SE: of the difference to the best; fits and scores weighted as the calibration's fit, "
        f"effective sample share {record.get('weight_ess_share', 1.0):.2f}). Chosen: the "
        f"smallest within {record.get('tolerance_se', 0):g} SE of the best"
        + (
            f", among the candidates that miss the fewest contact rules ({record['rules']})"
            if record.get("rules", "opt-outs only") != "opt-outs only"
            else ""
        )
        + ".",
        "",
        "| candidate | caps (recency / conversions / tenure) | states | held-out log-lik. | SE "
        "| chosen | rules it cannot represent |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in record.get("candidates", []):
        loglik = c["loglik"]
        scored = loglik == loglik  # NaN: too many states, not scored
        caps = (
            f"{c.get('recency_cap_weeks', '')} / {c.get('conversions_cap', '')} / "
            f"{c.get('tenure_cap_weeks', '')}"
        )
        lines.append(
            f"| {c['label']} | {caps} | {c['n_states']:,} | "
            + (f"{loglik:.5f} | {c['se']:.5f}" if scored else "not scored (max_states) | ")
            + f" | {'**yes**' if c['chosen'] else ''} | "
            + ("; ".join(u.split(":")[0] for u in c.get("unseen_rules", [])) or "none")
            + " |"
        )
    if cost := record.get("rules_cost"):
        lines += [
            "",
            f"The best candidate misses contact rules the chosen one represents; the chosen "
            f"one trails it by {cost[0]:.5f} nats per customer-week (SE {cost[1]:.5f}), the "
            "price of planning under the rules.",
        ]
    seconds = float(record.get("dp_seconds", float("nan")))
    solve = (
        f"; planning its exact optimum (the DP, with one backup per ensemble member when "
        f"pessimistic) over {record['dp_horizon_weeks']} weeks took {seconds:.1f} s "
        "(how far the exact optimum scales: `docs/calibration.md`)"
        if np.isfinite(seconds)
        else ""
    )
    lines += [
        "",
        f"The world has {record['n_states']:,} discrete states x {record['n_actions']} "
        f"actions{solve}. The times of each candidate's scoring and of the whole choice are in "
        "`calibration.json` (`summary_selection`: `seconds`), not on the card: they change from "
        "run to run, the rest of the card does not.",
        "",
    ]
    return lines
