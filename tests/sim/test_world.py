"""The world spec: loading, validation, and agreement with the coworking source config."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

from journeyopt.cli.entry import to_object
from journeyopt.data.source import SourceConfig
from journeyopt.errors import ConfigError
from journeyopt.sim.rules import ActionCatalog
from journeyopt.sim.world import WORLDS_DIR, WorldSpec, load_world, world_from_dict

RAW: dict[str, Any] = yaml.safe_load((WORLDS_DIR / "coworking" / "world.yaml").read_text())


def test_coworking_world_loads_with_three_types(world: WorldSpec) -> None:
    assert world.segment_names == ("freelancer", "startup_team", "corporate_team")
    assert world.actions.names[0] == "none"
    p = world.params
    s, a = len(world.segments), world.actions.n_actions
    assert p.action_logit.shape == p.optout.shape == (s, a)
    assert np.all(p.action_logit[:, 0] == 0) and np.all(p.optout[:, 0] == 0)
    assert p.season.shape == (54,)
    assert p.season[31] < 0 and p.season[52] < 0 and p.season[1] < 0 and p.season[15] == 0


def test_actions_match_the_coworking_source_config(world: WorldSpec) -> None:
    cfg = OmegaConf.load(WORLDS_DIR.parent / "configs" / "data" / "coworking.yaml")
    cfg.path = "unused"
    source = to_object(cfg, SourceConfig)
    assert ActionCatalog.from_source(source) == world.actions
    assert tuple(source.contact_channels) == world.channels
    roles = source.event_roles
    from journeyopt.sim.population import event_kinds

    for kind in event_kinds(world):
        assert kind in roles, f"world logs {kind!r}, unknown to the source config"
    for kind in world.kinds:
        assert roles[kind] == "conversion"
    for kind in world.engagement_kinds.values():
        assert roles[kind] == "engagement"


def test_load_world_by_folder_and_file(world: WorldSpec) -> None:
    assert load_world(WORLDS_DIR / "coworking") == world
    assert load_world(WORLDS_DIR / "coworking" / "world.yaml") == world


def test_unknown_world_names_the_shipped_ones() -> None:
    with pytest.raises(ConfigError, match=r"shipped: .*coworking"):
        load_world("atlantis")


def _broken(path: list[str], value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(RAW)
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return raw


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (["margin_rate"], 1.5, "margin_rate"),
        (["segments", "freelancer", "share"], 0.9, "shares"),
        (["segments", "freelancer", "optout", "personal_call"], -0.1, "optout.personal_call"),
        (["segments", "freelancer", "action_logit", "fax"], 1.0, "unknown"),
        (["segments", "startup_team", "kinds", "day_pass"], [0.2, -5.0], "mean value"),
        (["seasonality", "summer", "first_week"], 60, "not in 1..53"),
        (["discrete", "contact_cap_weeks"], 1, "contact_cap_weeks"),
        (["population", "active"], 0.9, "population"),
        (["actions", "newsletter", "channel"], "fax", "channels"),
        (["engagement_kinds", "arrival"], None, "arrival"),
    ],
)
def test_invalid_worlds_are_refused(path: list[str], value: Any, match: str) -> None:
    raw = _broken(path, value)
    if value is None:
        del raw["engagement_kinds"][path[-1]]
    with pytest.raises(ConfigError, match=match):
        world_from_dict(raw)


def test_params_are_read_only(world: WorldSpec) -> None:
    with pytest.raises(ValueError, match="read-only"):
        world.params.cost[1] = 0.0
