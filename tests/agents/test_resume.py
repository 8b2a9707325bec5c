"""Interrupted training resumes reproducibly: a run killed outright (a real SIGKILL of its
process) or stopped by Ctrl-C, then resumed, ends with exactly the policy and the evaluation of
the same run uninterrupted; the run the killed process left RUNNING is marked KILLED and
linked both ways to the run that resumed it."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from journeyopt.agents.resume import state_file
from journeyopt.agents.train import TrainResult, latest_checkpoint, train
from journeyopt.errors import ConfigError
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.run import OUTPUT_DIR_TAG, RESUMED_BY_TAG, RESUMES_TAG
from tests.agents.test_train import TINY, StopAt, tiny_config
from tests.commands import error_line

ROOT = Path(__file__).resolve().parents[2]
ROLLOUTS = ["agent.n_steps=16"]  # rollouts of 16 weeks x 16 customers = 256 steps; 4 in all

KILLED_RUN = textwrap.dedent("""
import json, os, signal, sys
from pathlib import Path
from stable_baselines3.common.callbacks import BaseCallback
from journeyopt.agents.train import train
from journeyopt.tracking.config import TrackingConfig
from tests.agents.test_train import tiny_config

class KillAt(BaseCallback):
    def _on_step(self) -> bool:
        if self.num_timesteps >= int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)
        return True

