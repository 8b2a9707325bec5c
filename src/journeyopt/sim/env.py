"""The gymnasium environment: one customer's journey, one step a week.

A thin shell over the world's dynamics (:func:`journeyopt.sim.dynamics.sample_outcome_at`), the
shared customer state (:func:`journeyopt.panel.state.advance`,
:func:`~journeyopt.panel.state.state_features`), the contact rules
(:class:`journeyopt.sim.rules.ContactRules`) and the observation encoding
(:mod:`journeyopt.sim.observation`). The batched helpers here (:class:`InitialPool`,
:func:`step_customers`, :class:`EpisodeClock`) are shared with the vectorised
:class:`journeyopt.sim.vec_env.PopulationVecEnv` and the evaluation, so all three produce the
same trajectories from the same random numbers.

Episode: a customer drawn uniformly from an :class:`InitialPool` (a fixed sample of the world's
starting population), ``horizon_weeks`` weekly steps. The world has no absorbing state (customers
never leave, opted-out customers still book), so ``terminated`` is always False and the episode
ends by ``truncated`` at the horizon (a time limit: value-based agents should bootstrap).

Reward: the week's margin minus discount cost minus contact cost, currency (see
:mod:`journeyopt.sim.dynamics`). A forbidden action (masked by the contact rules) is carried out
as ``none`` and counted in ``info["forbidden_actions"]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from journeyopt.panel.state import CustomerState, advance, state_features
from journeyopt.sim.behaviour import contact_rules, world_under_rules
from journeyopt.sim.discrete import discrete_state
from journeyopt.sim.dynamics import WeekOutcome, sample_outcome_at
from journeyopt.sim.observation import ObservationLayout, encode, observation_layout
from journeyopt.sim.optimum import cyclic_weeks_of_year
from journeyopt.sim.population import starting_population
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.world import WorldSpec, load_world

IntArray = NDArray[np.int64]
Bool = NDArray[np.bool_]
Features = dict[str, NDArray[np.generic]]

ENV_ID = "journeyopt/CustomerJourney-v0"


@dataclass(frozen=True)
class InitialPool:
    """A fixed sample of the world's starting population that episodes start from
    (:func:`~journeyopt.sim.population.starting_population`: a calibrated world's customers at
    the as-of date plus arrivals, a ground-truth world's synthetic initial population).

    Drawing the starting population copies or replays each customer's past; a pool drawn once
    makes a reset a cheap row selection. Rows are drawn uniformly with replacement.

    Attributes:
        state: State of ``P`` customers at the start of the first simulated week.
        segment: (P,) customer type index.
    """

    state: CustomerState
    segment: IntArray

    @property
    def size(self) -> int:
        return int(self.segment.shape[0])

    @staticmethod
    def draw(world: WorldSpec, size: int, seed: int, horizon_weeks: int) -> InitialPool:
        """``size`` customers of ``world``'s starting population for episodes of
        ``horizon_weeks`` weeks, from ``seed``."""
        if size < 1:
            raise ValueError(f"pool size must be >= 1, got {size}")
        state, segment = starting_population(
            world, size, np.random.default_rng(seed), horizon_weeks
        )
        return InitialPool(state, segment)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[CustomerState, IntArray]:
        """State and segment (n,) of ``n`` customers drawn uniformly from the pool (copies)."""
        rows = rng.integers(self.size, size=n)
        return self.state.take(rows), self.segment[rows]


class EpisodeClock(NamedTuple):
    """Calendar of an episode.

    Attributes:
        horizon_weeks: Episode length ``H``, weeks.
        weeks_of_year: (H + 1,) ISO week of year of each episode week (the last one is the
            week after the horizon, seen in the final observation).
    """

    horizon_weeks: int
    weeks_of_year: IntArray

    @staticmethod
    def of(horizon_weeks: int, start_week_of_year: int) -> EpisodeClock:
        if horizon_weeks < 1:
            raise ValueError(f"horizon_weeks must be >= 1, got {horizon_weeks}")
        return EpisodeClock(
            horizon_weeks, cyclic_weeks_of_year(start_week_of_year, horizon_weeks + 1)
        )


class Step(NamedTuple):
    """One week of ``N`` customers.

    Attributes:
        state: State at the start of next week.
        outcome: The week's outcome (carried-out actions, reward decomposition).
        forbidden: (N,) the requested action was masked and ``none`` was carried out.
    """

    state: CustomerState
    outcome: WeekOutcome
    forbidden: Bool


def step_customers(
    world: WorldSpec,
    state: CustomerState,
    features: Features,
    segment: IntArray,
    masks: Bool,
    actions: NDArray[np.integer],
    week_of_year: int,
    rng: np.random.Generator,
    inplace: bool = False,
) -> Step:
    """Carry out one week for ``N`` customers: guard, sample, advance.

    Args:
        world: The world.
        state: State at the start of the week.
        features: (N,) features of ``state`` (``state_features(state, world.features)``).
        segment: (N,) customer type index.
        masks: (N, A) allowed actions from :meth:`ContactRules.masks` of ``features``.
        actions: (N,) requested actions; masked ones are carried out as ``none``.
        week_of_year: ISO week of year (1..53) of the week.
        rng: Source of the world's randomness (its draws do not depend on the actions).
        inplace: Reuse ``state``'s ring buffers (``state`` must not be used afterwards).
    """
    requested = np.asarray(actions, np.int64)
    n_actions = masks.shape[1]
    if requested.size and (int(requested.min()) < 0 or int(requested.max()) >= n_actions):
        raise IndexError(f"actions must be in 0..{n_actions - 1}")
    allowed = masks.reshape(-1).take(
        np.arange(0, requested.shape[0] * n_actions, n_actions) + requested
    )
    carried = np.where(allowed, requested, 0)
    discrete = discrete_state(features, segment, world)
    outcome = sample_outcome_at(world, discrete, carried, week_of_year, rng)
    return Step(advance(state, outcome.activity, inplace=inplace), outcome, ~allowed)


class JourneySetup(NamedTuple):
    """What an environment over ``world`` steps its customers with.

    Attributes:
        world: The world, with its state counting what the rules read.
        clock: The episode's calendar.
        rules: Contact rules giving the masks.
        pool: Initial states episodes draw their customers from.
    """

    world: WorldSpec
    clock: EpisodeClock
    rules: ContactRules
    pool: InitialPool


def journey_setup(
    world: WorldSpec | str,
    horizon_weeks: int,
    start_week_of_year: int,
    rules: ContactRules | None,
    pool: InitialPool | None,
    pool_size: int,
    pool_seed: int,
) -> JourneySetup:
    """World, clock, rules and pool of an environment (the arguments of
    :class:`CustomerJourneyEnv` of the same names, defaults resolved)."""
    spec = load_world(world) if isinstance(world, str) else world
    clock = EpisodeClock.of(horizon_weeks, start_week_of_year)
    rules = rules if rules is not None else contact_rules(spec)
    spec = world_under_rules(spec, rules)  # counts what the rules read
    if pool is None:
        pool = InitialPool.draw(spec, pool_size, pool_seed, horizon_weeks)
    return JourneySetup(spec, clock, rules, pool)


class Observed(NamedTuple):
    """What ``N`` customers' environment sees at the start of a week.

    Attributes:
        features: (N,) named features of the state.
        masks: (N, A) allowed actions under the contact rules.
        observation: (N, D) encoded observations.
    """

    features: Features
    masks: Bool
    observation: NDArray[np.float32]


def observe(
    world: WorldSpec,
    rules: ContactRules,
    layout: ObservationLayout,
    state: CustomerState,
    segment: IntArray,
    week_of_year: int,
) -> Observed:
    """Features, masks and observations of ``state`` in ISO week ``week_of_year``."""
    features = state_features(state, world.features)
    masks = rules.masks(features, segment=segment, week_of_year=week_of_year)
    return Observed(features, masks, encode(layout, features, segment, week_of_year))


class CustomerJourneyEnv(gym.Env[NDArray[np.float32], np.int64]):
    """One customer per episode; ``Discrete(A)`` actions, ``Box(0, 1, (D,))`` observations.

    Args:
        world: A world spec or a shipped world name.
        horizon_weeks: Episode length, weeks.
        start_week_of_year: ISO week of year of every episode's first week.
        rules: Contact rules giving the masks; default the world's own (opt-outs only).
        pool: Initial states to draw customers from; default ``InitialPool.draw(world,
            pool_size, pool_seed, horizon_weeks)``.
        pool_size: Customers in the default pool.
        pool_seed: Seed of the default pool (fixed, so every env of a world has the same pool).
        render_mode: Only ``None`` is supported.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's API)

    def __init__(
        self,
        world: WorldSpec | str,
        horizon_weeks: int = 52,
        start_week_of_year: int = 1,
        rules: ContactRules | None = None,
        pool: InitialPool | None = None,
        pool_size: int = 2_000,
        pool_seed: int = 0,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None:
            raise ValueError(f"render_mode {render_mode!r} is not supported")
        self.world, self.clock, self.rules, self.pool = journey_setup(
            world, horizon_weeks, start_week_of_year, rules, pool, pool_size, pool_seed
        )
        self.layout: ObservationLayout = observation_layout(self.world)
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(self.world.actions.n_actions)
        self.observation_space = spaces.Box(0.0, 1.0, (self.layout.size,), np.float32)
        self._state: CustomerState | None = None
        self._segment = np.zeros(1, np.int64)
        self._features: Features = {}
        self._masks = np.ones((1, self.world.actions.n_actions), bool)
        self._week = 0
        self._forbidden = 0

    @property
    def week(self) -> int:
        """Episode week of the current state (0 after reset)."""
        return self._week

    @property
    def features(self) -> Features:
        """(1,) named features of the current state."""
        return self._features

    @property
    def segment(self) -> int:
        """Customer type index of the current customer."""
        return int(self._segment[0])

    def _observe(self) -> NDArray[np.float32]:
        assert self._state is not None
        woy = int(self.clock.weeks_of_year[self._week])
        seen = observe(self.world, self.rules, self.layout, self._state, self._segment, woy)
        self._features, self._masks = seen.features, seen.masks
        return np.ascontiguousarray(seen.observation[0])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """Draw a new customer from the pool; returns ``(observation (D,), info)``."""
        super().reset(seed=seed)
        self._state, self._segment = self.pool.sample(1, self.np_random)
        self._week = 0
        self._forbidden = 0
        return self._observe(), {"segment": self.segment, "week": 0}

    def step(
        self, action: int | np.integer
    ) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        """One week; ``info`` has the carried-out action, whether the requested one was
        forbidden, the episode's count of forbidden actions and the reward decomposition."""
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        if self._week >= self.clock.horizon_weeks:
            raise RuntimeError("the episode is over; call reset()")
        if not self.action_space.contains(action):
            raise ValueError(f"invalid action {action!r} for {self.action_space}")
        woy = int(self.clock.weeks_of_year[self._week])
        step = step_customers(
            self.world,
            self._state,
            self._features,
            self._segment,
            self._masks,
            np.array([action], np.int64),
            woy,
            self.np_random,
            inplace=True,
        )
        self._state = step.state
        self._week += 1
        forbidden = bool(step.forbidden[0])
        self._forbidden += forbidden
        out = step.outcome
        info = {
            "week": self._week,
            "action": int(out.actions[0]),
            "forbidden": forbidden,
            "forbidden_actions": self._forbidden,
            "converted": bool(out.converted[0]),
            "opted_out": bool(out.opted_out[0]),
            "revenue": float(out.paid[0]),
            "margin": float(out.margin[0]),
            "discount_cost": float(out.discount_cost[0]),
            "contact_cost": float(out.contact_cost[0]),
        }
        truncated = self._week >= self.clock.horizon_weeks
        return self._observe(), float(out.reward[0]), False, truncated, info

    def action_masks(self) -> NDArray[np.bool_]:
        """(A,) allowed actions of the current state (sb3-contrib's MaskablePPO calls this)."""
        return self._masks[0].copy()
