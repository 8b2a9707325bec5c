"""The vectorised population environment: ``N`` customers stepped at once, an SB3 ``VecEnv``.

The same shell as :class:`journeyopt.sim.env.CustomerJourneyEnv` (it calls the same
:func:`~journeyopt.sim.env.step_customers` on all customers at once), so for the same seed and
actions a population of one customer follows exactly the single environment's trajectory.

All customers start together and every episode lasts ``horizon_weeks`` weeks (the world has no
terminal state), so the whole population is truncated at the same step and auto-reset together:
``infos[i]["terminal_observation"]`` holds customer ``i``'s last observation and
``infos[i]["TimeLimit.truncated"]`` is True, as SB3 expects. The other steps return empty
info dicts, and the same list object again at the next such step (building 100k dicts costs
more than the rest of a step); it is rebuilt when a caller has written into one of its dicts.

Action masks for sb3-contrib's ``MaskablePPO``: its ``get_action_masks(env)`` stacks
``env.env_method("action_masks")``, which returns one (A,) row per customer here; the (N, A)
array itself is :meth:`PopulationVecEnv.action_masks`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from numpy.typing import NDArray
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from journeyopt.panel.state import CustomerState
from journeyopt.sim.env import Features, InitialPool, journey_setup, observe, step_customers
from journeyopt.sim.observation import observation_layout
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.world import WorldSpec

Float32 = NDArray[np.float32]


class PopulationVecEnv(VecEnv):
    """``N`` customers of one world as an SB3 ``VecEnv``.

    Args:
        world: A world spec or a shipped world name.
        n_customers: ``N``, customers stepped at once (SB3's ``num_envs``).
        horizon_weeks: Episode length, weeks.
        start_week_of_year: ISO week of year of every episode's first week.
        rules: Contact rules giving the masks; default the world's own (opt-outs only).
        pool: Initial states to draw customers from; default ``InitialPool.draw(world,
            pool_size, pool_seed, horizon_weeks)``.
        pool_size: Customers in the default pool.
        pool_seed: Seed of the default pool.
        seed: Seed of the first reset (also settable through SB3's ``seed()``).
    """

    def __init__(
        self,
        world: WorldSpec | str,
        n_customers: int,
        horizon_weeks: int = 52,
        start_week_of_year: int = 1,
        rules: ContactRules | None = None,
        pool: InitialPool | None = None,
        pool_size: int = 10_000,
        pool_seed: int = 0,
        seed: int | None = None,
    ) -> None:
        if n_customers < 1:
            raise ValueError(f"n_customers must be >= 1, got {n_customers}")
        self.world, self.clock, self.rules, self.pool = journey_setup(
            world, horizon_weeks, start_week_of_year, rules, pool, pool_size, pool_seed
        )
        self.layout = observation_layout(self.world)
        self.render_mode: str | None = None
        n_actions = self.world.actions.n_actions
        self.n_customers = n_customers
        self.np_random: np.random.Generator = seeding.np_random(seed)[0]
        self._state: CustomerState | None = None
        self._segment = np.zeros(n_customers, np.int64)
        self._features: Features = {}
        self._masks = np.ones((n_customers, n_actions), bool)
        self._actions = np.zeros(n_customers, np.int64)
        self._week = 0
        self._quiet: list[dict[str, Any]] = []
        self.forbidden_actions = 0
        """Forbidden actions requested since the last reset (carried out as ``none``)."""
        super().__init__(
            n_customers,
            spaces.Box(0.0, 1.0, (self.layout.size,), np.float32),
            spaces.Discrete(n_actions),
        )

    @property
    def week(self) -> int:
        """Episode week of the current states (0 after a reset)."""
        return self._week

    @property
    def features(self) -> Features:
        """(N,) named features of the current states."""
        return self._features

    @property
    def segment(self) -> NDArray[np.int64]:
        """(N,) customer type index."""
        return self._segment

    def _observe(self) -> Float32:
        assert self._state is not None
        woy = int(self.clock.weeks_of_year[self._week])
        seen = observe(self.world, self.rules, self.layout, self._state, self._segment, woy)
        self._features, self._masks = seen.features, seen.masks
        return seen.observation

    def _new_customers(self) -> Float32:
        self._state, self._segment = self.pool.sample(self.n_customers, self.np_random)
        self._week = 0
        self.forbidden_actions = 0
        return self._observe()

    def reset(self) -> VecEnvObs:
        """New customers from the pool (re-seeded if ``seed()`` was called); (N, D) obs."""
        seed = self._seeds[0]
        if seed is not None:
            self.np_random = seeding.np_random(seed)[0]
        self._reset_seeds()
        self._reset_options()
        return self._new_customers()

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed the population's generator at the next :meth:`reset` (one stream for all)."""
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        self._seeds = [seed] * self.num_envs
        return self._seeds

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, np.int64).reshape(self.n_customers)

    def step_wait(self) -> VecEnvStepReturn:
        """One week for every customer; auto-resets the population at the horizon."""
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        woy = int(self.clock.weeks_of_year[self._week])
        step = step_customers(
            self.world,
            self._state,
            self._features,
            self._segment,
            self._masks,
            self._actions,
            woy,
            self.np_random,
            inplace=True,
        )
        self._state = step.state
        self._week += 1
        self.forbidden_actions += int(step.forbidden.sum())
        obs = self._observe()
        rewards = step.outcome.reward.astype(np.float32)
        done = self._week >= self.clock.horizon_weeks
        if done:
            rows = list(obs)  # (D,) views
            infos = [{"terminal_observation": row, "TimeLimit.truncated": True} for row in rows]
            obs = self._new_customers()
        else:
            infos = self._quiet_infos()
        return obs, rewards, np.full(self.n_customers, done), infos

    def _quiet_infos(self) -> list[dict[str, Any]]:
        """The (N,) empty info dicts of a step without auto-reset, reused from step to step;
        rebuilt if a caller put something in one."""
        if len(self._quiet) != self.n_customers or any(self._quiet):
            self._quiet = [{} for _ in range(self.n_customers)]
        return self._quiet

    def action_masks(self) -> NDArray[np.bool_]:
        """(N, A) allowed actions of the current states, from the contact rules."""
        return self._masks

    def close(self) -> None:
        """Nothing to release."""

    def _indices(self, indices: VecEnvIndices) -> list[int]:
        return list(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The population's attribute, once per customer in ``indices``."""
        value = getattr(self, attr_name)
        return [value] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set a population-wide attribute (customers share every attribute)."""
        setattr(self, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Per-customer results: ``action_masks`` gives each customer's (A,) row; any other
        method is called once on the population and its result repeated per customer."""
        rows = self._indices(indices)
        if method_name == "action_masks":
            masks = self.action_masks()
            return list(masks) if len(rows) == self.num_envs else [masks[i] for i in rows]
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result] * len(rows)

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        """Customers are never wrapped individually."""
        return [False] * len(self._indices(indices))

    def _get_indices(self, indices: VecEnvIndices) -> Iterable[int]:
        return super()._get_indices(indices)
