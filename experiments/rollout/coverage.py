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
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from journeyopt.tracking.promotion import bias_bound

HORIZON, GAMMA = 26, 0.995
ANNUITY = (1 - GAMMA**HORIZON) / (1 - GAMMA)


def run_rows(folder: Path) -> list[dict[str, object]]:
    """One row per value test of the run in ``folder`` (its ``summary.json`` and ``gate.csv``)."""
    summary = json.loads((folder / "summary.json").read_text())
    gate = pd.read_csv(folder / "gate.csv")
    settings = summary.get("settings", {})
    truth = summary.get("realised_true/vs_previous", np.nan)
    weeks = pd.read_csv(folder / "weeks.csv")
    canary = weeks[weeks["stage"] == "canary"]
    gaps = (canary["true_gap_canary"] - canary["true_gap_previous"]).to_numpy(float)
    truth_half = 1.96 * gaps.std(ddof=1) / np.sqrt(len(gaps)) if len(gaps) > 1 else np.nan
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
                "new_interval": how,
                "summary_run": summary.get("summary_run_id", ""),
            }
        )
    return rows


def markdown(table: pd.DataFrame) -> str:
    """The rows as the README's Markdown table (per customer-week)."""

    def interval(low: float, high: float, covers: bool) -> str:
        return f"{low:+.3f} to {high:+.3f} ({'yes' if covers else '**no**'})"

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, help="CSV of the rows")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    args = parser.parse_args()
    table = pd.DataFrame([r for folder in args.runs for r in run_rows(folder)])
    if args.out:
        table.to_csv(args.out, index=False)
    if args.markdown:
        print(markdown(table))
    pd.set_option("display.width", 250)
    print(table.drop(columns=["overrides", "summary_run"]).round(3).to_string(index=False))
    for test, part in table.groupby("test"):
        print(
            f"{test}: old interval covered {int(part['old_covers'].sum())} of {len(part)}, "
            f"new {int(part['new_covers'].sum())} of {len(part)}"
        )


if __name__ == "__main__":
    main()
