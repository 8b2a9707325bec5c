"""``journeyopt-calibrate`` on roastery logs the way the calibration tests run it: the shipped
roastery source pointed at the logs, the tests' panel windows, tracking off and the card
without its ensemble part (the tests fit no ensemble)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from omegaconf import OmegaConf

from journeyopt.calibration.config import CalibrateConfig, CalibrationConfig
from journeyopt.calibration.pipeline import CalibrationResult, calibrate
from journeyopt.cli.entry import to_object
from journeyopt.data.source import SourceConfig
from journeyopt.sim.world import WORLDS_DIR
from journeyopt.tracking.config import TrackingConfig
from tests.panel.windows import panel_config


def calibrate_roastery(logs: Path, out: Path, calibration: CalibrationConfig) -> CalibrationResult:
    """Calibrates the roastery logs in ``logs`` with ``calibration`` into ``out``."""
    source = OmegaConf.load(WORLDS_DIR.parent / "configs" / "data" / "roastery.yaml")
    source.path = str(logs)
    cfg = CalibrateConfig(
        data=to_object(source, SourceConfig),
        panel=panel_config(),
        calibration=replace(calibration, card=replace(calibration.card, ensemble=False)),
        tracking=TrackingConfig(enabled=False),
        output_dir=str(out),
    )
    return calibrate(cfg)
