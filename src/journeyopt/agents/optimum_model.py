"""The exact optimum of a world as a served policy that can be logged, judged and deployed.

The DP optimum (:func:`journeyopt.sim.optimum.solve_optimum`) sees a customer through the
world's discrete summary and the week of year. :class:`PlannedOptimum` serves it like any
trained policy: it reads each customer's summary back from the observation vector
(:func:`journeyopt.sim.observation.decode`, :func:`journeyopt.sim.discrete.discrete_state`) and
takes the first week's action of the optimum planned ``horizon_weeks`` ahead from that week of
year (a receding horizon, as :class:`journeyopt.loop.oracle.WorldOptimumPolicy` serves a
ground-truth world's optimum), under the contact rules it is served under (every rule the
summary represents; the others stay with the serving guard, and are listed in
:attr:`PlannedOptimum.unseen_rules`).

The plans of the 52 weeks of year are solved once (:meth:`PlannedOptimum.solve`) and saved as
a table of first-week actions beside the world whose summary they read (``plan.npz`` and
``world/``, open formats): a model MLflow logs, the promotion gate judges and the scorer serves
like a trained one, e.g. the optimum of the world a weekly cycle calibrated.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml
from numpy.typing import NDArray

from journeyopt.agents.sb3 import policy_spec
from journeyopt.calibration.calibrated import CalibratedWorld, world_to_dict
from journeyopt.sim.discrete import DiscreteLayout, discrete_state
from journeyopt.sim.observation import ObservationLayout, decode, observation_layout
from journeyopt.sim.optimum import cyclic_weeks_of_year
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.world import WorldSpec, load_world
from journeyopt.tracking.model import PolicySpec

WEEKS = 52
"""Weeks of year a plan is kept for; ISO week 53 is read as week 1, as the DP's calendar
(:func:`journeyopt.sim.optimum.cyclic_weeks_of_year`) does."""
PLAN_FILE = "plan.npz"
WORLD_DIR = "world"
META_FILE = "plan.json"

IntArray = NDArray[np.int64]


def week_index(week_of_year: NDArray[np.integer]) -> IntArray:
    """(N,) row of the weekly plan table for ISO weeks of year ``week_of_year`` (N,)."""
    return ((np.asarray(week_of_year, np.int64) - 1) % WEEKS).astype(np.int64)


def planned_actions(
    layout: ObservationLayout,
    world: WorldSpec,
    observations: NDArray[np.floating],
    masks: NDArray[np.bool_],
    first_actions: Callable[[IntArray, IntArray], IntArray],
) -> tuple[IntArray, NDArray[np.float64]]:
    """A plan's actions for (N, D) observation vectors of ``layout`` under (N, A) ``masks``:
    ``first_actions(discrete_states, weeks_of_year)`` (both (N,)) chooses, a masked choice
    becomes ``none``; one-hot (N, A) probabilities."""
    n, n_actions = masks.shape
    if n == 0:
        return np.zeros(0, np.int64), np.zeros((0, n_actions))
    features, segment, week_of_year = decode(layout, observations)
    chosen = first_actions(discrete_state(features, segment, world), week_of_year)
    rows = np.arange(n)
    actions = np.where(masks[rows, chosen], chosen, 0).astype(np.int64)
    probabilities = np.zeros((n, n_actions))
    probabilities[rows, actions] = 1.0
    return actions, probabilities


def save_world(world: WorldSpec, folder: Path) -> None:
    """Write ``world`` into the new folder ``folder`` so that :func:`load_world` reads it back
    (a calibrated world with its response tables, practice and starting population; a
    parametric world as its YAML)."""
    if world.responses is not None:
        CalibratedWorld.of(world).save(folder)
        return
    folder.mkdir(parents=True)
    mapping = {k: v for k, v in world_to_dict(world).items() if k != "responses"}
    text = yaml.safe_dump(mapping, sort_keys=False)
    (folder / "world.yaml").write_text(text, encoding="utf-8")


class PlannedOptimum:
    """The exact optimum of ``world`` as a served policy (see the module docstring).

    Args:
        world: The world whose summary the plan reads (its observation layout is the
            policy's).
        actions: (52, n_states) first-week action of the plan from each ISO week of year
            1..52 in each discrete state of ``world``.
        horizon_weeks: Planning horizon of each week's optimum, weeks.
        gamma: Weekly discount factor of the plans.
        rules: The contact rules the plans obey, one line (``OptimalPolicy.rules``).
        unseen_rules: The rules of those served under that the plans could not see.

    Raises:
        ValueError: ``actions`` does not have one row per week of year and one column per
            discrete state of ``world``, or names an action ``world`` does not have.
    """

    pip_requirements: tuple[str, ...] = ()

    def __init__(
        self,
        world: WorldSpec,
        actions: NDArray[np.integer],
        horizon_weeks: int,
        gamma: float,
        rules: str = "opt-outs only",
        unseen_rules: tuple[str, ...] = (),
    ) -> None:
        n_states = DiscreteLayout.of(world).n_states
        table = np.asarray(actions)
        if table.shape != (WEEKS, n_states):
            raise ValueError(f"actions must be ({WEEKS}, {n_states}), got {table.shape}")
        if table.size and not (table.min() >= 0 and table.max() < world.actions.n_actions):
            raise ValueError(f"actions must be in 0..{world.actions.n_actions - 1}")
        self.world = world
        self.actions = table.astype(np.int8)
        self.horizon_weeks = horizon_weeks
        self.gamma = gamma
        self.rules = rules
        self.unseen_rules = tuple(unseen_rules)
        self.layout = observation_layout(world)
        self._spec = policy_spec(world, self.layout)

    @classmethod
    def solve(
        cls,
        world: WorldSpec | CalibratedWorld,
        horizon_weeks: int,
        gamma: float,
        rules: ContactRules | None = None,
    ) -> PlannedOptimum:
        """Solve the optimum of ``world`` over ``horizon_weeks`` from each week of year
        1..52 (:func:`~journeyopt.sim.optimum.solve_optimum` under ``rules``, the contact
        rules it will be served under; None: opt-outs only) and keep each plan's first week.
        A :class:`CalibratedWorld` is planned as the product plans it
        (:meth:`CalibratedWorld.optimum`: pessimistic about its members' disagreement, its
        ``calibration.pessimism``; each week's plan then costs one solve per member more).
        """
        planned = CalibratedWorld.of(world)
        first: list[NDArray[np.int8]] = []
        line, unseen = "opt-outs only", tuple[str, ...]()
        for week in range(1, WEEKS + 1):
            weeks = cyclic_weeks_of_year(week, horizon_weeks)
            plan = planned.optimum(horizon_weeks, gamma, weeks, rules=rules)
            first.append(plan.actions[0])
            line, unseen = plan.rules, plan.unseen_rules
        return cls(planned.world, np.stack(first), horizon_weeks, gamma, line, unseen)

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def act(
        self, observations: NDArray[np.float32], masks: NDArray[np.bool_]
    ) -> tuple[IntArray, NDArray[np.float64]]:
        """The plan's action per customer (``none`` where the masks forbid it) and its
        one-hot probabilities; (N, D) observations of any weeks, (N, A) masks."""

        def first(states: IntArray, week_of_year: IntArray) -> IntArray:
            return self.actions[week_index(week_of_year), states].astype(np.int64)

        return planned_actions(self.layout, self.world, observations, masks, first)

    def save(self, folder: Path) -> None:
        """``plan.npz`` (the table), ``plan.json`` (horizon, discount, rules) and the world
        under ``world/``."""
        np.savez_compressed(folder / PLAN_FILE, actions=self.actions)
        meta = {
            "horizon_weeks": self.horizon_weeks,
            "gamma": self.gamma,
            "rules": self.rules,
            "unseen_rules": list(self.unseen_rules),
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        save_world(self.world, folder / WORLD_DIR)

    @classmethod
    def load(cls, folder: Path, spec: PolicySpec) -> PlannedOptimum:
        """The policy :meth:`save` wrote into ``folder`` (no pickles).

        Raises:
            ValueError: The saved world does not produce ``spec``'s actions and observations.
        """
        world = load_world(folder / WORLD_DIR)
        with np.load(folder / PLAN_FILE, allow_pickle=False) as data:
            actions = data["actions"]
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        policy = cls(
            world,
            actions,
            int(meta["horizon_weeks"]),
            float(meta["gamma"]),
            str(meta["rules"]),
            tuple(meta["unseen_rules"]),
        )
        if policy.spec != spec:
            raise ValueError(f"{folder}: the saved world does not produce the policy's spec")
        return policy
