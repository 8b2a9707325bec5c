"""The fidelity card of a calibrated world: ``card.md`` (Markdown tables) and ``card.png``
(hold-out weekly curves and one-step calibration curves), plus the CSV tables behind them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from journeyopt.calibration.calibrated import CalibratedWorld
from journeyopt.calibration.estimate import Estimate
from journeyopt.calibration.extrapolation import extrapolation_lines, extrapolation_reasons
from journeyopt.calibration.fidelity import (
    SD_CONFIDENCE,
    CardFidelity,
    plot_simulated_weeks,
    tracking_figure,
)
from journeyopt.calibration.holdout import METRICS, HoldoutReport
from journeyopt.calibration.models import family_lines, penalty_edge_lines
from journeyopt.calibration.policy_fidelity import PolicyFidelity
from journeyopt.calibration.rules_check import rules_lines, unseen_rule_reasons
from journeyopt.calibration.summary import summary_lines
from journeyopt.sim.practice import LoggedPractice
from journeyopt.sim.world import WorldSpec

LOW_WEIGHT_ESS_SHARE = 0.3
"""Below this effective-sample-size share the card warns that a few weeks carry the fit."""


TOTAL_COLUMNS: tuple[str, ...] = ("metric", "actual", "simulated", "rel_error")
"""Columns of the card's hold-out totals table."""

MAX_HOLDOUT_TOTAL_ERROR = 0.10
"""Largest relative error of the hold-out's conversion and revenue totals the verdict accepts."""
MAX_POLICY_MARE = 0.10
"""Largest mean absolute relative error of policy values (against a known truth) accepted."""
MIN_POLICY_SPEARMAN = 0.9
"""Smallest rank correlation of policy values (against a known truth) accepted."""
MIN_SIM_TO_REAL = 0.95
"""Smallest share of the true optimum the calibrated optimum must reach in the truth."""


def verdict_reasons(
    identified: bool,
    holdout: HoldoutReport | None,
    policies: PolicyFidelity | None,
    fidelity: CardFidelity | None = None,
    rules: Sequence[str] = (),
) -> list[str]:
    """Why this world is not good enough to choose contact policies with (empty: it is).

    A world fails when contact effects are not identified; when per customer it predicts the
    hold-out conversion weeks or revenue no better (higher MAE) than a naive reference (zero,
    each customer's own past rate, BG/NBD for purchase logs); when its hold-out conversion or
    revenue total is off by more than :data:`MAX_HOLDOUT_TOTAL_ERROR`; and, against a known
    truth, when its policy values miss :data:`MAX_POLICY_MARE`, :data:`MIN_POLICY_SPEARMAN` or
    :data:`MIN_SIM_TO_REAL`; and by ``fidelity``'s checks (:meth:`CardFidelity.reasons`: a
    material action's response miscalibrated beyond ``calibration.card.action_tolerance``,
    a weekly tracking MAPE above the best reference's, an ensemble spread above
    ``calibration.card.max_ensemble_sd``); and by ``rules``: the contact rules its state
    summary does not represent (:func:`journeyopt.calibration.rules_check.unseen_rule_reasons`),
    which its plans ignore while serving applies them, and an optimum resting on states the
    logs barely hold (:func:`journeyopt.calibration.extrapolation.extrapolation_reasons`).
    """
    reasons = []
    if not identified:
        reasons.append("the logs do not identify what a contact does")
    if holdout is not None and holdout.per_customer is not None:
        table = holdout.per_customer.set_index("predictor")
        world = table.loc["this world"]
        for metric, unit in (("conversions", "conversion weeks"), ("revenue", "revenue")):
            beaten = [
                name
                for name, row in table.iterrows()
                if name != "this world"
                and np.isfinite(row[f"{metric}_mae"])
                and row[f"{metric}_mae"] <= world[f"{metric}_mae"]
            ]
            if beaten:
                reasons.append(
                    f"per customer it predicts hold-out {unit} no better than "
                    f"{' or '.join(map(str, beaten))} (MAE {world[f'{metric}_mae']:.4g})"
                )
    if holdout is not None:
        overall = holdout.totals[holdout.totals["grouping"] == "all"]
        errors = dict(
            zip(overall["metric"], overall["rel_error"].to_numpy(np.float64), strict=True)
        )
        for metric in ("conversions", "revenue"):
            if metric in errors:
                error = float(errors[metric])
                if not abs(error) <= MAX_HOLDOUT_TOTAL_ERROR:
                    reasons.append(f"its hold-out {metric} total is off by {_pct(error)}")
    if policies is not None:
        if not policies.mare <= MAX_POLICY_MARE:
            reasons.append(f"policy values are off by {100 * policies.mare:.1f} % on average")
        if not policies.spearman >= MIN_POLICY_SPEARMAN:
            reasons.append(f"it ranks policies with Spearman {policies.spearman:.2f}")
        if not policies.sim_to_real >= MIN_SIM_TO_REAL:
            reasons.append(
                f"its optimum reaches {100 * policies.sim_to_real:.1f} % of the true optimum"
            )
    if fidelity is not None:
        reasons += fidelity.reasons()
    return [*reasons, *rules]


