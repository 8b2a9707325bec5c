"""This week's expected value of a decision, remembered per discrete state.

A world's responses depend only on a customer's discrete summary, the action and the week of
year (:mod:`journeyopt.sim.discrete`), so the expected reward of
:func:`journeyopt.sim.dynamics.expected_reward` is a function of the triple (discrete state,
action, week of year). For a request of a few customers the fixed cost of the batched path
(:func:`~journeyopt.sim.discrete.summarise` and
:func:`~journeyopt.sim.dynamics.response_probabilities`, a few dozen small numpy calls: about
0.1 ms whatever the number of customers) dominates; :class:`ExpectedValues` computes the
state index once (:func:`~journeyopt.sim.discrete.discrete_state`) and answers from a
dictionary filled by that same batched path, so a remembered value is the very number the
batched path gives (the tests compare them on random customers). Large batches take the
batched path directly: for them it is the cheaper one.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from journeyopt.agents.policy import Observation
from journeyopt.sim.discrete import discrete_state, summarise
from journeyopt.sim.dynamics import expected_reward, response_probabilities
from journeyopt.sim.world import WorldSpec

WEEKS_OF_YEAR = 54  # ISO weeks 1..53, as a radix of the key


class ExpectedValues:
    """Expected value of customers' actions under one world's response model.

    Args:
        world: The world.
        small: Calls with at most this many customers use (and fill) the memory; larger
            ones take the batched path.
        max_entries: The memory is emptied when it would hold more (states, actions and
            weeks seen), bounding it to a few megabytes.
    """

    def __init__(self, world: WorldSpec, small: int = 64, max_entries: int = 100_000) -> None:
        self.world = world
        self.small = small
        self.max_entries = max_entries
        self._n_actions = world.actions.n_actions
        self._memory: dict[int, float] = {}

    def batched(self, observation: Observation, actions: NDArray[np.int64]) -> NDArray[np.float64]:
        """(N,) expected margin minus contact cost of ``actions``, currency: the world's
        response model on every customer's summary."""
        summary = summarise(observation.features, observation.segment, self.world)
        responses = response_probabilities(self.world, summary, actions, observation.week_of_year)
        return expected_reward(self.world, responses, actions)

    def __call__(self, observation: Observation, actions: NDArray[np.int64]) -> NDArray[np.float64]:
        """(N,) as :meth:`batched`, from memory for small calls.

        Args:
            observation: ``N`` customers' features, segments (``0..S-1``) and week of year.
            actions: (N,) action indices.
        """
        n = actions.shape[0]
        if n > self.small:
            return self.batched(observation, actions)
        state = discrete_state(observation.features, observation.segment, self.world)
        keys = (
            (state * self._n_actions + actions) * WEEKS_OF_YEAR + observation.week_of_year
        ).tolist()
        memory = self._memory
        values = [memory.get(k) for k in keys]
        missing = [i for i, v in enumerate(values) if v is None]
        if missing:
            rows = np.asarray(missing, np.int64)
            subset = Observation(
                {name: np.asarray(column)[rows] for name, column in observation.features.items()},
                np.asarray(observation.segment)[rows],
                observation.week_of_year,
                observation.week,
            )
            computed = self.batched(subset, actions[rows]).tolist()
            if len(memory) + len(missing) > self.max_entries:
                memory.clear()
            for i, value in zip(missing, computed, strict=True):
                values[i] = memory[keys[i]] = value
        return np.array(values, np.float64)

    @property
    def remembered(self) -> int:
        """Number of (state, action, week of year) values in memory."""
        return len(self._memory)
