"""Shared fixtures of the simulator tests."""

from __future__ import annotations

import pytest

from journeyopt.sim.world import WorldSpec, load_world


@pytest.fixture(scope="session")
def world() -> WorldSpec:
    return load_world("coworking")
