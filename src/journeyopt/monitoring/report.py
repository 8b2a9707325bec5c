"""The uplift and drift reports: a CSV per table, a Markdown page and a PNG chart."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from journeyopt.calibration.card import markdown_table
from journeyopt.monitoring.drift import DriftFindings

OUTCOME_LABELS: Mapping[str, str] = {
    "conversions": "conversions",
    "revenue": "revenue (currency)",
    "margin": "margin net of contact cost (currency)",
    "opt_outs": "opt-outs",
}


def uplift_figure(table: pd.DataFrame) -> Figure:
    """One panel per outcome: uplift per customer-week with its CI, overall and by group."""
    outcomes = list(dict.fromkeys(table["outcome"]))
    fig, axes = plt.subplots(1, len(outcomes), figsize=(4.2 * len(outcomes), 4.5))
    for ax, outcome in zip(np.atleast_1d(axes), outcomes, strict=True):
        rows = table[(table["outcome"] == outcome) & table["uplift"].notna()]
        labels = [
            f"{g}: {v}" if g != "all" else "all"
            for g, v in zip(rows.grouping, rows.group, strict=True)
        ]
        y = np.arange(len(rows))[::-1]
        low = rows["uplift"] - rows["ci_low"]
        high = rows["ci_high"] - rows["uplift"]
        ax.errorbar(rows["uplift"], y, xerr=[low, high], fmt="o", capsize=3)
        ax.axvline(0.0, color="grey", linewidth=1)
        ax.set_yticks(y, labels)
        ax.set_title(OUTCOME_LABELS.get(outcome, outcome), fontsize=9)
        ax.set_xlabel("uplift per customer-week (95 % CI)")
        ax.grid(alpha=0.3)
    fig.suptitle("Champion (treatment) minus holdout (control)")
    fig.tight_layout()
    return fig


def uplift_markdown(
    table: pd.DataFrame, facts: Mapping[str, object], prediction: Mapping[str, float]
) -> str:
    """The uplift report: what was measured, the overall table, the comparison with the
    prediction and the breakdown by segment."""
    lines = ["# Real uplift of the champion over the holdout", ""]
    lines += [f"- **{k}**: {v}" for k, v in facts.items()]
    overall = table[table["grouping"] == "all"].drop(columns=["grouping", "group"])
    lines += ["", "## Overall (per customer-week)", "", markdown_table(overall), ""]
    if prediction:
        lines += ["## Realised vs predicted at promotion (margin per customer-week)", ""]
        lines += [f"- {k}: {v:.4g}" for k, v in prediction.items()]
        lines += [""]
    lines += ["## By segment", "", markdown_table(table[table["grouping"] != "all"]), ""]
    lines += [
        "Uplift = treatment minus control per customer-week, adjusted for each customer's "
        "pre-period outcome; NaN where a group has too few customers. See docs/monitoring.md.",
        "",
    ]
    return "\n".join(lines)


def write_uplift_report(
    out: Path,
    table: pd.DataFrame,
    customers: pd.DataFrame,
    facts: Mapping[str, object],
    prediction: Mapping[str, float],
) -> list[Path]:
    """Write ``uplift.csv``, ``customers.csv``, ``uplift.md`` and ``uplift.png``; returns
    them."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "uplift.csv", out / "customers.csv", out / "uplift.md", out / "uplift.png"]
    table.to_csv(paths[0], index=False)
    customers.to_csv(paths[1], index=False)
    paths[2].write_text(uplift_markdown(table, facts, prediction), encoding="utf-8")
    fig = uplift_figure(table)
    fig.savefig(paths[3], dpi=110, bbox_inches="tight")
    plt.close(fig)
    return paths


def drift_figure(findings: DriftFindings) -> Figure:
    """Left: PSI of each feature (all customers) against the threshold line; right: observed
    / predicted response rate per action in each window."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    overall = findings.population[findings.population["grouping"] == "all"]
    colours = np.where(overall["drifted"], "tab:red", "tab:blue")
    left.barh(overall["feature"], overall["psi"], color=colours)
    left.set_xlabel("PSI, current vs reference (red: drifted)")
    left.invert_yaxis()
    left.grid(alpha=0.3)
    responses = findings.responses
    if responses.empty:
        right.text(0.5, 0.5, "no world given: response drift not checked", ha="center")
        right.set_axis_off()
    else:
        for window, marker in (("reference", "o"), ("current", "s")):
            rows = responses[responses["window"] == window]
            labels = rows["model"] + ": " + rows["action"]
            right.scatter(rows["ratio"], labels, marker=marker, label=window)
        right.axvline(1.0, color="grey", linewidth=1)
        right.set_xlabel("observed / predicted rate")
        right.legend()
        right.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def drift_markdown(findings: DriftFindings, facts: Mapping[str, object]) -> str:
    """The drift report: the verdict with its reasons, then the three checks."""
    verdict = "**drift detected**" if findings.drift_detected else "no drift detected"
    lines = ["# Drift report", "", f"Verdict: {verdict}", ""]
    lines += [f"- {reason}" for reason in findings.reasons] + [""]
    lines += [f"- **{k}**: {v}" for k, v in facts.items()] + [""]
    overall = findings.population[findings.population["grouping"] == "all"]
    lines += ["## Population (all customers)", "", markdown_table(overall), ""]
    lines += ["## Action mix", "", markdown_table(findings.actions), ""]
    if not findings.responses.empty:
        lines += ["## Responses (one-step predictions)", ""]
        lines += [markdown_table(findings.responses), ""]
    lines += ["Per-segment population rows are in population.csv. See docs/monitoring.md.", ""]
    return "\n".join(lines)


def write_drift_report(
    out: Path, findings: DriftFindings, facts: Mapping[str, object], verdict: Mapping[str, object]
) -> list[Path]:
    """Write ``population.csv``, ``actions.csv``, ``responses.csv``, ``drift.json``,
    ``drift.md`` and ``drift.png``; returns them."""
    out.mkdir(parents=True, exist_ok=True)
    names = ("population.csv", "actions.csv", "responses.csv", "drift.json", "drift.md")
    paths = [out / n for n in (*names, "drift.png")]
    findings.population.to_csv(paths[0], index=False)
    findings.actions.to_csv(paths[1], index=False)
    findings.responses.to_csv(paths[2], index=False)
    paths[3].write_text(json.dumps(verdict, indent=2, default=str) + "\n", encoding="utf-8")
    paths[4].write_text(drift_markdown(findings, facts), encoding="utf-8")
    fig = drift_figure(findings)
    fig.savefig(paths[5], dpi=110, bbox_inches="tight")
    plt.close(fig)
    return paths
