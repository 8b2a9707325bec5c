"""The world's dynamics: pure, batched numpy functions of (state, actions, world, rng).

One week for ``N`` customers:

1. the policy picks actions (N,) from the features (:func:`journeyopt.panel.state.state_features`);
2. :func:`response_probabilities` gives, from the discrete summary
   (:mod:`journeyopt.sim.discrete`) and the week of year, the probabilities of a conversion, of
   an engagement event and of an opt-out, and the expected conversion value
   (:class:`ResponseTable` tabulates it once per world over every discrete state and action);
3. :func:`sample_week` draws the week's outcome: a :class:`~journeyopt.panel.state.WeekActivity`
   for :func:`~journeyopt.panel.state.advance` plus event details for logging and the reward
   (:func:`sample_outcome_at` is the engine, on discrete state indices);
4. ``advance(state, outcome.activity)`` gives next week's state.

Common random numbers: a week draws the same random numbers whatever the actions, and each
customer's numbers are their own (see :func:`sample_outcome_at`), so two policies run from
the same seed differ only through their actions.

Reward of a customer-week (currency): ``margin_rate * v - discount[action] * v - cost[action]``
where ``v`` is the list value of the week's conversion (0 without one) and ``discount`` the
catalogue's discount rates (:attr:`journeyopt.sim.rules.ActionCatalog.discounts`).

Outcomes are independent Bernoulli draws given the summary and the action: at most one
conversion, at most one engagement event and at most one opt-out per customer-week.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple, TypeVar

import numpy as np
from numpy.typing import NDArray

from journeyopt.panel.state import CustomerState, WeekActivity, state_features
from journeyopt.sim.discrete import DiscreteLayout, Summary, allowed_actions, summarise
from journeyopt.sim.world import FittedResponses, WorldSpec

Float = NDArray[np.float64]
IntArray = NDArray[np.int64]
Bool = NDArray[np.bool_]
_T = TypeVar("_T", bound=np.generic)


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


def sigmoid(x: Float) -> Float:
    """Logistic function, elementwise."""
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


def fitted_responses(
    fitted: FittedResponses, state: IntArray, actions: IntArray, week_of_year: int
) -> Responses:
    """Responses of a calibrated world's fitted tables (see
    :class:`~journeyopt.sim.world.FittedResponses`) for (N,) discrete ``state`` indices.

    The engagement model gives P(at least one engagement | state, action, week); the
    spontaneous part (``inquiry``) is its ``none`` column, with season, and the contact's own
    part is what the action adds to it at the reference season (shift 0), so that
    :attr:`Responses.engage` is the fitted probability up to the season of contact responses.
    """
    convert = sigmoid(fitted.convert_logit[state, actions] + fitted.convert_season[week_of_year])
    inquiry = sigmoid(fitted.engage_logit[state, 0] + fitted.engage_season[week_of_year])
    return Responses(
        convert=convert,
        value=np.asarray(fitted.value[state], np.float64),
        engage_contact=contact_engagement(fitted)[state, actions],
        inquiry=inquiry,
        optout=np.asarray(fitted.optout[state, actions], np.float64),
    )


def contact_engagement(fitted: FittedResponses) -> Float:
    """(n, A) probability that the contact itself produces an engagement event, at the
    reference season: what the action's fitted P(at least one engagement) adds to the
    ``none`` column's. It does not depend on the week, so it is computed once per table
    (kept while ``fitted`` lives: :func:`fitted_responses` reads it at every simulated week)."""
    cached = _CONTACT_ENGAGEMENT.get(fitted)
    if cached is None:
        base = sigmoid(fitted.engage_logit[:, :1])
        with_contact = sigmoid(fitted.engage_logit)
        cached = np.clip((with_contact - base) / np.maximum(1.0 - base, 1e-12), 0.0, 1.0)
        _CONTACT_ENGAGEMENT[fitted] = cached
    return cached


_CONTACT_ENGAGEMENT: weakref.WeakKeyDictionary[FittedResponses, Float] = weakref.WeakKeyDictionary()


def fitted_week(fitted: FittedResponses, week_of_year: int) -> tuple[Float, Float]:
    """(n, A) conversion and (n,) spontaneous engagement probabilities of every state of a
    calibrated world's tables in ``week_of_year``: :func:`fitted_responses`'s ``convert`` and
    ``inquiry`` for all states and actions, element for element, without indexing the tables."""
    convert = sigmoid(fitted.convert_logit + fitted.convert_season[week_of_year])
    inquiry = sigmoid(fitted.engage_logit[:, 0] + fitted.engage_season[week_of_year])
    return convert, inquiry


def response_probabilities(
    world: WorldSpec, summary: Summary, actions: NDArray[np.integer], week_of_year: int
) -> Responses:
    """Response probabilities of customers with discrete ``summary`` to ``actions``.

    A calibrated world answers from its fitted tables (:func:`fitted_responses`); one whose
    contact effects are not identified refuses (this is the entry point of every policy
    search: the exact optimum, the myopic policy, training).

    Args:
        world: The world.
        summary: (N,) discrete summaries.
        actions: (N,) action indices into ``world.actions.names``.
        week_of_year: ISO week of year (1..53) of this week.
    """
    if world.responses is not None:
        world.require_identified_actions("search for, optimise or score a contact policy")
        state = DiscreteLayout.of(world).encode(summary)
        return fitted_responses(world.responses, state, np.asarray(actions, np.int64), week_of_year)
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
        convert=sigmoid(logit),
        value=np.asarray(value, np.float64),
        engage_contact=np.asarray(p.action_engagement[s, a] * tired, np.float64),
        inquiry=np.minimum(p.inquiry_rate[s] * np.exp(season), 1.0) * np.ones(a.shape[0]),
        optout=np.minimum(optout, 1.0),
    )


def expected_reward(world: WorldSpec, responses: Responses, actions: NDArray[np.integer]) -> Float:
    """(N,) expected reward of a customer-week, currency (what the exact optimum uses)."""
    a = np.asarray(actions, np.int64)
    margin = world.margin_rate - world.actions.discount_rates[a]
    return responses.convert * responses.value * margin - world.params.cost[a]


@dataclass(frozen=True)
class WeekOutcome:
    """What happened in one week to ``N`` customers, with the reward decomposition.

    The per-customer conversion details are stored for the ``B`` customers who converted
    (few in a week) and spread over all ``N`` on first access (cached), so a caller that needs
    only the activity and the reward (the simulator) does not pay for them.

    Attributes:
        activity: The week's activity, to fold in with ``advance``.
        actions: (N,) actions carried out (forbidden or inactive ones replaced by ``none``).
        requested: (N,) actions requested.
        converted: (N,) a conversion happened.
        paid: (N,) amount paid (list value minus the week's discount), currency.
        engaged: (N,) an engagement event happened.
        contact_engaged: (N,) the contact produced an engagement event.
        opted_out: (N,) the customer opted out of the action's channel this week.
        contact_cost: (N,) cost of the contact, currency.
        buyers: (B,) ascending indices of the customers who converted.
        buyer_kind: (B,) their conversion kind index into ``world.kinds``.
        buyer_value: (B,) their list value, currency.
        buyer_margin: (B,) ``margin_rate * list value``, currency.
        buyer_discount: (B,) the week's action's discount rate times the list value.

    Derived (N,) arrays: :attr:`overridden`, :attr:`kind`, :attr:`list_value`,
    :attr:`engagement_source`, :attr:`margin`, :attr:`discount_cost`, :attr:`reward`.
    """

    activity: WeekActivity
    actions: IntArray
    requested: IntArray
    converted: Bool
    paid: Float
    engaged: Bool
    contact_engaged: Bool
    opted_out: Bool
    contact_cost: Float
    buyers: IntArray
    buyer_kind: IntArray
    buyer_value: Float
    buyer_margin: Float
    buyer_discount: Float

    def _spread(self, values: NDArray[_T], fill: float) -> NDArray[_T]:
        """(N,) ``values`` (B,) at the buyers, ``fill`` elsewhere."""
        out: NDArray[_T] = np.full(self.actions.shape[0], fill, values.dtype)
        out[self.buyers] = values
        return out

    @cached_property
    def overridden(self) -> Bool:
        """(N,) the requested action was forbidden (opted-out channel) or the customer
        inactive, so ``none`` was carried out instead."""
        return self.actions != self.requested

    @cached_property
    def kind(self) -> IntArray:
        """(N,) conversion kind index into ``world.kinds``, -1 without conversion."""
        return self._spread(self.buyer_kind, -1)

    @cached_property
    def list_value(self) -> Float:
        """(N,) list value of the conversion, currency (0 without)."""
        return self._spread(self.buyer_value, 0.0)

    @cached_property
    def margin(self) -> Float:
        """(N,) ``margin_rate * list_value``, currency."""
        return self._spread(self.buyer_margin, 0.0)

    @cached_property
    def discount_cost(self) -> Float:
        """(N,) the week's action's discount rate times the list value, currency."""
        return self._spread(self.buyer_discount, 0.0)

    @cached_property
    def engagement_source(self) -> IntArray:
        """(N,) the action whose contact produced the engagement, 0 (``none``) for a
        spontaneous inquiry, -1 without engagement."""
        return np.where(self.contact_engaged, self.actions, self.engaged.astype(np.int64) - 1)

    @property
    def reward(self) -> Float:
        """(N,) reward: margin minus discount cost minus contact cost, currency (a new
        array at every access)."""
        reward = -self.contact_cost
        reward[self.buyers] += self.buyer_margin - self.buyer_discount
        return reward


def categorical(probs: Float, rng: np.random.Generator) -> IntArray:
    """(N,) one draw per row of the (N, K) probability table."""
    u = rng.random((probs.shape[0], 1))
    draw = np.minimum((u > np.cumsum(probs, axis=1)).sum(axis=1), probs.shape[1] - 1)
    return draw.astype(np.int64)


class ResponseTable:
    """A world's response model tabulated over every discrete state and action.

    The world responds only through :func:`response_probabilities` of the discrete summary and
    the week of year, and the week of year enters only through the seasonal logit shift; so the
    probabilities of every (state, action) are computed once per world with that function (over
    :meth:`~journeyopt.sim.discrete.DiscreteLayout.all_states`, the enumeration the exact optimum
    uses) and once per distinct seasonal shift, and a week of ``N`` customers is a few gathers.
    The tabulated numbers are bit-for-bit those of :func:`response_probabilities`.

    Build it with :meth:`of` (cached per world object). ``n = layout.n_states``; (state, action)
    tables are flat, row-major: entry ``state * A + action``.

    Attributes:
        layout: How discrete states are numbered.
        n_actions: ``A``.
        season_level: (54,) index of each ISO week of year's seasonal shift among the world's
            distinct shifts (index 0 unused).
        engage_contact: (n * A,) probability that the contact produces an engagement event.
        optout: (n * A,) probability of opting out of the action's channel.
        allowed: (n * A,) the action's channel is not opted out (``none`` always allowed).
        lift: (n,) expected conversion value over the segment's mean value (engagement lift).
        segment: (n,) customer type of each state.
        kind_cdf: (S, K) cumulative probabilities of the conversion kinds.
        contact_cost: (A,) cost of a carried-out action, currency (0 for ``none``).
        contact_rows: (A, C) int32 one contact on the action's channel (none for ``none``).
        optout_rows: (A, C) int8 ``-1`` on the action's channel: the consent change of an
            opt-out.
    """

    def __init__(self, world: WorldSpec) -> None:
        self._world = weakref.ref(world)  # the cache of tables must not keep worlds alive
        self.layout = DiscreteLayout.of(world)
        self.n_actions = world.actions.n_actions
        # seasonal signature of each week of year: (54, k); weeks with equal rows share tables
        signature = (
            world.params.season[:, None]
            if world.responses is None
            else np.stack([world.responses.convert_season, world.responses.engage_season], 1)
        )
        _, first, inverse = np.unique(signature[1:], axis=0, return_index=True, return_inverse=True)
        self._level_weeks = first + 1  # one representative week of year per level
        self.season_level = np.concatenate([[0], inverse.reshape(-1)]).astype(np.int64)
        self._states = self.layout.all_states()
        n, a_count = self.layout.n_states, self.n_actions
        if world.responses is not None:  # the tables themselves, not state by state
            engage = contact_engagement(world.responses)
            optout = world.responses.optout
            value = world.responses.value
        else:
            engage = np.empty((n, a_count))
            optout = np.empty((n, a_count))
            week = int(self._level_weeks[0])
            for a in range(a_count):
                r = self._responses(world, a, week)
                engage[:, a] = r.engage_contact
                optout[:, a] = r.optout
            value = r.value
        self.engage_contact = engage.reshape(-1)
        self.optout = optout.reshape(-1)
        self.allowed = allowed_actions(self._states, world).reshape(-1)
        self.lift = value / world.params.mean_value[self._states.segment]
        self.segment = self._states.segment
        p = world.params
        rows = np.zeros((a_count, len(world.channels)), np.int32)
        for a in range(1, a_count):
            if p.channel[a] >= 0:
                rows[a, p.channel[a]] = 1
        self.kind_cdf = np.cumsum(p.kind_probs, axis=1)
        self.contact_cost = np.where(np.arange(a_count) != 0, p.cost, 0.0)
        self.contact_rows = rows
        self.optout_rows = (-rows).astype(np.int8)
        self._convert: OrderedDict[int, Float] = OrderedDict()
        self._inquiry: OrderedDict[int, Float] = OrderedDict()

    def _fill(self, level: int) -> None:
        world = self._world()
        assert world is not None, "the table's world is gone"
        n, a_count = self.layout.n_states, self.n_actions
        week = int(self._level_weeks[level])
        if world.responses is not None:  # the tables themselves, every state and action at once
            every, inquiry = fitted_week(world.responses, week)
            convert = every.reshape(-1)
        else:
            table = np.empty((n, a_count))
            for a in range(a_count):
                r = self._responses(world, a, week)
                table[:, a] = r.convert
            convert, inquiry = table.reshape(-1), r.inquiry
        level_bytes = convert.nbytes + inquiry.nbytes
        while self._convert and (len(self._convert) + 1) * level_bytes > LEVEL_CACHE_BYTES:
            oldest = next(iter(self._convert))  # the least recently used season level
            del self._convert[oldest], self._inquiry[oldest]
        self._convert[level] = convert
        self._inquiry[level] = inquiry

    def _responses(self, world: WorldSpec, action: int, week_of_year: int) -> Responses:
        """Responses of every state to ``action``: a calibrated world's tables are read
        directly (simulating is allowed even when its contact effects are not identified)."""
        n = self.layout.n_states
        actions = np.full(n, action, np.int64)
        if world.responses is not None:
            return fitted_responses(world.responses, np.arange(n), actions, week_of_year)
        return response_probabilities(world, self._states, actions, week_of_year)

    def convert(self, week_of_year: int) -> Float:
        """(n * A,) probability of a conversion in ``week_of_year`` (1..53)."""
        level = int(self.season_level[week_of_year])
        if level not in self._convert:
            self._fill(level)
        self._convert.move_to_end(level)
        self._inquiry.move_to_end(level)
        return self._convert[level]

    def inquiry(self, week_of_year: int) -> Float:
        """(n,) probability of a spontaneous inquiry in ``week_of_year`` (it depends on the
        state's segment only)."""
        level = int(self.season_level[week_of_year])
        if level not in self._inquiry:
            self._fill(level)
        self._convert.move_to_end(level)
        self._inquiry.move_to_end(level)
        return self._inquiry[level]

    @staticmethod
    def of(world: WorldSpec) -> ResponseTable:
        """The table of ``world``, built on first use and kept while the world lives."""
        key = id(world)
        cached = _TABLES.get(key)
        if cached is not None and cached[0]() is world:
            return cached[1]
        table = ResponseTable(world)
        _TABLES[key] = (weakref.ref(world), table)
        weakref.finalize(world, _TABLES.pop, key, None)
        return table

    @staticmethod
    def release(world: WorldSpec) -> None:
        """Drop the table of ``world`` now (built again on its next use, the same table): for
        a caller that keeps a world it is done simulating, e.g. a calibration's ensemble
        member after its hold-out check. A table holds about ``8 A (3 + L)`` bytes per state
        for ``L`` season levels kept (the most recently used within :data:`LEVEL_CACHE_BYTES`),
        otherwise kept as long as the world lives."""
        cached = _TABLES.get(id(world))
        if cached is not None and cached[0]() is world:
            del _TABLES[id(world)]


_TABLES: dict[int, tuple[weakref.ref[WorldSpec], ResponseTable]] = {}

LEVEL_CACHE_BYTES = 256 * 2**20
"""Memory a :class:`ResponseTable` keeps season levels' conversion tables in (the most recently
used; one level is ``8 A`` bytes per state: 53 levels of a 717,336-state, 5-action world would
be 1.5 GB per world, and a gate simulates in every ensemble member). Others are computed again
from the world's tables when a week needs them, the same numbers."""


_UINT64_MAX = np.iinfo(np.uint64).max
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_MAX_ROUNDS = 64


def keyed_uniform(key: NDArray[np.uint64], draw: int) -> Float:
    """(n,) the ``draw``-th uniform in [0, 1) of the stream of each 64-bit ``key``: the
    SplitMix64 output of ``key + (draw + 1) * golden`` (Steele et al. 2014), top 53 bits."""
    z = key + np.uint64((draw + 1) * _GOLDEN % 2**64)
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def keyed_standard_gamma(key: NDArray[np.uint64], shape: Float, first_draw: int = 0) -> Float:
    """(n,) one standard Gamma(``shape``) variate per 64-bit ``key``, a function of the key
    and the shape alone (Marsaglia and Tsang 2000 on uniforms and Box-Muller normals from the
    key's :func:`keyed_uniform` stream; ``shape < 1`` by boosting ``shape + 1``).

    Lets the dynamics draw one key for every customer (action-independent) and spend the
    Gamma sampling on the few customers whose conversion needs a value.

    Args:
        key: (n,) uint64 keys, uniformly random.
        shape: (n,) Gamma shapes, > 0.
        first_draw: Position in the keys' streams of the first uniform used (the ones before
            it serve other purposes).
    """
    small = shape < 1.0
    d = np.where(small, shape + 1.0, shape) - 1.0 / 3.0
    c = 1.0 / np.sqrt(9.0 * d)
    out = np.empty(key.shape[0])
    todo = np.arange(key.shape[0])
    for attempt in range(_MAX_ROUNDS):
        k, dk, ck = key[todo], d[todo], c[todo]
        draw = first_draw + 3 * attempt
        u1 = 1.0 - keyed_uniform(k, draw)  # (0, 1]
        u2 = keyed_uniform(k, draw + 1)
        z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
        v = 1.0 + ck * z
        v = v * v * v
        u = keyed_uniform(k, draw + 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            accept = (v > 0) & (np.log(u) < 0.5 * z * z + dk - dk * v + dk * np.log(v))
        out[todo[accept]] = (dk * v)[accept]
        todo = todo[~accept]
        if todo.shape[0] == 0:
            break
    else:  # pragma: no cover - probability below 1e-80
        raise RuntimeError("Gamma sampling did not converge")
    boost = np.flatnonzero(small)
    if boost.shape[0]:
        u = 1.0 - keyed_uniform(key[boost], first_draw + 3 * _MAX_ROUNDS)
        out[boost] *= u ** (1.0 / shape[boost])
    return out


def _check_range(values: IntArray, stop: int, what: str) -> None:
    """Raise unless every entry of ``values`` is in ``0..stop-1`` (gathers from flat tables
    would otherwise read a neighbouring row)."""
    if values.size and (int(values.min()) < 0 or int(values.max()) >= stop):
        raise IndexError(f"{what} must be in 0..{stop - 1}, got {values.min()}..{values.max()}")


N_UNIFORMS = 4
"""Uniform draws per customer-week: conversion, contact engagement, inquiry, opt-out (plus one
64-bit key for the kind and value of a conversion)."""


def sample_outcome_at(
    world: WorldSpec,
    state: NDArray[np.integer],
    actions: NDArray[np.integer],
    week_of_year: int,
    rng: np.random.Generator,
    active: Bool | None = None,
) -> WeekOutcome:
    """Draw one week's outcome for customers in discrete states ``state`` (see
    :func:`sample_outcome`, which this is the engine of).

    Random numbers (common random numbers: the same whatever the actions): a (5, N) block of
    uniforms, one per customer for the conversion, the contact's engagement, the inquiry and the
    opt-out (an event happens when its uniform is below its probability), then one 64-bit key
    per customer from which the customers who convert get their conversion kind (inverse CDF
    of the key's first :func:`keyed_uniform`) and value noise (:func:`keyed_standard_gamma`).

    Args:
        world: The world.
        state: (N,) discrete state indices (:func:`journeyopt.sim.discrete.discrete_state`).
        actions: (N,) requested actions; actions on an opted-out channel are not carried out.
        week_of_year: ISO week of year (1..53).
        rng: Source of randomness.
        active: (N,) customers taking part this week (default all); the others get a quiet
            week and zero reward.
    """
    table = ResponseTable.of(world)
    p = world.params
    x = np.asarray(state, np.int64)
    n = x.shape[0]
    requested = np.asarray(actions, np.int64)
    _check_range(requested, table.n_actions, "actions")
    if requested.any():
        world.require_identified_actions("simulate contacts")
    cell = x * table.n_actions
    allowed = table.allowed.take(cell + requested)
    taking_part = None if active is None else np.asarray(active, bool)
    if taking_part is not None:
        allowed &= taking_part
    a = requested * allowed
    cell += a

    u = rng.random((N_UNIFORMS, n))
    key = rng.integers(0, _UINT64_MAX, n, np.uint64, endpoint=True)
    converted = u[0] < table.convert(week_of_year).take(cell)
    contact_engaged = u[1] < table.engage_contact.take(cell)
    inquiry = u[2] < table.inquiry(week_of_year).take(x)
    opted_out = u[3] < table.optout.take(cell)
    if taking_part is not None:
        converted &= taking_part
        inquiry &= taking_part

    # kind and value of the conversions only (their draws above were made for everybody)
    buyers = np.flatnonzero(converted)
    x_b = x.take(buyers)
    seg_b = table.segment.take(x_b)
    key_b = key.take(buyers)
    u_kind = keyed_uniform(key_b, 0)
    kind_b = np.zeros(buyers.shape[0], np.int64)
    for k in range(table.kind_cdf.shape[1] - 1):  # inverse CDF, as ``categorical``
        kind_b += u_kind > table.kind_cdf[:, k].take(seg_b)
    shape_b = p.value_shape.take(seg_b)
    noise_b = keyed_standard_gamma(key_b, shape_b, first_draw=1) / shape_b
    value_b = np.round(p.kind_values[seg_b, kind_b] * table.lift.take(x_b) * noise_b, 2)
    rate_b = world.actions.discount_rates.take(a.take(buyers))
    paid_b = np.round(value_b * (1.0 - rate_b), 2)
    paid = np.zeros(n)
    paid[buyers] = paid_b

    engaged = contact_engaged | inquiry
    counted = world.features.rule_actions  # contacts per action, for caps over actions
    activity = WeekActivity(
        conversions=converted.astype(np.int32),
        revenue=paid,
        engagements=engaged.astype(np.int32),
        cancellations=np.zeros(n, np.int32),
        contacts=table.contact_rows.take(a, axis=0),
        consent=table.optout_rows.take(a * opted_out, axis=0),
        action_contacts=(a[:, None] == world.actions.index(list(counted))[None, :]).astype(np.int32)
        if counted
        else None,
    )
    return WeekOutcome(
        activity=activity,
        actions=a,
        requested=requested,
        converted=converted,
        paid=paid,
        engaged=engaged,
        contact_engaged=contact_engaged,
        opted_out=opted_out,
        contact_cost=table.contact_cost.take(a),
        buyers=buyers,
        buyer_kind=kind_b,
        buyer_value=value_b,
        buyer_margin=world.margin_rate * value_b,
        buyer_discount=rate_b * value_b,
    )


def sample_outcome(
    world: WorldSpec,
    summary: Summary,
    actions: NDArray[np.integer],
    week_of_year: int,
    rng: np.random.Generator,
    active: Bool | None = None,
) -> WeekOutcome:
    """Draw one week's outcome for customers with discrete ``summary``.

    The probabilities are those of :func:`response_probabilities` (tabulated, see
    :class:`ResponseTable`); the random numbers are described in :func:`sample_outcome_at`.

    Args:
        world: The world.
        summary: (N,) discrete summaries at the start of the week.
        actions: (N,) requested actions; actions on an opted-out channel are not carried out.
        week_of_year: ISO week of year (1..53).
        rng: Source of randomness.
        active: (N,) customers taking part this week (default all); the others get a quiet
            week and zero reward.
    """
    state = DiscreteLayout.of(world).encode(summary)
    return sample_outcome_at(world, state, actions, week_of_year, rng, active)


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
