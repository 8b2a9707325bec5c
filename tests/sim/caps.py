"""The coworking world's summary caps (``simulators/coworking/world.yaml``, ``discrete:``) for
tests that build a :class:`~journeyopt.sim.world.DiscreteSpec` or
:class:`~journeyopt.calibration.config.CapsConfig` in Python: the schemas have no defaults for
these business choices, so a test says which it uses."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import yaml

from journeyopt.calibration.config import CapsConfig
from journeyopt.sim.world import DiscreteSpec

CAPS: dict[str, int] = {
    key: int(value)
    for key, value in yaml.safe_load(
        files("journeyopt").joinpath("simulators", "coworking", "world.yaml").read_text()
    )["discrete"].items()
    if key in ("recency_cap_weeks", "conversions_cap", "contact_cap_weeks", "engagement_cap_weeks")
}
"""recency_cap_weeks, conversions_cap, contact_cap_weeks and engagement_cap_weeks."""

PRACTICE_CYCLES: list[int] = [
    int(c)
    for c in yaml.safe_load(
        files("journeyopt").joinpath("configs", "calibration", "coworking.yaml").read_text()
    )["practice_cycles_weeks"]
]
"""The coworking demo's campaign cycles (``configs/calibration/coworking.yaml``), for tests that
call the calibration's parts directly (the pipeline reads them off the logs when none are
given)."""


def discrete_spec(**given: Any) -> DiscreteSpec:
    """The coworking world's caps, ``given`` replacing any field."""
    return DiscreteSpec(**{**CAPS, **given})


def caps_config(**given: Any) -> CapsConfig:
    """The coworking world's caps as a calibration's ``calibration.caps``, ``given`` replacing
    any field."""
    return CapsConfig(**{**CAPS, **given})
