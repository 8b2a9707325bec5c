"""The panel holds what the configured caps read, not only what the candidate summaries read:
the value tiers are chosen on the configured caps (``calibration.caps``) before the summary
selection, so caps with a gap between conversions need the panel's gap feature even when no
candidate keeps the gap (it failed with ``KeyError: 'conversion_gap_weeks'``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from journeyopt.calibration.config import CalibrationConfig, SummaryConfig
from tests.calibration.roastery_calibration import calibrate_roastery
from tests.calibration.test_value_tiers import _roastery_logs
from tests.sim.caps import caps_config


@pytest.mark.slow
def test_caps_with_a_gap_and_candidates_without_it(tmp_path: Path) -> None:
    _roastery_logs(tmp_path / "logs")
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
    result = calibrate_roastery(tmp_path / "logs", tmp_path / "world", calibration)
    meta = result.estimate.calibrated.meta
    assert "value_tiers" in meta  # the tiers were scored on the caps, gap included
    world = result.estimate.calibrated.world
    assert world.discrete.gap_cap_weeks == 0  # the only candidate: no gap
