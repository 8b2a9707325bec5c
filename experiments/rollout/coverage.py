"""Coverage of the gate's predicted uplift over closed-loop runs (README.md, "Coverage over the
runs"): per run, the truth (the canary's true effect against the previous champion over the
canary weeks, the loop's twin) against the gate's simulation and OPE intervals, the old one
(sampling noise only) and the new one (with the world's own error, ``gate.model_error``).

    .venv/bin/python experiments/rollout/coverage.py work/rollout_cl/bad_s0 work/s8-gate/...

Runs made before ``gate.model_error`` existed recorded only the sampling interval; their new
interval is reconstructed from their ``gate.csv`` with the same formula
(:func:`journeyopt.tracking.promotion.bias_bound`, the model check's bound of the logging
policy's row): exact for the simulation (those runs had no ensemble members, so no members'
SD); for OPE the bias is taken on the two ``lt_dr`` values, since the value-to-go part was not
recorded (it is most of the value with a one-week window: a slight over-statement), marked
``reconstructed``. Values per customer-week (the gate's value over the 26-week discounted
horizon divided by its discount sum); ``truth_half``: the 95 % half-width of the truth over
the canary weeks, weeks taken as independent.

The gate predicts the first ``HORIZON`` weeks, discounted; the canary lasted 6 to 52 weeks, so
``truth`` (the plain mean over every canary week) is not on the prediction's scale when the
canary lasted longer (the coworking canaries' effect grows over the year: good seed 0 +13.09
over 46 weeks, +9.72 over its first 26) or shorter. ``truth_h`` is the truth on the gate's
scale: the canary's true effect over its first ``min(HORIZON, canary_weeks)`` weeks, weighted
``GAMMA**t`` as the gate's value is, per customer-week (``truth_h_weeks`` says how many weeks;
fewer than ``HORIZON`` when the canary was rolled back earlier: the rest of the predicted
horizon was never served), with ``truth_h_half`` its 95 % half-width (weeks as independent);
``*_covers_h`` count against it.

With ``--regate DIR`` (the gate run again on each loop's stored world by ``regate.py``, into
``DIR/<run>``), the columns ``this_*`` hold that gate's interval, whose bias bound also counts
the per-action checks (docs/ope.md, *The bias bound*), and ``prev_*`` the same gate's interval
with the logging policy's bound alone (exact for OPE too: on the value-to-go parts).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from journeyopt.tracking.promotion import bias_bound, model_error_interval

HORIZON, GAMMA = 26, 0.995
ANNUITY = (1 - GAMMA**HORIZON) / (1 - GAMMA)


def gate_horizon_truth(gaps: np.ndarray) -> tuple[float, float, int]:
    """``(mean, 95 % half-width, weeks)`` of the weekly true effects ``gaps`` (canary weeks,
    per customer-week) over the gate's horizon: the first ``min(HORIZON, len(gaps))`` weeks,
    week ``t`` weighted ``GAMMA**t`` as in the gate's discounted value; the half-width takes
    the weeks as independent (``1.96 sqrt(sum w_t^2 s^2) / sum w_t``, ``s`` their SD)."""
    n = min(HORIZON, len(gaps))
    if n == 0:
        return np.nan, np.nan, 0
    w = GAMMA ** np.arange(n)
    mean = float(np.sum(w * gaps[:n]) / w.sum())
    sd = float(gaps[:n].std(ddof=1)) if n > 1 else np.nan
    return mean, 1.96 * sd * float(np.sqrt(np.sum(w**2))) / float(w.sum()), n


def regate_columns(
    regated: Path, test: str, truth: float, truth_h: float = np.nan
) -> dict[str, object]:
    """The regated gate's ``test`` row (``regated/gate.csv``) per customer-week: its interval
    (``this_*``), the interval with the logging policy's bound alone (``prev_*``), the two bias
    parts and each policy's per-action bound ``rho``, whether the intervals cover ``truth``
    and (``*_covers_h``) the truth on the gate's horizon ``truth_h``; empty when not
    regated."""
    if not (regated / "gate.csv").exists():
        return {}
    row = pd.read_csv(regated / "gate.csv").set_index("key").loc[test]
    prev = model_error_interval(
        float(row["improvement"]), float(row["sampling_low"]), float(row["sampling_high"]),
        float(row["members_sd"]), float(row["bias_logging"]), 0.95,
    )  # fmt: skip
    this = (float(row["lower_bound"]) / ANNUITY, float(row["ci_high"]) / ANNUITY)
    return {
        "regate_estimate": float(row["improvement"]) / ANNUITY,
        "prev_low": prev[0] / ANNUITY,
        "prev_high": prev[1] / ANNUITY,
        "prev_covers": bool(prev[0] / ANNUITY <= truth <= prev[1] / ANNUITY),
        "bias_logging": float(row["bias_logging"]) / ANNUITY,
        "bias_actions": float(row["bias_actions"]) / ANNUITY,
        "rho_candidate": float(row["candidate_error"]),
        "rho_baseline": float(row["champion_error"]),
        "this_low": this[0],
        "this_high": this[1],
        "this_covers": bool(this[0] <= truth <= this[1]),
        "prev_covers_h": bool(prev[0] / ANNUITY <= truth_h <= prev[1] / ANNUITY),
        "this_covers_h": bool(this[0] <= truth_h <= this[1]),
        "this_passed": bool(row["passed"]),
        "this_inconclusive": bool(row["inconclusive"]),
    }


def run_rows(folder: Path, regate: Path | None = None) -> list[dict[str, object]]:
    """One row per value test of the run in ``folder`` (its ``summary.json`` and ``gate.csv``),
    with the regated gate's columns when ``regate`` holds the run (:func:`regate_columns`)."""
    summary = json.loads((folder / "summary.json").read_text())
    gate = pd.read_csv(folder / "gate.csv")
    settings = summary.get("settings", {})
    truth = summary.get("realised_true/vs_previous", np.nan)
    weeks = pd.read_csv(folder / "weeks.csv")
    canary = weeks[weeks["stage"] == "canary"]
    gaps = (canary["true_gap_canary"] - canary["true_gap_previous"]).to_numpy(float)
    truth_half = 1.96 * gaps.std(ddof=1) / np.sqrt(len(gaps)) if len(gaps) > 1 else np.nan
    truth_h, truth_h_half, truth_h_weeks = gate_horizon_truth(gaps)
    check = gate[gate["key"] == "model_check"].iloc[0]
    bound = max(abs(float(check["lower_bound"])), abs(float(check["ci_high"])))
    rows: list[dict[str, object]] = []
    for test in ("simulation", "ope"):
        p = f"predicted/{test}"
        if p not in summary:
            continue
        estimate = summary[p]
        new_run = f"{p}_sampling_low" in summary
        if new_run:
            old = (summary[f"{p}_sampling_low"], summary[f"{p}_sampling_high"])
            new = (summary[f"{p}_low"], summary[f"{p}_high"])
            members_sd, bias = summary[f"{p}_members_sd"], summary[f"{p}_bias"]
            how = "recorded"
        else:
            old = (summary[f"{p}_low"], summary[f"{p}_high"])
            row = gate[gate["key"] == test].iloc[0]
            bias = bias_bound(bound, float(row["candidate"]), float(row["champion"])) / ANNUITY
            new = (old[0] - bias, old[1] + bias)
            members_sd = np.nan
            how = "reconstructed" if test == "ope" else "reconstructed (exact)"
        rows.append(
            {
                "run": folder.name,
                "world": settings.get("world", "coworking"),
                "scenario": settings.get("scenario", ""),
                "seed": settings.get("seed", ""),
                "overrides": " ".join(settings.get("overrides", [])),
                "test": test,
                "truth": truth,
                "truth_half": truth_half,
                "canary_weeks": len(gaps),
                "truth_h": truth_h,
                "truth_h_half": truth_h_half,
                "truth_h_weeks": truth_h_weeks,
                "estimate": estimate,
                "old_low": old[0],
                "old_high": old[1],
                "old_covers": bool(old[0] <= truth <= old[1]),
                "members_sd": members_sd,
                "bias": bias,
                "model_check_bound": bound,
                "new_low": new[0],
                "new_high": new[1],
                "new_covers": bool(new[0] <= truth <= new[1]),
                "new_covers_h": bool(new[0] <= truth_h <= new[1]),
                "new_interval": how,
                "summary_run": summary.get("summary_run_id", ""),
                **(regate_columns(regate / folder.name, test, truth, truth_h) if regate else {}),
            }
        )
    return rows


