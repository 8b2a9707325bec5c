"""Saved worlds and policies carry their format version: a world saved today loads; a folder
written in another format is refused with one line naming the folder, the version found, the
version expected and what to do (through a real command: exit 2, no traceback); a folder
written before versions were recorded still loads when it reads, and is refused the same way
when it does not."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml

from journeyopt.calibration.calibrated import CalibratedWorld
from journeyopt.errors import ConfigError
from journeyopt.serving.served_model import load_served_model
from journeyopt.sim.discrete import DiscreteLayout
from journeyopt.sim.world import (
    WORLD_FORMAT_VERSION,
    FittedResponses,
    WorldFormatError,
    WorldSpec,
    load_world,
)
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.model import (
    SPEC_FILE,
    SPEC_FORMAT_VERSION,
    LinearSoftmaxPolicy,
    ModelFolderError,
    PolicySpec,
    load_policy,
    log_policy_model,
    save_policy,
)
from journeyopt.tracking.run import tracked_run
from tests.commands import error_line

ROOT = Path(__file__).resolve().parents[2]


def _responses(world: WorldSpec, rows: int | None = None) -> FittedResponses:
    n = DiscreteLayout.of(world).n_states if rows is None else rows
    a = world.actions.n_actions
    optout = np.full((n, a), 0.01)
    optout[:, 0] = 0.0
    return FittedResponses(
        convert_logit=np.full((n, a), -2.0),
        convert_season=np.zeros(54),
        value=np.full(n, 100.0),
        engage_logit=np.full((n, a), -3.0),
        engage_season=np.zeros(54),
        optout=optout,
        actions_identified=True,
    )


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    """A calibrated world folder written by today's code."""
    world = load_world("coworking")
    calibrated = CalibratedWorld(replace(world, name="saved", responses=_responses(world)), (), {})
    return calibrated.save(tmp_path / "world").parent


def _rewrite(folder: Path, change: dict[str, object], drop: tuple[str, ...] = ()) -> None:
    path = folder / "world.yaml"
    raw = yaml.safe_load(path.read_text())
    raw.update(change)
    for key in drop:
        raw.pop(key)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def test_a_world_saved_today_records_its_format_and_loads(saved: Path) -> None:
    raw = yaml.safe_load((saved / "world.yaml").read_text())
    assert raw["format_version"] == WORLD_FORMAT_VERSION
    loaded = CalibratedWorld.load(saved)
    assert loaded.world.name == "saved"
    assert loaded.world.responses is not None
    np.testing.assert_array_equal(loaded.world.responses.value, 100.0)


