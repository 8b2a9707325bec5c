"""Shared fixtures of the simulator tests."""

from __future__ import annotations

import pytest

from journeyopt.sim.shop import ShopSpec, load_shop
from journeyopt.sim.world import WorldSpec, load_world


@pytest.fixture(scope="session")
def world() -> WorldSpec:
    return load_world("coworking")


@pytest.fixture(scope="session")
def shop() -> ShopSpec:
    """The roastery truth (simulators/roastery), the second ground-truth world."""
    return load_shop("roastery")
