"""The one function that turns customers' features into decisions, shared by the API and the
batch scorer: features -> contact rules -> policy (or staff rules for the control group) ->
guards -> expected value.

Everything is batched numpy over the ``N`` customers of a call (no per-customer Python loop
except the holdout's hash); a single API request is a batch of one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.agents.baselines import StaffPolicy
from journeyopt.agents.policy import Observation
from journeyopt.agents.sb3 import layout_version
from journeyopt.errors import ConfigError
from journeyopt.panel.weeks import WEEK, monday_on_or_before
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.guards import allowed_actions, apply_guards
from journeyopt.serving.holdout import control_group
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.discrete import summarise
from journeyopt.sim.dynamics import expected_reward, response_probabilities
from journeyopt.sim.observation import ObservationLayout, encode, observation_layout
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.world import WorldSpec, load_world

_NO_RNG = np.random.default_rng(0)  # the staff rules are deterministic; Policy.act wants one


@dataclass(frozen=True)
class CustomerBatch:
    """What the scorer knows of ``N`` customers at one instant.

    Attributes:
        customer_ids: (N,) customer ids (str).
        features: Feature name -> (N,) array of
            :func:`journeyopt.panel.state.state_features` (NaN = never; ``lifecycle`` codes).
        segment: (N,) customer type index into the world's segment names; -1 unknown.
        known: (N,) False for customers the scorer has no history or type for (they get the
            safe default ``none``).
        as_of: The instant the features are at (UTC).
    """

    customer_ids: NDArray[np.object_]
    features: Mapping[str, NDArray[np.generic]]
    segment: NDArray[np.int64]
    known: NDArray[np.bool_]
    as_of: pd.Timestamp

    @property
    def n(self) -> int:
        return int(self.customer_ids.shape[0])


@dataclass(frozen=True)
class Decisions:
    """The decisions of ``N`` customers over ``A`` actions.

    Attributes:
        batch: The customers scored.
        control: (N,) True for the control group (staff rules).
        actions: (N,) int64 action carried out (after guards).
        probabilities: (N, A) probabilities of the applied policy after masks and guards.
        reasons: (N, A) contact-rule reason code per action (0 = allowed, see
            :data:`journeyopt.sim.rules.REASONS`).
        expected_value: (N,) this week's expected margin minus contact cost of the action
            under the world's response model, currency (0 for unknown customers).
        overridden: (N,) the guards replaced the policy's choice by ``none``.
        week_of_year: ISO week of year of ``as_of``.
    """

    batch: CustomerBatch
    control: NDArray[np.bool_]
    actions: NDArray[np.int64]
    probabilities: NDArray[np.float64]
    reasons: NDArray[np.int8]
    expected_value: NDArray[np.float64]
    overridden: NDArray[np.bool_]
    week_of_year: int

    @property
    def propensity(self) -> NDArray[np.float64]:
        """(N,) probability of the action carried out, in (0, 1]."""
        return self.probabilities[np.arange(self.actions.shape[0]), self.actions]


class Scorer:
    """A loaded policy with its world, contact rules and holdout, ready to score.

    Args:
        model: The served policy.
        settings: The ``serve`` config.
        world: The world (loaded from ``settings.world`` when omitted).

    Raises:
        ConfigError: The policy was trained on other actions or another observation layout.
    """

    def __init__(
        self, model: ServedModel, settings: ServingConfig, world: WorldSpec | None = None
    ) -> None:
        self.model = model
        self.settings = settings
        try:
            self.world = world if world is not None else load_world(settings.world)
            self.rules = ContactRules(
                self.world.actions,
                self.world.features,
                dict(settings.rules.frequency_caps),
                settings.rules.cooldown_weeks,
            )
        except (ValueError, FileNotFoundError) as err:
            raise ConfigError(f"serve: {err}") from err
        self.layout: ObservationLayout = observation_layout(self.world)
        self.staff = StaffPolicy(self.world, settings.holdout.staff.to_rules())
        self._check_spec()
        self.action_names: tuple[str, ...] = self.world.actions.names
        self.channels: tuple[str, ...] = self.world.actions.channels
        self._origin = settings.holdout.origin  # parsed once, not per request

    def _check_spec(self) -> None:
        spec = self.model.policy.spec
        where = f"model {self.model.uri}"
        if spec.action_names != self.world.actions.names:
            raise ConfigError(
                f"{where} chooses among {list(spec.action_names)}, the world "
                f"{self.world.name!r} has actions {list(self.world.actions.names)}"
            )
        if spec.feature_names != self.layout.columns:
            raise ConfigError(
                f"{where} expects observation columns that world {self.world.name!r} does not "
                "produce (another world or feature windows: set serve.world)"
            )
        if spec.layout_version != layout_version(self.layout):
            raise ConfigError(
                f"{where} was trained on observation layout {spec.layout_version}, this "
                f"scorer builds {layout_version(self.layout)}"
            )

    def staff_week(self, as_of: pd.Timestamp) -> int:
        """Week index of ``as_of`` in the staff's campaign calendar (0 before its origin)."""
        return self._campaign_week(monday_on_or_before(as_of))

    def _campaign_week(self, monday: pd.Timestamp) -> int:
        return max(0, int((monday - self._origin) // WEEK))

    def expected_value(
        self, observation: Observation, actions: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        """(N,) this week's expected margin minus contact cost of ``actions`` under the
        world's response model, currency."""
        summary = summarise(observation.features, observation.segment, self.world)
        responses = response_probabilities(self.world, summary, actions, observation.week_of_year)
        return expected_reward(self.world, responses, actions)

    def score(self, batch: CustomerBatch) -> Decisions:
        """Decide for every customer of ``batch`` (see the module docstring)."""
        monday = monday_on_or_before(batch.as_of)
        week_of_year = int(monday.isocalendar().week)
        reasons = self.rules.reasons(batch.features)
        masks = allowed_actions(reasons, batch.known)
        segment = np.where(batch.segment >= 0, batch.segment, 0)
        observations = np.ascontiguousarray(
            encode(self.layout, batch.features, segment, week_of_year)
        )
        actions, probabilities = self.model.policy.act(observations, masks)
        control = control_group(
            batch.customer_ids,
            self.settings.holdout.salt,
            self.settings.holdout.control_share,
        )
        observation = Observation(
            batch.features, segment, week_of_year, self._campaign_week(monday)
        )
        if control.any():
            rows = np.flatnonzero(control)
            staff_obs = Observation(
                {k: np.asarray(v)[rows] for k, v in batch.features.items()},
                segment[rows],
                week_of_year,
                observation.week,
            )
            staff_actions, staff_probs = self.staff.act(staff_obs, masks[rows], _NO_RNG)
            actions = actions.copy()
            probabilities = probabilities.copy()
            actions[rows] = staff_actions
            probabilities[rows] = staff_probs
        guarded = apply_guards(actions, probabilities, reasons, batch.known)
        value = self.expected_value(observation, guarded.actions)
        return Decisions(
            batch=batch,
            control=control,
            actions=guarded.actions,
            probabilities=guarded.probabilities,
            reasons=reasons,
            expected_value=np.where(batch.known, value, 0.0),
            overridden=guarded.overridden,
            week_of_year=week_of_year,
        )