def _evaluate(folder: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``journeyopt-evaluate`` on the world ``folder``, as a user runs it."""
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("journeyopt-evaluate")),
            f"simulator.world={folder}",
            f"output_dir={tmp_path / 'out'}",
            f"hydra.run.dir={tmp_path / 'hydra'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": str(Path(sys.executable).parent), "COLUMNS": "300", "HOME": str(tmp_path)},
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("found", [0, WORLD_FORMAT_VERSION + 1])
def test_a_world_in_another_format_is_one_line_through_the_command(
    saved: Path, tmp_path: Path, found: int
) -> None:
    _rewrite(saved, {"format_version": found})
    done = _evaluate(saved, tmp_path)
    last = error_line(done, only_line=False)
    written = "0 (written before journeyopt recorded one)" if found == 0 else str(found)
    assert last.startswith(
        f"error: {saved}: world format {written}, this journeyopt reads format "
        f"{WORLD_FORMAT_VERSION}; re-run journeyopt-calibrate"
    ), last
    assert not (tmp_path / "out").exists()


def test_an_unversioned_world_that_still_reads_loads(saved: Path) -> None:
    _rewrite(saved, {}, drop=("format_version",))
    assert CalibratedWorld.load(saved).world.name == "saved"


def test_an_unversioned_world_that_no_longer_reads_is_format_0(saved: Path) -> None:
    # an earlier state numbering: fewer rows than today's summary numbers
    world = load_world(saved)
    rows = DiscreteLayout.of(world).n_states - 7
    _responses(world, rows).save(saved / "responses.npz")
    _rewrite(saved, {}, drop=("format_version",))
    with pytest.raises(WorldFormatError) as refused:
        load_world(saved)
    message = str(refused.value)
    assert message.startswith(f"{saved}: world format 0 (written before journeyopt recorded one)")
    assert f"{rows} state rows" in message and "re-run journeyopt-calibrate" in message
    assert "\n" not in message
    # with today's version recorded, the same folder is a plain invalid world
    _rewrite(saved, {"format_version": WORLD_FORMAT_VERSION})
    with pytest.raises(ConfigError, match=f"{rows} state rows") as invalid:
        load_world(saved)
    assert not isinstance(invalid.value, WorldFormatError)


def test_an_unversioned_world_missing_a_key_is_format_0(saved: Path) -> None:
    _rewrite(saved, {}, drop=("format_version", "margin_rate"))
    with pytest.raises(WorldFormatError, match=r"world format 0 .*'margin_rate'"):
        load_world(saved)


def test_a_hand_written_world_needs_no_version() -> None:
    assert "format_version" not in yaml.safe_load(
        (ROOT / "simulators" / "coworking" / "world.yaml").read_text()
    )
    assert load_world("coworking").responses is None


@pytest.mark.parametrize("found", [None, 0, SPEC_FORMAT_VERSION + 1])
def test_a_policy_in_another_format_is_one_line(tmp_path: Path, found: int | None) -> None:
    spec = PolicySpec(("none", "mail"), ("recency_weeks", "frequency"), "obs-test")
    policy = LinearSoftmaxPolicy(spec, np.zeros((2, 2)), np.zeros(2))
    folder = save_policy(policy, tmp_path / "policy")
    assert isinstance(load_policy(folder), LinearSoftmaxPolicy)
    data = json.loads((folder / SPEC_FILE).read_text())
    if found is None:
        del data["format_version"]
    else:
        data["format_version"] = found
    (folder / SPEC_FILE).write_text(json.dumps(data))
    written = str(found) if found else "0 (written before journeyopt recorded one)"
    expected = (
        f"{folder}: policy format {written}, this journeyopt reads format "
        f"{SPEC_FORMAT_VERSION}; re-run journeyopt-train"
    )
    with pytest.raises(ModelFolderError) as refused:
        load_policy(folder)
    assert str(refused.value).startswith(expected)


def test_a_served_model_folder_in_another_format_is_a_config_error(
    tmp_path: Path, mlflow_sqlite: TrackingConfig
) -> None:
    """Through the serving loader of a local MLflow model folder (what ``journeyopt-serve``
    and ``journeyopt-score`` read), the same line as a ``ConfigError`` (exit 2)."""
    spec = PolicySpec(("none", "mail"), ("recency_weeks", "frequency"), "obs-test")
    policy = LinearSoftmaxPolicy(spec, np.zeros((2, 2)), np.zeros(2))
    with tracked_run({}, "format", tracking=mlflow_sqlite, log_config=False) as run:
        info = log_policy_model(run, policy, np.zeros((2, 2), np.float32), np.ones((2, 2), bool))
    assert info is not None
    folder = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=info.model_uri,
            dst_path=str(tmp_path / "model"),
            tracking_uri=mlflow_sqlite.tracking_uri,
        )
    )
    assert load_served_model(str(folder), mlflow_sqlite).policy is not None
    spec_path = folder / "artifacts" / "policy" / SPEC_FILE
    data = json.loads(spec_path.read_text())
    data["format_version"] = SPEC_FORMAT_VERSION + 1
    spec_path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"policy format \d+, this journeyopt reads format"):
        load_served_model(str(folder), mlflow_sqlite)


def _rewrite_meta(folder: Path, found: int | None) -> None:
    path = folder / "calibration.json"
    meta = json.loads(path.read_text())
    meta.pop("format_version")
    if found is not None:
        meta["format_version"] = found
    path.write_text(json.dumps(meta))


def test_a_calibration_record_saved_today_carries_the_folder_format(saved: Path) -> None:
    meta = json.loads((saved / "calibration.json").read_text())
    assert meta["format_version"] == WORLD_FORMAT_VERSION
    assert CalibratedWorld.load(saved).meta["format_version"] == WORLD_FORMAT_VERSION


@pytest.mark.parametrize("found", [0, WORLD_FORMAT_VERSION + 1])
def test_a_calibration_record_of_another_format_is_one_line(saved: Path, found: int) -> None:
    _rewrite_meta(saved, found)
    with pytest.raises(WorldFormatError) as refused:
        CalibratedWorld.load(saved)
    message = str(refused.value)
    written = "0 (written before journeyopt recorded one)" if found == 0 else str(found)
    assert message.startswith(
        f"{saved}: world format {written}, this journeyopt reads format "
        f"{WORLD_FORMAT_VERSION} (in calibration.json); re-run journeyopt-calibrate"
    ), message
    assert "\n" not in message


def test_an_unversioned_calibration_record_still_loads(saved: Path) -> None:
    _rewrite_meta(saved, None)
    assert "format_version" not in CalibratedWorld.load(saved).meta
