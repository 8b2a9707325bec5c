"""The customer state and its features: the single implementation shared by the panel (built
from logs), the simulator (stepped by the world's dynamics) and the scoring API.

A :class:`CustomerState` holds, for ``N`` customers, everything the features need at the start of
one week ``t``: it is built only from activity in weeks ``< t`` (point-in-time correct by
construction). :func:`advance` folds one week's :class:`WeekActivity` into the state and returns the
state at the start of week ``t + 1``; :func:`state_features` turns a state into named feature
arrays. Both are pure, batched numpy functions with no per-customer Python loops.

Shapes: ``N`` customers, ``C`` contact channels (``spec.contact_channels``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
from numpy.typing import NDArray

NEVER = -(2**30)
"""Week index meaning "never happened" (last conversion, contact or engagement)."""

LIFECYCLE_STAGES: tuple[str, ...] = ("prospect", "active", "lapsed", "opted_out")
PROSPECT, ACTIVE, LAPSED, OPTED_OUT = range(4)

Int = NDArray[np.int32]
Float = NDArray[np.float64]
Bool = NDArray[np.bool_]


@dataclass(frozen=True)
class FeatureSpec:
    """Windows and thresholds of the state features.

    Attributes:
        contact_channels: Channels the company contacts through (e.g. ``("email", "phone")``);
            none by default (a purchase log without contacts).
        frequency_weeks: Window of the ``frequency`` feature in weeks (conversions in the last
            52 weeks by default).
        fatigue_weeks: Window of the contact-fatigue counts ``contacts_<w>w_<channel>``.
        engagement_weeks: Window of the ``engagements_<w>w`` count.
        lapse_weeks: A customer whose last conversion is more than this many weeks ago is
            ``lapsed``; otherwise ``active``.
    """

    contact_channels: tuple[str, ...] = ()
    frequency_weeks: int = 52
    fatigue_weeks: int = 4
    engagement_weeks: int = 4
    lapse_weeks: int = 26

    def __post_init__(self) -> None:
        for name in ("frequency_weeks", "fatigue_weeks", "engagement_weeks", "lapse_weeks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if len(set(self.contact_channels)) != len(self.contact_channels):
            raise ValueError(f"contact_channels has duplicates: {self.contact_channels}")

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the arrays returned by :func:`state_features`, in order."""
        fw = self.fatigue_weeks
        return (
            "recency_weeks",
            "frequency",
            "monetary",
            "n_conversions",
            "tenure_weeks",
            "lifecycle",
            f"contacts_{fw}w",
            *(f"contacts_{fw}w_{c}" for c in self.contact_channels),
            "weeks_since_contact",
            f"engagements_{self.engagement_weeks}w",
            "weeks_since_engagement",
            "n_cancellations",
            *(f"opted_out_{c}" for c in self.contact_channels),
        )


@dataclass(frozen=True)
class WeekActivity:
    """What happened to each of ``N`` customers within one week.

    Attributes:
        conversions: (N,) number of conversions.
        revenue: (N,) total conversion value net of the week's refunds, currency (may be
            negative: a refund booked in a week without a purchase).
        engagements: (N,) number of engagement events.
        cancellations: (N,) number of cancellations.
        contacts: (N, C) number of company contacts per channel.
        consent: (N, C) net consent change per channel: ``-1`` the customer's last consent
            event of the week was an opt-out, ``+1`` an opt-in, ``0`` none.
    """

    conversions: Int
    revenue: Float
    engagements: Int
    cancellations: Int
    contacts: Int
    consent: NDArray[np.int8]

    @staticmethod
    def quiet(n: int, n_channels: int) -> WeekActivity:
        """A week in which nothing happened to any of ``n`` customers."""
        return WeekActivity(
            conversions=np.zeros(n, np.int32),
            revenue=np.zeros(n, np.float64),
            engagements=np.zeros(n, np.int32),
            cancellations=np.zeros(n, np.int32),
            contacts=np.zeros((n, n_channels), np.int32),
            consent=np.zeros((n, n_channels), np.int8),
        )


