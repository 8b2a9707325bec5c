"""The upper reference of a closed loop: the exact optimum of the world in force, served
through the same scorer as a champion.

A closed loop's customers carry their own history, so the value of "the optimum of the new
regime" is only comparable when the optimum serves the same customers, weeks and random
numbers as the adaptive and frozen champions. :class:`WorldOptimumPolicy` is a served policy
(the :class:`~journeyopt.tracking.model.ServablePolicy` interface) that knows the true world:
it reads the customers' discrete state back from the observation vectors
(:func:`journeyopt.sim.observation.decode`) and takes the first week's action of the world's
finite-horizon optimum solved from the observations' week of year on (a receding horizon:
each week it plans ``horizon_weeks`` ahead, knowing nothing of a change to come).
:meth:`WorldOptimumPolicy.use` switches the world when the regime changes.

The plan obeys the contact rules the policy is served under: :func:`optimum_scorer` hands the
policy the scorer's own :class:`~journeyopt.sim.rules.ContactRules` (``serve.rules``), and each
week's optimum is solved under them (``solve_optimum(..., rules=)``: every rule the discrete
summary represents; the others, :attr:`WorldOptimumPolicy.unseen_rules`, are logged and still
applied by the scorer's guard, which turns a forbidden planned contact into ``none``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from journeyopt.agents.optimum_model import planned_actions
from journeyopt.agents.sb3 import policy_spec
from journeyopt.errors import JourneyoptError
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.scorer import Scorer
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.observation import observation_layout
from journeyopt.sim.optimum import OptimalPolicy, cyclic_weeks_of_year, solve_optimum
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.world import WorldSpec
from journeyopt.tracking.model import PolicySpec

OPTIMUM_VERSION = "world-optimum"
log = logging.getLogger(__name__)


class WorldOptimumPolicy:
    """The exact optimum of a ground-truth world as a served policy.

    Args:
        world: The world in force at the start (a parametric ground-truth world).
        horizon_weeks: Planning horizon of each week's optimum, weeks.
        gamma: Weekly discount factor of the plan, in (0, 1].
        rules: The contact rules the plan obeys (the serving scorer's: :func:`optimum_scorer`
            sets them); None: the world's own rule only (opt-outs, unsupported actions).
    """

    pip_requirements: tuple[str, ...] = ()

    def __init__(
        self,
        world: WorldSpec,
        horizon_weeks: int,
        gamma: float,
        rules: ContactRules | None = None,
    ) -> None:
        self.layout = observation_layout(world)
        self._spec = policy_spec(world, self.layout)
        self.world = world
        self.horizon_weeks = horizon_weeks
        self.gamma = gamma
        self.rules = rules
        self._plans: dict[tuple[str, int], OptimalPolicy] = {}

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def use(self, world: WorldSpec) -> None:
        """Serve the optimum of ``world`` from now on (same actions and observations).

        Raises:
            JourneyoptError: ``world`` has other actions or observation columns.
        """
        if policy_spec(world, observation_layout(world)) != self._spec:
            raise JourneyoptError(
                f"world {world.name!r} has other actions or observations than {self.world.name!r}"
            )
        self.world = world

    def obey(self, rules: ContactRules) -> None:
        """Plan under ``rules`` from now on (the plans solved so far are dropped)."""
        self.rules = rules
        self._plans.clear()

    @property
    def unseen_rules(self) -> tuple[str, ...]:
        """The contact rules the plans solved so far could not see, each with the reason
        (:attr:`journeyopt.sim.optimum.OptimalPolicy.unseen_rules`); empty: none."""
        return tuple(dict.fromkeys(line for p in self._plans.values() for line in p.unseen_rules))

    def plan(self, week_of_year: int) -> OptimalPolicy:
        """The optimum of the world in force over ``horizon_weeks`` from ``week_of_year`` on,
        under :attr:`rules` (solved once per world and week of year)."""
        key = (self.world.name, week_of_year)
        if key not in self._plans:
            weeks = cyclic_weeks_of_year(week_of_year, self.horizon_weeks)
            plan = solve_optimum(
                self.world, self.horizon_weeks, self.gamma, weeks, rules=self.rules
            )
            for line in set(plan.unseen_rules) - set(self.unseen_rules):
                log.warning("the world's optimum cannot plan under the contact rule %s", line)
            self._plans[key] = plan
        return self._plans[key]

    def act(
        self, observations: NDArray[np.float32], masks: NDArray[np.bool_]
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """The plan's first-week action per customer (``none`` where the masks forbid it) and
        its one-hot probabilities; (N, D) observations of one week, (N, A) masks.

        Raises:
            ValueError: The observations span several weeks of year.
        """

        def first(states: NDArray[np.int64], week_of_year: NDArray[np.int64]) -> NDArray[np.int64]:
            weeks = np.unique(week_of_year)
            if weeks.size > 1:
                raise ValueError(f"observations of one week expected, got weeks {weeks.tolist()}")
            return self.plan(int(weeks[0])).optimal_actions(states, 0)

        return planned_actions(self.layout, self.world, observations, masks, first)

    def save(self, folder: Path) -> None:
        """Refused: the optimum of a ground-truth world is a simulation reference, not a
        model to deploy."""
        raise JourneyoptError(
            f"the optimum of world {self.world.name!r} is a simulation reference and is not "
            f"logged as a model (asked to save into {folder})"
        )


def optimum_scorer(policy: WorldOptimumPolicy, serving: ServingConfig) -> Scorer:
    """A serving scorer that serves ``policy`` to the treatment group (staff rules for the
    control group, the same guards as any champion); ``policy`` plans under the scorer's own
    contact rules (``serve.rules``) from then on."""
    model = ServedModel(
        policy=policy,
        requested=OPTIMUM_VERSION,
        name=OPTIMUM_VERSION,
        version=OPTIMUM_VERSION,
        uri=OPTIMUM_VERSION,
        run_id="",
        content_sha256="",
    )
    scorer = Scorer(model, serving, world=policy.world)
    policy.obey(scorer.rules)
    return scorer
