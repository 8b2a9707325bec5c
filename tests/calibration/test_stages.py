"""A calibration says where its time went: every stage timed once, in order, adding up to
the run."""

from __future__ import annotations

from journeyopt.calibration.pipeline import CalibrationResult

STAGES = (
    "ingest",
    "panel",
    "propensities",
    "penalties",
    "point_fit",
    "ensemble",
    "base",
    "holdout",
    "policies",  # small_calibration has a ground truth
    "card",
)


def test_every_stage_is_timed_in_order(small_calibration: CalibrationResult) -> None:
    stages = small_calibration.stages
    assert tuple(stages) == STAGES
    assert all(t.wall >= 0 and t.cpu >= 0 for t in stages.values())
    # the fits of a 3,000-customer log take measurable time
    assert stages["penalties"].cpu > 0 and stages["ensemble"].cpu > 0
