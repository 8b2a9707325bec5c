"""The panel holds what the configured caps read, not only what the candidate summaries read:
the value tiers are chosen on the configured caps (``calibration.caps``) before the summary
selection, so caps with a gap between conversions need the panel's gap feature even when no
candidate keeps the gap (it failed with ``KeyError: 'conversion_gap_weeks'``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from journeyopt.calibration.config import CalibrateConfig, CalibrationConfig, SummaryConfig
from journeyopt.calibration.pipeline import calibrate
from journeyopt.cli.entry import to_object
from journeyopt.data.source import SourceConfig
from journeyopt.sim.world import WORLDS_DIR
from journeyopt.tracking.config import TrackingConfig
from tests.calibration.test_value_tiers import _roastery_logs
from tests.panel.windows import panel_config
from tests.sim.caps import caps_config


@pytest.mark.slow
def test_caps_with_a_gap_and_candidates_without_it(tmp_path: Path) -> None:
    _roastery_logs(tmp_path / "logs")
    source = OmegaConf.load(WORLDS_DIR.parent / "configs" / "data" / "roastery.yaml")
    source.path = str(tmp_path / "logs")
    caps = replace(
        caps_config(
            recency_cap_weeks=9, conversions_cap=3, contact_cap_weeks=4, engagement_cap_weeks=4
        ),
        gap_cap_weeks=5,
        gap_bin_weeks=2,
    )
    calibration = CalibrationConfig(
        name="roastery_caps_gap",
        caps=caps,
        value_tiers=3,
        summary=SummaryConfig(select=True, pattern_weeks=[0], last_action=[False], gap_caps=[0]),
        holdout_weeks=8,
        ensemble_size=0,
        holdout_runs=1,
        c_grid=[0.3],
        alpha_grid=[1e-3],
        workers=1,
    )
    cfg = CalibrateConfig(
        data=to_object(source, SourceConfig),
        panel=panel_config(),
        calibration=replace(calibration, card=replace(calibration.card, ensemble=False)),
        tracking=TrackingConfig(enabled=False),
        output_dir=str(tmp_path / "world"),
    )
    result = calibrate(cfg)
    meta = result.estimate.calibrated.meta
    assert "value_tiers" in meta  # the tiers were scored on the caps, gap included
    world = result.estimate.calibrated.world
    assert world.discrete.gap_cap_weeks == 0  # the only candidate: no gap
