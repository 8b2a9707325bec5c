"""A state cap longer than the history the fit sees is lowered to it, with a line on the card:
its top bins would have no fitted week, and a simulated customer ageing into them would jump to
the penalty's pooled level (CDNOW's recency cap 40 over 38 weeks of history did)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from journeyopt.calibration.config import CalibrateConfig, register_configs
from journeyopt.calibration.pipeline import calibrate
from journeyopt.cli.entry import to_object
from journeyopt.errors import ConfigError
from tests.sim.caps import discrete_spec

from .conftest import CONFIGS


def test_caps_above_the_history_are_lowered_to_it_and_tenure_is_not() -> None:
    spec = discrete_spec(
        recency_cap_weeks=40, contact_cap_weeks=5, engagement_cap_weeks=60, tenure_cap_weeks=104
    )
    used, clipped = spec.within_history(38)
    assert clipped == {"recency_cap_weeks": (40, 38), "engagement_cap_weeks": (60, 38)}
    assert (used.recency_cap_weeks, used.contact_cap_weeks) == (38, 5)
    assert (used.engagement_cap_weeks, used.tenure_cap_weeks) == (38, 104)
    assert spec.within_history(60) == (spec, {})
    assert spec.within_history(0)[0].contact_cap_weeks == 2  # never below a valid cap
    with pytest.raises(ConfigError):
        discrete_spec(recency_cap_weeks=1)


def test_cdnow_calibration_lowers_a_cap_beyond_its_38_weeks_and_the_shipped_one_fits(
    tmp_path: Path,
) -> None:
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            "calibrate",
            overrides=[
                "data=cdnow_sample",
                "panel=cdnow",
                "calibration=cdnow",
                "panel.as_of=1998-07-06",
                "tracking=off",
                f"output_dir={tmp_path / 'out'}",
                "calibration.ensemble_size=0",
                "calibration.holdout_runs=1",
                "calibration.caps.recency_cap_weeks=45",
                "calibration.summary.select=false",  # the configured cap, not a chosen one
            ],
        )
        shipped = compose(
            "calibrate", overrides=["data=cdnow_sample", "panel=cdnow", "calibration=cdnow"]
        )
    result = calibrate(to_object(cfg, CalibrateConfig))
    world = result.estimate.calibrated.world
    meta = result.estimate.calibrated.meta
    assert meta["history_weeks"] == 38
    assert world.discrete.recency_cap_weeks == 38
    assert meta["caps_clipped"] == {"recency_cap_weeks": {"configured": 45, "used": 38}}
    card = (tmp_path / "out" / "card.md").read_text()
    assert "`calibration.caps.recency_cap_weeks` 45 exceeds the 38 weeks" in card
    assert "lowered to 38" in card
    # the shipped CDNOW config asks for no more than the history: nothing is lowered
    caps = shipped.calibration.caps
    history = meta["history_weeks"]
    assert max(caps.recency_cap_weeks, caps.contact_cap_weeks, caps.engagement_cap_weeks) <= history
    # its candidates' recency goes beyond the history only through the recency kept beyond the
    # response models' own columns: the columns (recency_bins) stay within it, so nothing fitted
    # is lowered
    summary = shipped.calibration.summary
    if max(summary.recency_caps) > history:
        assert summary.recency_bins and 0 not in summary.recency_bins
        assert max(summary.recency_bins) <= history