cfg = tiny_config(Path(sys.argv[1]), "maskable_ppo", "agent.n_steps=16")
cfg.tracking = TrackingConfig(**json.loads(sys.argv[2]))
cfg.run_name = "killed"
train(cfg, callbacks=[KillAt()])
""")


def _same_training(resumed: TrainResult, uninterrupted: TrainResult) -> None:
    """Bit-identical policy, optimizer and evaluation."""
    assert resumed.timesteps == uninterrupted.timesteps
    for a, b in zip(
        resumed.model.policy.state_dict().values(),
        uninterrupted.model.policy.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b)
    optimizer = resumed.model.policy.optimizer.state_dict()["state"]
    expected = uninterrupted.model.policy.optimizer.state_dict()["state"]
    for key, values in expected.items():
        for name, value in values.items():
            assert torch.equal(torch.as_tensor(optimizer[key][name]), torch.as_tensor(value))
    evaluated = {k: v for k, v in resumed.metrics.items() if k.startswith("eval/")}
    assert evaluated == {k: v for k, v in uninterrupted.metrics.items() if k.startswith("eval/")}
    assert [(p.step, p.value) for p in resumed.curve] == [
        (p.step, p.value) for p in uninterrupted.curve
    ]


def _runs(settings: TrackingConfig) -> dict[str, tuple[str, str, dict[str, str]]]:
    """Run name -> (run id, status, tags)."""
    client = MlflowClient(settings.resolved_tracking_uri())
    experiment = client.get_experiment_by_name(settings.experiment)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    return {r.info.run_name: (r.info.run_id, r.info.status, r.data.tags) for r in runs}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TrainResult]:
    """The reference runs, never interrupted, per agent."""
    root = tmp_path_factory.mktemp("uninterrupted")
    return {
        agent: train(tiny_config(root / agent, agent, *ROLLOUTS))
        for agent in ("maskable_ppo", "ppo")
    }


def test_a_killed_run_resumes_exactly_and_is_closed_and_linked(
    tmp_path: Path, mlflow_sqlite: TrackingConfig, uninterrupted: dict[str, TrainResult]
) -> None:
    tracking = json.dumps(dataclasses.asdict(mlflow_sqlite))
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(tmp_path / "first"), tracking, "600"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -9, killed.stderr
    old_id, status, tags = _runs(mlflow_sqlite)["killed"]
    assert status == "RUNNING"  # nobody could end it
    assert tags[OUTPUT_DIR_TAG] == str((tmp_path / "first").resolve())
    checkpoint = latest_checkpoint(tmp_path / "first")
    assert checkpoint.name == "model_512_steps.zip" and state_file(checkpoint).is_file()

    cfg = tiny_config(
        tmp_path / "second", "maskable_ppo", *ROLLOUTS, f"train.resume={tmp_path / 'first'}"
    )
    cfg.tracking, cfg.run_name = mlflow_sqlite, "resumed"
    result = train(cfg)

    assert result.start_step == 512
    _same_training(result, uninterrupted["maskable_ppo"])
    runs = _runs(mlflow_sqlite)
    new_id, new_status, new_tags = runs["resumed"]
    assert new_status == "FINISHED" and new_tags[RESUMES_TAG] == old_id
    assert new_tags["journeyopt.resumed_exactly"] == "True"
    _, old_status, old_tags = runs["killed"]
    assert old_status == "KILLED" and old_tags[RESUMED_BY_TAG] == new_id
    assert "resumed by run" in old_tags["journeyopt.error"]


def test_a_stopped_run_resumes_from_its_last_rollout_start_exactly(
    tmp_path: Path, mlflow_sqlite: TrackingConfig, uninterrupted: dict[str, TrainResult]
) -> None:
    first = tiny_config(tmp_path / "first", "ppo", *ROLLOUTS)
    first.tracking, first.run_name = mlflow_sqlite, "stopped"
    with pytest.raises(KeyboardInterrupt):
        train(first, callbacks=[StopAt(800, KeyboardInterrupt())])
    checkpoint = latest_checkpoint(tmp_path / "first")
    assert checkpoint.name == "model_768_steps.zip"  # the interrupted rollout's start

    cfg = tiny_config(tmp_path / "second", "ppo", *ROLLOUTS, f"train.resume={checkpoint}")
    cfg.tracking, cfg.run_name = mlflow_sqlite, "resumed"
    result = train(cfg)

    assert result.start_step == 768
    _same_training(result, uninterrupted["ppo"])
    runs = _runs(mlflow_sqlite)
    assert runs["stopped"][1] == "KILLED"  # ended by its own process, now linked
    assert runs["stopped"][2][RESUMED_BY_TAG] == runs["resumed"][0]
    assert runs["resumed"][2][RESUMES_TAG] == runs["stopped"][0]


def test_resuming_from_a_checkpoint_without_state_still_runs(tmp_path: Path) -> None:
    """A checkpoint of an older journeyopt (no state file) resumes, not exactly."""
    first = train(tiny_config(tmp_path / "first", "ppo", *ROLLOUTS, "train.total_timesteps=512"))
    state_file(first.model_path).unlink()
    cfg = tiny_config(tmp_path / "second", "ppo", *ROLLOUTS, f"train.resume={first.model_path}")
    result = train(cfg)
    assert result.start_step == 512 and result.timesteps == 1024
    assert np.isfinite(result.metrics["eval/value_mean"])


def test_dqn_resumes_from_its_periodic_checkpoint(tmp_path: Path) -> None:
    """DQN's rollouts are single steps: only periodic checkpoints carry the state (its replay
    buffer is not saved, so the continuation is not exact)."""
    first = train(tiny_config(tmp_path / "first", "dqn", "train.total_timesteps=512"))
    assert state_file(first.model_path).is_file()
    cfg = tiny_config(tmp_path / "second", "dqn", f"train.resume={first.model_path}")
    result = train(cfg)
    assert result.start_step == 512 and result.timesteps >= 1024
    assert np.isfinite(result.metrics["eval/value_mean"])


def _drop_state_field(checkpoint: Path, name: str) -> None:
    """Rewrite ``checkpoint``'s state file as an older journeyopt wrote it: without the
    customer state field ``name``."""
    path = state_file(checkpoint)
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files if key != f"state.{name}"}
    with path.open("wb") as handle:
        np.savez(handle, **arrays)


def test_a_checkpoint_from_before_a_state_field_is_a_one_line_exit_2(tmp_path: Path) -> None:
    """A checkpoint written before ``CustomerState.conversion_gap`` existed: a ConfigError
    naming the field (exit 2 at the command line, no traceback), not a KeyError."""
    first = train(tiny_config(tmp_path / "first", "ppo", *ROLLOUTS, "train.total_timesteps=512"))
    _drop_state_field(first.model_path, "conversion_gap")
    cfg = tiny_config(tmp_path / "second", "ppo", *ROLLOUTS, f"train.resume={first.model_path}")
    with pytest.raises(ConfigError, match=r"^train.resume: .* no conversion_gap: start a new"):
        train(cfg)

    env = {k: v for k, v in os.environ.items() if k != "JOURNEYOPT_DEBUG"}
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("journeyopt-train")),
            "agent=ppo",
            *TINY,
            "agent.batch_size=256",
            *ROLLOUTS,
            f"output_dir={tmp_path / 'third'}",
            f"train.resume={first.model_path}",
            f"hydra.run.dir={tmp_path / 'hydra'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "300"},
        timeout=300,
        check=False,
    )
    last = error_line(done, only_line=False)
    assert "conversion_gap" in last and last.startswith("error: train.resume:"), last
