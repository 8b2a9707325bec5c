"""A local SQLite store is one folder: the artifacts of journeyopt's runs (plots, configs) and
the files of their logged and registered policy models land beside the database, whatever the
working directory a command starts from; a server keeps its own artifact handling, and an
existing experiment keeps its artifact root."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from journeyopt.tracking.config import LOCAL_ARTIFACT_DIR, TrackingConfig, sqlite_database
from journeyopt.tracking.model import (
    LinearSoftmaxPolicy,
    load_policy_model,
    log_policy_model,
    unwrap_policy,
)
from journeyopt.tracking.registry import PolicyRegistry
from journeyopt.tracking.run import experiment_id, open_client, tracked_run

Arrays = tuple[np.ndarray, np.ndarray]


def _log_run_and_policy(
    settings: TrackingConfig, policy: LinearSoftmaxPolicy, observations: Arrays, tmp_path: Path
) -> tuple[str, str]:
    """One run with a plot-like artifact and a registered policy; ``(run id, model
    version's storage location)``."""
    obs, masks = observations
    note = tmp_path / "note.txt"
    note.write_text("a plot stands here\n")
    with tracked_run({"seed": 1}, "artifacts", tracking=settings) as run:
        run.log_artifact(note, "plots")
        info = log_policy_model(run, policy, obs[:2], masks[:2])
    assert info is not None and run.run_id is not None
    registry = PolicyRegistry(settings)
    version = registry.register(info)
    location = registry.client.get_model_version_download_uri(registry.name, version.version)
    return run.run_id, str(location)


def _local(uri: str) -> Path:
    return Path(urlparse(uri).path) if uri.startswith("file:") else Path(uri)


def test_sqlite_store_keeps_its_artifacts_beside_the_database(
    tmp_path: Path,
    mlflow_migrated_db: Path,
    _mlflow_isolated: None,
    monkeypatch: pytest.MonkeyPatch,
    linear_policy: LinearSoftmaxPolicy,
    observations: Arrays,
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    shutil.copyfile(mlflow_migrated_db, store / "mlflow.db")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    # a relative URI, resolved against the working directory like MLflow does
    settings = TrackingConfig(
        tracking_uri="sqlite:///../store/mlflow.db", experiment="fresh", flush_every_seconds=1e6
    )
    assert sqlite_database(settings.tracking_uri) == (elsewhere / "../store/mlflow.db").absolute()

    run_id, model_location = _log_run_and_policy(settings, linear_policy, observations, tmp_path)

    artifacts = (store / LOCAL_ARTIFACT_DIR).resolve()
    client = open_client(settings)
    experiment = client.get_experiment_by_name("fresh")
    assert experiment is not None
    assert _local(experiment.artifact_location).resolve() == artifacts
    run_root = _local(client.get_run(run_id).info.artifact_uri).resolve()
    assert run_root.is_relative_to(artifacts)
    assert (run_root / "plots" / "note.txt").read_text() == "a plot stands here\n"
    assert (run_root / "config.yaml").is_file()
    model_root = _local(model_location).resolve()
    assert model_root.is_relative_to(artifacts)
    assert (model_root / "MLmodel").is_file()
    assert (model_root / "artifacts" / "policy" / "spec.json").is_file()
    assert sorted(elsewhere.iterdir()) == []  # nothing in the working directory


def test_an_existing_experiment_keeps_its_artifact_root(mlflow_sqlite: TrackingConfig) -> None:
    client = open_client(mlflow_sqlite)
    chosen = (Path(_local(mlflow_sqlite.artifact_location)).parent / "chosen").as_uri()
    made = client.create_experiment("made-before", artifact_location=chosen)
    settings = TrackingConfig(tracking_uri=mlflow_sqlite.tracking_uri, experiment="made-before")
    assert experiment_id(client, settings) == made
    assert client.get_experiment(made).artifact_location == chosen


def test_a_configured_artifact_location_wins(mlflow_sqlite: TrackingConfig) -> None:
    assert mlflow_sqlite.resolved_artifact_location() == mlflow_sqlite.artifact_location
    client = open_client(mlflow_sqlite)
    found = client.get_experiment(experiment_id(client, mlflow_sqlite))
    assert found.artifact_location == mlflow_sqlite.artifact_location


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sqlite:////data/runs/mlflow.db", Path("/data/runs/mlflow.db")),
        ("sqlite:////data/runs/mlflow.db?timeout=20", Path("/data/runs/mlflow.db")),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
        ("http://127.0.0.1:5000", None),
        ("postgresql://user@host/db", None),
        ("file:///data/mlruns", None),
    ],
)
def test_which_uris_are_local_sqlite_files(uri: str, expected: Path | None) -> None:
    assert sqlite_database(uri) == expected
    settings = TrackingConfig(tracking_uri=uri)
    location = settings.resolved_artifact_location()
    if expected is None:
        assert location is None
    else:
        assert location == (expected.parent / LOCAL_ARTIFACT_DIR).as_uri()