def verdict_line(
    identified: bool,
    holdout: HoldoutReport | None,
    policies: PolicyFidelity | None,
    fidelity: CardFidelity | None = None,
    rules: Sequence[str] = (),
) -> str:
    """The card's one verdict line (see :func:`verdict_reasons`)."""
    reasons = verdict_reasons(identified, holdout, policies, fidelity, rules)
    if not reasons:
        return "**Verdict: good enough to choose contact policies with** (every check below)."
    return "**Verdict: NOT good enough to choose contact policies with**: " + "; ".join(reasons)


def planning_line(calibrated: CalibratedWorld) -> str:
    """How the world's exact optimum is planned (:meth:`CalibratedWorld.optimum`)."""
    if calibrated.pessimistic:
        return (
            f"- the world's optimum plans pessimistically: each (state, action) valued "
            f"{calibrated.pessimism:g} SD of the {len(calibrated.members)} members' "
            "disagreement below the world's value (`calibration.pessimism`)"
        )
    reason = "`calibration.pessimism` 0" if calibrated.pessimism <= 0 else "fewer than 2 members"
    return f"- the world's optimum plans on the point estimate alone ({reason})"


def starting_population_line(world: WorldSpec) -> str:
    """The card's line on where the world's simulations start (its starting base)."""
    base = world.base
    if base is None:
        return "- starting population: synthetic (no base of customers at an as-of date)"
    opted = base.state.opted_out
    share = float(opted.any(axis=1).mean()) if opted.shape[1] else 0.0
    return (
        f"- starting population: the logs' {base.n_customers:,} customers as of "
        f"{base.as_of[:10]} ({share:.1%} opted out of at least one channel), plus "
        f"{base.arrivals_per_week:,.1f} new customers a week (their last "
        f"{base.arrival_weeks} weeks)"
    )


def weights_line(ess_share: float) -> str:
    """The card's line on the confounding weights (their effective sample size share)."""
    if ess_share >= 1.0 - 1e-12:
        return "- confounding weights: none (every customer-week counts the same)"
    line = f"- confounding weights: effective sample size {ess_share:.0%} of the customer-weeks"
    if ess_share < LOW_WEIGHT_ESS_SHARE:
        line += (
            " — a few rarely explored weeks carry much of the fit of the conversion, "
            "engagement and opt-out models, whose sampling error is then larger than the "
            "number of customer-weeks suggests (`calibration.weighting=none` conditions on "
            "the state only)"
        )
    return line


def markdown_table(frame: pd.DataFrame, floatfmt: str = "{:,.4g}") -> str:
    """A GitHub Markdown table of ``frame`` (numbers formatted with ``floatfmt``)."""

    def cell(v: object) -> str:
        if isinstance(v, float | np.floating):
            return "–" if not np.isfinite(v) else floatfmt.format(v)
        return str(v)

    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _pct(x: float) -> str:
    return f"{100 * x:+.1f} %" if np.isfinite(x) else "–"