@dataclass(frozen=True)
class CustomerState:
    """State of ``N`` customers at the start of week ``week``, from activity before it only.

    Rolling windows are ring buffers indexed by ``week % window`` plus their running sums. The
    rings are week-major (the window axis first), so one week's slot is a contiguous row: the
    walk over the weeks writes one slot per week. :meth:`take` and :meth:`concat` know which
    axis is the customer axis of each array.

    Attributes:
        week: Week index this state is at the start of.
        first_week: (N,) week of the customer's first activity (sign-up, event or contact).
        last_conversion_week, last_contact_week, last_engagement_week: (N,) week indices,
            :data:`NEVER` if none yet.
        n_conversions: (N,) lifetime conversions.
        revenue: (N,) lifetime conversion value net of refunds, currency.
        n_cancellations: (N,) lifetime cancellations.
        conversions_ring: (frequency_weeks, N) conversions per past week.
        conversions_window: (N,) sum of ``conversions_ring``.
        contacts_ring: (fatigue_weeks, N, C) contacts per past week and channel.
        contacts_window: (N, C) sum of ``contacts_ring`` over weeks.
        engagements_ring: (engagement_weeks, N) engagements per past week.
        engagements_window: (N,) sum of ``engagements_ring``.
        opted_out: (N, C) whether the customer has opted out of each channel.
    """

    week: int
    first_week: Int
    last_conversion_week: Int
    last_contact_week: Int
    last_engagement_week: Int
    n_conversions: Int
    revenue: Float
    n_cancellations: Int
    conversions_ring: Int
    conversions_window: Int
    contacts_ring: Int
    contacts_window: Int
    engagements_ring: Int
    engagements_window: Int
    opted_out: Bool

    @property
    def n_customers(self) -> int:
        return int(self.first_week.shape[0])

    @staticmethod
    def new(spec: FeatureSpec, week: int, first_week: NDArray[np.integer]) -> CustomerState:
        """Customers with no history yet, at the start of ``week``."""
        n = int(first_week.shape[0])
        c = len(spec.contact_channels)
        never = np.full(n, NEVER, np.int32)
        return CustomerState(
            week=week,
            first_week=np.asarray(first_week, np.int32).copy(),
            last_conversion_week=never,
            last_contact_week=never.copy(),
            last_engagement_week=never.copy(),
            n_conversions=np.zeros(n, np.int32),
            revenue=np.zeros(n, np.float64),
            n_cancellations=np.zeros(n, np.int32),
            conversions_ring=np.zeros((spec.frequency_weeks, n), np.int32),
            conversions_window=np.zeros(n, np.int32),
            contacts_ring=np.zeros((spec.fatigue_weeks, n, c), np.int32),
            contacts_window=np.zeros((n, c), np.int32),
            engagements_ring=np.zeros((spec.engagement_weeks, n), np.int32),
            engagements_window=np.zeros(n, np.int32),
            opted_out=np.zeros((n, c), np.bool_),
        )

    def take(self, index: NDArray[np.integer] | slice) -> CustomerState:
        """The state of a subset of customers (customers ``index``; a slice gives views).

        With an index array the rings come out C-contiguous (``np.take``): fancy indexing
        ``ring[:, index]`` returns a transposed memory layout, which makes every later
        week-slot write of :func:`advance` strided and several times slower.
        """
        arrays = {
            name: getattr(self, name)[index]
            if name not in _RING_FIELDS
            else getattr(self, name)[:, index]
            if isinstance(index, slice)
            else np.take(getattr(self, name), index, axis=1)
            for name in _ARRAY_FIELDS
        }
        return CustomerState(week=self.week, **arrays)

    @classmethod
    def concat(cls, parts: Sequence[CustomerState]) -> CustomerState:
        """The customers of several states at the same week, stacked in order.

        Raises:
            ValueError: ``parts`` is empty or its states are at different weeks.
        """
        if not parts:
            raise ValueError("no states to concatenate")
        week = parts[0].week
        if any(p.week != week for p in parts):
            raise ValueError("states to concatenate must be at the same week")
        arrays = {
            name: np.concatenate(
                [getattr(p, name) for p in parts], axis=1 if name in _RING_FIELDS else 0
            )
            for name in _ARRAY_FIELDS
        }
        return cls(week=week, **arrays)


_ARRAY_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(CustomerState) if f.name != "week")
"""The per-customer array fields of :class:`CustomerState`."""
_RING_FIELDS: frozenset[str] = frozenset({"conversions_ring", "contacts_ring", "engagements_ring"})
"""Fields whose customer axis is axis 1 (the ring buffers, week-major)."""


def _roll(
    ring: NDArray[np.int32],
    window: NDArray[np.int32],
    slot: int,
    new: NDArray[np.int32],
    inplace: bool,
) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    """Replace ring slot ``slot`` (the week leaving the window) by ``new``; keep the sum.

    ``ring`` is week-major, (window, N) or (window, N, C): slot ``slot`` is the contiguous
    ``ring[slot]``, ``new`` and ``window`` are (N,) or (N, C).
    """
    if not inplace:
        ring = ring.copy()
    window = window + new - ring[slot]
    ring[slot] = new
    return ring, window


def _channel_total(counts: NDArray[np.int32]) -> NDArray[np.int32]:
    """(N,) sum over the channel axis of (N, C) counts.

    A loop over the few channels is several times faster than ``counts.sum(axis=1)``.
    """
    total = np.zeros(counts.shape[0], np.int32)
    for j in range(counts.shape[1]):
        total += counts[:, j]
    return total


