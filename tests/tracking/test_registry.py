"""Registry round trip: register versions, aliases, resolution to an immutable version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mlflow.exceptions import MlflowException

from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.model import (
    LinearSoftmaxPolicy,
    load_policy_model,
    log_policy_model,
    observation_frame,
)
from journeyopt.tracking.registry import CHALLENGER, CHAMPION, PolicyRegistry, content_hash
from journeyopt.tracking.run import tracked_run

Arrays = tuple[np.ndarray, np.ndarray]


def test_register_promote_resolve(
    mlflow_backend: TrackingConfig,
    linear_policy: LinearSoftmaxPolicy,
    observations: Arrays,
    tmp_path: Path,
) -> None:
    obs, masks = observations
    other = LinearSoftmaxPolicy(linear_policy.spec, -linear_policy.weights, linear_policy.bias)
    registry = PolicyRegistry(mlflow_backend)
    versions = []
    for name, policy in (("first", linear_policy), ("second", other)):
        with tracked_run({}, name, tracking=mlflow_backend, log_config=False) as run:
            info = log_policy_model(run, policy, obs[:2], masks[:2])
        assert info is not None
        versions.append(registry.register(info, tags={"agent": name}))
    first, second = versions
    assert (first.version, second.version) == ("1", "2")
    assert first.content_sha256 != second.content_sha256
    assert len(first.content_sha256) == 64

    registry.promote(first.version, CHAMPION, reason="first policy", evidence={"run": "r1"})
    registry.set_alias(CHALLENGER, second.version)
    champion = registry.resolve(f"models:/{registry.name}@{CHAMPION}")
    assert champion == first
    assert registry.resolve(f"models:/{registry.name}/2") == second
    assert registry.alias(CHALLENGER) == second
    assert registry.verify(champion)

    promoted = registry.promote(second.version, CHAMPION, reason="beats the champion")
    assert registry.alias(CHAMPION) == promoted == second
    tags = registry.client.get_model_version(registry.name, "2").tags
    assert tags["journeyopt.promotion.champion.reason"] == "beats the champion"
    assert tags["journeyopt.promotion.champion.previous_version"] == "1"
    first_tags = registry.client.get_model_version(registry.name, "1").tags
    assert first_tags["journeyopt.promotion.champion.evidence.run"] == "r1"
    assert first_tags["agent"] == "first"

    model = load_policy_model(
        f"models:/{registry.name}@{CHAMPION}", mlflow_backend, tmp_path / "download"
    )
    predicted = model.predict(observation_frame(obs, masks, other.spec))
    np.testing.assert_array_equal(predicted["action"].to_numpy(), other.act(obs, masks)[0])


def test_resolution_errors(mlflow_sqlite: TrackingConfig) -> None:
    registry = PolicyRegistry(mlflow_sqlite)
    for uri in ("models:/other@champion", "models:/journey-policy", "models:/journey-policy@"):
        with pytest.raises(ValueError, match="is not models:/journey-policy"):
            registry.resolve(uri)
    with pytest.raises(MlflowException):
        registry.alias(CHAMPION)
    with pytest.raises(ValueError, match="needs a reason"):
        registry.promote(1, CHAMPION, reason=" ")


def test_content_hash_ignores_download_metadata_only(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    before = content_hash(tmp_path)
    (tmp_path / "registered_model_meta").write_text("model_version: '3'\n")
    assert content_hash(tmp_path) == before
    (tmp_path / "MLmodel").write_text("flavors: {python_function: {}}\n")
    assert content_hash(tmp_path) != before