def practice_lines(practice: LoggedPractice | None) -> list[str]:
    """The card's section on today's practice estimated from the logs (the default baseline
    and control group of a calibrated world): its held-out calibration."""
    if practice is None:
        return []
    d = practice.diagnostics
    nan = float("nan")
    lines = [
        "## Today's practice, estimated from the logs",
        "",
        "Behaviour cloning over the discrete state, week of year and weeks of the campaign "
        f"cycles {list(practice.cycles)} (`practice=logged`: the baseline and control group). "
        f"Held out: {int(d.get('n_validation', 0)):,} customer-weeks of customers the fit did "
        "not see.",
        "",
        "| held-out check | estimated practice | constant rates |",
        "|---|---|---|",
        f"| log-loss, nats per customer-week | {d.get('log_loss', nan):.4f} "
        f"| {d.get('constant_log_loss', nan):.4f} |",
        f"| most probable action = logged action | {d.get('agreement', nan):.1%} "
        f"| {d.get('constant_agreement', nan):.1%} |",
        f"| expected calibration error (ECE) | {d.get('ece', nan):.4f} | |",
    ]
    if "propensity_gap" in d:
        lines.append(f"| mean abs. gap to the logged propensities | {d['propensity_gap']:.4f} | |")
    return [*lines, ""]


def value_tiers_lines(meta: Mapping[str, Any], currency: str) -> list[str]:
    """The card's line on the segments' choice between the customers file's and value tiers
    (``calibration.value_tiers``; none when not asked for)."""
    record = meta.get("value_tiers")
    if not record or "segmentation" in meta:  # behaviour types too: segmentation_lines
        return []
    scores = record["loglik"]
    tiers = max(int(k) for k in scores)
    score = (
        f"held-out log-likelihood {scores[str(tiers)]:.5f} against the customers file's "
        f"{scores['0']:.5f} nats per customer-week, SE of the difference {record['se']:.5f}"
    )
    if record["n"]:
        cuts = ", ".join(f"{c:.2f}" for c in record["cuts"])
        return [
            f"- segments: {tiers} value tiers (equal-count tiers of the customers' mean "
            f"conversion value, cut at {cuts} {currency} from the values at the end of the "
            f"calibration weeks; each week's tier read from that week's own value), "
            f"chosen over the customers file's: {score}"
        ]
    return [f"- segments: the customers file's, kept over {tiers} value tiers: {score}"]


def segmentation_lines(meta: Mapping[str, Any], currency: str) -> list[str]:
    """The card's lines on the segments' choice among the customers file's, value tiers and
    behaviour types (``calibration.behaviour_types``; none when not asked for)."""
    record = meta.get("segmentation")
    if not record:
        return []
    kept = record["kept"]
    scores = ", ".join(
        f"{key} {value:.5f}" + (f" (SE {record['se'][key]:.5f})" if record["se"][key] else "")
        for key, value in record["loglik"].items()
    )
    lines = [
        f"- segments: {kept} kept (each candidate in turn must beat the one kept before it by "
        f"more than `summary.tolerance_se` SE); held-out log-likelihood, nats per "
        f"customer-week: {scores}"
    ]
    for key, centres in record["centres"].items():
        shown = "; ".join(
            f"{c['weight']:.0%}: {c['mean_value']:.2f} {currency}, "
            f"{c['engagement_rate']:.3f} engagements per contact, "
            f"{c['conversion_rate']:.3f} conversions per week"
            for c in centres
        )
        lines.append(f"  - {key} (centres, customers with a conversion): {shown}")
    return lines


def caps_clipped_lines(meta: Mapping[str, Any]) -> list[str]:
    """One line per state cap lowered to the weeks of history the fit sees
    (:meth:`journeyopt.sim.world.DiscreteSpec.within_history`); none when no cap was."""
    clipped = dict(meta.get("caps_clipped", {}))
    return [
        f"- `calibration.caps.{name}` {c['configured']} exceeds the {meta['history_weeks']} "
        f"weeks of history before the last fitted week: lowered to {c['used']} (the weeks "
        "above it never occur in the fitted weeks)"
        for name, c in clipped.items()
    ]


def penalty_split(meta: Mapping[str, Any]) -> str:
    """Which rows the penalties were chosen on (``validation_forward_weeks`` of the world's
    meta; absent in worlds calibrated before it was recorded)."""
    weeks = meta.get("validation_forward_weeks")
    if weeks is None:
        return "split not recorded"
    if weeks:
        return f"scored on every customer's last {weeks} fitted weeks, fitted on the weeks before"
    return "scored on the seed's validation customers over the fitted weeks"


