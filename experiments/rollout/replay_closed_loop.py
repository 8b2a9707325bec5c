"""A closed loop's canary measured again with other estimators: the staged rollout's
comparison of canary and previous champion at chosen weeks, from the loop's own raw logs and
decision log (read only), once with the pre-period adjustment of each setting.

    .venv/bin/python experiments/rollout/replay_closed_loop.py work/rollout_cl/bad_s0 \
        --weeks 4 8 13 26 52 --out work/h5-rollout/replay_bad_s0.csv

Settings compared: ``before`` (the outcome's own mean over 13 pre-period weeks, the rollout's
earlier default), ``after`` (the current ``serve.rollout`` default: up to 52 weeks of each
customer's history, the outcome's mean, conversions, share of weeks with a conversion, the
history's length and the segment), and the two halves of the change on their own. The
rollout state is the loop's (``summary.json``: its candidate as the canary over its previous
champion from the first served week); nothing is written to the loop's store.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_module

from journeyopt.cli.entry import to_object
from journeyopt.monitoring.config import RolloutJobConfig, register_configs
from journeyopt.monitoring.rollout_job import measure_rollout
from journeyopt.serving.config import RolloutConfig
from journeyopt.tracking.rollout import CANARY, RolloutState

SETTINGS = {
    "before": RolloutConfig(pre_weeks=13, covariates=[]),
    "after": RolloutConfig(),
    "after_without_segment": RolloutConfig(
        covariates=["conversions_pre", "active_pre", "pre_weeks"]
    ),
    "before_with_segment": RolloutConfig(pre_weeks=13, covariates=["segment"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path, help="a closed loop's output folder")
    parser.add_argument("--weeks", type=int, nargs="+", default=[4, 8, 13, 26, 52])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    summary = json.loads((args.root / "summary.json").read_text())
    served = pd.read_csv(args.root / "weeks.csv")["week"].tolist()
    started = pd.Timestamp(served[0], tz="UTC")
    state = RolloutState(summary["candidate"], CANARY, 0.2, summary["previous"], started)
    register_configs()
    rows = []
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        for week in args.weeks:
            as_of = served[week - 1]
            node = compose(
                "rollout",
                ["data=coworking", "panel=coworking", f"data.path={args.root / 'logs'}",
                 f"decisions={args.root / 'decisions'}", f"panel.as_of={as_of}"],
            )  # fmt: skip
            cfg = to_object(node, RolloutJobConfig)
            for name, settings in SETTINGS.items():
                job = replace(cfg, serve=replace(cfg.serve, rollout=settings))
                verdict, _, _ = measure_rollout(job, state)
                for c in (verdict.vs_previous, verdict.vs_control):
                    if c is None:
                        continue
                    rows.append(
                        {"weeks": week, "as_of": as_of, "estimator": name, "against": c.against,
                         "estimate": c.estimate, "std_error": c.std_error, "low": c.low,
                         "high": c.high, "half_width": (c.high - c.low) / 2,
                         "exposure": c.exposure, "decision": verdict.decision}
                    )  # fmt: skip
                print(rows[-2:] if len(rows) > 1 else rows, flush=True)
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