def test_a_server_keeps_its_own_artifact_handling(
    mlflow_remote: TrackingConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    linear_policy: LinearSoftmaxPolicy,
    observations: Arrays,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert mlflow_remote.resolved_artifact_location() is None
    run_id, model_location = _log_run_and_policy(
        mlflow_remote, linear_policy, observations, tmp_path
    )
    client = open_client(mlflow_remote)
    experiment = client.get_experiment_by_name(mlflow_remote.experiment)
    assert experiment is not None
    # the server's proxied artifact root, not a local folder
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    assert client.get_run(run_id).info.artifact_uri.startswith(experiment.artifact_location)
    assert model_location.startswith(experiment.artifact_location)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["note.txt"]
    from journeyopt.serving.served_model import load_served_model

    served = load_served_model(f"models:/{mlflow_remote.registered_model}/1", mlflow_remote)
    assert isinstance(served.policy, LinearSoftmaxPolicy)
    np.testing.assert_array_equal(served.policy.weights, linear_policy.weights)


def test_a_version_loads_from_its_own_store_whatever_mlflow_s_default(
    tmp_path: Path,
    mlflow_migrated_db: Path,
    _mlflow_isolated: None,
    linear_policy: LinearSoftmaxPolicy,
    observations: Arrays,
) -> None:
    """Two stores each with a version 1: MLflow resolves a ``models:/<name>/<version>`` URI
    against its process-wide registry whatever registry it is given, so the version is read
    from the location its own registry records."""
    from journeyopt.serving.served_model import load_served_model

    other = LinearSoftmaxPolicy(linear_policy.spec, -linear_policy.weights, linear_policy.bias)
    stores = []
    for name, policy in (("a", linear_policy), ("b", other)):
        (tmp_path / name).mkdir()
        shutil.copyfile(mlflow_migrated_db, tmp_path / name / "mlflow.db")
        settings = TrackingConfig(tracking_uri=f"sqlite:///{tmp_path / name / 'mlflow.db'}")
        _log_run_and_policy(settings, policy, observations, tmp_path)
        stores.append(settings)
    # MLflow's process-wide URIs now point at store b (set by its run)
    served = load_served_model("models:/journey-policy/1", stores[0])
    assert isinstance(served.policy, LinearSoftmaxPolicy)
    np.testing.assert_array_equal(served.policy.weights, linear_policy.weights)
    loaded = load_policy_model("models:/journey-policy/1", stores[0], tmp_path / "model")
    np.testing.assert_array_equal(unwrap_policy(loaded).weights, linear_policy.weights)
    registry = PolicyRegistry(stores[0])
    assert registry.verify(registry.version(1))
    folder = registry.download(registry.version(1), tmp_path / "download")
    assert (folder / "MLmodel").is_file()


def test_a_version_whose_files_are_gone_is_one_line(
    mlflow_sqlite: TrackingConfig,
    linear_policy: LinearSoftmaxPolicy,
    observations: Arrays,
    tmp_path: Path,
) -> None:
    """What a store split by MLflow's old default shows once the other folder is gone."""
    from journeyopt.errors import ConfigError
    from journeyopt.serving.served_model import load_served_model

    _, location = _log_run_and_policy(mlflow_sqlite, linear_policy, observations, tmp_path)
    shutil.rmtree(_local(location))
    with pytest.raises(ConfigError) as refused:
        load_served_model("models:/journey-policy/1", mlflow_sqlite)
    message = str(refused.value)
    assert message.startswith("model models:/journey-policy/1: cannot download")
    assert "train and register the policy again" in message and "\n" not in message
