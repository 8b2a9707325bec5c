"""Fixtures of the tracking tests: a job config and a tiny linear policy."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import DictConfig, OmegaConf

from journeyopt.tracking.model import LinearSoftmaxPolicy, PolicySpec

ACTIONS = ("none", "newsletter", "personal_email", "personal_call")
FEATURES = ("recency_weeks", "frequency", "monetary", "tenure_weeks", "fatigue_email")


@pytest.fixture
def job_config() -> DictConfig:
    """A small composed-looking job config with interpolations, lists and nesting."""
    return OmegaConf.create(
        {
            "seed": 3,
            "agent": {"name": "ppo", "lr": 3e-4, "net_arch": [64, 64], "n_steps": "${seed}"},
            "simulator": {"world": "coworking", "horizon_weeks": 52},
            "callbacks": [{"every": 1000}, {"every": 5000}],
        }
    )


@pytest.fixture
def spec() -> PolicySpec:
    return PolicySpec(ACTIONS, FEATURES, "test-layout-1")


@pytest.fixture
def linear_policy(spec: PolicySpec) -> LinearSoftmaxPolicy:
    rng = np.random.default_rng(7)
    return LinearSoftmaxPolicy(
        spec, rng.normal(size=(len(FEATURES), len(ACTIONS))), rng.normal(size=len(ACTIONS))
    )


@pytest.fixture
def observations() -> tuple[np.ndarray, np.ndarray]:
    """(N, D) float32 observations in [0, 1] and (N, A) masks; customer 0 may only get
    ``none``, customer 1 no call."""
    rng = np.random.default_rng(11)
    obs = rng.random((32, len(FEATURES))).astype(np.float32)
    masks = np.ones((32, len(ACTIONS)), dtype=bool)
    masks[0, 1:] = False
    masks[1, 3] = False
    return obs, masks
