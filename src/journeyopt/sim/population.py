"""Who is in the world: static customer attributes, the initial population and new arrivals.

The initial population holds prospects, active customers and lapsed former customers. Former
customers come with their past conversions as events (weeks before the start), and their
:class:`~journeyopt.panel.state.CustomerState` is obtained by replaying those events through
:func:`~journeyopt.panel.state.advance`, so the logs, the panel and the simulator agree on every
feature.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from journeyopt.panel.state import CustomerState, WeekActivity, advance
from journeyopt.sim.dynamics import categorical
from journeyopt.sim.starting import StartingBase
from journeyopt.sim.world import WorldSpec

IntArray = NDArray[np.int64]
Float = NDArray[np.float64]

ACQUISITION_CHANNELS: tuple[str, ...] = ("web", "referral", "broker", "event")
ACQUISITION_PROBS: tuple[float, ...] = (0.5, 0.25, 0.15, 0.10)


def event_kinds(world: WorldSpec) -> tuple[str, ...]:
    """Vocabulary of event kinds the world logs: conversion kinds, engagement kinds,
    ``unsubscribe``. Event records refer to kinds by their index here."""
    return tuple(dict.fromkeys((*world.kinds, *world.engagement_kinds.values(), "unsubscribe")))


class Events(NamedTuple):
    """Event records of a simulation, each (M,).

    Attributes:
        customer: Customer row index.
        week: Week index of the event.
        kind: Index into :func:`event_kinds`.
        channel: Channel index for channel-specific events (opt-outs, clicks on a mailing),
            -1 otherwise.
        value: Amount paid, currency (0 for non-conversions).
    """

    customer: IntArray
    week: IntArray
    kind: IntArray
    channel: IntArray
    value: Float

    @staticmethod
    def concat(parts: list[Events]) -> Events:
        if not parts:
            empty = np.zeros(0, np.int64)
            return Events(empty, empty, empty, empty, np.zeros(0))
        return Events(*(np.concatenate([getattr(p, f) for p in parts]) for f in Events._fields))


@dataclass(frozen=True)
class Customers:
    """Static attributes of ``N`` customers, known at sign-up.

    Attributes:
        segment: (N,) customer type index into ``world.segment_names``.
        company_size: (N,) company size label.
        acquisition: (N,) acquisition channel label.
        first_week: (N,) week index of sign-up (the customer's first activity).
    """

    segment: IntArray
    company_size: NDArray[np.str_]
    acquisition: NDArray[np.str_]
    first_week: IntArray

    @property
    def n(self) -> int:
        return int(self.segment.shape[0])

    @staticmethod
    def concat(parts: list[Customers]) -> Customers:
        return Customers(
            *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Customers))
        )


def draw_customers(
    world: WorldSpec, n: int, first_week: NDArray[np.integer], rng: np.random.Generator
) -> Customers:
    """Static attributes of ``n`` customers signing up in weeks ``first_week`` (n,)."""
    shares = np.array([s.share for s in world.segments])
    segment = rng.choice(len(shares), size=n, p=shares / shares.sum()).astype(np.int64)
    size = np.empty(n, dtype=object)
    for i, seg in enumerate(world.segments):
        rows = np.flatnonzero(segment == i)
        labels = np.array(list(seg.company_sizes))
        probs = np.array(list(seg.company_sizes.values()))
        size[rows] = labels[rng.choice(len(labels), size=rows.shape[0], p=probs / probs.sum())]
    acquisition = np.array(ACQUISITION_CHANNELS)[
        rng.choice(len(ACQUISITION_CHANNELS), size=n, p=np.array(ACQUISITION_PROBS))
    ]
    return Customers(
        segment=segment,
        company_size=size.astype(str),
        acquisition=acquisition,
        first_week=np.asarray(first_week, np.int64),
    )


def past_values(
    world: WorldSpec, segment: IntArray, rng: np.random.Generator
) -> tuple[IntArray, Float]:
    """Kind index and list value (currency) of one unengaged conversion per customer (N,)."""
    p = world.params
    kind = categorical(p.kind_probs[segment], rng)
    noise = rng.gamma(p.value_shape[segment], 1.0 / p.value_shape[segment])
    return kind, np.round(p.kind_values[segment, kind] * noise, 2)


def initial_population(
    world: WorldSpec, n: int, rng: np.random.Generator, week: int = 0
) -> tuple[CustomerState, Customers, Events]:
    """``n`` customers as they are at the start of week ``week``, with their past events.

    Lifecycle shares, recency ranges and past conversion counts come from
    ``world.population``. Prospects signed up (with an ``arrival`` engagement event) long
    enough ago that the engagement has worn off; former customers' past conversions are spread
    before their last one, 1 to 8 weeks apart. Nobody has been contacted or opted out yet.

    Returns:
        ``(state, customers, events)``: the state at ``week``, static attributes, and the
        past events (weeks < ``week``).
    """
    pop = world.population
    stage = rng.choice(3, size=n, p=np.array([pop.prospect, pop.active, pop.lapsed]))
    is_customer = stage > 0
    low = np.where(stage == 1, pop.active_recency_weeks[0], pop.lapsed_recency_weeks[0])
    high = np.where(stage == 1, pop.active_recency_weeks[1], pop.lapsed_recency_weeks[1])
    recency = rng.integers(low, high + 1)
    n_past = np.where(is_customer, 1 + rng.poisson(pop.past_conversions_mean - 1, n), 0)
    max_past = int(n_past.max()) if n else 0
    gaps = rng.integers(1, 9, size=(n, max(max_past - 1, 0)))
    # conversion j (0 = latest) happens at week - recency - sum of the first j gaps
    offsets = np.concatenate([np.zeros((n, 1), np.int64), np.cumsum(gaps, axis=1)], axis=1)
    conv_weeks = week - recency[:, None] - offsets[:, :max_past] if max_past else offsets[:, :0]
    has_conv = np.arange(max_past)[None, :] < n_past[:, None]
    cap = world.discrete.engagement_cap_weeks
    prospect_arrival = week - rng.integers(cap, cap + 26, size=n)
    earliest = (
        conv_weeks[np.arange(n), np.maximum(n_past - 1, 0)] if max_past else np.zeros(n, np.int64)
    )
    first_week = np.where(is_customer, earliest, prospect_arrival)
    customers = draw_customers(world, n, first_week, rng)

    rows, cols = np.nonzero(has_conv)
    kinds = event_kinds(world)
    kind, value = past_values(world, customers.segment[rows], rng)
    conversion_events = Events(
        customer=rows.astype(np.int64),
        week=conv_weeks[rows, cols].astype(np.int64),
        kind=kind,
        channel=np.full(rows.shape[0], -1, np.int64),
        value=value,
    )
    prospects = np.flatnonzero(~is_customer)
    arrival_events = Events(
        customer=prospects.astype(np.int64),
        week=prospect_arrival[prospects].astype(np.int64),
        kind=np.full(prospects.shape[0], kinds.index(world.engagement_kinds["arrival"])),
        channel=np.full(prospects.shape[0], -1, np.int64),
        value=np.zeros(prospects.shape[0]),
    )
    events = Events.concat([conversion_events, arrival_events])
    state = replay(world, events, customers.first_week, week)
    return state, customers, events


def arrival_rows(base: StartingBase) -> IntArray:
    """Rows of the base whose segments new customers take: the customers who arrived in the
    base's arrival window (every customer when none did)."""
    recent = np.flatnonzero(base.state.first_week >= base.state.week - base.arrival_weeks)
    return (recent if recent.size else np.arange(base.n_customers)).astype(np.int64)


def starting_population(
    world: WorldSpec, n: int, rng: np.random.Generator, horizon_weeks: int
) -> tuple[CustomerState, IntArray]:
    """Where every simulation of ``world`` starts: ``n`` customers and their segments.

    A calibrated world with a starting base (:attr:`WorldSpec.base`) starts from the business's
    own customers at the as-of date plus the new customers that arrive over the horizon at the
    logs' rate and mix: of the ``n`` simulated customers, a share ``A / (N + A)`` are new
    (``A = arrivals_per_week * horizon_weeks``, ``N`` the base's customers), with no history and
    the segment of a customer drawn from those who arrived in the base's arrival window; the
    others are the base's customers, all of them ``k`` times over plus a sample without
    replacement for the remainder (exactly the base, in its order, when ``n`` matches it). New
    customers are simulated from the first week (the per-customer simulator has no mid-horizon
    entry). A world without a base (a ground-truth world) starts from its synthetic
    :func:`initial_population` and has no arrivals. Counts the base does not hold (windows of
    contact rules chosen after the calibration) are filled in by
    :meth:`~journeyopt.sim.starting.StartingBase.conformed`.

    Args:
        world: The world.
        n: Customers to simulate.
        rng: Source of the draws.
        horizon_weeks: Weeks the simulation runs (sets how many new customers arrive).

    Returns:
        ``(state, segment)``: the (n,) customers' state (at the base's as-of week, or week 0)
        and segment indices.
    """
    base = world.base
    if base is None:
        state, customers, _ = initial_population(world, n, rng)
        return state, customers.segment.astype(np.int64)
    size = base.n_customers
    expected_new = base.arrivals_per_week * max(horizon_weeks, 0)
    n_new = round(n * expected_new / (size + expected_new))
    n_old = n - n_new
    copies, rest = divmod(n_old, size)
    rows = np.concatenate(
        [np.tile(np.arange(size), copies), np.sort(rng.choice(size, size=rest, replace=False))]
    ).astype(np.int64)
    week = base.state.week
    # the arrivals' segments drawn by row (the draw does not depend on how segments are named
    # or ordered)
    recent = arrival_rows(base)
    new_segment = base.segment[rng.choice(recent, size=n_new)] if n_new else recent[:0]
    parts = [base.conformed(world.features).take(rows)]
    if n_new:
        parts.append(CustomerState.new(world.features, week, np.full(n_new, week, np.int64)))
    state = CustomerState.concat(parts)
    return state, np.concatenate([base.segment[rows], new_segment]).astype(np.int64)


def replay(
    world: WorldSpec, events: Events, first_week: NDArray[np.integer], until_week: int
) -> CustomerState:
    """The state at the start of ``until_week`` of customers whose only past activity is
    ``events`` (conversions and engagements, no contacts), folded in with ``advance``."""
    n = int(np.asarray(first_week).shape[0])
    c = len(world.channels)
    n_conv_kinds = len(world.kinds)
    start = int(min(np.min(first_week, initial=until_week), until_week))
    state = CustomerState.new(world.features, start, np.asarray(first_week))
    order = np.argsort(events.week, kind="stable")
    weeks = events.week[order]
    customer = events.customer[order]
    is_conv = events.kind[order] < n_conv_kinds
    value = events.value[order]
    bounds = np.searchsorted(weeks, np.arange(start, until_week + 1))
    quiet = WeekActivity.quiet(n, c)
    for i, _ in enumerate(range(start, until_week)):
        lo, hi = bounds[i], bounds[i + 1]
        conv, who = is_conv[lo:hi], customer[lo:hi]
        activity = replace(
            quiet,
            conversions=np.bincount(who[conv], minlength=n).astype(np.int32),
            revenue=np.asarray(
                np.bincount(who[conv], weights=value[lo:hi][conv], minlength=n), np.float64
            ),
            engagements=np.bincount(who[~conv], minlength=n).astype(np.int32),
        )
        state = advance(state, activity)
    return state


def concat_states(parts: list[CustomerState]) -> CustomerState:
    """Customers of several states at the same week, stacked in order."""
    return CustomerState.concat(parts)
