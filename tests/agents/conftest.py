"""Shared fixtures of the policy tests."""

from __future__ import annotations

import pytest

from journeyopt.sim.optimum import OptimalPolicy, cyclic_weeks_of_year, solve_optimum
from journeyopt.sim.world import WorldSpec, load_world


@pytest.fixture(scope="session")
def world() -> WorldSpec:
    return load_world("coworking")


@pytest.fixture(scope="session")
def optimum(world: WorldSpec) -> OptimalPolicy:
    return solve_optimum(world, 12, 0.99, cyclic_weeks_of_year(1, 12))
