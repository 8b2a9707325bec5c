"""Refunds in the measured outcomes: the uplift's revenue and margin and the off-policy
evaluation's logged reward use the panel's net revenue, so a refund lowers them in the week it
is booked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from journeyopt.evaluation.ope.logged import week_rewards
from journeyopt.monitoring.exposure import weekly_outcomes
from journeyopt.panel.build import build_panel
from journeyopt.sim.world import load_world
from tests.panel.conftest import CHANNELS, make_logs
from tests.panel.windows import panel_config

EVENTS = [
    ("a", "2024-01-02T10:00", "conversion", 100.0),
    ("a", "2024-01-16T10:00", "refund", 40.0),  # week 2
]


def _panel(events: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return build_panel(make_logs(events), panel_config(as_of="2024-01-29"), CHANNELS)


def test_uplift_outcomes_are_net_of_refunds() -> None:
    outcomes = weekly_outcomes(_panel(EVENTS), 0.3)
    np.testing.assert_allclose(outcomes["revenue"], [100.0, 0.0, -40.0, 0.0])
    np.testing.assert_allclose(outcomes["margin"], [30.0, 0.0, -12.0, 0.0])
    np.testing.assert_allclose(outcomes["conversions"], [1, 0, 0, 0])


def test_logged_reward_is_net_of_refunds() -> None:
    world = load_world("coworking")
    with_refund = week_rewards(_panel(EVENTS), world)
    without = week_rewards(_panel(EVENTS[:1]), world)
    assert with_refund[0] == pytest.approx(without[0])
    assert with_refund[2] == pytest.approx(-40.0 * world.margin_rate)
    assert with_refund.sum() == pytest.approx(60.0 * world.margin_rate)
