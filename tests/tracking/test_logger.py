"""The metrics logger on real MLflow backends: namespaces, batching, SB3, artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient
from stable_baselines3.common.logger import Figure

from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.logger import RunLogger, metric_key, sb3_metric_key
from journeyopt.tracking.run import tracked_run


def _client(settings: TrackingConfig) -> MlflowClient:
    return MlflowClient(settings.resolved_tracking_uri(), settings.resolved_registry_uri())


@pytest.mark.parametrize("key", ["loss", "time/fps", "train/", "eval", "Train/loss", "/value"])
def test_names_outside_the_namespaces_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="not in a namespace"):
        metric_key(key)
    with pytest.raises(ValueError, match="not in a namespace"):
        RunLogger.disabled().log_metrics({key: 1.0}, step=0)


def test_values_must_be_numbers() -> None:
    with pytest.raises(ValueError, match="is not a number"):
        RunLogger.disabled().log_metrics({"eval/value": "high"}, step=0)  # type: ignore[dict-item]


def test_sb3_keys_map_into_namespaces() -> None:
    assert sb3_metric_key("train/loss") == "train/loss"
    assert sb3_metric_key("eval/mean_reward") == "eval/mean_reward"
    assert sb3_metric_key("rollout/ep_rew_mean") == "train/rollout/ep_rew_mean"
    assert sb3_metric_key("time/fps") == "train/time/fps"


def test_metrics_are_buffered_then_written_with_their_steps(
    mlflow_backend: TrackingConfig,
) -> None:
    client = _client(mlflow_backend)
    with tracked_run({}, "batched", tracking=mlflow_backend, log_config=False) as run:
        for step in (0, 64, 128):
            run.log_metrics({"train/loss": step / 64, "sim/contacts": np.float32(2 * step)}, step)
        assert run.buffered == 6
        assert client.get_run(str(run.run_id)).data.metrics == {}  # nothing written yet
        run.flush()
        assert run.buffered == 0
        history = client.get_metric_history(str(run.run_id), "train/loss")
        assert [(m.step, m.value) for m in history] == [(0, 0.0), (64, 1.0), (128, 2.0)]
        run.log_metrics({"eval/value_mean": 812.5}, step=200)  # written when the run ends
    final = client.get_run(str(run.run_id)).data.metrics
    assert final == {"train/loss": 2.0, "sim/contacts": 256.0, "eval/value_mean": 812.5}


def test_a_full_buffer_is_written_without_waiting(mlflow_sqlite: TrackingConfig) -> None:
    settings = TrackingConfig(**{**vars(mlflow_sqlite), "max_buffered_metrics": 4})
    with tracked_run({}, "full", tracking=settings, log_config=False) as run:
        run.log_metrics({"train/a": 1.0, "train/b": 2.0, "train/c": 3.0}, step=1)
        assert run.buffered == 3
        run.log_metrics({"train/d": 4.0}, step=1)
        assert run.buffered == 0
        assert len(_client(settings).get_run(str(run.run_id)).data.metrics) == 4


def test_sb3_logger_writes_through(mlflow_sqlite: TrackingConfig) -> None:
    with tracked_run({}, "sb3", tracking=mlflow_sqlite, log_config=False) as run:
        logger = run.sb3_logger()
        logger.record("rollout/ep_rew_mean", 21.5)
        logger.record("train/loss", np.float64(0.25))
        logger.record("train/hidden", 1.0, exclude="mlflow")
        logger.record("train/text", "not a number")
        figure, _ = plt.subplots()
        logger.record("eval/curve", Figure(figure, close=True), exclude="stdout")
        logger.dump(step=2048)
        logger.close()
        run_id = str(run.run_id)
    client = _client(mlflow_sqlite)
    assert client.get_run(run_id).data.metrics == {
        "train/rollout/ep_rew_mean": 21.5,
        "train/loss": 0.25,
    }
    assert client.get_metric_history(run_id, "train/loss")[0].step == 2048
    figures = [a.path for a in client.list_artifacts(run_id, "figures")]
    assert figures == ["figures/eval_curve_2048.png"]


def test_artifacts_dicts_and_figures(mlflow_backend: TrackingConfig, tmp_path: Path) -> None:
    table = tmp_path / "evaluation.csv"
    table.write_text("policy,value\nppo,812.5\n")
    with tracked_run({}, "artifacts", tracking=mlflow_backend, log_config=False) as run:
        run.log_artifact(table, "tables")
        run.log_dict({"value": 812.5, "policies": ["ppo", "staff"]}, "summary.json")
        run.log_dict({"world": "coworking", "gamma": np.float64(0.995)}, "card/world.yaml")
        figure, axes = plt.subplots()
        axes.plot([0, 1], [0, 1])
        run.log_figure(figure, "plots/learning_curve.png")
        plt.close(figure)
        with pytest.raises(ValueError, match=r"\.json, \.yaml or \.yml"):
            run.log_dict({}, "summary.txt")
        run_id = str(run.run_id)
    client = _client(mlflow_backend)
    out = Path(client.download_artifacts(run_id, "", str(tmp_path / "out")))
    assert (out / "tables" / "evaluation.csv").read_text() == table.read_text()
    assert json.loads((out / "summary.json").read_text())["policies"] == ["ppo", "staff"]
    assert yaml.safe_load((out / "card" / "world.yaml").read_text())["gamma"] == 0.995
    assert (out / "plots" / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_tracking_off_writes_nothing(mlflow_sqlite: TrackingConfig, tmp_path: Path) -> None:
    off = TrackingConfig(**{**vars(mlflow_sqlite), "enabled": False})
    with tracked_run({"tracking": off}, "off") as run:
        assert run.run_id is None and not run.enabled
        run.log_metrics({"train/loss": 1.0}, step=0)
        run.log_params({"a": 1})
        run.set_tags({"t": "v"})
        run.log_dict({"a": 1}, "a.json")
        run.log_artifact(tmp_path)
        run.sb3_logger().record("train/loss", 1.0)
        run.flush()
    assert _client(mlflow_sqlite).get_experiment_by_name(mlflow_sqlite.experiment) is None
