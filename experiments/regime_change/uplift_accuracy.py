"""Uplift estimates vs the true ITT uplift, week by week, on a finished arm of run.py.

    .venv/bin/python experiments/regime_change/uplift_accuracy.py work/regime_change/frozen \
        --weeks-csv work/regime_change/weeks.csv

Reads the arm's raw logs, decision log and ``weeks.csv`` (whose ``true_itt_window`` is the
truth from the loop's counterfactual twin), builds the weekly panel once (point-in-time: a
week's rows do not depend on later weeks), and for every served week estimates the margin
uplift per customer-week over the last ``--window`` weeks exactly as the cycle's uplift step
does (:func:`journeyopt.monitoring.exposure.customer_outcomes`,
:func:`journeyopt.monitoring.uplift.regression_uplift`), with three covariates: the
pre-treatment covariate (the weeks before each customer was first scored, the uplift step's
since this study), the weeks just before the window (the step's earlier choice), and none.
Writes ``uplift_accuracy.csv`` and prints error and 95 % CI coverage per variant.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from run import cycle_config

from journeyopt.data.ingest import ingest_to_logs
from journeyopt.monitoring.config import EstimatorConfig
from journeyopt.monitoring.decisions_contacts import (
    WEEK,
    customer_groups,
    decisions_to_contacts,
    read_decisions,
    with_decision_contacts,
)
from journeyopt.monitoring.exposure import customer_outcomes
from journeyopt.monitoring.uplift import regression_uplift
from journeyopt.panel.build import build_panel
from journeyopt.sim.rules import ActionCatalog

VARIANTS = ("pre_treatment", "before_window", "difference")


def estimates(arm: Path, truth: pd.DataFrame, window: int) -> pd.DataFrame:
    """One row per served week and variant: estimate, CI and the truth."""
    cycle = cycle_config([])
    source = replace(cycle.data, path=str(arm / "logs"))
    decisions = read_decisions(str(arm / "decisions"))
    logs, _ = ingest_to_logs(source)
    contacts = decisions_to_contacts(decisions, source)
    logs = with_decision_contacts(logs, contacts, decisions["week"].min())
    panel = build_panel(logs, cycle.panel, tuple(source.contact_channels))
    panel["week_start"] = pd.to_datetime(panel["week_start"], utc=True)
    est, catalog = EstimatorConfig(), ActionCatalog.from_source(source)
    rows = []
    for _, week in truth.iterrows():
        end = pd.Timestamp(week["week"], tz="UTC") + WEEK  # the cycle's Monday
        since = end - window * WEEK
        part = panel[panel["week_start"] < end]
        groups, _ = customer_groups(decisions[decisions["week"] < end], since)
        for variant in VARIANTS:
            g = groups if variant == "pre_treatment" else groups.drop(columns="first_scored")
            table = customer_outcomes(
                part, g, since, est.pre_weeks, source.economics.margin(), catalog, source.amounts
            )
            treated = (table["group"] == "treatment").to_numpy()
            fit = regression_uplift(
                table["margin"].to_numpy(np.float64),
                table["weeks"].to_numpy(np.float64),
                treated,
                None if variant == "difference" else table["margin_pre"].to_numpy(np.float64),
            )
            rows.append(
                {
                    "loop_week": int(week["loop_week"]),
                    "variant": variant,
                    "estimate": fit.uplift,
                    "ci_low": fit.ci_low,
                    "ci_high": fit.ci_high,
                    "truth": float(week["true_itt_window"]),
                }
            )
    return pd.DataFrame(rows)


def accuracy(rows: pd.DataFrame, window: int) -> pd.DataFrame:
    """Error, RMSE, coverage and CI width per variant, over all weeks and over the
    non-overlapping windows (every ``window``-th week)."""
    out = []
    for (variant, apart), part in rows.assign(apart=(rows["loop_week"] + 1) % window == 0).groupby(
        ["variant", "apart"]
    ):
        for label, sub in (
            (("all weeks", rows[rows["variant"] == variant]),)
            if not apart
            else (("non-overlapping", part),)
        ):
            error = sub["estimate"] - sub["truth"]
            inside = (sub["ci_low"] <= sub["truth"]) & (sub["truth"] <= sub["ci_high"])
            out.append(
                {
                    "variant": variant,
                    "weeks": label,
                    "n": len(sub),
                    "mean_error": error.mean(),
                    "mean_abs_error": error.abs().mean(),
                    "rmse": float(np.sqrt((error**2).mean())),
                    "coverage": inside.mean(),
                    "mean_ci_width": (sub["ci_high"] - sub["ci_low"]).mean(),
                }
            )
    return pd.DataFrame(out).drop_duplicates(["variant", "weeks"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("arm", type=Path, help="an arm's folder of run.py (logs, decisions)")
    parser.add_argument("--weeks-csv", type=Path, help="weeks.csv with the truth (default: arm)")
    parser.add_argument("--window", type=int, default=4, help="weeks measured (uplift.weeks)")
    args = parser.parse_args()
    truth = pd.read_csv(args.weeks_csv or args.arm / "weeks.csv")
    truth = truth[truth["arm"] == args.arm.name].sort_values("loop_week")
    rows = estimates(args.arm, truth, args.window)
    rows.to_csv(args.arm / "uplift_accuracy.csv", index=False)
    print(accuracy(rows, args.window).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
