"""Repeat purchases of the CDNOW cohort in the hold-out weeks: a calibrated world against what
happened, beside BG/NBD fitted here by maximum likelihood on the same split.

    python experiments/cdnow_calibration/compare.py <output_dir> <CDNOW file or "sample">

Reads the calibration's ``holdout_weekly.csv`` (simulated and actual purchase weeks) and counts
the actual repeat *transactions* from the logs (the world draws at most one purchase per
customer-week, so the transactions it implies are its purchase weeks times the calibration
period's transactions per purchase week). BG/NBD (:mod:`journeyopt.calibration.bgnbd`) is
fitted on the customers' repeat transactions before the first hold-out week (time in weeks from
each customer's first purchase) and forecasts each customer's hold-out transactions (its
conditional expectation); the cumulative curve adds them to the calibration period's actual
repeat transactions, as for the world.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir

import journeyopt
from journeyopt.calibration.bgnbd import conditional_expected, fit_bgnbd, repeat_summary
from journeyopt.calibration.config import register_configs
from journeyopt.cli.entry import to_object
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.source import SourceConfig
from journeyopt.panel.build import build_panel
from journeyopt.panel.config import PanelConfig


def main(output_dir: Path, data: str) -> None:
    configs = Path(journeyopt.__file__).parent / "configs"
    overrides = ["data=cdnow_sample"] if data == "sample" else ["data=cdnow", f"data.path={data}"]
    register_configs()
    with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        cfg = compose("calibrate", overrides=[*overrides, "output_dir=x"])
    logs, _ = ingest_to_logs(to_object(cfg.data, SourceConfig))
    panel = build_panel(logs, PanelConfig(), ())
    weekly = pd.read_csv(output_dir / "holdout_weekly.csv")
    conv = weekly[(weekly["grouping"] == "all") & (weekly["metric"] == "conversions")]
    holdout = panel["week"] >= int(conv["week"].min())
    fit = panel[~holdout & (panel["tenure_weeks"] > 0)]
    per_week = fit["conversions"].sum() / max((fit["conversions"] > 0).sum(), 1)
    actual_tx = int(panel.loc[holdout, "conversions"].sum())
    fit_repeat = int(panel.loc[~holdout, "conversions"].sum()) - panel["customer_id"].nunique()
    sim_weeks = float(conv["simulated"].sum())
    sim_tx = sim_weeks * per_week
    print(f"hold-out weeks {conv['week'].min()}..{conv['week'].max()} ({conv['week'].nunique()})")
    print(f"actual repeat purchase-weeks {conv['actual'].sum():.0f}, simulated {sim_weeks:.1f}")
    print(f"transactions per purchase-week (calibration period) {per_week:.4f}")
    print(
        f"actual repeat transactions {actual_tx}, simulated {sim_tx:.1f}, "
        f"error {100 * (sim_tx / actual_tx - 1):+.1f} %"
    )
    cum_actual = fit_repeat + actual_tx
    cum_sim = fit_repeat + sim_tx
    print(
        f"cumulative repeat transactions at the end: actual {cum_actual}, simulated "
        f"{cum_sim:.1f}, error {100 * (cum_sim / cum_actual - 1):+.1f} %"
    )
    split = pd.Timestamp(panel.loc[holdout, "week_start"].min())
    horizon = float(conv["week"].nunique())
    events = logs.events
    codes, _ = pd.factorize(events["customer_id"])
    weeks = (events["ts"] - split).dt.total_seconds().to_numpy() / (7 * 86400.0)
    x, t_x, age = repeat_summary(codes, weeks, end=-1e-9)
    cohort = ~np.isnan(x)
    params = fit_bgnbd(x[cohort], t_x[cohort], age[cohort])
    bg_tx = float(conditional_expected(params, horizon, x[cohort], t_x[cohort], age[cohort]).sum())
    print(
        f"BG/NBD fitted (weeks): r={params.r:.3f} alpha={params.alpha:.3f} a={params.a:.3f} "
        f"b={params.b:.3f} on {int(cohort.sum())} customers"
    )
    print(
        f"BG/NBD repeat transactions {bg_tx:.1f}, error {100 * (bg_tx / actual_tx - 1):+.1f} %; "
        f"cumulative {fit_repeat + bg_tx:.1f}, "
        f"error {100 * ((fit_repeat + bg_tx) / cum_actual - 1):+.1f} %"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
