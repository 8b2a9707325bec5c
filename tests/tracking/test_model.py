"""The policy as an MLflow pyfunc model: open formats, no unpickling, same actions."""

from __future__ import annotations

import contextvars
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pandas as pd
import pytest
from stable_baselines3 import PPO

from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.model import (
    LinearSoftmaxPolicy,
    PolicySpec,
    frame_arrays,
    load_policy,
    load_policy_model,
    log_policy_model,
    observation_frame,
    save_policy,
    unwrap_policy,
)
from journeyopt.tracking.run import tracked_run
from journeyopt.tracking.sb3_policy import SB3Policy

Arrays = tuple[np.ndarray, np.ndarray]
_watching: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("watch", default=None)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    seen = _watching.get()
    if seen is not None and event == "pickle.find_class":
        seen.append(f"{args[0]}.{args[1]}")


sys.addaudithook(_audit)


@contextmanager
def unpickled_classes() -> Iterator[list[str]]:
    """Classes that any ``pickle`` unpickling looked up inside the block (audit events)."""
    seen: list[str] = []
    token = _watching.set(seen)
    try:
        yield seen
    finally:
        _watching.reset(token)


def test_linear_policy_respects_masks(linear_policy: LinearSoftmaxPolicy, observations: Arrays):
    obs, masks = observations
    actions, probs = linear_policy.act(obs, masks)
    assert actions.shape == (32,) and probs.shape == (32, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert (probs[~masks] == 0).all()
    assert masks[np.arange(32), actions].all()
    assert actions[0] == 0  # only `none` allowed
    np.testing.assert_array_equal(actions, np.argmax(np.where(masks, probs, -1), axis=1))


def test_linear_policy_checks_shapes_and_masks(spec: PolicySpec) -> None:
    with pytest.raises(ValueError, match=r"weights must be \(5, 4\)"):
        LinearSoftmaxPolicy(spec, np.zeros((4, 5)), np.zeros(4))
    policy = LinearSoftmaxPolicy(spec, np.zeros((5, 4)), np.zeros(4))
    with pytest.raises(ValueError, match="at least one action"):
        policy.act(np.zeros((1, 5), np.float32), np.zeros((1, 4), bool))


def test_saved_policy_loads_without_unpickling(
    linear_policy: LinearSoftmaxPolicy, observations: Arrays, tmp_path: Path
) -> None:
    folder = save_policy(linear_policy, tmp_path / "policy")
    assert sorted(p.name for p in folder.iterdir()) == ["spec.json", "weights.npz"]
    with unpickled_classes() as seen:
        loaded = load_policy(folder)
    assert seen == []
    for got, want in zip(loaded.act(*observations), linear_policy.act(*observations), strict=True):
        np.testing.assert_array_equal(got, want)


def test_only_journeyopt_classes_are_loaded(linear_policy, tmp_path: Path) -> None:
    folder = save_policy(linear_policy, tmp_path / "policy")
    spec = json.loads((folder / "spec.json").read_text())
    spec["policy_class"] = "os:system"
    (folder / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="is not journeyopt's"):
        load_policy(folder)


def test_input_frame_round_trip_and_missing_columns(spec: PolicySpec, observations: Arrays):
    frame = observation_frame(*observations, spec)
    assert list(frame.columns[-4:]) == ["mask_none", "mask_newsletter", "mask_personal_email",
                                        "mask_personal_call"]  # fmt: skip
    obs, masks = frame_arrays(frame, spec)
    np.testing.assert_array_equal(obs, observations[0])
    np.testing.assert_array_equal(masks, observations[1])
    with pytest.raises(ValueError, match=r"missing columns \['mask_personal_call'\]"):
        frame_arrays(frame.drop(columns="mask_personal_call"), spec)


def test_pyfunc_log_load_same_actions(
    mlflow_backend: TrackingConfig,
    linear_policy: LinearSoftmaxPolicy,
    observations: Arrays,
    tmp_path: Path,
) -> None:
    obs, masks = observations
    with tracked_run({}, "linear", tracking=mlflow_backend, log_config=False) as run:
        info = log_policy_model(run, linear_policy, obs[:3], masks[:3], step=4096)
    assert info is not None
    assert info.signature is not None and info.saved_input_example_info is not None
    assert info.signature.inputs.input_names()[:2] == ["recency_weeks", "frequency"]
    with unpickled_classes() as seen:
        model = load_policy_model(info.model_uri, mlflow_backend, tmp_path / "download")
    assert seen == []
    predicted = model.predict(observation_frame(obs, masks, linear_policy.spec))
    actions, probs = linear_policy.act(obs, masks)
    np.testing.assert_array_equal(predicted["action"].to_numpy(), actions)
    assert list(predicted["action_name"][:1]) == ["none"]
    np.testing.assert_allclose(predicted.filter(like="probability_").to_numpy(), probs)
    assert unwrap_policy(model).spec == linear_policy.spec
    assert model.metadata.metadata["layout_version"] == "test-layout-1"


def test_pyfunc_rejects_input_without_masks(
    mlflow_sqlite: TrackingConfig, linear_policy, observations: Arrays, tmp_path: Path
) -> None:
    with tracked_run({}, "linear", tracking=mlflow_sqlite, log_config=False) as run:
        info = log_policy_model(run, linear_policy, *observations)
    assert info is not None
    model = load_policy_model(info.model_uri, mlflow_sqlite, tmp_path / "download")
    frame = observation_frame(*observations, linear_policy.spec).drop(columns="mask_none")
    with pytest.raises(Exception, match="mask_none"):
        model.predict(frame)


def test_tracking_off_logs_no_model(linear_policy, observations: Arrays) -> None:
    with tracked_run({}, "off", tracking=TrackingConfig(enabled=False)) as run:
        assert log_policy_model(run, linear_policy, *observations) is None


@pytest.fixture(scope="module")
def cartpole_ppo() -> tuple[PPO, PolicySpec]:
    """A PPO agent trained for 64 steps on CartPole-v1 (only the weights matter)."""
    env = gymnasium.make("CartPole-v1")
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0,
                policy_kwargs={"net_arch": [16], "activation_fn": __import__("torch").nn.ReLU},
                device="cpu")  # fmt: skip
    model.learn(total_timesteps=64)
    spec = PolicySpec(
        ("push_left", "push_right"),
        ("cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity"),
        "cartpole-v1",
    )
    return model, spec


