"""``calibration.workers``: a calibration on two worker processes writes the same world, the
same members, the same hold-out tables and the same card as one in a single process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from journeyopt.calibration.config import CalibrationConfig
from journeyopt.calibration.pipeline import CalibrationResult, calibrate
from journeyopt.errors import ConfigError

from .conftest import calibration_config


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_two_workers_write_what_one_writes(
    small_logs: Path,
    small_world_path: Path,
    small_calibration: CalibrationResult,
    tmp_path: Path,
) -> None:
    """The shared calibration (two workers, against the truth) and the same one in a single
    process."""
    one_process = tmp_path / "workers_1"
    truth = str(small_world_path)
    result = calibrate(calibration_config(small_logs, one_process, truth=truth, workers=1))
    outputs = {1: _files(one_process), 2: _files(small_calibration.output_dir)}
    for run in (result, small_calibration):
        assert run.fidelity is not None and run.fidelity.spread is not None  # members ran
    one, two = outputs[1], outputs[2]
    assert set(one) == set(two)
    assert any(name.startswith("members/") for name in one)
    assert "holdout_weekly.csv" in one and "responses.npz" in one
    differing = [name for name in one if one[name] != two[name]]
    assert differing == ["calibration.json"]  # its copy of the config says the workers
    meta = {w: json.loads(outputs[w]["calibration.json"]) for w in (1, 2)}
    assert meta[1]["config"]["calibration"].pop("workers") == 1
    assert meta[2]["config"]["calibration"].pop("workers") == 2
    for w in (1, 2):
        meta[w]["config"].pop("output_dir")
    assert json.dumps(meta[1], sort_keys=True) == json.dumps(meta[2], sort_keys=True)


def test_negative_workers_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"calibration\.workers must be >= 0"):
        CalibrationConfig(workers=-1)