def action_penalty_text(meta: Mapping[str, Any]) -> str:
    """The card's words on the factors chosen for the action effects' penalty
    (``calibration.action_penalty``): each binary model's factor and every factor's held-out
    score, each action weighing the same; nothing when the factor was not chosen (one
    value)."""
    choices = meta.get("action_penalty_choices", {})
    if not choices:
        return ""

    def one(name: str, choice: Mapping[str, Any]) -> str:
        scores = ", ".join(f"{f} {s:.5f}" for f, s in choice["scores"].items())
        return f"{name} {float(choice['chosen']):g} ({scores})" if scores else f"{name} -"

    parts = "; ".join(one(name, c) for name, c in choices.items())
    return (
        f", action effects' penalty factor (held-out log-lik. with each action weighing the "
        f"same) {parts}"
    )


def card_markdown(
    est: Estimate,
    holdout: HoldoutReport | None,
    policies: PolicyFidelity | None,
    fidelity: CardFidelity | None = None,
) -> str:
    """The card's Markdown."""
    world = est.calibrated.world
    meta = est.calibrated.meta
    lines = [
        f"# Calibrated world `{world.name}`: fidelity card",
        "",
        verdict_line(
            est.identified,
            holdout,
            policies,
            fidelity,
            [*unseen_rule_reasons(meta), *extrapolation_reasons(meta)],
        ),
        "",
        "- data fingerprint (SHA-256 of the canonical events and contacts): "
        f"`{meta['data_fingerprint']}`",
        f"- fitted on weeks {meta['fit_weeks'][0]}..{meta['fit_weeks'][1]}: "
        f"{meta['fit_customer_weeks']:,} customer-weeks of {meta['fit_customers']:,} customers"
        + (
            f" (a random sample of at most {meta['max_customers']:,} customers of the logs)"
            if meta.get("max_customers")
            else ""
        ),
        f"- segments: {', '.join(world.segment_names)}; actions: {', '.join(world.actions.names)}",
        *value_tiers_lines(meta, world.currency),
        *segmentation_lines(meta, world.currency),
        f"- ensemble: {len(est.calibrated.members)} bootstrap members (resamples of customers)",
        planning_line(est.calibrated),
        *caps_clipped_lines(meta),
        starting_population_line(world),
        f"- penalties chosen by held-out log-likelihood: logistic C {est.penalties.binary}, "
        f"value alpha {est.penalties.value:g}{action_penalty_text(meta)} ({penalty_split(meta)})",
        *penalty_edge_lines(
            meta.get("penalty_choices", {}), int(meta.get("penalty_grid_extensions", 0))
        ),
        *family_lines(est.families),
        f"- propensities: {est.propensities.source}"
        + (
            f" (behaviour cloning, held-out ECE {est.propensities.ece:.4f})"
            if est.propensities.source in ("estimated", "mixed")
            else ""
        ),
        weights_line(est.weight_ess_share),
        "",
        *practice_lines(world.logged_practice),
        *summary_lines(meta),
        *rules_lines(meta),
        *extrapolation_lines(meta),
    ]
    if not est.identified:
        lines += [
            "**Action effects are NOT identified**: the logs hold no (or too few) contacts. The "
            "world simulates the organic dynamics only; training or optimising a contact "
            "policy on it is refused.",
            "",
        ]
    flagged = est.support[est.support["flagged"] & (est.support["action"] != "none")]
    lines += ["## Positivity (support of segment x lifecycle x action)", ""]
    if world.unsupported_actions:
        decisions = dict(est.calibrated.meta.get("action_decisions", {}))
        listed = ", ".join(
            f"{a} ({decisions.get(a, 0)} decisions)" for a in world.unsupported_actions
        )
        lines += [
            f"**Unsupported actions** (fewer logged decisions than "
            f"`calibration.min_action_decisions`): {listed}. The world cannot value them: "
            "they are unavailable to every customer (masks, the optimum, serving: reason "
            "`unsupported`).",
            "",
        ]
    if flagged.empty:
        lines.append("Every segment x lifecycle x contact action has enough support.")
    else:
        lines += [
            f"{len(flagged)} cells have fewer customer-weeks than the threshold; their action "
            "effects rest on the model's pooling across segments, not on data:",
            "",
            markdown_table(flagged[["segment", "lifecycle", "action", "weeks", "conversions"]]),
        ]
    lines.append("")
    if holdout is not None:
        overall = holdout.totals[holdout.totals["grouping"] == "all"]
        lines += [
            f"## Hold-out: {holdout.weekly['week'].nunique()} weeks, "
            f"{holdout.customers:,} customers",
            "",
            "Simulated from the customers' state at the split with the logged contacts replayed "
            "(mean of the runs) against what happened. Conversions, opt-outs and engagements "
            "count customer-weeks with at least one.",
            "",
            markdown_table(with_totals_spread(overall[list(TOTAL_COLUMNS)], fidelity)),
            "",
        ]
        lines += _reference_lines(holdout)
        if holdout.per_customer is not None:
            lines += [
                "Per customer (what decides targeting): error of each customer's hold-out "
                "conversion weeks and revenue, this world (mean of the runs) against naive "
                "references:",
                "",
                markdown_table(with_customer_spread(holdout.per_customer, fidelity)),
                "",
            ]
        for grouping in ("segment", "lifecycle", "action"):
            part = holdout.totals[holdout.totals["grouping"] == grouping]
            wide = part.pivot_table(index="group", columns="metric", values="rel_error", sort=False)
            counts = part[part["metric"] == "conversions"].set_index("group")["actual"]
            wide.insert(0, "actual_conversions", counts.reindex(wide.index))
            lines += [f"Relative error by {grouping}:", "", markdown_table(wide.reset_index()), ""]
        lines += [
            "One-step calibration on the hold-out weeks:",
            "",
            markdown_table(holdout.one_step),
            "",
        ]
    if fidelity is not None:
        lines += fidelity_lines(fidelity)
    if policies is not None:
        lines += [
            "## Policy-value fidelity against the ground truth",
            "",
            f"- mean absolute relative error: **{100 * policies.mare:.2f} %** "
            f"(target <= {100 * MAX_POLICY_MARE:g} %)",
            f"- Spearman rank correlation: **{policies.spearman:.3f}** "
            f"(target >= {MIN_POLICY_SPEARMAN:g})",
            "- sim-to-real: the calibrated world's optimum reaches "
            f"**{100 * policies.sim_to_real:.1f} %** of the true optimum in the true world "
            f"(target >= {100 * MIN_SIM_TO_REAL:g} %)",
            "",
            markdown_table(policies.table),
            "",
        ]
    return "\n".join(lines) + "\n"


