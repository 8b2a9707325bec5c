"""``journeyopt-train``: train a contact policy in a simulated world.

    journeyopt-train agent=ppo simulator=coworking seed=0
    journeyopt-train -m agent=ppo,a2c,dqn,maskable_ppo seed=0,1,2
    journeyopt-train +experiment=coworking_best
    journeyopt-train train.resume=outputs/train/2025-01-31/10-00-00   # continue from a checkpoint

A thin shell over :func:`journeyopt.agents.train.train`; returns the final evaluation value
(what a Hydra sweeper maximises). Parallel trials (``hydra/launcher=joblib`` or ``ray``) may
share one embedded SQLite store: the first trial creates it while the others wait.
"""

from __future__ import annotations

import fcntl
import hashlib
import tempfile
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from rich.table import Table

from journeyopt.agents.config import register_configs, train_config
from journeyopt.agents.train import TrainResult, train
from journeyopt.cli.entry import command, console, report_errors, value_cells
from journeyopt.outputs import output_errors, path_like, prepare_output_dir, refuse_inputs
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.run import experiment_id, open_client

register_configs()

_SQLITE = "sqlite:///"


def ensure_sqlite_store(settings: TrackingConfig) -> None:
    """Create the embedded SQLite store and the experiment once, under a lock: MLflow's first
    connection migrates a new store, and processes doing that at the same time (parallel sweep
    trials on a fresh folder) corrupt it. A server or an existing store needs nothing."""
    uri = settings.resolved_tracking_uri()
    if not settings.enabled or not uri.startswith(_SQLITE):
        return
    db = Path(uri.removeprefix(_SQLITE)).resolve()
    key = hashlib.sha256(str(db).encode()).hexdigest()[:16]
    lock = Path(tempfile.gettempdir()) / f"journeyopt-mlflow-{key}.lock"
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            experiment_id(open_client(settings), settings)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def summary(result: TrainResult) -> Table:
    """The final evaluation of every policy over all customers, as a rich table."""
    table = Table(title=f"evaluation after {result.timesteps:,} steps (value per customer)")
    for column in ("policy", "value", "95 % CI", "% of optimum", "uplift vs staff"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    rows = result.table[result.table["segment"] == "all"]
    for rec in rows.to_dict("records"):
        cells = value_cells(
            float(rec["value"]),
            float(rec["value_ci_low"]),
            float(rec["value_ci_high"]),
            float(rec["pct_of_optimum"]),
            float(rec["uplift"]),
        )
        table.add_row(str(rec["policy"]), *cells)
    return table


def run(cfg: DictConfig) -> float:
    """Train with the composed config; print the summary; the final ``eval/value_mean``."""
    settings = train_config(cfg)
    if settings.output_dir:  # a folder of the user's: an earlier run's is not replaced silently
        refuse_inputs(
            {"output_dir": settings.output_dir},
            {
                "simulator.world": path_like(settings.simulator.world),
                "train.resume": settings.train.resume,
            },
        )
        prepare_output_dir(settings.output_dir, settings.overwrite)
    else:
        settings.output_dir = HydraConfig.get().runtime.output_dir
    ensure_sqlite_store(settings.tracking)
    with output_errors(Path(settings.output_dir)):
        result = train(settings)
    out = console()
    out.print(summary(result))
    out.print(f"outputs in {result.output_dir}; MLflow run {result.run_id or '(tracking off)'}")
    if result.model_version is not None:
        out.print(
            f"registered as models:/{settings.tracking.registered_model}/{result.model_version} "
            "(promote it with journeyopt-promote candidate=<that URI>)"
        )
    return result.metrics["eval/value_mean"]


@command("train")
def main(cfg: DictConfig) -> float:
    return report_errors(lambda: run(cfg))