def test_sb3_policy_zip_round_trip(
    mlflow_sqlite: TrackingConfig, cartpole_ppo: tuple[PPO, PolicySpec], tmp_path: Path
) -> None:
    model, spec = cartpole_ppo
    policy = SB3Policy.from_model(model, spec)
    rng = np.random.default_rng(5)
    obs = rng.normal(size=(64, 4)).astype(np.float32)
    masks = np.ones((64, 2), bool)
    masks[:8, 1] = False
    actions, probs = policy.act(obs, masks)
    greedy, _ = model.predict(obs[8:], deterministic=True)
    np.testing.assert_array_equal(actions[8:], greedy)  # the same network as SB3's own
    assert (actions[:8] == 0).all() and (probs[:8, 1] == 0).all()

    with tracked_run({}, "ppo", tracking=mlflow_sqlite, log_config=False) as run:
        info = log_policy_model(run, policy, obs[:2], masks[:2])
    assert info is not None
    with unpickled_classes() as seen:
        loaded = load_policy_model(info.model_uri, mlflow_sqlite, tmp_path / "download")
    assert seen == []
    predicted = loaded.predict(observation_frame(obs, masks, spec))
    np.testing.assert_array_equal(predicted["action"].to_numpy(), actions)
    np.testing.assert_allclose(predicted.filter(like="probability_").to_numpy(), probs, atol=1e-6)
    requirements = (tmp_path / "download" / "requirements.txt").read_text()
    assert "stable-baselines3==" in requirements and "journeyopt==" in requirements

    zip_path = next((tmp_path / "download").rglob("model.zip"))
    reloaded = PPO.load(zip_path, device="cpu")  # SB3's own format, usable to resume
    again, _ = reloaded.predict(obs[8:], deterministic=True)
    np.testing.assert_array_equal(again, greedy)


def test_sb3_policy_refuses_unsaveable_kwargs(cartpole_ppo: tuple[PPO, PolicySpec]) -> None:
    model, spec = cartpole_ppo
    saved = model.policy_kwargs
    model.policy_kwargs = {**saved, "features_extractor_class": pd.DataFrame}
    try:
        with pytest.raises(ValueError, match="features_extractor_class"):
            SB3Policy.from_model(model, spec)
    finally:
        model.policy_kwargs = saved


def _train(algorithm: str) -> Any:
    """An agent of ``algorithm`` trained for 64 steps on CartPole-v1."""
    import torch
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.wrappers import ActionMasker
    from stable_baselines3 import A2C, DQN

    env = gymnasium.make("CartPole-v1")
    net = {"net_arch": [8], "activation_fn": torch.nn.Tanh}
    kwargs: dict[str, Any] = {"seed": 0, "device": "cpu", "policy_kwargs": net}
    if algorithm == "DQN":
        model: Any = DQN("MlpPolicy", env, learning_starts=0, buffer_size=128, **kwargs)
    elif algorithm == "A2C":
        model = A2C("MlpPolicy", env, n_steps=8, **kwargs)
    else:
        masked = ActionMasker(env, lambda _: np.ones(2, dtype=bool))
        model = MaskablePPO("MlpPolicy", masked, n_steps=64, batch_size=32, n_epochs=1, **kwargs)
    return model.learn(total_timesteps=64)


@pytest.mark.parametrize("algorithm", ["A2C", "DQN", "MaskablePPO"])
def test_sb3_algorithms_save_load_same_actions(algorithm: str, tmp_path: Path) -> None:
    spec = PolicySpec(("left", "right"), ("x", "v", "theta", "omega"), "cartpole-v1")
    policy = SB3Policy.from_model(_train(algorithm), spec)
    obs = np.random.default_rng(1).normal(size=(16, 4)).astype(np.float32)
    masks = np.ones((16, 2), bool)
    masks[:4, 0] = False
    with unpickled_classes() as seen:
        loaded = load_policy(save_policy(policy, tmp_path / "policy"))
    assert seen == []
    actions, probs = loaded.act(obs, masks)
    want_actions, want_probs = policy.act(obs, masks)
    np.testing.assert_array_equal(actions, want_actions)
    np.testing.assert_allclose(probs, want_probs, atol=1e-6)
    assert (actions[:4] == 1).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
