"""The serving scorer the closed-loop tests serve with: a random linear policy (varied
contacts) under a business's shipped contact rules and practice, 30 % control group."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from journeyopt.agents.sb3 import policy_spec
from journeyopt.serving.config import HoldoutConfig, ServingConfig
from journeyopt.serving.scorer import Scorer
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.config import shipped_practice, shipped_rules
from journeyopt.sim.observation import observation_layout
from journeyopt.sim.world import WorldSpec
from journeyopt.tracking.model import LinearSoftmaxPolicy


def random_scorer(world: WorldSpec, business: str, seed: int = 1) -> Scorer:
    """A scorer of a random linear policy over ``world`` as serving sees it, with the shipped
    rules and practice named ``business`` and a 30 % control group."""
    layout = observation_layout(world)
    rng = np.random.default_rng(seed)
    weights = rng.normal(scale=3.0, size=(layout.size, world.actions.n_actions))
    policy = LinearSoftmaxPolicy(
        policy_spec(world, layout), weights, rng.normal(size=world.actions.n_actions)
    )
    model = ServedModel(policy, "test", "journey-policy", "1", "test", "", "")
    settings = ServingConfig(
        rules=shipped_rules(business), holdout=HoldoutConfig(staff=shipped_practice(business))
    )
    settings = replace(settings, holdout=replace(settings.holdout, control_share=0.3))
    return Scorer(model, settings, world=world)
