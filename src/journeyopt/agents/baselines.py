"""Baseline policies behind the :class:`~journeyopt.agents.policy.Policy` interface.

- :class:`NoContact`: never contacts anybody.
- :class:`UniformRandom`: uniform over the allowed actions (``none`` included).
- :class:`StaffPolicy`: today's practice, hand-written (a
  :class:`journeyopt.sim.practice.Practice`) or estimated from the logs (a
  :class:`journeyopt.sim.practice.LoggedPractice`, stochastic like the logging policy).
- :class:`MyopicPolicy`: "next best offer", the allowed action of the highest expected reward
  this week under the world's own response model (a greedy policy that knows the truth).
- :class:`OptimumPolicy`: the exact finite-horizon optimum of
  :func:`journeyopt.sim.optimum.solve_optimum`, looked up by the discrete state.

Deterministic policies return one-hot probabilities (all but ``random`` and a practice
estimated from the logs). A deterministic policy's choice that the
masks forbid (stricter contact rules than the world's opt-outs) is replaced by ``none``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from journeyopt.agents.policy import (
    Bool,
    Float,
    IntArray,
    Observation,
    masked_argmax,
    one_hot,
    sample_from,
)
from journeyopt.sim.discrete import discrete_state, summarise
from journeyopt.sim.dynamics import expected_reward, response_probabilities
from journeyopt.sim.optimum import OptimalPolicy
from journeyopt.sim.practice import LoggedPractice, Practice
from journeyopt.sim.world import WorldSpec


def _allowed_or_none(actions: IntArray, masks: Bool) -> IntArray:
    """Replace actions the masks forbid by ``none`` (0)."""
    a = np.asarray(actions, np.int64)
    return np.where(masks[np.arange(a.shape[0]), a], a, 0).astype(np.int64)


@dataclass(frozen=True)
class NoContact:
    """Never contact: action ``none`` for everybody."""

    name: str = "no_contact"

    def act(
        self, observation: Observation, masks: Bool, rng: np.random.Generator
    ) -> tuple[IntArray, Float]:
        actions = np.zeros(observation.n, np.int64)
        return actions, one_hot(actions, masks.shape[1])


@dataclass(frozen=True)
class UniformRandom:
    """Uniform over the allowed actions (``none`` included); one uniform draw per customer."""

    name: str = "random"

    def act(
        self, observation: Observation, masks: Bool, rng: np.random.Generator
    ) -> tuple[IntArray, Float]:
        n_allowed = masks.sum(axis=1)
        k = np.minimum(np.floor(rng.random(masks.shape[0]) * n_allowed), n_allowed - 1)
        # the k-th allowed column
        actions = np.argmax(np.cumsum(masks, axis=1) > k[:, None], axis=1).astype(np.int64)
        return actions, masks / n_allowed[:, None]


@dataclass(frozen=True)
class StaffPolicy:
    """Today's practice. The campaign calendar runs on ``observation.week``.

    A hand-written :class:`~journeyopt.sim.practice.Practice` acts deterministically (without
    the logs' exploration); a :class:`~journeyopt.sim.practice.LoggedPractice` (estimated from
    the logs) draws each action with its estimated probability given the state, restricted to
    the allowed actions and renormalised (one uniform of ``rng`` per customer).

    Attributes:
        world: The world (action and segment names).
        practice: Today's practice (checked against ``world``: ``Practice.check``,
            ``LoggedPractice.check``).
    """

    world: WorldSpec
    practice: Practice | LoggedPractice
    name: str = "staff_rules"

    def act(
        self, observation: Observation, masks: Bool, rng: np.random.Generator
    ) -> tuple[IntArray, Float]:
        if isinstance(self.practice, LoggedPractice):
            probabilities = self.practice.probabilities(
                observation.features,
                observation.segment,
                observation.segment_names or self.world.segment_names,
                observation.week_of_year,
                observation.week,
                masks,
            )
            return sample_from(probabilities, rng), probabilities
        staff = self.practice.actions(
            self.world, observation.features, observation.segment, observation.week
        )
        actions = _allowed_or_none(staff, masks)
        return actions, one_hot(actions, masks.shape[1])


def expected_rewards(world: WorldSpec, observation: Observation) -> Float:
    """(N, A) expected reward of each action this week under the world's response model,
    currency."""
    summary = summarise(observation.features, observation.segment, world)
    n, n_actions = observation.n, world.actions.n_actions
    rewards = np.empty((n, n_actions))
    for a in range(n_actions):
        actions = np.full(n, a, np.int64)
        responses = response_probabilities(world, summary, actions, observation.week_of_year)
        rewards[:, a] = expected_reward(world, responses, actions)
    return rewards


@dataclass(frozen=True)
class MyopicPolicy:
    """ "Next best offer": maximise this week's expected reward over the allowed actions
    (ties to the lowest index, so ``none`` unless a contact pays for itself this week).

    Attributes:
        world: The world whose response model scores the actions.
    """

    world: WorldSpec
    name: str = "myopic"

    def act(
        self, observation: Observation, masks: Bool, rng: np.random.Generator
    ) -> tuple[IntArray, Float]:
        actions = masked_argmax(expected_rewards(self.world, observation), masks)
        return actions, one_hot(actions, masks.shape[1])


@dataclass(frozen=True)
class OptimumPolicy:
    """The exact optimum: the DP's action for the customer's discrete state and episode week.

    Optimal under the contact rules it was solved with (``optimum.rules``: the world's own,
    opt-outs only, unless ``solve_optimum(..., rules=)``); under masks it did not plan for
    (``optimum.unseen_rules``, or rules other than its own) a forbidden planned action becomes
    ``none`` (and the result is no longer optimal).

    Attributes:
        world: The world the optimum was solved for.
        optimum: The solved optimum; ``observation.week`` must be below its horizon.
    """

    world: WorldSpec
    optimum: OptimalPolicy
    name: str = "optimum"

    def act(
        self, observation: Observation, masks: Bool, rng: np.random.Generator
    ) -> tuple[IntArray, Float]:
        if observation.week >= self.optimum.horizon_weeks:
            raise ValueError(
                f"week {observation.week} is beyond the optimum's horizon "
                f"({self.optimum.horizon_weeks} weeks)"
            )
        expected_woy = int(self.optimum.weeks_of_year[observation.week])
        if observation.week_of_year != expected_woy:
            raise ValueError(
                f"the optimum was solved with week {observation.week} in week of year "
                f"{expected_woy}, the observation is in {observation.week_of_year}"
            )
        states = discrete_state(observation.features, observation.segment, self.world)
        chosen = self.optimum.optimal_actions(states, observation.week)
        actions = _allowed_or_none(chosen, masks)
        return actions, one_hot(actions, masks.shape[1])


BASELINES: tuple[str, ...] = ("no_contact", "random", "staff_rules", "myopic", "optimum")
"""Names accepted by :func:`make_baseline`."""


def make_baseline(
    name: str,
    world: WorldSpec,
    practice: Practice | LoggedPractice | None = None,
    optimum: OptimalPolicy | None = None,
) -> NoContact | UniformRandom | StaffPolicy | MyopicPolicy | OptimumPolicy:
    """The baseline called ``name`` (see :data:`BASELINES`); ``practice`` (today's practice) is
    required for ``"staff_rules"``, ``optimum`` for ``"optimum"``."""
    if name == "no_contact":
        return NoContact()
    if name == "random":
        return UniformRandom()
    if name == "staff_rules":
        if practice is None:
            raise ValueError("the staff_rules baseline needs today's practice")
        return StaffPolicy(world, practice)
    if name == "myopic":
        return MyopicPolicy(world)
    if name == "optimum":
        if optimum is None:
            raise ValueError("the optimum baseline needs a solved optimum")
        return OptimumPolicy(world, optimum)
    raise ValueError(f"unknown baseline {name!r}; known: {BASELINES}")
