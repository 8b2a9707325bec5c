"""The one function that turns customers' features into decisions, shared by the API and the
batch scorer: features -> contact rules -> policy (its most probable allowed action, explored
with ``serve.exploration.share``; staff rules for the control group) -> guards -> expected value.

The reported probabilities are those of the policy actually applied to each customer, after
masks and guards (the exploration mixture for treatment, one-hot for the deterministic staff
rules and for customers with only ``none`` allowed); the model's own probabilities are kept
beside them as ``scores``.

Everything is batched numpy over the ``N`` customers of a call (no per-customer Python loop
except the holdout's hash); a single API request is a batch of one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.agents.baselines import StaffPolicy
from journeyopt.agents.policy import Observation
from journeyopt.agents.practice_model import ServedPractice
from journeyopt.agents.sb3 import layout_version
from journeyopt.errors import ConfigError
from journeyopt.panel.weeks import WEEK, monday_on_or_before
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.expected_value import ExpectedValues
from journeyopt.serving.exploration import draw, exploration_unit, explored_probabilities
from journeyopt.serving.guards import (
    Guarded,
    allowed_actions,
    apply_guards,
    guard_capacity,
    serving_rules,
    staff_rules,
)
from journeyopt.serving.holdout import control_group
from journeyopt.serving.rollout import (
    ARMS,
    CONTROL_ARM,
    PREVIOUS_ARM,
    arm_codes,
    canary_customers,
)
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.behaviour import world_under_rules
from journeyopt.sim.observation import ObservationLayout, encode, observation_layout
from journeyopt.sim.practice import LoggedPractice
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.world import WorldSpec, load_world

_NO_RNG = np.random.default_rng(0)  # unused draws: practice_choice draws from hashed units


@dataclass(frozen=True)
class PracticeArm:
    """Today's practice as the scorer runs it: for the control group, and for the treatment
    arms a registered practice (:class:`~journeyopt.agents.practice_model.ServedPractice`)
    decides.

    Attributes:
        staff: The practice acting in the served world.
        origin: Monday 00:00 UTC of week 0 of its campaign calendar.
    """

    staff: StaffPolicy
    origin: pd.Timestamp

    def week(self, monday: pd.Timestamp) -> int:
        """Week index of the campaign calendar of the week starting ``monday`` (0 before the
        origin)."""
        return max(0, int((monday - self.origin) // WEEK))


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
        probabilities: (N, A) true probabilities of the policy applied to each customer,
            after masks and guards: the exploration mixture around the model's choice for
            treatment, one-hot for the staff rules (control) and for forced ``none``; rows
            sum to 1, positive on ``actions``.
        scores: (N, A) the model's own probabilities (its masked softmax, as it returned
            them), also for control customers it was not applied to.
        reasons: (N, A) contact-rule reason code per action (0 = allowed, see
            :data:`journeyopt.sim.rules.REASONS`).
        expected_value: (N,) this week's expected margin minus contact cost of the action
            under the world's response model, currency (0 for unknown customers).
        overridden: (N,) the guards replaced the policy's choice by ``none``.
        week_of_year: ISO week of year of ``as_of``.
        arm: (N,) arm code, an index into :data:`journeyopt.serving.rollout.ARMS`
            (``control``, ``full``; during a canary ``canary`` or ``previous``).
        previous_version: The version that decided for the ``previous`` arm (empty without
            a canary).
    """

    batch: CustomerBatch
    control: NDArray[np.bool_]
    actions: NDArray[np.int64]
    probabilities: NDArray[np.float64]
    scores: NDArray[np.float64]
    reasons: NDArray[np.int8]
    expected_value: NDArray[np.float64]
    overridden: NDArray[np.bool_]
    week_of_year: int
    arm: NDArray[np.int8] | None = None
    previous_version: str = ""

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
        ConfigError: The policy was trained on other actions or another observation layout;
            the contact rules or the staff rules name channels or customer types the world
            does not have.
    """

    def __init__(
        self, model: ServedModel, settings: ServingConfig, world: WorldSpec | None = None
    ) -> None:
        self.model = model
        self.settings = settings
        try:
            self.world = world if world is not None else load_world(settings.world)
            self.rules: ContactRules = serving_rules(self.world, settings.rules)
            self.world = world_under_rules(self.world, self.rules)  # counts what rules read
        except (ValueError, FileNotFoundError) as err:
            raise ConfigError(f"serve: {err}") from err
        practice = staff_rules(self.world, settings.holdout)
        self.world = practice.world_for(self.world)  # counts what the practice's state reads
        self.layout: ObservationLayout = observation_layout(self.world)
        self.staff = StaffPolicy(self.world, practice)
        own = practice.calendar_origin if isinstance(practice, LoggedPractice) else ""
        self.control_arm = PracticeArm(
            self.staff, pd.Timestamp(own, tz="UTC") if own else settings.holdout.origin
        )
        self._check_spec(model, self.layout)
        self._previous_layout = (
            self._own_layout(model.previous) if model.previous is not None else self.layout
        )
        self.champion_arm = self._practice_arm(model)
        self.previous_arm = self._practice_arm(model.previous) if model.previous else None
        self.action_names: tuple[str, ...] = self.world.actions.names
        self.channels: tuple[str, ...] = self.world.actions.channels
        self._origin = settings.holdout.origin  # parsed once, not per request
        self._values = ExpectedValues(self.world)

    def _practice_arm(self, model: ServedModel) -> PracticeArm | None:
        """The practice ``model`` serves, run like the control group's (None: ``model`` is
        a policy over observations)."""
        policy = model.policy
        if not isinstance(policy, ServedPractice):
            return None
        return PracticeArm(policy.staff(self.world, f"model {model.uri}"), policy.origin)

    def _own_layout(self, model: ServedModel) -> ObservationLayout:
        """The observation layout ``model`` (a previous champion) reads: the served world's,
        or, when that does not fit, the one of the world it was trained in (a policy of an
        earlier re-calibration, whose features were scaled by that world's caps)."""
        if isinstance(model.policy, ServedPractice):  # reads the state features, not these
            return self.layout
        try:
            self._check_spec(model, self.layout)
            return self.layout
        except ConfigError:
            if not model.trained_world:
                raise
        try:
            own = observation_layout(world_under_rules(load_world(model.trained_world), self.rules))
        except (ValueError, FileNotFoundError) as err:
            raise ConfigError(
                f"model {model.uri}: cannot read its world {model.trained_world!r} ({err})"
            ) from err
        self._check_spec(model, own)
        return own

    def _check_spec(self, model: ServedModel, layout: ObservationLayout) -> None:
        spec = model.policy.spec
        where = f"model {model.uri}"
        if spec.action_names != self.world.actions.names:
            raise ConfigError(
                f"{where} chooses among {list(spec.action_names)}, the world "
                f"{self.world.name!r} has actions {list(self.world.actions.names)}"
            )
        if isinstance(model.policy, ServedPractice):  # the state features, not observations
            return
        if spec.feature_names != layout.columns:
            raise ConfigError(
                f"{where} expects observation columns that world {self.world.name!r} does not "
                "produce (another world or feature windows: set serve.world)"
            )
        if spec.layout_version != layout_version(layout):
            raise ConfigError(
                f"{where} was trained on observation layout {spec.layout_version}, this "
                f"scorer builds {layout_version(layout)}"
            )

    def staff_week(self, as_of: pd.Timestamp) -> int:
        """Week index of ``as_of`` in the staff's campaign calendar (0 before its origin)."""
        return self._campaign_week(monday_on_or_before(as_of))

    def _campaign_week(self, monday: pd.Timestamp) -> int:
        return max(0, int((monday - self._origin) // WEEK))

    def control_choice(
        self,
        observation: Observation,
        masks: NDArray[np.bool_],
        customer_ids: NDArray[np.object_],
        monday: pd.Timestamp,
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Today's practice (``serve.holdout.staff``) for control customers
        (:meth:`practice_choice` of :attr:`control_arm`)."""
        return self.practice_choice(self.control_arm, observation, masks, customer_ids, monday)

    def practice_choice(
        self,
        arm: PracticeArm,
        observation: Observation,
        masks: NDArray[np.bool_],
        customer_ids: NDArray[np.object_],
        monday: pd.Timestamp,
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Today's practice ``arm`` for the customers of ``observation``: (N,) actions and
        (N, A) probabilities. A practice estimated from the logs is stochastic: its action is
        drawn from its probabilities with one hashed uniform per customer and week (salt
        ``serve.holdout.salt`` + ``/control``, :func:`exploration_unit`, whatever the arm), so
        the API and the batch scorer agree, a customer gets the same decision from a
        registered practice as from the control group, and the propensity is exact; a
        hand-written one is one-hot. The campaign cycles count from the arm's calendar
        origin (an estimated practice's own, the logs' first logged week, when it has one;
        else ``serve.holdout.calendar_origin``)."""
        observation = replace(observation, week=arm.week(monday))
        _, probabilities = arm.staff.act(observation, masks, _NO_RNG)
        unit = exploration_unit(customer_ids, f"{self.settings.holdout.salt}/control", monday)
        return draw(probabilities, unit), probabilities

    def expected_value(
        self, observation: Observation, actions: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        """(N,) this week's expected margin minus contact cost of ``actions`` under the
        world's response model, currency (see :class:`ExpectedValues`)."""
        return self._values(observation, actions)

    def arms(self, batch: CustomerBatch) -> NDArray[np.int8]:
        """(N,) each customer's arm code (index into :data:`~journeyopt.serving.rollout.ARMS`):
        the holdout's control group, else ``full``, or ``canary`` / ``previous`` during a
        staged rollout's canary (the arms :meth:`score` decides and records)."""
        holdout = self.settings.holdout
        control = control_group(batch.customer_ids, holdout.salt, holdout.control_share)
        if self.model.previous is None:
            return arm_codes(control, None)
        rollout = self.settings.rollout
        canary = canary_customers(batch.customer_ids, rollout.salt, self.model.canary_share)
        return arm_codes(control, canary)

    def hold_capacity(
        self,
        observation: Observation,
        guarded: Guarded,
        reasons: NDArray[np.int8],
        arm: NDArray[np.integer],
    ) -> tuple[Guarded, NDArray[np.int8]]:
        """The weekly capacities ``serve.rules.capacity`` over one batch of guarded decisions:
        every arm (``arm``, (N,) codes into :data:`~journeyopt.serving.rollout.ARMS`) its share
        in proportion to its customers, ranked inside it by this week's expected value
        (:func:`~journeyopt.serving.guards.guard_capacity`); ``(guarded, reasons)`` unchanged
        without a capacity."""
        if not self.rules.capacity:
            return guarded, reasons
        n = guarded.actions.shape[0]
        values = np.stack(
            [
                self._values.batched(observation, np.full(n, a, np.int64))
                for a in range(self.world.actions.n_actions)
            ],
            axis=1,
        )
        return guard_capacity(guarded, reasons, values, arm, self.rules.capacity_limits)

    def score(self, batch: CustomerBatch, *, capacity: bool = True) -> Decisions:
        """Decide for every customer of ``batch`` (see the module docstring).

        Args:
            batch: The customers.
            capacity: Hold the weekly capacities (``serve.rules.capacity``) over the batch;
                False for single-customer requests, whose decisions must not depend on which
                other requests they happened to be scored with.
        """
        monday = monday_on_or_before(batch.as_of)
        week_of_year = int(monday.isocalendar().week)
        reasons = self.rules.reasons(
            batch.features, segment=batch.segment, week_of_year=week_of_year
        )
        masks = allowed_actions(reasons, batch.known)
        segment = np.where(batch.segment >= 0, batch.segment, 0)
        observations = np.ascontiguousarray(
            encode(self.layout, batch.features, segment, week_of_year)
        )
        arm = self.arms(batch)
        control = arm == ARMS.index(CONTROL_ARM)
        observation = Observation(
            batch.features, segment, week_of_year, self._campaign_week(monday)
        )
        if self.champion_arm is None:
            greedy, scores = self.model.policy.act(observations, masks)
        else:  # today's practice as the champion: the control group's choice
            greedy, scores = self.practice_choice(
                self.champion_arm, observation, masks, batch.customer_ids, monday
            )
        greedy = np.asarray(greedy, np.int64)
        greedy, scores = self._rollout(
            batch, arm, observations, masks, greedy, scores, segment, week_of_year
        )
        rows = np.arange(batch.n)
        refused = ~masks[rows, greedy]  # a policy that ignored the masks: guarded to none
        greedy = np.where(refused, 0, greedy)
        exploration = self.settings.exploration
        probabilities = explored_probabilities(greedy, masks, exploration.share)
        actions = greedy
        if exploration.share > 0.0:
            unit = exploration_unit(batch.customer_ids, exploration.salt, monday)
            actions = draw(probabilities, unit)
        by_practice = self._practice_rows(arm, control)
        if by_practice.any():  # a registered practice decides as for control: not explored
            actions = actions.copy()
            actions[by_practice] = greedy[by_practice]
            probabilities[by_practice] = np.asarray(scores, np.float64)[by_practice]
        if control.any():
            staff_rows = np.flatnonzero(control)
            staff_obs = Observation(
                {k: np.asarray(v)[staff_rows] for k, v in batch.features.items()},
                segment[staff_rows],
                week_of_year,
                observation.week,
            )
            staff_actions, staff_probs = self.control_choice(
                staff_obs, masks[staff_rows], batch.customer_ids[staff_rows], monday
            )
            actions = actions.copy()
            actions[staff_rows] = staff_actions
            probabilities[staff_rows] = staff_probs
        guarded = apply_guards(actions, probabilities, reasons, batch.known)  # a last check
        if capacity and self.rules.capacity:  # every arm its share, where worth most in it
            guarded, reasons = self.hold_capacity(observation, guarded, reasons, arm)
        value = self.expected_value(observation, guarded.actions)
        return Decisions(
            batch=batch,
            control=control,
            actions=guarded.actions,
            probabilities=guarded.probabilities,
            scores=np.asarray(scores, np.float64),
            reasons=reasons,
            expected_value=np.where(batch.known, value, 0.0),
            overridden=guarded.overridden | (refused & ~control),
            week_of_year=week_of_year,
            arm=arm,
            previous_version=previous.version if (previous := self.model.previous) else "",
        )

    def _practice_rows(
        self, arm: NDArray[np.int8], control: NDArray[np.bool_]
    ) -> NDArray[np.bool_]:
        """(N,) treatment customers a registered practice decides for: the champion's arms
        when the champion is today's practice, the ``previous`` arm when the previous
        version is."""
        previous = arm == ARMS.index(PREVIOUS_ARM)
        rows = np.zeros(control.shape[0], np.bool_)
        if self.champion_arm is not None:
            rows |= ~control & ~previous
        if self.previous_arm is not None:
            rows |= previous
        return rows

    def _rollout(
        self,
        batch: CustomerBatch,
        arm: NDArray[np.int8],
        observations: NDArray[np.float32],
        masks: NDArray[np.bool_],
        greedy: NDArray[np.int64],
        scores: NDArray[np.float64],
        segment: NDArray[np.int64],
        week_of_year: int,
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """The choices and scores with a staged rollout's (:mod:`journeyopt.serving.rollout`)
        ``previous`` arm (``arm``: :meth:`arms`) taken by the previous version (over its own
        observation layout)."""
        previous = self.model.previous
        if previous is None:
            return greedy, scores
        rows = np.flatnonzero(arm == ARMS.index(PREVIOUS_ARM))
        if rows.size and self.previous_arm is not None:  # today's practice, as for control
            features = {k: np.asarray(v)[rows] for k, v in batch.features.items()}
            old_greedy, old_scores = self.practice_choice(
                self.previous_arm,
                Observation(features, segment[rows], week_of_year, 0),
                masks[rows],
                batch.customer_ids[rows],
                monday_on_or_before(batch.as_of),
            )
            greedy, scores = greedy.copy(), np.array(scores, np.float64)
            greedy[rows] = old_greedy
            scores[rows] = old_scores
        elif rows.size:
            old_obs = observations[rows]
            if self._previous_layout is not self.layout:
                features = {k: np.asarray(v)[rows] for k, v in batch.features.items()}
                old_obs = np.ascontiguousarray(
                    encode(self._previous_layout, features, segment[rows], week_of_year)
                )
            old_greedy, old_scores = previous.policy.act(old_obs, masks[rows])
            greedy, scores = greedy.copy(), np.array(scores, np.float64)
            greedy[rows] = np.asarray(old_greedy, np.int64)
            scores[rows] = old_scores
        return greedy, scores
