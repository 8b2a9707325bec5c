"""Served practice vs control under a weekly capacity: contact rate of the capacity-limited
action per arm, with today's practice registered as the champion (coworking demo logs).

    python experiments/capacity_arms/measure.py <out_dir> <n_customers> <capacity_share>
"""

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_module

from journeyopt.cli.entry import to_object
from journeyopt.cli.ingest import IngestConfig
from journeyopt.serving.batch import score_logs
from journeyopt.serving.config import HoldoutConfig, ServingConfig
from journeyopt.serving.decisions import read_decision_log
from journeyopt.serving.practice import register_practice
from journeyopt.serving.served_model import load_served_model
from journeyopt.sim.config import GenerateConfig, shipped_practice, shipped_rules
from journeyopt.sim.logs import generate_logs, write_logs
from journeyopt.sim.world import load_world
from journeyopt.tracking.config import TrackingConfig

out, n, share = Path(sys.argv[1]).resolve(), int(sys.argv[2]), float(sys.argv[3])
out.mkdir(parents=True, exist_ok=True)
world = load_world("coworking")
logs = out / "raw"
if not logs.exists():
    gen = GenerateConfig(
        staff=shipped_practice("coworking"),
        output_dir="unused",
        seed=4,
        n_customers=n,
        weeks=12,
        start_date="2024-01-01",
    )
    write_logs(generate_logs(world, gen, np.random.default_rng(4)), logs)
with initialize_config_module("journeyopt.configs", version_base="1.3"):
    cfg = compose("ingest", overrides=["data=coworking", f"data.path={logs}", "output_dir=x"])
source = to_object(cfg, IngestConfig).data
serve = ServingConfig(
    world="coworking",
    rules=shipped_rules("coworking"),
    holdout=HoldoutConfig(staff=shipped_practice("coworking")),
)
serve.holdout.control_share = 0.1
db = out / "mlflow.db"
db.unlink(missing_ok=True)
tracking = TrackingConfig(
    tracking_uri=f"sqlite:///{db}",
    experiment="measure",
    artifact_location=(out / "mlruns").as_uri(),
)
register_practice(serve, tracking, champion=True)
model = load_served_model("models:/journey-policy@champion", tracking)
AS_OF = "2024-03-06"
score_logs(source, AS_OF, model, serve, out / "free" / "actions.csv")
log = read_decision_log(out / "free" / "decisions.csv")
contacts = log[log["action"] != "none"]
action = str(contacts["action"].value_counts().index[0])
control = (log["group"] == "control").to_numpy()
asked = (log["action"] == action).to_numpy()
k = int(np.rint(share * asked.sum()))
capped = replace(serve, rules=replace(serve.rules, capacity={action: k}))
score_logs(source, AS_OF, model, capped, out / "capped" / "actions.csv")
got = (read_decision_log(out / "capped" / "decisions.csv")["action"] == action).to_numpy()
print(
    f"customers {log.shape[0]} (control {control.sum()}), action {action}: asked "
    f"{asked.sum()} (control {asked[control].sum()}, treatment {asked[~control].sum()}); "
    f"capacity {k}"
)
for name, rows in (("control", control), ("treatment", ~control)):
    print(
        f"  {name}: asked rate {asked[rows].mean():.4f}, given {got[rows].sum()} "
        f"rate {got[rows].mean():.4f}"
    )