def interval(low: float, high: float, covers: bool) -> str:
    """An interval as the README's tables write it, with whether it covers the truth."""
    return f"{low:+.3f} to {high:+.3f} ({'yes' if covers else '**no**'})"


def markdown(table: pd.DataFrame) -> str:
    """The rows as the README's Markdown table (per customer-week)."""
    lines = [
        "| run | test | truth (± 95 %) | estimate | old interval (sampling) | members SD | bias "
        "(model check bound) | new interval | new from |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        sd = f"{r.members_sd:.3f}" if np.isfinite(r.members_sd) else "–"
        lines.append(
            f"| {r.run} | {r.test} | {r.truth:+.3f} ± {r.truth_half:.3f} | {r.estimate:+.3f} | "
            f"{interval(r.old_low, r.old_high, r.old_covers)} | {sd} | ±{r.bias:.3f} "
            f"({100 * r.model_check_bound:.1f} %) | {interval(r.new_low, r.new_high, r.new_covers)}"
            f" | {r.new_interval} |"
        )
    return "\n".join(lines)


def markdown_regate(table: pd.DataFrame) -> str:
    """The regated gates as the README's Markdown table (per customer-week)."""
    lines = [
        "| run | test | truth (± 95 %) | truth, gate's horizon (weeks) | estimate "
        "| bias: logging / per action (ρ cand., base) | logging bound alone "
        "| with the per-action bound | covers the gate-horizon truth | value test |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.dropna(subset=["this_low"]).itertuples():
        verdict = "pass" if r.this_passed else ("inconclusive" if r.this_inconclusive else "fail")
        lines.append(
            f"| {r.run} | {r.test} | {r.truth:+.3f} ± {r.truth_half:.3f} | "
            f"{r.truth_h:+.3f} ± {r.truth_h_half:.3f} ({r.truth_h_weeks}) | "
            f"{r.regate_estimate:+.3f} | ±{r.bias_logging:.3f} / ±{r.bias_actions:.3f} "
            f"({100 * r.rho_candidate:.1f} %, {100 * r.rho_baseline:.1f} %) | "
            f"{interval(r.prev_low, r.prev_high, r.prev_covers)} | "
            f"{interval(r.this_low, r.this_high, r.this_covers)} | "
            f"{'yes' if r.this_covers_h else '**no**'} | {verdict} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, help="CSV of the rows")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument("--regate", type=Path, help="regate.py's outputs, one folder per run")
    args = parser.parse_args()
    table = pd.DataFrame([r for folder in args.runs for r in run_rows(folder, args.regate)])
    if args.out:
        table.to_csv(args.out, index=False)
    if args.markdown:
        print(markdown(table))
        if "this_covers" in table:
            print(markdown_regate(table))
    pd.set_option("display.width", 250)
    print(table.drop(columns=["overrides", "summary_run"]).round(3).to_string(index=False))
    for test, part in table.groupby("test"):
        print(
            f"{test}: old interval covered {int(part['old_covers'].sum())} of {len(part)}, "
            f"new {int(part['new_covers'].sum())} of {len(part)}"
        )
        if "this_covers" in part:
            done = part.dropna(subset=["this_low"])
            print(
                f"{test}, regated ({len(done)} runs): logging bound alone "
                f"{int(done['prev_covers'].sum())}, with the per-action bound "
                f"{int(done['this_covers'].sum())} of {len(done)}; against the truth on the "
                f"gate's horizon {int(done['prev_covers_h'].sum())} and "
                f"{int(done['this_covers_h'].sum())} of {len(done)}"
            )


if __name__ == "__main__":
    main()
