"""Hydra sweeps of ``journeyopt-train`` as a user runs them (the command in a child process):
a grid multirun, the Optuna sweeper with parallel trials through the joblib launcher, and the
Ray launcher on a local Ray instance. Each trial trains with a budget of seconds and tracks to
a SQLite store in the test's folder; every trial must leave a finished MLflow run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from itertools import product
from pathlib import Path

import pytest
import yaml
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from tests.commands import DEMO_WORLD

TINY = [
    *DEMO_WORLD,
    "train=smoke",
    "train.total_timesteps=256",
    "train.n_customers=16",
    "train.eval_every_steps=0",
    "train.eval_customers=50",
    "train.checkpoint_every_steps=0",
    "simulator.horizon_weeks=4",
    "evaluation.n_customers=50",
    "evaluation.policies=[staff_rules,optimum]",
    "tracking.experiment=sweep",
]
SWEEP_SECONDS = 600


def _sweep(tmp_path: Path, template: Path | None, overrides: list[str]) -> tuple[Path, list[Run]]:
    """Run ``journeyopt-train -m`` with ``overrides`` on a copy of the migrated store
    (``template``; ``None``: a new store, created by the trials); the sweep folder and its
    runs."""
    db = tmp_path / "mlflow.db"
    if template is not None:
        shutil.copyfile(template, db)
    folder = tmp_path / "multirun"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    command = [
        str(Path(sys.executable).with_name("journeyopt-train")),
        "-m",
        *TINY,
        f"tracking.tracking_uri=sqlite:///{db}",
        f"hydra.sweep.dir={folder}",
        *overrides,
    ]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=SWEEP_SECONDS
    )
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("sweep")
    assert experiment is not None
    return folder, client.search_runs([experiment.experiment_id], max_results=1000)


def _finished_with_policy(runs: list[Run]) -> None:
    for run in runs:
        assert run.info.status == "FINISHED", run.info.run_name
        assert "eval/value_mean" in run.data.metrics
        assert run.outputs is not None and run.outputs.model_outputs  # the logged policy


@pytest.mark.slow
def test_grid_of_agents_and_seeds(tmp_path: Path, mlflow_migrated_db: Path) -> None:
    agents = {"ppo": "PPO", "a2c": "A2C", "dqn": "DQN", "maskable_ppo": "MaskablePPO"}
    _, runs = _sweep(tmp_path, mlflow_migrated_db, ["agent=ppo,a2c,dqn,maskable_ppo", "seed=0,1"])
    grid = {(r.data.params["agent.algorithm"], r.data.params["seed"]) for r in runs}
    assert len(runs) == 8
    assert grid == set(product(agents.values(), ("0", "1")))
    _finished_with_policy(runs)


@pytest.mark.slow
def test_optuna_sweeper_with_parallel_trials(tmp_path: Path) -> None:
    folder, runs = _sweep(
        tmp_path,
        None,  # parallel trials on a new store: the first creates it, the other waits
        [
            "+experiment=tune_maskable_ppo",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.n_jobs=2",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "agent.batch_size=64",
        ],
    )
    assert len(runs) == 2
    _finished_with_policy(runs)
    rates = {r.data.params["agent.learning_rate"] for r in runs}
    assert len(rates) == 2  # every trial drew its own learning rate
    for run in runs:
        assert 1e-5 <= float(run.data.params["agent.learning_rate"]) <= 1e-3
        assert run.data.params["agent.n_steps"] in {"16", "32", "64"}
    best = yaml.safe_load((folder / "optimization_results.yaml").read_text())
    values = {r.data.params["agent.learning_rate"]: r.data.metrics["eval/value_mean"] for r in runs}
    assert best["best_value"] == pytest.approx(max(values.values()))
    assert values[str(best["best_params"]["agent.learning_rate"])] == pytest.approx(
        best["best_value"]
    )


@pytest.mark.slow
def test_ray_launcher_on_a_local_ray_instance(tmp_path: Path, mlflow_migrated_db: Path) -> None:
    pytest.importorskip("ray", reason="the Ray launcher is the optional extra 'ray'")
    _, runs = _sweep(
        tmp_path,
        mlflow_migrated_db,
        [
            "hydra/launcher=ray",
            "+hydra.launcher.ray.init.num_cpus=2",
            "+hydra.launcher.ray.init.include_dashboard=false",
            "agent=ppo",
            "agent.batch_size=64",
            "seed=0,1",
        ],
    )
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1"]
    _finished_with_policy(runs)
