"""The coworking demo's panel windows (``configs/panel/coworking.yaml``) for tests that build a
:class:`~journeyopt.panel.config.PanelConfig` in Python: the schema has no defaults for these
business choices, so a test says which it uses."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import yaml

from journeyopt.panel.config import PanelConfig
from journeyopt.panel.state import FeatureSpec

WINDOWS: dict[str, int] = {
    key: int(value)
    for key, value in yaml.safe_load(
        files("journeyopt").joinpath("configs", "panel", "coworking.yaml").read_text()
    ).items()
    if key in ("lapse_weeks", "frequency_weeks", "fatigue_weeks", "engagement_weeks")
}
"""lapse_weeks, frequency_weeks, fatigue_weeks and engagement_weeks of the demo's config."""


def panel_config(**given: Any) -> PanelConfig:
    """A panel config with the demo's windows, ``given`` replacing any of its fields."""
    return PanelConfig(**{**WINDOWS, **given})


def feature_windows(**given: Any) -> FeatureSpec:
    """A feature spec with the demo's windows, ``given`` (its channels...) replacing any."""
    return FeatureSpec(**{**WINDOWS, **given})
