"""A weekly capacity in simulation: the optimum priced by bisection stays within the capacity's
weekly share on average, and ``journeyopt-compare`` reports what the capacity costs against
the unconstrained optimum."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module

from journeyopt.cli.entry import to_object
from journeyopt.errors import ConfigError
from journeyopt.evaluation.capacity import (
    CAPACITY_POLICY,
    capacity_prices,
    priced_world,
)
from journeyopt.evaluation.compare import CompareConfig, compare, register_configs
from journeyopt.sim.config import RulesConfig, shipped_rules
from journeyopt.sim.world import WorldSpec, load_world
from journeyopt.tracking.config import TrackingConfig
from tests.commands import DEMO_WORLD

register_configs()
HORIZON = 6


@pytest.fixture(scope="module")
def world() -> WorldSpec:
    return load_world("coworking")


def test_the_priced_optimum_keeps_the_capacity_share_on_average(world: WorldSpec) -> None:
    rules = shipped_rules("coworking").for_world(world, "simulator.rules")
    call = world.actions.names.index("personal_call")
    prices = capacity_prices(
        world,
        {"personal_call": 0.03},
        rules,
        horizon_weeks=HORIZON,
        gamma=0.995,
        start_week_of_year=1,
        n_customers=200,
        seed=3,
        iterations=5,
    )
    assert prices.unconstrained["personal_call"] > 0.03  # the capacity binds: the test can fail
    assert prices.shares["personal_call"] <= 0.03
    assert prices.prices["personal_call"] > 0.0
    assert prices.priced.actions.costs[call] == pytest.approx(
        world.actions.costs[call] + prices.prices["personal_call"]
    )
    assert priced_world(world, {}).actions.costs == world.actions.costs


def test_compare_reports_the_value_a_capacity_costs(tmp_path: Path) -> None:
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        node = compose(
            "compare",
            overrides=[
                *DEMO_WORLD,
                f"simulator.horizon_weeks={HORIZON}",
                "evaluation.n_customers=150",
                f"output_dir={tmp_path}",
                "+simulator.rules.capacity={personal_call: 30}",
                "simulator.rules.capacity_customers=1000",
            ],
        )
    cfg = to_object(node, CompareConfig)
    cfg.tracking = TrackingConfig(enabled=False)
    result = compare(cfg)
    assert CAPACITY_POLICY in set(result.table["policy"])
    lost = result.capacity["eval/capacity_value_lost"]
    assert result.capacity["eval/capacity_share/personal_call"] <= 0.03
    assert result.capacity["eval/capacity_unconstrained_share/personal_call"] > 0.03
    assert np.isfinite(lost) and result.capacity["eval/capacity_value_lost_ci_high"] > 0.0
    assert lost > result.capacity["eval/capacity_value_lost_ci_low"]
    assert "capacity_value_lost" in (tmp_path / "capacity.md").read_text()


def test_a_capacity_in_simulation_needs_the_customer_count() -> None:
    with pytest.raises(ConfigError, match=r"needs simulator\.rules\.capacity_customers"):
        RulesConfig(capacity={"personal_call": 30}).capacity_shares("simulator.rules")
    assert RulesConfig().capacity_shares("simulator.rules") == {}
