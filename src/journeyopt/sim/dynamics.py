"""The world's dynamics: pure, batched numpy functions of (state, actions, world, rng).

One week for ``N`` customers:

1. the policy picks actions (N,) from the features (:func:`journeyopt.panel.state.state_features`);
2. :func:`response_probabilities` gives, from the discrete summary
   (:mod:`journeyopt.sim.discrete`) and the week of year, the probabilities of a conversion, of
   an engagement event and of an opt-out, and the expected conversion value;
3. :func:`sample_week` draws the week's outcome: a :class:`~journeyopt.panel.state.WeekActivity`
   for :func:`~journeyopt.panel.state.advance` plus event details for logging and the reward;
4. ``advance(state, outcome.activity)`` gives next week's state.

Reward of a customer-week (currency): ``margin_rate * v - discount_rate * v * [discount]
- cost[action]`` where ``v`` is the list value of the week's conversion (0 without one).

Outcomes are independent Bernoulli draws given the summary and the action: at most one
conversion, at most one engagement event and at most one opt-out per customer-week.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from journeyopt.panel.state import CustomerState, WeekActivity, state_features
from journeyopt.sim.discrete import Summary, allowed_actions, summarise
from journeyopt.sim.world import WorldSpec

Float = NDArray[np.float64]
IntArray = NDArray[np.int64]
Bool = NDArray[np.bool_]


class Responses(NamedTuple):
    """Response probabilities of ``N`` customer-weeks to their actions, each (N,).

    Attributes:
        convert: Probability of a conversion this week.
        value: Expected list value of that conversion, currency.
        engage_contact: Probability that the contact produces an engagement event.
        inquiry: Probability of a spontaneous inquiry (the trigger event).
        optout: Probability of opting out of the action's channel (0 for ``none``).
    """

    convert: Float
    value: Float
    engage_contact: Float
    inquiry: Float
    optout: Float

    @property
    def engage(self) -> Float:
        """Probability of at least one engagement event (contact-driven or spontaneous)."""
        return 1.0 - (1.0 - self.engage_contact) * (1.0 - self.inquiry)


def _sigmoid(x: Float) -> Float:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), np.float64)


def fatigue(contact: IntArray, world: WorldSpec) -> Float:
    """(N,) fatigue level in [0, 1]: 1 when the last contact was one week ago, decaying with
    ``fatigue_decay_weeks``, 0 at the contact cap (long ago or never)."""
    level = np.exp(-(contact - 1) / world.fatigue_decay_weeks)
    return np.where(contact >= world.discrete.contact_cap_weeks, 0.0, level)


def engagement_level(engagement: IntArray, world: WorldSpec) -> Float:
    """(N,) engagement level in [0, 1]: 1 one week after an engagement event, decaying with
    ``engagement_decay_weeks``, 0 at the engagement cap."""
    level = np.exp(-(engagement - 1) / world.engagement_decay_weeks)
    return np.where(engagement >= world.discrete.engagement_cap_weeks, 0.0, level)


def base_logit(summary: Summary, world: WorldSpec) -> Float:
    """(N,) conversion logit without contact, engagement or season: prospect, or habit
    decaying with recency from ``return_logit`` to ``lapsed_logit``, plus loyalty."""
    p = world.params
    s = summary.segment
    habit = np.where(
        summary.recency >= world.discrete.recency_cap_weeks,
        0.0,
        np.exp(-(np.maximum(summary.recency, 1) - 1) / p.habit_decay_weeks[s]),
    )
    customer = (
        p.lapsed_logit[s]
        + (p.return_logit[s] - p.lapsed_logit[s]) * habit
        + p.loyalty_logit[s] * np.maximum(summary.conversions - 1, 0)
    )
    return np.where(summary.conversions == 0, p.prospect_logit[s], customer)


def response_probabilities(
    world: WorldSpec, summary: Summary, actions: NDArray[np.integer], week_of_year: int
) -> Responses:
    """Response probabilities of customers with discrete ``summary`` to ``actions``.

    Args:
        world: The world.
        summary: (N,) discrete summaries.
        actions: (N,) action indices into ``world.actions.names``.
        week_of_year: ISO week of year (1..53) of this week.
    """
    p = world.params
    s = summary.segment
    a = np.asarray(actions, np.int64)
    season = p.season[week_of_year]
    tired = 1.0 - p.fatigue_response[s] * fatigue(summary.contact, world)
    engaged = engagement_level(summary.engagement, world)
    logit = (
        base_logit(summary, world)
        + season
        + p.engagement_logit[s] * engaged
        + p.action_logit[s, a] * tired
    )
    value = p.mean_value[s] * (1.0 + (p.engagement_value_lift[s] - 1.0) * engaged)
    optout = p.optout[s, a] * (1.0 + p.fatigue_optout[s] * fatigue(summary.contact, world))
    return Responses(
        convert=_sigmoid(logit),
        value=np.asarray(value, np.float64),
        engage_contact=np.asarray(p.action_engagement[s, a] * tired, np.float64),
        inquiry=np.minimum(p.inquiry_rate[s] * np.exp(season), 1.0) * np.ones(a.shape[0]),
        optout=np.minimum(optout, 1.0),
    )


def expected_reward(world: WorldSpec, responses: Responses, actions: NDArray[np.integer]) -> Float:
    """(N,) expected reward of a customer-week, currency (what the exact optimum uses)."""
    a = np.asarray(actions, np.int64)
    margin = world.margin_rate - world.discount_rate * (a == world.discount_action)
    return responses.convert * responses.value * margin - world.params.cost[a]


@dataclass(frozen=True)
class WeekOutcome:
    """What happened in one week to ``N`` customers, with the reward decomposition.

    Attributes:
        activity: The week's activity, to fold in with ``advance``.
        actions: (N,) actions carried out (forbidden or inactive ones replaced by ``none``).
        overridden: (N,) the requested action was forbidden (opted-out channel) or the
            customer inactive, so ``none`` was carried out instead.
        converted: (N,) a conversion happened.
        kind: (N,) conversion kind index into ``world.kinds``, -1 without conversion.
        list_value: (N,) list value of the conversion, currency (0 without).
        paid: (N,) amount paid (list value minus the week's discount), currency.
        engaged: (N,) an engagement event happened.
        engagement_source: (N,) the action whose contact produced the engagement, 0 (``none``)
            for a spontaneous inquiry, -1 without engagement.
        opted_out: (N,) the customer opted out of the action's channel this week.
        margin: (N,) ``margin_rate * list_value``, currency.
        discount_cost: (N,) ``discount_rate * list_value`` in a discount week, currency.
        contact_cost: (N,) cost of the contact, currency.
    """

    activity: WeekActivity
    actions: IntArray
    overridden: Bool
    converted: Bool
    kind: IntArray
    list_value: Float
    paid: Float
    engaged: Bool
    engagement_source: IntArray
    opted_out: Bool
    margin: Float
    discount_cost: Float
    contact_cost: Float

    @property
    def reward(self) -> Float:
        """(N,) reward: margin minus discount cost minus contact cost, currency."""
        return self.margin - self.discount_cost - self.contact_cost


def categorical(probs: Float, rng: np.random.Generator) -> IntArray:
    """(N,) one draw per row of the (N, K) probability table."""
    u = rng.random((probs.shape[0], 1))
    draw = np.minimum((u > np.cumsum(probs, axis=1)).sum(axis=1), probs.shape[1] - 1)
    return draw.astype(np.int64)


def sample_outcome(
    world: WorldSpec,
    summary: Summary,
    actions: NDArray[np.integer],
    week_of_year: int,
    rng: np.random.Generator,
    active: Bool | None = None,
) -> WeekOutcome:
    """Draw one week's outcome for customers with discrete ``summary``.

    Args:
        world: The world.
        summary: (N,) discrete summaries at the start of the week.
        actions: (N,) requested actions; actions on an opted-out channel are not carried out.
        week_of_year: ISO week of year (1..53).
        rng: Source of randomness.
        active: (N,) customers taking part this week (default all); the others get a quiet
            week and zero reward.
    """
    n = summary.segment.shape[0]
    p = world.params
    active = np.ones(n, bool) if active is None else np.asarray(active, bool)
    requested = np.asarray(actions, np.int64)
    allowed = allowed_actions(summary, world)[np.arange(n), requested] & active
    a = np.where(allowed, requested, 0)
    contacted = (a != 0) & active
    resp = response_probabilities(world, summary, a, week_of_year)
    u = rng.random((n, 4))
    converted = (u[:, 0] < resp.convert) & active
    contact_engaged = (u[:, 1] < resp.engage_contact) & contacted
    inquiry = (u[:, 2] < resp.inquiry) & active
    opted_out = (u[:, 3] < resp.optout) & contacted
    kind = np.where(converted, categorical(p.kind_probs[summary.segment], rng), -1)
    noise = rng.gamma(p.value_shape[summary.segment], 1.0 / p.value_shape[summary.segment])
    kind_mean = p.kind_values[summary.segment, np.maximum(kind, 0)]
    lift = resp.value / p.mean_value[summary.segment]
    list_value = np.where(converted, np.round(kind_mean * lift * noise, 2), 0.0)
    discounted = a == world.discount_action
    paid = np.round(list_value * np.where(discounted, 1.0 - world.discount_rate, 1.0), 2)
    engaged = contact_engaged | inquiry
    source = np.where(contact_engaged, a, np.where(inquiry, 0, -1))

    c = len(world.channels)
    channel = np.maximum(p.channel[a], 0)
    contacts = np.zeros((n, c), np.int32)
    contacts[np.arange(n), channel] = contacted
    consent = np.zeros((n, c), np.int8)
    consent[np.arange(n), channel] = -opted_out.astype(np.int8)
    activity = WeekActivity(
        conversions=converted.astype(np.int32),
        revenue=paid,
        engagements=engaged.astype(np.int32),
        cancellations=np.zeros(n, np.int32),
        contacts=contacts,
        consent=consent,
    )
    return WeekOutcome(
        activity=activity,
        actions=a,
        overridden=a != requested,
        converted=converted,
        kind=kind.astype(np.int64),
        list_value=list_value,
        paid=paid,
        engaged=engaged,
        engagement_source=source.astype(np.int64),
        opted_out=opted_out,
        margin=world.margin_rate * list_value,
        discount_cost=np.where(discounted, world.discount_rate * list_value, 0.0),
        contact_cost=np.where(contacted, p.cost[a], 0.0),
    )


def sample_week(
    world: WorldSpec,
    state: CustomerState,
    segment: NDArray[np.integer],
    actions: NDArray[np.integer],
    week_of_year: int,
    rng: np.random.Generator,
    active: Bool | None = None,
) -> WeekOutcome:
    """Draw one week's outcome for customers in ``state`` (see :func:`sample_outcome`).

    The world observes the state only through ``state_features`` and the discrete summary.
    """
    summary = summarise(state_features(state, world.features), segment, world)
    return sample_outcome(world, summary, actions, week_of_year, rng, active)
