"""The coworking world's YAML, renamed: the same world as another business would name it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import yaml

from journeyopt.sim.discrete import DiscreteLayout
from journeyopt.sim.world import WORLDS_DIR, FittedResponses, WorldSpec


def raw_coworking() -> dict[str, Any]:
    """The parsed ``simulators/coworking/world.yaml``."""
    raw = yaml.safe_load((WORLDS_DIR / "coworking" / "world.yaml").read_text(encoding="utf-8"))
    assert isinstance(raw, dict)
    return raw


def renamed(value: Any, names: Mapping[str, str]) -> Any:
    """``value`` with every mapping key in ``names`` renamed, order kept (actions and customer
    types are keys of the world's YAML wherever they appear)."""
    if isinstance(value, dict):
        return {names.get(k, k): renamed(v, names) for k, v in value.items()}
    return value


def fitted_world(world: WorldSpec, seed: int, tenure_cap_weeks: int = 0) -> WorldSpec:
    """``world`` as a calibrated world with random response tables (every state different)."""
    world = replace(world, discrete=replace(world.discrete, tenure_cap_weeks=tenure_cap_weeks))
    rng = np.random.default_rng(seed)
    n, a = DiscreteLayout.of(world).n_states, world.actions.n_actions
    responses = FittedResponses(
        convert_logit=rng.normal(-2.0, 1.0, (n, a)),
        convert_season=rng.normal(0.0, 0.3, 54),
        value=rng.uniform(10.0, 500.0, n),
        engage_logit=rng.normal(-2.0, 1.0, (n, a)),
        engage_season=rng.normal(0.0, 0.3, 54),
        optout=rng.uniform(0.0, 0.05, (n, a)),
        actions_identified=True,
    )
    return replace(world, name=f"fitted-{seed}", responses=responses)