def advance(
    state: CustomerState, activity: WeekActivity, *, inplace: bool = False
) -> CustomerState:
    """Fold week ``state.week``'s activity into the state; returns the state at week + 1.

    Args:
        state: State at the start of week ``state.week``.
        activity: What happened in that week.
        inplace: Overwrite the ring buffers of ``state`` instead of copying them (copying the
            (``frequency_weeks``, N) ring dominates a long walk over logs). ``state`` must not
            be used afterwards.
    """
    t = state.week
    conv = activity.conversions.astype(np.int32)
    eng = activity.engagements.astype(np.int32)
    contacts = activity.contacts.astype(np.int32)
    conv_ring, conv_window = _roll(
        state.conversions_ring,
        state.conversions_window,
        t % state.conversions_ring.shape[0],
        conv,
        inplace,
    )
    contact_ring, contact_window = _roll(
        state.contacts_ring,
        state.contacts_window,
        t % state.contacts_ring.shape[0],
        contacts,
        inplace,
    )
    eng_ring, eng_window = _roll(
        state.engagements_ring,
        state.engagements_window,
        t % state.engagements_ring.shape[0],
        eng,
        inplace,
    )
    opted_out = np.where(
        activity.consent < 0, True, np.where(activity.consent > 0, False, state.opted_out)
    )
    return replace(
        state,
        week=t + 1,
        last_conversion_week=np.where(conv > 0, t, state.last_conversion_week).astype(np.int32),
        last_contact_week=np.where(_channel_total(contacts) > 0, t, state.last_contact_week).astype(
            np.int32
        ),
        last_engagement_week=np.where(eng > 0, t, state.last_engagement_week).astype(np.int32),
        n_conversions=state.n_conversions + conv,
        revenue=state.revenue + activity.revenue,
        n_cancellations=state.n_cancellations + activity.cancellations.astype(np.int32),
        conversions_ring=conv_ring,
        conversions_window=conv_window,
        contacts_ring=contact_ring,
        contacts_window=contact_window,
        engagements_ring=eng_ring,
        engagements_window=eng_window,
        opted_out=opted_out,
    )


def _weeks_since(week: int, last: Int) -> Float:
    return np.where(last == NEVER, np.nan, week - last).astype(np.float64)


def lifecycle_stage(state: CustomerState, spec: FeatureSpec) -> NDArray[np.int8]:
    """(N,) lifecycle code at the start of the state's week, see :data:`LIFECYCLE_STAGES`.

    ``opted_out`` (out of every contact channel) wins; then ``prospect`` (never converted),
    ``active`` (last conversion at most ``lapse_weeks`` ago) and ``lapsed``.
    """
    recency = state.week - state.last_conversion_week
    stage = np.where(
        state.n_conversions == 0, PROSPECT, np.where(recency <= spec.lapse_weeks, ACTIVE, LAPSED)
    )
    if state.opted_out.shape[1] > 0:
        out_everywhere = state.opted_out[:, 0].copy()
        for j in range(1, state.opted_out.shape[1]):
            out_everywhere &= state.opted_out[:, j]
        stage = np.where(out_everywhere, OPTED_OUT, stage)
    return stage.astype(np.int8)


def state_features(state: CustomerState, spec: FeatureSpec) -> dict[str, NDArray[np.generic]]:
    """Named (N,) feature arrays at the start of ``state.week``, in ``spec.feature_names`` order.

    Units: weeks for ``*_weeks``, currency for ``monetary`` (mean conversion value net of
    refunds, at least 0: refunds of purchases made before the logs begin cannot make it
    negative), counts otherwise. "Never" is NaN in the ``*_weeks``/``weeks_since_*`` features
    and ``monetary``. Refunds change only ``monetary``: a refunded purchase still counts in
    ``frequency``, ``n_conversions`` and ``recency_weeks``.
    """
    t = state.week
    fw = spec.fatigue_weeks
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(
            state.n_conversions > 0,
            np.maximum(state.revenue, 0.0) / np.maximum(state.n_conversions, 1),
            np.nan,
        )
    features: dict[str, NDArray[np.generic]] = {
        "recency_weeks": _weeks_since(t, state.last_conversion_week),
        "frequency": state.conversions_window.copy(),
        "monetary": monetary,
        "n_conversions": state.n_conversions.copy(),
        "tenure_weeks": (t - state.first_week).astype(np.int32),
        "lifecycle": lifecycle_stage(state, spec),
        f"contacts_{fw}w": _channel_total(state.contacts_window),
    }
    for j, channel in enumerate(spec.contact_channels):
        features[f"contacts_{fw}w_{channel}"] = state.contacts_window[:, j].copy()
    features["weeks_since_contact"] = _weeks_since(t, state.last_contact_week)
    features[f"engagements_{spec.engagement_weeks}w"] = state.engagements_window.copy()
    features["weeks_since_engagement"] = _weeks_since(t, state.last_engagement_week)
    features["n_cancellations"] = state.n_cancellations.copy()
    for j, channel in enumerate(spec.contact_channels):
        features[f"opted_out_{channel}"] = state.opted_out[:, j].copy()
    return features
