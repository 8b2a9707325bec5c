"""Simple target policies for the off-policy evaluation tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from journeyopt.agents.policy import Bool, Float, IntArray, Observation
from journeyopt.sim.world import load_world


@dataclass(frozen=True)
class FixedMix:
    """Each action with a fixed probability in every state (the coworking world's actions),
    the rest on ``none``; a forbidden action's probability moves to ``none``.

    Attributes:
        probabilities: Action name -> probability.
        name: Name in tables.
    """

    probabilities: Mapping[str, float]
    name: str = "fixed_mix"
    _vector: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        names = load_world("coworking").actions.names
        vector = [float(self.probabilities.get(n, 0.0)) for n in names]
        vector[0] += 1.0 - sum(vector)
        object.__setattr__(self, "_vector", tuple(vector))

    def act(
        self, observation: Observation, masks: Bool, rng: np.random.Generator
    ) -> tuple[IntArray, Float]:
        probs = np.where(masks, np.array(self._vector)[None, :], 0.0)
        probs[:, 0] += 1.0 - probs.sum(axis=1)
        return probs.argmax(axis=1).astype(np.int64), probs