def _reference_lines(holdout: HoldoutReport) -> list[str]:
    """The BG/NBD side-by-side of a purchase-only hold-out (empty without a reference)."""
    ref = holdout.reference
    if ref is None:
        return []
    totals = holdout.totals
    row = totals[(totals["grouping"] == "all") & (totals["metric"] == "conversions")].iloc[0]
    actual, simulated = float(row["actual"]), float(row["simulated"])
    p = ref.params
    return [
        "Reference model: BG/NBD (Fader, Hardie & Lee 2005) fitted by maximum likelihood on the "
        f"same calibration weeks ({ref.customers:,} customers with a purchase; r {p.r:.3f}, "
        f"alpha {p.alpha:.3f} weeks, a {p.a:.3f}, b {p.b:.3f}), forecasting each customer's "
        "hold-out purchase weeks given their history:",
        "",
        "| hold-out purchase weeks | total | rel. error |",
        "|---|---|---|",
        f"| actual | {actual:,.0f} | |",
        f"| this world (simulated) | {simulated:,.1f} | {_pct(simulated / actual - 1)} |",
        f"| BG/NBD | {ref.forecast:,.1f} | {_pct(ref.forecast / actual - 1)} |",
        "",
    ]


def card_figure(holdout: HoldoutReport | None) -> plt.Figure:
    """Weekly actual vs simulated totals (top) and one-step calibration curves (bottom)."""
    fig, axes = plt.subplots(2, 4, figsize=(16, 7), squeeze=False)
    if holdout is not None:
        overall = holdout.weekly[holdout.weekly["grouping"] == "all"]
        for ax, metric in zip(axes[0], METRICS, strict=True):
            part = overall[overall["metric"] == metric].sort_values("week")
            ax.plot(part["week"], part["actual"], "k.-", label="actual")
            plot_simulated_weeks(
                ax, metric, part["week"], part["simulated"], part["simulated_sd"], "simulated"
            )
            ax.set_xlabel("week")
        axes[0][0].legend()
        for ax, model in zip(axes[1], ("convert", "engage", "optout"), strict=False):
            part = holdout.curves[holdout.curves["model"] == model]
            ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
            ax.scatter(
                part["predicted"],
                part["observed"],
                s=10 + 40 * np.sqrt(part["weight"] / part["weight"].max()),
            )
            top = (
                float(max(part["predicted"].max(), part["observed"].max(), 1e-3)) * 1.1
                if not part.empty
                else 1.0
            )
            ax.set_xlim(0, top)
            ax.set_ylim(0, top)
            ax.set_title(f"one-step {model}: observed vs predicted")
            ax.set_xlabel("predicted probability")
    axes[1][3].axis("off")
    fig.tight_layout()
    return fig


