"""A trained policy through MLflow and back, against a real ``mlflow server``: the run's
metrics, params and artifacts, the registered version, and the same actions after loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_module
from mlflow.tracking import MlflowClient

from journeyopt.agents.config import register_configs, train_config
from journeyopt.agents.sb3 import make_training_env, policy_spec
from journeyopt.agents.train import train
from journeyopt.sim.config import RulesConfig
from journeyopt.sim.observation import observation_layout
from journeyopt.sim.world import WorldSpec
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.model import load_policy_model, observation_frame
from journeyopt.tracking.registry import RULES_TAG, PolicyRegistry
from journeyopt.tracking.sb3_policy import SB3Policy
from tests.commands import DEMO_WORLD

OVERRIDES = [
    *DEMO_WORLD,
    "agent=maskable_ppo",
    "agent.batch_size=256",
    "train=smoke",
    "train.total_timesteps=1024",
    "train.n_customers=16",
    "train.eval_every_steps=512",
    "train.eval_customers=50",
    "simulator.horizon_weeks=8",
    "evaluation.n_customers=100",
]


register_configs()


def _artifacts(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path or None):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_trained_policy_round_trip_through_the_registry(
    tmp_path: Path, mlflow_remote: TrackingConfig, world: WorldSpec
) -> None:
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = train_config(compose("train", overrides=[*OVERRIDES, f"output_dir={tmp_path}"]))
    cfg.tracking = mlflow_remote
    result = train(cfg)
    assert result.run_id is not None and result.model_version is not None

    client = MlflowClient(mlflow_remote.resolved_tracking_uri())
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["eval/value_mean"] == result.metrics["eval/value_mean"]
    assert "eval/pct_of_optimum" in run.data.metrics and "train/wall_seconds" in run.data.metrics
    assert run.data.params["agent.algorithm"] == "MaskablePPO"
    assert run.data.tags["journeyopt.agent"] == "MaskablePPO"
    history = client.get_metric_history(result.run_id, "eval/pct_of_optimum")
    assert sorted({m.step for m in history}) == [p.step for p in result.curve]
    final = [m.value for m in history if m.step == result.timesteps]
    assert result.metrics["eval/pct_of_optimum"] in final  # the final evaluation, logged last
    artifacts = _artifacts(client, result.run_id)
    for name in (
        "config.yaml",
        "evaluation/evaluation.csv",
        "evaluation/evaluation.md",
        "evaluation/evaluation.png",
        "plots/learning_curve.png",
        "plots/action_mix.png",
        "learning_curve.csv",
    ):
        assert name in artifacts

    registry = PolicyRegistry(mlflow_remote)
    version = registry.version(result.model_version)
    assert version.source_run_id == result.run_id and registry.verify(version)
    recorded = registry.version_tags(result.model_version)[RULES_TAG]
    assert RulesConfig.differences(recorded, cfg.simulator.rules) == []  # trained under these
    loaded = load_policy_model(version.uri, mlflow_remote, tmp_path / "download")

    env, population = make_training_env(
        world, 200, 8, 1, np.full(3, 0.01, np.float32), pool_size=300, seed=5
    )
    observations = np.ascontiguousarray(env.reset())
    masks = population.action_masks()
    masks[::3, 1:3] = False  # stricter rules than the world's: the served guard must respect them
    spec = policy_spec(world, observation_layout(world))
    predicted = loaded.predict(observation_frame(observations, masks, spec))
    want, probabilities = SB3Policy.from_model(result.model, spec).act(observations, masks)
    np.testing.assert_array_equal(predicted["action"].to_numpy(), want)
    np.testing.assert_allclose(
        predicted.filter(like="probability_").to_numpy(), probabilities, atol=1e-6
    )
    assert masks[np.arange(200), want].all()
