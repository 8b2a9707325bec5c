"""Running contact policies in a shop world and in a world calibrated from its logs.

A shop world (:mod:`journeyopt.sim.shop`) has its own true state, but the product's policies
(baselines, a calibrated world's optimum, trained agents) act on the panel features of
:func:`journeyopt.panel.state.state_features`. So every run here carries both:

- the true state (:class:`~journeyopt.sim.shop.ShopState`), stepped by the world;
- the panel state (:class:`~journeyopt.panel.state.CustomerState`), advanced each week with the
  activity the logs would show (orders, refunds in the week they are booked, e-mail clicks,
  contacts per channel, the all-channel opt-out), exactly as the panel builds it from the
  export: a week's revenue is net of that week's refunds (:class:`RefundBook`).

A *chooser* maps (true state, panel state, episode week, week of year, allowed actions) to
actions; :func:`product_chooser` wraps a product :class:`~journeyopt.agents.policy.Policy`
(it sees the panel features and the acquisition label as its segment), :func:`state_chooser` a
policy over true states (the true optimum, which knows the latent type). The world's own
contact rule (at most ``max_contacts`` contacts in any ``history_weeks`` weeks) is a mask for
every chooser and a guard after it, in the truth and in the calibrated world alike.

In a calibrated world the true state's observable parts (weeks since purchase, contact history,
pending effect, opt-out) are tracked from the simulated history with
:func:`journeyopt.sim.shop.next_state`, and each customer keeps the latent type they have in the
truth, so a policy over true states can be valued there too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.agents.policy import Observation, Policy
from journeyopt.panel.state import CustomerState, FeatureSpec, WeekActivity, advance
from journeyopt.panel.state import state_features as panel_features
from journeyopt.sim.behaviour import contact_rules
from journeyopt.sim.dynamics import sample_week
from journeyopt.sim.optimum import cyclic_weeks_of_year
from journeyopt.sim.shop import (
    ShopOutcome,
    ShopSpec,
    ShopState,
    allowed_actions,
    draw_population,
    expected_reward,
    guard,
    responses,
    step,
)
from journeyopt.sim.shop import next_state as next_true_state
from journeyopt.sim.shop_optimum import StatePolicy
from journeyopt.sim.starting import StartingBase
from journeyopt.sim.world import DiscreteSpec, PopulationSpec, SegmentSpec, WorldSpec

Float = NDArray[np.float64]
IntArray = NDArray[np.int64]
Bool = NDArray[np.bool_]
Chooser = Callable[[ShopState, CustomerState, int, int, Bool], IntArray]
"""(true state, panel state, episode week, ISO week of year, (N, A) allowed) -> (N,) actions."""


def observable_world(spec: ShopSpec, features: FeatureSpec | None = None) -> WorldSpec:
    """The shop as the panel sees it: its catalogue, channels and features, and the
    acquisition labels as segments (sorted, the order a calibration lists them in).

    Only names are meaningful: the response parameters are neutral placeholders and this world
    is never simulated. It lets today's practice (:class:`journeyopt.sim.practice.Practice`)
    and the contact rules run on the panel features of shop customers.
    """
    features = features or spec.features
    labels = tuple(sorted(spec.acquisition_labels))
    segments = tuple(
        SegmentSpec(
            name=label,
            share=1.0 / len(labels),
            prospect_logit=0.0,
            return_logit=0.0,
            lapsed_logit=0.0,
            habit_decay_weeks=1.0,
            loyalty_logit=0.0,
            engagement_logit=0.0,
            engagement_value_lift=1.0,
            inquiry_rate=0.0,
            kinds={"order": (1.0, 1.0)},
            value_shape=1.0,
            action_logit={},
            action_engagement={},
            optout={},
            fatigue_response=0.0,
            fatigue_optout=0.0,
            company_sizes={"n/a": 1.0},
        )
        for label in labels
    )
    kinds = {a: "email_click" for a in spec.actions.names[1:]} | {
        "inquiry": "email_click",
        "arrival": "email_click",
    }
    return WorldSpec(
        name=spec.name,
        currency=spec.currency,
        channels=spec.channels,
        actions=spec.actions,
        margin_rate=spec.margin_rate,
        fatigue_decay_weeks=1.0,
        engagement_decay_weeks=1.0,
        segments=segments,
        seasonality=(),
        # never simulated: the smallest population and summary the schemas accept
        population=PopulationSpec(
            prospect=1.0,
            active=0.0,
            lapsed=0.0,
            active_recency_weeks=(1, 1),
            lapsed_recency_weeks=(1, 1),
            past_conversions_mean=1.0,
        ),
        discrete=DiscreteSpec(
            recency_cap_weeks=2, conversions_cap=2, contact_cap_weeks=2, engagement_cap_weeks=2
        ),
        features=features,
        engagement_kinds=kinds,
    )


@dataclass(frozen=True)
class RefundBook:
    """Refunds of past orders that the export books in later weeks (one or two weeks after the
    order, :attr:`ShopSpec.refund_lag_weeks`), so that a panel advanced week by week sees
    each refund in the week the export has its line, as the panel built from the export does.

    Attributes:
        due: (L, N) amounts, currency, booked ``k`` weeks from the current week in row ``k``
            (row 0: this week); ``L`` is the longest refund lag.
    """

    due: Float

    @staticmethod
    def empty(spec: ShopSpec, n: int) -> RefundBook:
        """No refund due for ``n`` customers."""
        return RefundBook(np.zeros((max(spec.refund_lag_weeks), n)))

    def week(self, out: ShopOutcome) -> tuple[Float, RefundBook]:
        """(N,) the refunds booked this week, and the book of the next week: the rest shifted
        by a week plus this week's refunded orders (their amount paid, ``refund_lag`` weeks
        after this week)."""
        due = np.zeros_like(self.due)
        due[:-1] = self.due[1:]
        rows = np.flatnonzero(out.refunded)
        due[out.refund_lag[rows] - 1, rows] += out.paid[rows]
        return self.due[0], RefundBook(due)


def week_activity(
    spec: ShopSpec,
    out: ShopOutcome,
    counted: tuple[str, ...] = (),
    refunds: Float | None = None,
) -> WeekActivity:
    """The week's activity as the panel sees it in the export: one conversion per order, the
    week's revenue the amounts paid minus ``refunds`` (N,), the refund lines booked this week
    (:meth:`RefundBook.week`; None: none), e-mail clicks as engagements, one contact on the
    executed action's channel (and of its action, for the ``counted`` actions of the panel
    state), and an opt-out from every channel."""
    n = out.actions.shape[0]
    c = len(spec.channels)
    channel = spec.params.channel[out.actions]
    contacts = np.zeros((n, c), np.int32)
    rows = np.flatnonzero(channel >= 0)
    contacts[rows, channel[rows]] = 1
    consent = np.where(out.opted_out[:, None], -1, 0).astype(np.int8) * np.ones((1, c), np.int8)
    return WeekActivity(
        conversions=out.purchased.astype(np.int32),
        revenue=out.paid.astype(np.float64) - (0.0 if refunds is None else refunds),
        engagements=out.clicked.astype(np.int32),
        cancellations=np.zeros(n, np.int32),
        contacts=contacts,
        consent=consent,
        action_contacts=(out.actions[:, None] == spec.actions.index(list(counted))[None, :]).astype(
            np.int32
        )
        if counted
        else None,
    )


def seed_panel(spec: ShopSpec, state: ShopState, features: FeatureSpec) -> CustomerState:
    """The panel state of customers whose only history is their last order ``state.weeks``
    weeks ago (the pre-history of a drawn population): ``W`` weeks of activity folded in."""
    cap = spec.recency_cap_weeks
    panel = CustomerState.new(features, 0, np.zeros(state.n, np.int64))
    quiet = WeekActivity.quiet(state.n, len(spec.channels))
    for t in range(cap):
        order = state.weeks == cap - t
        activity = WeekActivity(
            conversions=order.astype(np.int32),
            revenue=np.where(order, spec.params.order_value[state.type], 0.0),
            engagements=quiet.engagements,
            cancellations=quiet.cancellations,
            contacts=quiet.contacts,
            consent=quiet.consent,
        )
        panel = advance(panel, activity)
    return panel


@dataclass(frozen=True)
class Population:
    """Customers of a shop world at the start of an episode.

    Attributes:
        true: The true state.
        panel: The panel state built from their history.
        label: (N,) acquisition label index into ``sorted(spec.acquisition_labels)``.
        counted: The actions the panel state counts per week (``features.rule_actions`` of
            the features it was built with; the export's contacts give them).
        refunds: Refunds of orders before the start that fall due after it (None: none
            known; the export ends before them).
    """

    true: ShopState
    panel: CustomerState
    label: IntArray
    counted: tuple[str, ...] = ()
    refunds: RefundBook | None = None


def evaluation_population(
    spec: ShopSpec, n: int, burn_in_weeks: int, rng: np.random.Generator
) -> Population:
    """``n`` synthetic customers after their last order (``1..W`` weeks ago) and
    ``burn_in_weeks`` weeks without contact (so weeks since purchase and the order counts spread
    out): for checks of the truth alone. A calibrated world starts from its own base
    (:func:`matched_population`)."""
    true, label = draw_population(spec, n, rng)
    features = spec.features
    panel = seed_panel(spec, true, features)
    woy = cyclic_weeks_of_year(1, max(burn_in_weeks, 1))
    book = RefundBook.empty(spec, n)
    for t in range(burn_in_weeks):
        true, out = step(spec, true, np.zeros(n, np.int64), int(woy[t]), rng, 1.0)
        booked, book = book.week(out)
        panel = advance(panel, week_activity(spec, out, refunds=booked))
    order = np.argsort(np.argsort(spec.acquisition_labels))  # label index -> sorted position
    return Population(true, panel, order[label].astype(np.int64), refunds=book)


def matched_population(
    true: ShopState,
    true_ids: NDArray[np.object_],
    base: StartingBase,
    features: FeatureSpec,
    n: int,
    rng: np.random.Generator,
) -> Population:
    """The same customers in the truth and in a calibrated world: a calibrated world's
    starting base (the export's customers at its as-of date, their panel state as the panel
    built it from the logs) matched by customer id to the truth's states at that date.

    Args:
        true: (M,) the truth's state of its customers at the base's as-of date.
        true_ids: (M,) their customer ids in the export.
        base: The calibrated world's base, its segments in the order of the world the
            population runs in.
        features: The features the panel state must have (the calibrated world's).
        n: Customers to draw, without replacement, from the matched ones (all when ``n`` is at
            least their number), in the base's order.
        rng: Source of the draw.

    Raises:
        ValueError: No customer of the base is one of the truth's.
    """
    where = pd.Index(np.asarray(true_ids, dtype=str)).get_indexer(base.customer_id.astype(str))
    matched = np.flatnonzero(where >= 0)
    if matched.size == 0:
        raise ValueError("no customer of the calibrated world's base is one of the truth's")
    if n < matched.size:
        matched = np.sort(rng.choice(matched, size=n, replace=False))
    panel = base.conformed(features).take(matched)
    return Population(
        true.take(where[matched]),
        panel,
        base.segment[matched].astype(np.int64),
        features.rule_actions,
    )


def product_chooser(
    policy: Policy,
    world: WorldSpec,
    segment: IntArray,
    rng: np.random.Generator,
) -> Chooser:
    """A product policy as a chooser: it sees the panel features of ``world.features`` and
    ``segment`` (N,) (indices into ``world.segment_names``), and the masks of ``world``'s
    contact rules combined with the shop's all-channel rule."""
    rules = contact_rules(world)

    def choose(true: ShopState, panel: CustomerState, t: int, woy: int, allowed: Bool) -> IntArray:
        features = panel_features(panel, world.features)
        masks = rules.masks(features) & allowed
        seen = Observation(features, segment, woy, t, world.segment_names)
        actions, _ = policy.act(seen, masks, rng)
        return np.asarray(actions, np.int64)

    return choose


def myopic_chooser(spec: ShopSpec, gamma: float) -> Chooser:
    """The greedy policy that knows the truth (latent type included): the allowed action of the
    highest expected reward this week (refunds discounted to it), ties to ``none``."""

    def choose(true: ShopState, panel: CustomerState, t: int, woy: int, allowed: Bool) -> IntArray:
        scores = np.full(allowed.shape, -np.inf)
        for a in range(allowed.shape[1]):
            act = np.where(allowed[:, a], a, 0)
            r = responses(spec, true, act, woy)
            scores[:, a] = np.where(
                allowed[:, a], expected_reward(spec, true, act, r, gamma), -np.inf
            )
        return np.argmax(scores, axis=1).astype(np.int64)

    return choose


def state_chooser(policy: StatePolicy) -> Chooser:
    """A policy over true states (e.g. :meth:`ShopOptimum.act`) as a chooser."""

    def choose(true: ShopState, panel: CustomerState, t: int, woy: int, allowed: Bool) -> IntArray:
        return np.asarray(policy(true, t), np.int64)

    return choose


@dataclass(frozen=True)
class ShopRun:
    """One policy over an episode, each array (N,).

    Attributes:
        value: Discounted return per customer, currency.
        contacts: (H, N) executed action per week (0 = none).
        violations: Customer-weeks where a window of ``history_weeks`` weeks held more than
            ``max_contacts`` executed contacts (must be 0).
    """

    value: Float
    contacts: NDArray[np.int8]
    violations: int


def rule_violations(spec: ShopSpec, executed: NDArray[np.integer]) -> int:
    """Windows of ``history_weeks`` consecutive weeks with more than ``max_contacts`` executed
    contacts, summed over customers; ``executed`` is (H, N) actions (0 = none)."""
    contacted = (np.asarray(executed) > 0).astype(np.int64)
    w = spec.history_weeks
    if contacted.shape[0] < 1:
        return 0
    padded = np.concatenate([np.zeros((w - 1, contacted.shape[1]), np.int64), contacted])
    window = np.lib.stride_tricks.sliding_window_view(padded, w, axis=0).sum(-1)
    return int((window > spec.max_contacts).sum())


def guarded_choice(
    spec: ShopSpec,
    chooser: Chooser,
    true: ShopState,
    panel: CustomerState,
    t: int,
    week_of_year: int,
) -> IntArray:
    """(N,) the actions ``chooser`` takes in episode week ``t`` given the shop's allowed
    actions, guarded by the shop's rule (what either world carries out)."""
    allowed = allowed_actions(spec, true)
    return guard(spec, true, chooser(true, panel, t, week_of_year, allowed))


def run_truth(
    spec: ShopSpec,
    population: Population,
    chooser: Chooser,
    horizon_weeks: int,
    gamma: float,
    rng: np.random.Generator,
    start_week_of_year: int = 1,
) -> ShopRun:
    """Simulate ``chooser`` in the shop world itself for ``horizon_weeks`` weeks.

    The contact history before the episode (``population.true.history``) is taken into account
    by the rule check through the true state; the violation count covers the episode's weeks.
    The panel the product policies see books each refund in the week the export has its line
    (net revenue, as the calibrated world's base was built), from ``population.refunds`` on.
    """
    woy = cyclic_weeks_of_year(start_week_of_year, horizon_weeks)
    true, panel = population.true, population.panel
    book = population.refunds if population.refunds is not None else RefundBook.empty(spec, true.n)
    value = np.zeros(true.n)
    executed = np.zeros((horizon_weeks, true.n), np.int8)
    for t in range(horizon_weeks):
        actions = guarded_choice(spec, chooser, true, panel, t, int(woy[t]))
        true, out = step(spec, true, actions, int(woy[t]), rng, gamma)
        booked, book = book.week(out)
        panel = advance(panel, week_activity(spec, out, population.counted, booked))
        value += gamma**t * out.reward
        executed[t] = out.actions
    return ShopRun(value, executed, rule_violations(spec, executed))


def run_calibrated(
    spec: ShopSpec,
    world: WorldSpec,
    population: Population,
    chooser: Chooser,
    horizon_weeks: int,
    gamma: float,
    rng: np.random.Generator,
    start_week_of_year: int = 1,
) -> ShopRun:
    """Simulate ``chooser`` in a world calibrated from the shop's logs (``world``, its segments
    in the order of ``population.label``), with the shop's all-channel rule as mask and guard.

    The true state's observable parts are tracked from the simulated history; the latent type
    stays each customer's true type (see the module docstring).
    """
    woy = cyclic_weeks_of_year(start_week_of_year, horizon_weeks)
    true, panel = population.true, population.panel
    value = np.zeros(true.n)
    executed = np.zeros((horizon_weeks, true.n), np.int8)
    for t in range(horizon_weeks):
        actions = guarded_choice(spec, chooser, true, panel, t, int(woy[t]))
        out = sample_week(world, panel, population.label, actions, int(woy[t]), rng)
        true = next_true_state(spec, true, out.actions, out.converted, out.opted_out)
        panel = advance(panel, out.activity)
        value += gamma**t * out.reward
        executed[t] = out.actions
    return ShopRun(value, executed, rule_violations(spec, executed))
