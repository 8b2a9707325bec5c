"""Training runs with tiny budgets: every agent, determinism, interruption and resume, failure
marking, the command's summary, and trained agents behind the ``Policy`` interface."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from mlflow.tracking import MlflowClient
from stable_baselines3.common.callbacks import BaseCallback

import journeyopt.cli.train as cli_train
from journeyopt.agents import warm_start
from journeyopt.agents.config import TrainConfig, WarmStartConfig, register_configs, train_config
from journeyopt.agents.policy import Observation
from journeyopt.agents.sb3 import LearnedPolicy, make_model, make_training_env
from journeyopt.agents.train import CHECKPOINT_DIR, latest_checkpoint, train
from journeyopt.errors import ConfigError
from journeyopt.sim.observation import observation_layout
from journeyopt.sim.optimum import OptimalPolicy
from journeyopt.sim.world import WorldSpec
from journeyopt.tracking.config import TrackingConfig
from tests.commands import DEMO_WORLD

AGENTS = ("ppo", "a2c", "dqn", "maskable_ppo")
SCALES = np.full(3, 0.01, np.float32)
TINY = [
    *DEMO_WORLD,
    "train=smoke",
    "train.total_timesteps=1024",
    "train.n_customers=16",
    "train.eval_every_steps=512",
    "train.eval_customers=50",
    "train.checkpoint_every_steps=512",
    "simulator.horizon_weeks=8",
    "evaluation.n_customers=100",
    "tracking=off",
]


register_configs()


def tiny_config(output_dir: Path, agent: str = "ppo", *overrides: str) -> TrainConfig:
    """A composed ``journeyopt-train`` config with a budget of seconds."""
    extra = {"dqn": ["agent.learning_starts=64"], "a2c": []}.get(agent, ["agent.batch_size=256"])
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[f"agent={agent}", *TINY, *extra, f"output_dir={output_dir}", *overrides],
        )
    return train_config(cfg)


class StopAt(BaseCallback):
    """Raises ``error`` once training has passed ``step`` environment steps."""

    def __init__(self, step: int, error: BaseException) -> None:
        super().__init__()
        self._step, self._error = step, error

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._step:
            raise self._error
        return True


@pytest.mark.parametrize("agent", AGENTS)
def test_each_agent_trains_and_evaluates(agent: str, tmp_path: Path) -> None:
    result = train(tiny_config(tmp_path, agent))
    assert result.timesteps >= 1024 and result.start_step == 0
    policies = result.table.loc[result.table["segment"] == "all", "policy"].tolist()
    algorithm = result.model.__class__.__name__
    assert policies == [algorithm, "no_contact", "random", "staff_rules", "myopic", "optimum"]
    wanted = {
        "eval/value_mean", "eval/value_ci_low", "eval/value_ci_high", "eval/pct_of_optimum",
        "eval/uplift_vs_staff", "eval/uplift_vs_staff_ci_low", "eval/uplift_vs_staff_ci_high",
        "eval/uplift_vs_myopic", "eval/contacts_per_customer_week", "eval/opt_out_rate",
        "eval/revenue", "eval/cost", "eval/forbidden_action_rate", "train/wall_seconds",
    }  # fmt: skip
    assert wanted <= set(result.metrics)
    assert all(math.isfinite(v) for v in result.metrics.values())
    low, high = result.metrics["eval/value_ci_low"], result.metrics["eval/value_ci_high"]
    assert low < result.metrics["eval/value_mean"] < high
    assert 0.0 <= result.metrics["eval/forbidden_action_rate"] <= 1.0
    if agent == "maskable_ppo":
        assert result.metrics["eval/forbidden_action_rate"] == 0.0
    assert [p.step for p in result.curve] == sorted({p.step for p in result.curve})
    assert result.curve[-1].step == result.timesteps and len(result.curve) >= 2
    for name in ("learning_curve.png", "action_mix.png", "learning_curve.csv"):
        assert (tmp_path / name).is_file()
    assert (tmp_path / "evaluation" / "evaluation.csv").is_file()
    assert latest_checkpoint(tmp_path) == result.model_path
    assert result.run_id is None and result.model_version is None


def test_same_config_and_seed_give_the_same_evaluation(tmp_path: Path) -> None:
    first = train(tiny_config(tmp_path / "a"))
    again = train(tiny_config(tmp_path / "b"))
    other = train(tiny_config(tmp_path / "c", "ppo", "seed=1"))

    def evaluated(metrics: dict[str, float]) -> dict[str, float]:
        return {k: v for k, v in metrics.items() if k.startswith("eval/")}

    assert evaluated(first.metrics) == evaluated(again.metrics)
    assert [p.value for p in first.curve] == [p.value for p in again.curve]
    weights = [p.detach().numpy() for p in first.model.policy.parameters()]
    others = [p.detach().numpy() for p in other.model.policy.parameters()]
    assert any(not np.array_equal(w, o) for w, o in zip(weights, others, strict=True))


def _status(settings: TrackingConfig, run_name: str) -> tuple[str, dict[str, str]]:
    client = MlflowClient(settings.resolved_tracking_uri())
    experiment = client.get_experiment_by_name(settings.experiment)
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"attributes.run_name = '{run_name}'"
    )
    assert len(runs) == 1
    return runs[0].info.status, runs[0].data.tags


def _tracked(settings: TrackingConfig, cfg: TrainConfig, run_name: str) -> TrainConfig:
    cfg.tracking = settings
    cfg.run_name = run_name
    return cfg


def test_interrupted_run_is_killed_and_resumes_from_its_checkpoint(
    tmp_path: Path, mlflow_sqlite: TrackingConfig
) -> None:
    rollouts = "agent.n_steps=16"  # of 16 x 16 = 256 steps
    first = _tracked(mlflow_sqlite, tiny_config(tmp_path / "first", "ppo", rollouts), "interrupted")
    with pytest.raises(KeyboardInterrupt):
        train(first, callbacks=[StopAt(600, KeyboardInterrupt())])
    status, tags = _status(mlflow_sqlite, "interrupted")
    assert status == "KILLED" and "KeyboardInterrupt" in tags["journeyopt.error"]
    checkpoint = latest_checkpoint(tmp_path / "first")
    stopped_at = int(checkpoint.name.split("_")[1])
    assert stopped_at == 512  # the start of the interrupted rollout

    resumed = _tracked(
        mlflow_sqlite,
        tiny_config(tmp_path / "second", "ppo", rollouts, f"train.resume={tmp_path / 'first'}"),
        "resumed",
    )
    result = train(resumed)
    assert result.start_step == stopped_at
    assert result.timesteps == 1024
    assert result.curve[0].step == 512  # the first run's evaluation, carried over
    assert _status(mlflow_sqlite, "resumed")[0] == "FINISHED"
    assert (tmp_path / "second" / CHECKPOINT_DIR).is_dir()


def test_failing_run_is_marked_failed(tmp_path: Path, mlflow_sqlite: TrackingConfig) -> None:
    cfg = _tracked(mlflow_sqlite, tiny_config(tmp_path), "failing")
    with pytest.raises(RuntimeError, match="simulated failure"):
        train(cfg, callbacks=[StopAt(100, RuntimeError("simulated failure"))])
    status, tags = _status(mlflow_sqlite, "failing")
    assert status == "FAILED" and "simulated failure" in tags["journeyopt.error"]


def test_resume_without_checkpoint_is_a_config_error(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "out", "ppo", f"train.resume={tmp_path}")
    with pytest.raises(ConfigError, match="no checkpoint"):
        train(cfg)


def test_command_prints_the_evaluation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = compose(
            "train", overrides=["agent=maskable_ppo", *TINY, f"output_dir={tmp_path}", "seed=2"]
        )
    value = cli_train.run(cfg)
    printed = capsys.readouterr().out
    assert "MaskablePPO" in printed and "optimum" in printed and "(tracking off)" in printed
    assert math.isfinite(value)


@pytest.mark.parametrize("masked", [False, True])
def test_learned_policy_masks_only_when_trained_with_masks(masked: bool, world: WorldSpec) -> None:
    layout = observation_layout(world)
    env, population = make_training_env(world, 64, 8, 1, SCALES, pool_size=200)
    config = tiny_config(Path("unused"), "maskable_ppo" if masked else "ppo")
    model = make_model(config.agent, env, 0.995, seed=0)
    policy = LearnedPolicy.of(model, world, layout)
    env.reset()
    seen = Observation(population.features, population.segment, 1, 0)
    free, _ = policy.act(
        seen, np.ones((64, world.actions.n_actions), bool), np.random.default_rng()
    )
    masks = np.ones((64, world.actions.n_actions), bool)
    masks[np.arange(64), free] = False  # forbid each customer's favourite action
    actions, probabilities = policy.act(seen, masks, np.random.default_rng())
    allowed = masks[np.arange(64), actions]
    assert allowed.all() if masked else not allowed.any()
    assert (probabilities[~masks] == 0).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_warm_start_imitates_the_optimum(world: WorldSpec, optimum: OptimalPolicy) -> None:
    env, _ = make_training_env(world, 16, optimum.horizon_weeks, 1, SCALES, pool_size=300)
    config = tiny_config(Path("unused"), "maskable_ppo", "agent.net_arch=[64]")
    model = make_model(config.agent, env, optimum.gamma, seed=0)
    demos = warm_start.demonstrations(world, optimum, 300, 1, pool_size=300, seed=0)
    assert demos.observations.shape == (300 * optimum.horizon_weeks, env.observation_space.shape[0])
    untrained = warm_start.clone(
        model, demos, WarmStartConfig(epochs=1, learning_rate=1e-9), SCALES, 0
    )
    settings = WarmStartConfig(epochs=30, batch_size=256, learning_rate=3e-3)
    stats = warm_start.clone(model, demos, settings, SCALES, seed=0)
    accuracy = stats["train/warm_start/accuracy"]
    assert accuracy > 0.6 and accuracy > 3 * untrained["train/warm_start/accuracy"]
    assert stats["train/warm_start/value_mse"] < 0.2 * untrained["train/warm_start/value_mse"]


def test_rewards_are_scaled_by_the_type_of_the_customer_who_earned_them(world: WorldSpec) -> None:
    plain, _ = make_training_env(world, 64, 2, 1, np.ones(3, np.float32), pool_size=200, seed=3)
    scales = np.array([1.0, 2.0, 5.0], np.float32)
    scaled, population = make_training_env(world, 64, 2, 1, scales, pool_size=200, seed=3)
    plain.reset(), scaled.reset()
    actions = np.full(64, 4)  # calls: rewards and costs for everybody
    for _ in range(3):  # across the auto-reset after week 2
        segment = population.segment.copy()
        reward = plain.step(actions)[1]
        np.testing.assert_allclose(scaled.step(actions)[1], reward * scales[segment], rtol=1e-6)
