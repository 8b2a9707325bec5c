"""Regime changes: a pure function of the world, the right type changed by the right amount."""

from __future__ import annotations

import math

import numpy as np
import pytest

from journeyopt.errors import ConfigError
from journeyopt.sim.regime import RegimeChange, changed_world, world_in_week
from journeyopt.sim.world import load_world


def test_booking_odds_halve_and_fatigue_doubles_for_one_type() -> None:
    world = load_world("coworking")
    change = RegimeChange("freelancer", after_week=3)
    new = changed_world(world, change)
    before = {s.name: s for s in world.segments}
    after = {s.name: s for s in new.segments}
    f0, f1 = before["freelancer"], after["freelancer"]
    for name in ("prospect_logit", "return_logit", "lapsed_logit"):
        odds0, odds1 = math.exp(getattr(f0, name)), math.exp(getattr(f1, name))
        assert odds1 == pytest.approx(odds0 / 2)
    assert f1.fatigue_response == pytest.approx(min(1.0, 2 * f0.fatigue_response))
    assert f1.fatigue_optout == pytest.approx(2 * f0.fatigue_optout)
    for name in ("startup_team", "corporate_team"):
        assert after[name] == before[name]
    assert world.segments[0] is before[world.segments[0].name]  # the input is not modified
    assert new.name != world.name


def test_weekly_booking_rate_of_a_prospect_halves() -> None:
    world = load_world("coworking")
    new = changed_world(world, RegimeChange("freelancer", 0))
    k = world.segment_names.index("freelancer")
    p0 = 1 / (1 + np.exp(-world.params.prospect_logit[k]))
    p1 = 1 / (1 + np.exp(-new.params.prospect_logit[k]))
    assert p1 / p0 == pytest.approx(0.5, abs=0.02)  # small weekly rates: odds ~ rates


def test_world_in_week_switches_at_the_change() -> None:
    world = load_world("coworking")
    change = RegimeChange("corporate_team", after_week=2)
    new = changed_world(world, change)
    assert world_in_week(world, new, change, 1) is world
    assert world_in_week(world, new, change, 2) is new
    assert world_in_week(world, new, None, 9) is world


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"segment": "astronaut", "after_week": 0}, "not a customer type"),
        ({"segment": "freelancer", "after_week": -1}, "after_week must be >= 0"),
        ({"segment": "freelancer", "after_week": 0, "booking_factor": 0.0}, "booking_factor"),
        ({"segment": "freelancer", "after_week": 0, "fatigue_factor": -1.0}, "fatigue_factor"),
    ],
)
def test_bad_changes_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        changed_world(load_world("coworking"), RegimeChange(**kwargs))  # type: ignore[arg-type]
