"""Refunds in the calibration's customer-weeks: the value model sees every converting week's
list value scaled by the share of value not refunded, so the world's reward is net of refunds."""

from __future__ import annotations

import numpy as np
import pytest

from journeyopt.calibration.weeks import customer_weeks, net_list_values, segment_names
from journeyopt.panel.build import build_panel
from journeyopt.sim.discrete import DiscreteLayout
from tests.panel.conftest import CHANNELS, make_logs
from tests.panel.windows import panel_config
from tests.sim.caps import discrete_spec


def test_net_list_values_spreads_refunds_over_the_converting_weeks() -> None:
    value = np.array([100.0, 0.0, 50.0, 0.0])
    refunded = np.array([0.0, 30.0, 0.0, 0.0])
    converted = np.array([True, False, True, False])
    net = net_list_values(value, refunded, converted)
    np.testing.assert_allclose(net, [80.0, 0.0, 40.0, 0.0])
    assert net.sum() == pytest.approx(value.sum() - refunded.sum())
    assert net_list_values(value, np.zeros(4), converted) is value  # no refunds: unchanged
    np.testing.assert_array_equal(net_list_values(value, value * 9, converted), 0.0)


def test_customer_weeks_value_is_net_of_refunds() -> None:
    logs = make_logs(
        [
            ("a", "2024-01-02T10:00", "engagement", 0.0),  # first week (dropped)
            ("a", "2024-01-09T10:00", "conversion", 100.0),
            ("a", "2024-01-23T10:00", "refund", 25.0),  # a week without a purchase
            ("a", "2024-01-30T10:00", "conversion", 25.0),
        ]
    )
    panel = build_panel(logs, panel_config(as_of="2024-02-05"), CHANNELS)
    segments = segment_names(panel)
    layout = DiscreteLayout(discrete_spec(), len(segments), len(CHANNELS))
    weeks = customer_weeks(panel, layout, CHANNELS, ("none",), segments)
    assert weeks.converted.tolist() == [True, False, False, True]
    np.testing.assert_allclose(weeks.list_value, [80.0, 0.0, 0.0, 20.0])
    assert weeks.list_value.sum() == pytest.approx(panel["revenue"].sum())
