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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

NEVER = -(2**30)
"""Week index meaning "never happened" (last conversion, contact or engagement)."""

LIFECYCLE_STAGES: tuple[str, ...] = ("prospect", "active", "lapsed", "opted_out")
PROSPECT, ACTIVE, LAPSED, OPTED_OUT = range(4)

Int = NDArray[np.int32]
Float = NDArray[np.float64]
Bool = NDArray[np.bool_]


@dataclass(frozen=True, kw_only=True)
class FeatureSpec:
    """Windows and thresholds of the state features. The four windows (frequency, fatigue,
    engagement, lapse) have no default: they are choices about the business (its panel config,
    a world's ``features:`` section).

    Attributes:
        contact_channels: Channels the company contacts through (e.g. ``("email", "phone")``);
            none by default (a purchase log without contacts).
        frequency_weeks: Window of the ``frequency`` feature in weeks (conversions in the last
            ``frequency_weeks`` weeks).
        fatigue_weeks: Window of the contact-fatigue counts ``contacts_<w>w_<channel>``.
        engagement_weeks: Window of the ``engagements_<w>w`` count.
        lapse_weeks: A customer whose last conversion is more than this many weeks ago is
            ``lapsed``; otherwise ``active``.
        rule_windows: Windows (weeks) the contact rules count contacts in, besides the
            fatigue window: each gives ``contacts_<w>w``, ``contacts_<w>w_<channel>`` and
            ``action_contacts_<w>w_<action>`` (:attr:`rule_feature_names`); the contact ring
            of the state is as long as the longest. Not part of the observation.
        rule_actions: Actions whose contacts are counted per window (caps over actions); the
            state also keeps the action of the last contact of one of them.
        recent_contacts: Also give the features a discrete summary with a contact pattern or
            the last action reads (:attr:`rule_feature_names`): ``contact_pattern`` (bit
            ``k - 1``: a contact over any channel ``k`` weeks ago, ``k = 1..`` the longest
            rule window), the same per channel (``contact_pattern_<channel>``, bit ``k - 1``:
            a contact through that channel; :func:`pattern_feature`) and
            ``last_contact_action`` (``1 +`` the index in ``rule_actions`` of the last counted
            contact's action, 0 before any). Off by default, so the features
            (and the serving API's records) of a spec without them are unchanged.
        conversion_gap: Also give the feature ``conversion_gap_weeks`` a discrete summary
            with the previous gap between conversions reads: weeks between the customer's last
            two weeks with a conversion, 0 ("none yet") before the second. Off by default
            (features and API records unchanged).
        action_recency: Also give, for each of ``rule_actions``, the feature
            ``weeks_since_action_<action>`` (weeks since that action's last contact, NaN
            never; :func:`action_weeks_feature`) that a discrete summary with the last
            *lasting* action reads (:func:`lasting_memory`: the last contact among a set of
            actions, which other contacts do not erase). Off by default (features and API
            records unchanged).
        lifetime_counts: Also give the features ``n_engagements`` (lifetime engagement
            events) and ``n_contacts`` (lifetime contacts over all channels) that the
            behaviour types read (:func:`journeyopt.panel.segments.behaviour_scores`: engagement
            per contact received). Off by default (features and API records unchanged).
    """

    contact_channels: tuple[str, ...] = ()
    frequency_weeks: int
    fatigue_weeks: int
    engagement_weeks: int
    lapse_weeks: int
    rule_windows: tuple[int, ...] = ()
    rule_actions: tuple[str, ...] = ()
    recent_contacts: bool = False
    conversion_gap: bool = False
    action_recency: bool = False
    lifetime_counts: bool = False

    def __post_init__(self) -> None:
        for name in ("frequency_weeks", "fatigue_weeks", "engagement_weeks", "lapse_weeks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if len(set(self.contact_channels)) != len(self.contact_channels):
            raise ValueError(f"contact_channels has duplicates: {self.contact_channels}")
        if any(w < 1 for w in self.rule_windows) or len(set(self.rule_windows)) != len(
            self.rule_windows
        ):
            raise ValueError(f"rule_windows must be distinct and >= 1, got {self.rule_windows}")
        if len(set(self.rule_actions)) != len(self.rule_actions) or "none" in self.rule_actions:
            raise ValueError(f"rule_actions must be distinct contacts, got {self.rule_actions}")

    @property
    def rule_weeks(self) -> int:
        """Length of the state's rule contact ring, weeks: the longest rule window (0: none)."""
        return max(self.rule_windows, default=0)

    def counting(self, *others: FeatureSpec) -> FeatureSpec:
        """This spec also counting what ``others`` count: their rule windows and actions (after
        its own, :meth:`with_rule_features`) and every feature switch one of them has on
        (:data:`FEATURE_SWITCHES`). Features only: what a state can be read for grows."""
        spec = self
        for other in others:
            spec = spec.with_rule_features(other.rule_windows, other.rule_actions)
        on: dict[str, Any] = {
            n: any(getattr(s, n) for s in (self, *others)) for n in FEATURE_SWITCHES
        }
        return replace(spec, **on)

    def without_counts(self) -> FeatureSpec:
        """This spec without rule windows, rule actions or feature switches: the windows and
        channels two specs must share for one to count what the other does."""
        off: dict[str, Any] = dict.fromkeys(FEATURE_SWITCHES, False)
        return replace(self, rule_windows=(), rule_actions=(), **off)

    def with_rule_features(self, windows: Sequence[int], actions: Sequence[str]) -> FeatureSpec:
        """This spec also counting contacts in ``windows`` (weeks) and of ``actions``.

        Windows and actions already counted keep their place, so the state layout of the
        spec extends, never reorders.
        """
        return replace(
            self,
            rule_windows=tuple(dict.fromkeys((*self.rule_windows, *windows))),
            rule_actions=tuple(dict.fromkeys((*self.rule_actions, *actions))),
        )

    @property
    def rule_feature_names(self) -> tuple[str, ...]:
        """Names of the rule window counts :func:`state_features` adds after
        :attr:`feature_names` (those not already among them)."""
        names = [
            name
            for w in self.rule_windows
            for name in (
                contacts_feature(w),
                *(contacts_feature(w, channel=c) for c in self.contact_channels),
                *(contacts_feature(w, action=a) for a in self.rule_actions),
            )
        ]
        if self.recent_contacts and self.rule_windows:
            names += [PATTERN_FEATURE, *(pattern_feature(c) for c in self.contact_channels)]
        names += [LAST_ACTION_FEATURE] if self.recent_contacts and self.rule_actions else []
        names += [GAP_FEATURE] if self.conversion_gap else []
        names += [action_weeks_feature(a) for a in self.rule_actions] if self.action_recency else []
        names += list(LIFETIME_FEATURES) if self.lifetime_counts else []
        base = set(self.feature_names)
        return tuple(n for n in dict.fromkeys(names) if n not in base)

    @property
    def all_feature_names(self) -> tuple[str, ...]:
        """:attr:`feature_names` then :attr:`rule_feature_names`: every array of
        :func:`state_features`."""
        return (*self.feature_names, *self.rule_feature_names)

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


FEATURE_SWITCHES = ("recent_contacts", "conversion_gap", "action_recency", "lifetime_counts")
"""The :class:`FeatureSpec` switches that add features (and the state parts they read)."""
PATTERN_FEATURE = "contact_pattern"
"""Feature name of the weekly contact pattern over the rule ring (see :class:`FeatureSpec`)."""
LAST_ACTION_FEATURE = "last_contact_action"
"""Feature name of the last contact's action, ``1 +`` its index in ``rule_actions`` (0: none)."""
LIFETIME_FEATURES: tuple[str, str] = ("n_engagements", "n_contacts")
"""Feature names of the lifetime engagement events and contacts (``spec.lifetime_counts``)."""
GAP_FEATURE = "conversion_gap_weeks"
"""Feature name of the weeks between the last two weeks with a conversion (0: fewer than two)."""


def pattern_feature(channel: str = "") -> str:
    """Name of the weekly contact pattern over all channels, or through ``channel`` only."""
    return f"{PATTERN_FEATURE}_{channel}" if channel else PATTERN_FEATURE


def action_weeks_feature(action: str) -> str:
    """Name of the feature "weeks since ``action``'s last contact" (NaN: never)."""
    return f"weeks_since_action_{action}"


def contacts_feature(window: int, *, channel: str = "", action: str = "") -> str:
    """Name of the count of contacts within the last ``window`` weeks: over all channels,
    through ``channel``, or of ``action`` (one of the two at most)."""
    if action:
        return f"action_contacts_{window}w_{action}"
    return f"contacts_{window}w_{channel}" if channel else f"contacts_{window}w"


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
        action_contacts: (N, K) number of contacts of each of the spec's ``rule_actions``;
            ``None`` when the spec counts no action.
    """

    conversions: Int
    revenue: Float
    engagements: Int
    cancellations: Int
    contacts: Int
    consent: NDArray[np.int8]
    action_contacts: Int | None = None

    @staticmethod
    def quiet(n: int, n_channels: int, n_rule_actions: int = 0) -> WeekActivity:
        """A week in which nothing happened to any of ``n`` customers."""
        return WeekActivity(
            conversions=np.zeros(n, np.int32),
            revenue=np.zeros(n, np.float64),
            engagements=np.zeros(n, np.int32),
            cancellations=np.zeros(n, np.int32),
            contacts=np.zeros((n, n_channels), np.int32),
            consent=np.zeros((n, n_channels), np.int8),
            action_contacts=np.zeros((n, n_rule_actions), np.int32) if n_rule_actions else None,
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
        rule_contacts_ring: (rule_weeks, N, C + K) contacts per past week, per channel then
            per rule action (``spec.rule_actions``); the rule windows sum its last slots.
        last_contact_action: (N,) ``1 +`` index in ``spec.rule_actions`` of the action of the
            last week with a contact of one of them (the most contacted, ties to the first);
            0 before any (always 0 when the spec counts no action).
        conversion_gap: (N,) weeks between the customer's last two weeks with a conversion,
            0 before the second (kept for every spec; a feature only with
            ``spec.conversion_gap``).
        last_action_week: (N, K) week of the last contact of each of ``spec.rule_actions``,
            :data:`NEVER` if none yet (kept for every spec; features only with
            ``spec.action_recency``).
        n_engagements: (N,) lifetime engagement events (kept for every spec; a feature only
            with ``spec.lifetime_counts``).
        n_contacts: (N,) lifetime contacts over all channels (the same).
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
    rule_contacts_ring: Int
    last_contact_action: Int
    conversion_gap: Int
    last_action_week: Int
    n_engagements: Int
    n_contacts: Int

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
            rule_contacts_ring=np.zeros((spec.rule_weeks, n, c + len(spec.rule_actions)), np.int32),
            last_contact_action=np.zeros(n, np.int32),
            conversion_gap=np.zeros(n, np.int32),
            last_action_week=np.full((n, len(spec.rule_actions)), NEVER, np.int32),
            n_engagements=np.zeros(n, np.int32),
            n_contacts=np.zeros(n, np.int32),
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
_RING_FIELDS: frozenset[str] = frozenset(
    {"conversions_ring", "contacts_ring", "engagements_ring", "rule_contacts_ring"}
)
"""Fields whose customer axis is axis 1 (the ring buffers, week-major)."""


def _roll(
    ring: NDArray[np.int32],
    window: NDArray[np.int32],
    week: int,
    new: NDArray[np.int32],
    inplace: bool,
) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    """Replace week ``week``'s ring slot (the week leaving the window) by ``new``; keep the sum.

    ``ring`` is week-major, (window, N) or (window, N, C): week ``week``'s slot is the
    contiguous ``ring[week % len(ring)]``, ``new`` and ``window`` are (N,) or (N, C).
    """
    if not inplace:
        ring = ring.copy()
    slot = week % ring.shape[0]
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
    contacted = _channel_total(contacts)
    conv_ring, conv_window = _roll(
        state.conversions_ring, state.conversions_window, t, conv, inplace
    )
    contact_ring, contact_window = _roll(
        state.contacts_ring, state.contacts_window, t, contacts, inplace
    )
    eng_ring, eng_window = _roll(state.engagements_ring, state.engagements_window, t, eng, inplace)
    opted_out = np.where(
        activity.consent < 0, True, np.where(activity.consent > 0, False, state.opted_out)
    )
    rule_ring = _roll_rule_ring(state.rule_contacts_ring, t, contacts, activity, inplace)
    # a conversion after an earlier one: the gap is the weeks since that one (>= 1)
    repeat = (conv > 0) & (state.last_conversion_week != NEVER)
    return replace(
        state,
        week=t + 1,
        last_conversion_week=np.where(conv > 0, t, state.last_conversion_week).astype(np.int32),
        last_contact_week=np.where(contacted > 0, t, state.last_contact_week).astype(np.int32),
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
        rule_contacts_ring=rule_ring,
        last_contact_action=_last_action(state.last_contact_action, activity.action_contacts),
        conversion_gap=np.where(
            repeat, t - state.last_conversion_week, state.conversion_gap
        ).astype(np.int32),
        last_action_week=_last_action_week(state.last_action_week, activity.action_contacts, t),
        n_engagements=state.n_engagements + eng,
        n_contacts=state.n_contacts + contacted,
    )


def _last_action_week(last: Int, action_contacts: Int | None, week: int) -> Int:
    """(N, K) week of each rule action's last contact after week ``week``'s contacts."""
    if action_contacts is None or last.shape[1] == 0:
        return last
    return np.where(action_contacts > 0, week, last).astype(np.int32)


def _last_action(last: Int, action_contacts: Int | None) -> Int:
    """(N,) the last contact's action after a week with ``action_contacts`` (N, K)."""
    if action_contacts is None or action_contacts.shape[1] == 0:
        return last
    contacted = action_contacts.max(axis=1) > 0
    return np.where(contacted, np.argmax(action_contacts, axis=1) + 1, last).astype(np.int32)


def _roll_rule_ring(
    ring: Int, week: int, contacts: Int, activity: WeekActivity, inplace: bool
) -> Int:
    """The rule contact ring with week ``week``'s channel and action contacts in its slot."""
    if ring.shape[0] == 0:
        return ring
    n_channels = contacts.shape[1]
    per_action = activity.action_contacts
    if ring.shape[2] > n_channels and per_action is None and contacts.any():
        raise ValueError("the state counts contacts per action: the activity must give them")
    if not inplace:
        ring = ring.copy()
    slot = ring[week % ring.shape[0]]
    slot[:, :n_channels] = contacts
    slot[:, n_channels:] = 0 if per_action is None else per_action  # None: no contact
    return ring


def _window_counts(ring: Int, week: int, window: int) -> Int:
    """(N, C + K) contacts within weeks ``week - window .. week - 1`` from the rule ring."""
    length = ring.shape[0]
    total = ring[(week - 1) % length].copy()
    for k in range(2, window + 1):
        total += ring[(week - k) % length]
    return total


def _weeks_since(week: int, last: Int) -> Float:
    return np.where(last == NEVER, np.nan, week - last).astype(np.float64)


def lifecycle_code(
    n_conversions: NDArray[np.integer],
    recency_weeks: NDArray[np.number],
    out_everywhere: NDArray[np.bool_],
    lapse_weeks: int,
) -> NDArray[np.int8]:
    """(N,) lifecycle code, see :data:`LIFECYCLE_STAGES`: ``opted_out`` (``out_everywhere``:
    out of every contact channel) wins; then ``prospect`` (no conversion), ``active`` (last
    conversion at most ``lapse_weeks`` weeks ago) and ``lapsed``. The one rule for the panel's
    state (:func:`lifecycle_stage`) and the simulator's discrete summaries."""
    stage = np.where(
        n_conversions == 0, PROSPECT, np.where(recency_weeks <= lapse_weeks, ACTIVE, LAPSED)
    )
    return np.where(out_everywhere, OPTED_OUT, stage).astype(np.int8)


def lifecycle_stage(state: CustomerState, spec: FeatureSpec) -> NDArray[np.int8]:
    """(N,) lifecycle code at the start of the state's week (:func:`lifecycle_code`)."""
    n, channels = state.opted_out.shape
    out_everywhere = (
        np.logical_and.reduce(state.opted_out, axis=1) if channels else np.zeros(n, bool)
    )
    recency = state.week - state.last_conversion_week
    return lifecycle_code(state.n_conversions, recency, out_everywhere, spec.lapse_weeks)


def state_features(state: CustomerState, spec: FeatureSpec) -> dict[str, NDArray[np.generic]]:
    """Named (N,) feature arrays at the start of ``state.week``, in ``spec.all_feature_names``
    order (the contact rules' window counts last).

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
    n_channels = len(spec.contact_channels)
    for w in spec.rule_windows:
        counts = _window_counts(state.rule_contacts_ring, t, w)
        features.setdefault(contacts_feature(w), _channel_total(counts[:, :n_channels]))
        for j, channel in enumerate(spec.contact_channels):
            features.setdefault(contacts_feature(w, channel=channel), counts[:, j].copy())
        for k, action in enumerate(spec.rule_actions):
            features[contacts_feature(w, action=action)] = counts[:, n_channels + k].copy()
    if spec.recent_contacts and spec.rule_windows:
        ring = state.rule_contacts_ring
        features[PATTERN_FEATURE] = contact_pattern(ring, t, range(n_channels))
        for j, channel in enumerate(spec.contact_channels):
            features[pattern_feature(channel)] = contact_pattern(ring, t, [j])
    if spec.recent_contacts and spec.rule_actions:
        features[LAST_ACTION_FEATURE] = state.last_contact_action.copy()
    if spec.conversion_gap:
        features[GAP_FEATURE] = state.conversion_gap.copy()
    if spec.action_recency:
        for k, action in enumerate(spec.rule_actions):
            features[action_weeks_feature(action)] = _weeks_since(t, state.last_action_week[:, k])
    if spec.lifetime_counts:
        features[LIFETIME_FEATURES[0]] = state.n_engagements.copy()
        features[LIFETIME_FEATURES[1]] = state.n_contacts.copy()
    return features


def lasting_memory(
    features: Mapping[str, NDArray[np.generic]], lasting: Sequence[str]
) -> tuple[NDArray[np.int64], Float]:
    """The last *lasting* contact: the most recent contact of one of the actions ``lasting``;
    contacts of other actions leave it as it is (a delayed effect that only a newer contact of
    these actions replaces).

    Args:
        features: (N,) arrays of :func:`state_features` (or panel columns of the same names)
            with ``weeks_since_action_<a>`` for each ``a`` of ``lasting``
            (``spec.action_recency``).
        lasting: The lasting actions, in order (at least one).

    Returns:
        ``(code, weeks)``: (N,) ``1 +`` the position in ``lasting`` of the last lasting
        contact's action (0: none yet; two of them in the same week: the first in ``lasting``)
        and (N,) weeks since it (NaN: never).
    """
    if not lasting:
        raise ValueError("lasting_memory needs at least one lasting action")
    weeks = np.stack(
        [np.asarray(features[action_weeks_feature(a)], np.float64) for a in lasting], axis=1
    )
    never = np.isnan(weeks)
    first = np.argmin(np.where(never, np.inf, weeks), axis=1)  # ties: the first in order
    any_ = ~never.all(axis=1)
    code = np.where(any_, first + 1, 0).astype(np.int64)
    since = np.where(any_, weeks[np.arange(weeks.shape[0]), first], np.nan)
    return code, since.astype(np.float64)


def contact_pattern(ring: Int, week: int, channels: Sequence[int]) -> Int:
    """(N,) bit ``k - 1`` set when the customer had a contact through one of ``channels``
    (indices into the ring's channels) ``k`` weeks before ``week``, ``k = 1..`` the ring's
    length (the state's ``rule_contacts_ring``)."""
    length = ring.shape[0]
    pattern = np.zeros(ring.shape[1], np.int32)
    picked = list(channels)
    for k in range(1, length + 1):
        contacted = _channel_total(ring[(week - k) % length][:, picked]) > 0
        pattern |= contacted.astype(np.int32) << (k - 1)
    return pattern
