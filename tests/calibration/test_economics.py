"""The business's economics are the source's own and have no default: a calibration (or an
uplift) of logs whose source does not say what a sale is worth stops before any work, instead of
valuing every policy with the coworking demo's margin (on another business's logs that doubled
every calibrated policy value)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from journeyopt.calibration.pipeline import calibrate
from journeyopt.data.source import EconomicsConfig, SourceConfig
from journeyopt.errors import ConfigError
from tests.calibration.conftest import calibration_config


def test_a_source_without_a_margin_is_refused_before_any_work(
    small_logs: Path, tmp_path: Path
) -> None:
    cfg = calibration_config(small_logs, tmp_path / "world")
    unset = replace(cfg, data=replace(cfg.data, economics=EconomicsConfig(currency="EUR")))
    with pytest.raises(ConfigError, match=r"data\.economics\.margin_rate is not set"):
        calibrate(unset)
    assert not (tmp_path / "world").exists()


def test_the_margin_comes_from_the_source(small_logs: Path, tmp_path: Path) -> None:
    cfg = calibration_config(small_logs, tmp_path / "world")
    quick = replace(cfg.calibration, ensemble_size=0, holdout_weeks=0, truth_world="")
    shop = replace(
        cfg, calibration=quick, data=replace(cfg.data, economics=EconomicsConfig("USD", 0.35))
    )
    world = calibrate(shop).estimate.calibrated.world
    assert world.margin_rate == 0.35 and world.currency == "USD"


def test_shipped_sources_declare_their_economics() -> None:
    from tests.calibration.conftest import source_config

    for name, margin in (("coworking", 0.7), ("coworking_crm", 0.7), ("cdnow", 1.0)):
        assert source_config(name, ["data.path=x"]).economics.margin() == margin
    with pytest.raises(ConfigError, match="margin_rate"):
        SourceConfig(economics=EconomicsConfig(margin_rate=1.5))


def test_the_command_says_so_in_one_line(small_logs: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "journeyopt.cli.calibrate",
            "data=coworking",
            "panel=coworking",
            "calibration=coworking",
            f"data.path={small_logs}",
            "data.economics.margin_rate=null",
            f"output_dir={tmp_path / 'w'}",
            "tracking=off",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().startswith("error: data.economics.margin_rate is not set")
    assert "Traceback" not in done.stderr
