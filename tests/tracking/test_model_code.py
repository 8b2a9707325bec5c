"""A model folder is data: serving and scoring read it with this package's own code and never
run a file shipped in it. A ``pyfunc_code.py`` replaced by other code is refused (locally, from
the registry even with a matching recorded hash, by ``journeyopt-score``) and never executed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pytest

from journeyopt.errors import ConfigError
from journeyopt.serving.served_model import load_served_model
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.model import (
    MODEL_CODE_FILE,
    LinearSoftmaxPolicy,
    ModelFolderError,
    load_policy_folder,
    load_policy_model,
    log_policy_model,
    observation_frame,
)
from journeyopt.tracking.registry import CHAMPION, CONTENT_HASH_TAG, PolicyRegistry, content_hash
from journeyopt.tracking.run import tracked_run
from tests.commands import DEMO_SERVING

Arrays = tuple[np.ndarray, np.ndarray]


def _register(settings: TrackingConfig, policy: LinearSoftmaxPolicy, examples: Arrays) -> str:
    with tracked_run({}, "model-code", tracking=settings, log_config=False) as run:
        info = log_policy_model(run, policy, examples[0][:2], examples[1][:2])
    assert info is not None
    registry = PolicyRegistry(settings)
    version = registry.register(info).version
    registry.set_alias(CHAMPION, version)
    return version


def _download(settings: TrackingConfig, uri: str, dst: Path) -> Path:
    return Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=uri,
            dst_path=str(dst),
            tracking_uri=settings.resolved_tracking_uri(),
            registry_uri=settings.resolved_registry_uri(),
        )
    )


def _plant(code_file: Path, marker: Path) -> None:
    """Prepend code that leaves ``marker`` behind when the file is run; the rest of the file
    (the real entry) still builds a working model, so a loader that runs it succeeds."""
    payload = f"from pathlib import Path as _P\n_P({str(marker)!r}).write_text('ran')\n"
    code_file.write_text(payload + code_file.read_text())


@pytest.fixture
def champion(
    mlflow_sqlite: TrackingConfig, linear_policy: LinearSoftmaxPolicy, observations: Arrays
) -> str:
    return _register(mlflow_sqlite, linear_policy, observations)


def test_a_clean_model_folder_loads_as_data(
    mlflow_sqlite: TrackingConfig,
    champion: str,
    linear_policy: LinearSoftmaxPolicy,
    observations: Arrays,
    tmp_path: Path,
) -> None:
    folder = _download(mlflow_sqlite, f"models:/journey-policy/{champion}", tmp_path / "m")
    obs, masks = observations
    expected = linear_policy.act(obs, masks)[0]
    np.testing.assert_array_equal(load_policy_folder(folder).act(obs, masks)[0], expected)
    served = load_served_model(str(folder), mlflow_sqlite)
    np.testing.assert_array_equal(served.policy.act(obs, masks)[0], expected)
    (folder / MODEL_CODE_FILE).unlink()  # without the entry for MLflow's loader: still data
    np.testing.assert_array_equal(load_policy_folder(folder).act(obs, masks)[0], expected)


def test_replaced_code_in_a_local_folder_is_refused_and_never_run(
    mlflow_sqlite: TrackingConfig, champion: str, tmp_path: Path
) -> None:
    folder = _download(mlflow_sqlite, f"models:/journey-policy/{champion}", tmp_path / "m")
    marker = tmp_path / "code-ran"
    _plant(folder / MODEL_CODE_FILE, marker)
    with pytest.raises(ConfigError, match=f"{MODEL_CODE_FILE}: differs from") as refused:
        load_served_model(str(folder), mlflow_sqlite)
    assert "\n" not in str(refused.value)
    assert not marker.exists()


def test_replaced_code_is_refused_by_the_score_command(
    mlflow_sqlite: TrackingConfig, champion: str, tmp_path: Path
) -> None:
    folder = _download(mlflow_sqlite, f"models:/journey-policy/{champion}", tmp_path / "m")
    marker = tmp_path / "code-ran"
    _plant(folder / MODEL_CODE_FILE, marker)
    (tmp_path / "logs").mkdir()
    command = [
        str(Path(sys.executable).with_name("journeyopt-score")),
        *DEMO_SERVING,
        f"data.path={tmp_path / 'logs'}",
        "as_of=2024-03-06",
        f"model={folder}",
        "out=week/actions.csv",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: model ")
    assert f"{folder / MODEL_CODE_FILE}: differs from" in errors[0]
    assert not marker.exists()
    assert not (tmp_path / "week" / "actions.csv").exists()


def test_replaced_code_in_the_registry_is_refused_even_with_its_hash_recorded(
    mlflow_sqlite: TrackingConfig, champion: str, tmp_path: Path
) -> None:
    """Whoever can write the registry can replace the artifact and record its hash: the hash
    check passes, the code check does not."""
    registry = PolicyRegistry(mlflow_sqlite)
    source = registry.client.get_model_version(registry.name, champion).source
    logged = registry.client.get_logged_model(source.removeprefix("models:/"))
    marker = tmp_path / "code-ran"
    _plant(Path(urlparse(logged.artifact_location).path) / MODEL_CODE_FILE, marker)
    with tempfile.TemporaryDirectory() as tmp:
        digest = content_hash(_download(mlflow_sqlite, f"models:/journey-policy/{champion}", tmp))
    registry.client.set_model_version_tag(registry.name, champion, CONTENT_HASH_TAG, digest)
    assert registry.verify(registry.alias(CHAMPION))
    with pytest.raises(ConfigError, match=f"{MODEL_CODE_FILE}: differs from"):
        load_served_model(f"models:/journey-policy@{CHAMPION}", mlflow_sqlite)
    with pytest.raises(ModelFolderError, match=f"{MODEL_CODE_FILE}: differs from"):
        load_policy_model(f"models:/journey-policy@{CHAMPION}", mlflow_sqlite, tmp_path / "d")
    assert not marker.exists()


@pytest.mark.parametrize(
    "planted",
    ["code/journeyopt_extra.py", "artifacts/policy/weights.pkl", "python_model.pkl", "a.pth"],
)
def test_other_code_files_are_refused(
    mlflow_sqlite: TrackingConfig, champion: str, tmp_path: Path, planted: str
) -> None:
    folder = _download(mlflow_sqlite, f"models:/journey-policy/{champion}", tmp_path / "m")
    (folder / planted).parent.mkdir(parents=True, exist_ok=True)
    (folder / planted).write_bytes(b"import os\n")
    with pytest.raises(ModelFolderError, match="may hold data only"):
        load_policy_folder(folder)


def test_a_linked_file_is_refused(
    mlflow_sqlite: TrackingConfig, champion: str, tmp_path: Path
) -> None:
    folder = _download(mlflow_sqlite, f"models:/journey-policy/{champion}", tmp_path / "m")
    spec = folder / "artifacts" / "policy" / "spec.json"
    shutil.move(spec, tmp_path / "spec.json")
    spec.symlink_to(tmp_path / "spec.json")
    with pytest.raises(ModelFolderError, match="symbolic link"):
        load_policy_folder(folder)


def test_the_predict_face_checks_its_input(
    mlflow_sqlite: TrackingConfig,
    champion: str,
    linear_policy: LinearSoftmaxPolicy,
    observations: Arrays,
    tmp_path: Path,
) -> None:
    model = load_policy_model(
        f"models:/journey-policy/{champion}", mlflow_sqlite, tmp_path / "download"
    )
    frame = observation_frame(*observations, linear_policy.spec)
    predicted = model.predict(frame)
    actions = linear_policy.act(*observations)[0]
    np.testing.assert_array_equal(predicted["action"].to_numpy(), actions)
    with pytest.raises(Exception, match="mask_none"):
        model.predict(frame.drop(columns="mask_none"))
