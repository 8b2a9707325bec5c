"""Repeat purchases of the CDNOW cohort in the hold-out weeks: a calibrated world against what
happened, beside the published BG/NBD anchor.

    python experiments/cdnow_calibration/compare.py <output_dir> <CDNOW file or "sample">

Reads the calibration's ``holdout_weekly.csv`` (simulated and actual purchase weeks) and counts
the actual repeat *transactions* from the logs (the world draws at most one purchase per
customer-week, so the transactions it implies are its purchase weeks times the calibration
period's transactions per purchase week).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir

import journeyopt
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


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
