"""The served SB3 policy's numpy forward pass gives the torch network's probabilities."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces

from journeyopt.tracking.model import PolicySpec
from journeyopt.tracking.sb3_policy import ALGORITHMS, SB3Policy, numpy_actor

N_FEATURES, N_ACTIONS = 7, 5


def network(algorithm: str, seed: int, **kwargs: Any) -> Any:
    """An untrained policy network of ``algorithm`` with random (seeded) weights."""
    torch.manual_seed(seed)
    policy_class: Any = ALGORITHMS[algorithm].policy_aliases["MlpPolicy"]
    net = policy_class(
        observation_space=spaces.Box(-np.inf, np.inf, (N_FEATURES,), np.float32),
        action_space=spaces.Discrete(N_ACTIONS),
        lr_schedule=lambda _: 0.0,
        **kwargs,
    )
    with torch.no_grad():  # larger weights than SB3's init: peaked, varied distributions
        for param in net.parameters():
            param.mul_(4.0)
    return net


def served(algorithm: str, net: Any) -> SB3Policy:
    spec = PolicySpec(
        tuple(f"a{i}" for i in range(N_ACTIONS)), tuple(f"f{i}" for i in range(N_FEATURES)), "v"
    )
    return SB3Policy(spec, net, {"algorithm": algorithm, "policy": "MlpPolicy"}, b"")


def random_inputs(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    observations = rng.normal(scale=3.0, size=(n, N_FEATURES)).astype(np.float32)
    masks = rng.random((n, N_ACTIONS)) < 0.6
    masks[np.arange(n), rng.integers(0, N_ACTIONS, n)] = True
    return observations, masks


@pytest.mark.parametrize(
    ("algorithm", "kwargs"),
    [
        ("MaskablePPO", {"net_arch": [64, 64]}),
        ("MaskablePPO", {"net_arch": [16], "activation_fn": torch.nn.ReLU}),
        ("PPO", {"net_arch": {"pi": [32, 8], "vf": [4]}}),
        ("A2C", {"net_arch": []}),
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_numpy_forward_pass_matches_torch(
    algorithm: str, kwargs: dict[str, Any], seed: int
) -> None:
    policy = served(algorithm, network(algorithm, seed, **kwargs))
    assert policy._actor is not None
    observations, masks = random_inputs(seed, 257)
    with torch.inference_mode():
        expected = policy._probabilities(torch.as_tensor(observations), masks)
    got = policy._actor.probabilities(observations, masks)
    assert got.shape == (257, N_ACTIONS)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    actions, probabilities = policy.act(observations, masks)
    assert masks[np.arange(257), actions].all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)
    restricted = np.where(masks, expected, 0.0)
    restricted /= restricted.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities, restricted, rtol=1e-5, atol=1e-6)
    # the action carried out is the torch network's most probable allowed action (no ties here)
    np.testing.assert_array_equal(actions, np.argmax(restricted, axis=1))


def test_single_customer_matches_batch_row() -> None:
    policy = served("MaskablePPO", network("MaskablePPO", 3, net_arch=[64, 64]))
    observations, masks = random_inputs(3, 20)
    actions, probabilities = policy.act(observations, masks)
    for i in (0, 7, 19):
        one_action, one_probs = policy.act(observations[i : i + 1], masks[i : i + 1])
        assert one_action[0] == actions[i]
        np.testing.assert_allclose(one_probs[0], probabilities[i], rtol=1e-6, atol=1e-7)


def test_dqn_and_unknown_activations_stay_in_torch() -> None:
    assert numpy_actor(network("DQN", 0, net_arch=[8]), "DQN") is None
    gelu = network("PPO", 0, net_arch=[8], activation_fn=torch.nn.GELU)
    assert numpy_actor(gelu, "PPO") is None
    policy = served("PPO", gelu)
    observations, masks = random_inputs(0, 9)
    actions, probabilities = policy.act(observations, masks)
    assert masks[np.arange(9), actions].all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)