def write_card(
    folder: Path,
    est: Estimate,
    holdout: HoldoutReport | None,
    policies: PolicyFidelity | None,
    fidelity: CardFidelity | None = None,
) -> list[Path]:
    """Write ``card.md``, ``card.png`` and the tables behind them; returns the paths."""
    paths = [folder / "card.md", folder / "card.png"]
    paths[0].write_text(card_markdown(est, holdout, policies, fidelity))
    fig = card_figure(holdout)
    fig.savefig(paths[1], dpi=100)
    plt.close(fig)
    if holdout is not None:
        for name in ("weekly", "totals", "curves", "one_step"):
            path = folder / f"holdout_{name}.csv"
            getattr(holdout, name).to_csv(path, index=False)
            paths.append(path)
        if holdout.per_customer is not None:
            paths.append(folder / "holdout_per_customer.csv")
            holdout.per_customer.to_csv(paths[-1], index=False)
    if policies is not None:
        paths.append(folder / "policy_values.csv")
        policies.table.to_csv(paths[-1], index=False)
    if fidelity is not None:
        paths += write_fidelity(folder, fidelity)
    return paths


def write_fidelity(folder: Path, fidelity: CardFidelity) -> list[Path]:
    """Write the by-action calibration, the weekly tracking curve (CSV and PNG), its MAPE
    and the ensemble spread behind the card; returns the paths."""
    tables = {
        "holdout_by_action.csv": fidelity.by_action,
        "holdout_tracking.csv": fidelity.tracking,
        "holdout_tracking_mape.csv": fidelity.mape,
    }
    if fidelity.spread is not None:
        tables["ensemble_spread.csv"] = fidelity.spread
    paths = []
    for name, table in tables.items():
        paths.append(folder / name)
        table.to_csv(paths[-1], index=False)
    fig = tracking_figure(fidelity.tracking)
    paths.append(folder / "holdout_tracking.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def _spread_of(fidelity: CardFidelity | None, figure: str) -> tuple[float, float, float]:
    """``(SD, min, max)`` of a card figure across the ensemble members (NaN without)."""
    nan = float("nan")
    if fidelity is None or fidelity.spread is None:
        return nan, nan, nan
    spread = fidelity.spread
    rows = np.flatnonzero(spread["figure"].astype(str).to_numpy() == figure)
    if not rows.size:
        return nan, nan, nan
    row = spread.iloc[int(rows[0])]
    return float(row["members_sd"]), float(row["members_min"]), float(row["members_max"])


def with_totals_spread(overall: pd.DataFrame, fidelity: CardFidelity | None) -> pd.DataFrame:
    """The hold-out totals table with the members' SD and min-max of each relative error
    (unchanged without an ensemble spread)."""
    if fidelity is None or fidelity.spread is None:
        return overall
    spread = [_spread_of(fidelity, f"hold-out {m} total, rel. error") for m in overall["metric"]]
    return overall.assign(
        members_sd=[s[0] for s in spread],
        members_min=[s[1] for s in spread],
        members_max=[s[2] for s in spread],
    )


def with_customer_spread(table: pd.DataFrame, fidelity: CardFidelity | None) -> pd.DataFrame:
    """The per-customer error table with a row of the members' SD of this world's errors
    (unchanged without an ensemble spread)."""
    if fidelity is None or fidelity.spread is None:
        return table
    row: dict[str, object] = {"predictor": "this world: members' SD"}
    for column in table.columns[1:]:
        row[column] = _spread_of(fidelity, f"per customer {str(column).replace('_', ' ')}")[0]
    return pd.concat([table, pd.DataFrame([row])], ignore_index=True)


def _sd(value: float, sd: float, fmt: str = "{:+.1f}") -> str:
    """``value`` with ``± sd`` across the ensemble members, both in percent."""
    text = fmt.format(100 * value) if np.isfinite(value) else "–"
    return text + (f" ± {100 * sd:.1f}" if np.isfinite(sd) else "")


def fidelity_lines(fidelity: CardFidelity) -> list[str]:
    """The card's sections on calibration by action, the weekly tracking curve and the
    ensemble spread (:mod:`journeyopt.calibration.fidelity`)."""
    s = fidelity.settings
    acts = fidelity.by_action
    table = pd.DataFrame(
        {
            "action": acts["action"],
            "response": acts["response"],
            "decisions": acts["decisions"],
            "share": [f"{100 * v:.1f} %" for v in acts["share"]],
            "realised": acts["realised"],
            "predicted": acts["predicted"],
            "gap % (± members SD)": [
                _sd(g, sd) for g, sd in zip(acts["gap"], acts["members_sd"], strict=True)
            ],
            f"{100 * s.confidence:g} % CI": [
                f"{100 * lo:+.1f} to {100 * hi:+.1f}" if np.isfinite(lo) else "–"
                for lo, hi in zip(acts["gap_low"], acts["gap_high"], strict=True)
            ],
            "verdict": [
                "FLAGGED" if f else ("ok" if m else "not material")
                for f, m in zip(acts["flagged"], acts["material"], strict=True)
            ],
        }
    )
    mape = fidelity.mape
    mape_table = pd.DataFrame({"predictor": mape["predictor"]})
    for metric in ("conversions", "revenue"):
        sd = mape.get(f"{metric}_mape_sd", pd.Series(np.nan, index=mape.index))
        mape_table[f"{metric} MAPE % (± members SD)"] = [
            _sd(v, d, "{:.1f}") for v, d in zip(mape[f"{metric}_mape"], sd, strict=True)
        ]
    lines = [
        "## Calibration by action on the hold-out's logged decisions",
        "",
        "Each action's expected response in the world, given each logged decision's state, "
        "against what happened (one week: at least one conversion, list value, an opt-out), "
        f"both weighted by 1 / propensity ({fidelity.propensity_source} propensities), "
        f"with a {100 * s.confidence:g} % bootstrap interval over customers of the relative "
        f"gap. A material action (at least {100 * s.min_action_share:g} % of the decisions) "
        f"is flagged when the whole interval lies beyond ±{100 * s.action_tolerance:g} %"
        " (`calibration.card`).",
        "",
        markdown_table(table),
        "",
        "## Weekly tracking of the hold-out",
        "",
        "Mean absolute percentage error of the weekly conversion and revenue totals "
        "(`holdout_tracking.csv`, `holdout_tracking.png`): this world against the references "
        f"(its MAPE may exceed the best reference's by {100 * s.mape_slack:g} points).",
        "",
        markdown_table(mape_table),
        "",
    ]
    if fidelity.spread is not None:
        spread = fidelity.spread
        lines += [
            "## Spread across the ensemble members",
            "",
            "Every figure above recomputed with each bootstrap member (the same customers "
            "and random numbers) (`ensemble_spread.csv`). An SD of a few members is itself "
            f"uncertain: `members_sd_low` to `members_sd_high` is the {100 * SD_CONFIDENCE:g} % "
            "interval of the spread it estimates (chi-square with members - 1 degrees of "
            "freedom: with 5 members 0.6 to 2.9 times the SD measured). The verdict refuses a "
            "world whose hold-out conversion or revenue total is shown to spread by more than "
            f"{100 * s.max_ensemble_sd:g} points: the whole interval above it "
            "(`calibration.card.max_ensemble_sd`; more members, `calibration.ensemble_size`, "
            "narrow the interval).",
            "",
            markdown_table(spread),
            "",
        ]
    return lines
