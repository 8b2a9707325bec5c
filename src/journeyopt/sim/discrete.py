"""The discrete, Markov summary of a customer's observable state.

A world's responses depend only on this summary (and the week of year), so the exact optimum
over it (:mod:`journeyopt.sim.optimum`) is the best any policy that sees the features can do.
Every component is computed from :func:`journeyopt.panel.state.state_features` plus the
customer's segment, so the panel computes it from logs exactly as the simulator does.

Components (``N`` customers, ``C`` contact channels), each (N,) int64:

- ``segment``: customer type index, ``0..S-1``.
- ``conversions``: lifetime conversions capped at ``conversions_cap`` (0 = prospect).
- ``recency``: weeks since the last conversion capped at ``recency_cap_weeks``; 0 for a
  prospect ("never").
- ``contact``: weeks since the last contact capped at ``contact_cap_weeks`` (the cap also
  means "never"), ``1..cap``.
- ``engagement``: weeks since the last engagement event, capped likewise, ``1..cap``.
- ``optout``: bit ``j`` set when the customer opted out of channel ``j``, ``0..2^C-1``.
- ``tenure``: weeks since the customer's first logged event capped at ``tenure_cap_weeks``,
  ``0..cap``; always 0 when the world does not track tenure (``tenure_cap_weeks = 0``, the
  default: the digit has a single value and the numbering is that of the other components).
- ``pattern``: bit ``k - 1`` set when the customer was contacted (any channel) ``k`` weeks
  ago, ``k = 1..W`` (``contact_pattern_weeks = W``; the feature ``contact_pattern`` of the
  state's rule contact ring), ``0..2^W-1``; always 0 when ``W = 0`` (the default). By channel
  (``contact_pattern_by_channel``) the ``W`` weeks are base-``(C + 1)`` digits instead of
  bits: digit ``k - 1`` is ``1 + j`` when the contact ``k`` weeks ago went through channel
  ``j`` (the lowest such ``j`` in a week with two), 0 for none (:func:`pattern_weeks`).
- ``last_action``: the catalogue index of the last contact's action while weeks since the
  contact are below the contact cap (the feature ``last_contact_action``), 0 at the cap
  ("long ago or never"), ``0..A-1``; always 0 unless ``last_action`` is on.
- ``lasting``: with ``lasting_actions`` ``L`` (the last *lasting* action): weeks since the last
  contact of an action of ``L`` capped at the contact cap (the cap also means "never"),
  ``1..cap``; ``last_action`` is then ``1 +`` that action's position in ``L`` below the cap
  and 0 at it, ``0..|L|``: a contact of another action changes neither (the feature pair of
  :func:`journeyopt.panel.state.lasting_memory`). Always 0 without ``L``.
- ``gap``: the previous gap between conversions (the feature ``conversion_gap_weeks``: weeks
  between the last two weeks with a conversion) in bins of ``gap_bin_weeks``, the last bin
  "``gap_cap_weeks`` or more", ``1..n_gap_bins`` for a customer with two or more conversions
  (a same-week repeat, gap 0, counts as bin 1), 0 otherwise ("none yet"); always 0 unless
  ``gap_cap_weeks > 0``.

Weeks since contact, the pattern and the last action share one digit that numbers only their
reachable combinations (:func:`recent_codes`), so the state grows by what they add (e.g. x 3.2
for a 4-week pattern with a contact cap of 5, not x 16); a world without them keeps its
numbering. Likewise the gap joins the purchase-history digit (conversions, recency) only where
it exists, for two or more conversions: ``1 + R + (K - 1) * n_gap_bins * R`` values instead of
``1 + K * R``.

The summary is Markov: :func:`next_summary` gives next week's summary from this week's and
the week's outcome alone (the capped counters saturate, tenure grows by one week up to its cap,
the pattern shifts in this week's contact, the last action is set by a contact, a repeat
conversion sets the gap to the bin of this week's recency (exact below the gap's cap, which
is at most the recency cap); the caps of contact and engagement merge "long ago" with
"never", which the world treats alike).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from journeyopt.panel.state import (
    GAP_FEATURE,
    LAST_ACTION_FEATURE,
    PATTERN_FEATURE,
    lasting_memory,
    pattern_feature,
)
from journeyopt.sim.world import DiscreteSpec, WorldSpec

IntArray = NDArray[np.int64]


class Summary(NamedTuple):
    """Components of the discrete summary, each (N,) int64 (see the module docstring);
    ``tenure`` may be left at its default 0 (broadcast) for a world without tenure."""

    segment: IntArray
    conversions: IntArray
    recency: IntArray
    contact: IntArray
    engagement: IntArray
    optout: IntArray
    tenure: IntArray | int = 0
    pattern: IntArray | int = 0
    last_action: IntArray | int = 0
    gap: IntArray | int = 0
    lasting: IntArray | int = 0


class RecentCodes(NamedTuple):
    """The reachable (contact, pattern, last action, lasting weeks) tuples of a layout,
    numbered.

    Attributes:
        code: (contact cap, 2^W, A or |L| + 1 or 1, contact cap or 1) code of each tuple, -1
            where unreachable (the last axis: weeks since the last lasting contact ``- 1``, a
            single 0 without lasting actions).
        contact, pattern, last_action, lasting: (n_codes,) the tuple of each code (``lasting``
            0 without lasting actions).
    """

    code: IntArray
    contact: IntArray
    pattern: IntArray
    last_action: IntArray
    lasting: IntArray


def pattern_base(spec: DiscreteSpec, n_channels: int) -> int:
    """Values one week of the contact pattern takes: 2 (contacted or not), ``C + 1`` by
    channel (none, or the contact's channel)."""
    return n_channels + 1 if spec.contact_pattern_by_channel else 2


def pattern_weeks(pattern: NDArray[np.integer], spec: DiscreteSpec, n_channels: int) -> IntArray:
    """(N, W) what the pattern ``pattern`` (N,) holds for 1..W weeks ago: 0 no contact, else
    1 (a contact) or, by channel, ``1 +`` the contact's channel."""
    base = pattern_base(spec, n_channels)
    p = np.asarray(pattern, np.int64)
    powers = base ** np.arange(spec.contact_pattern_weeks, dtype=np.int64)
    return np.asarray((p[..., None] // powers) % base, np.int64)


def pattern_contacts(
    pattern: NDArray[np.integer],
    spec: DiscreteSpec,
    n_channels: int,
    weeks: int | None = None,
    channels: NDArray[np.bool_] | None = None,
) -> IntArray:
    """(N,) weeks among the pattern's last ``weeks`` (default all ``W``) with a contact; with
    ``channels`` (C,) (a pattern by channel) only contacts through a channel marked True."""
    last = spec.contact_pattern_weeks if weeks is None else weeks
    held = pattern_weeks(pattern, spec, n_channels)[..., :last]
    if channels is None:
        return np.asarray((held > 0).sum(axis=-1), np.int64)
    counted = np.concatenate([[False], np.asarray(channels, bool)])
    return np.asarray(counted[held].sum(axis=-1), np.int64)


def recent_codes(spec: DiscreteSpec, n_actions: int, n_channels: int = 1) -> RecentCodes:
    """Number the (contact, pattern, last action) triples a customer can be in.

    Without the optional components the code is ``contact - 1`` (the numbering of a world
    without them). With them, most triples are impossible and left out: a pattern with a
    contact ``k`` weeks ago fixes weeks since contact at ``min(lowest such k, cap)``, an empty
    pattern means no contact in ``W`` weeks; the last action is ``1..A-1`` below the contact cap
    and 0 at the cap (the cap means "long ago or never", as for the contact digit itself).
    With lasting actions ``L`` the last action is ``1..|L|`` below the cap of its own weeks
    since (``lasting``) and 0 at it; a lasting contact is a contact (weeks since contact at
    most ``lasting``) and shows in the pattern when within its ``W`` weeks. ``n_channels`` is
    read only for a pattern by channel (``(C + 1)^W`` patterns).
    """
    cap, w = spec.contact_cap_weeks, spec.contact_pattern_weeks
    n_lasting = len(spec.lasting_actions)
    n_last = (n_lasting + 1 if n_lasting else n_actions) if spec.last_action else 1
    lasting_weeks = np.arange(1, cap + 1) if n_lasting else np.zeros(1, np.int64)
    base = pattern_base(spec, n_channels)
    c, p, last, since = np.meshgrid(
        np.arange(1, cap + 1), np.arange(base**w), np.arange(n_last), lasting_weeks, indexing="ij"
    )
    weeks = pattern_weeks(p, spec, n_channels)  # (..., W)
    lowest = np.full(p.shape, w + 1)  # weeks since the most recent contact in the pattern
    for k in range(w, 0, -1):
        lowest = np.where(weeks[..., k - 1] > 0, k, lowest)
    ok = np.ones(p.shape, bool)
    if w:
        ok &= np.where(p > 0, c == np.minimum(lowest, cap), c >= min(w + 1, cap))
    if n_lasting:
        ok &= np.where(since < cap, last >= 1, last == 0) & (c <= since)
        if w:  # a lasting contact within the pattern's weeks is one of its contacts
            at = np.take_along_axis(weeks, np.clip(since - 1, 0, w - 1)[..., None], axis=-1)
            ok &= np.where((since < cap) & (since <= w), at[..., 0] > 0, True)
    elif spec.last_action:
        ok &= np.where(c < cap, last >= 1, last == 0)
    code = np.full(p.shape, -1, np.int64)
    code[ok] = np.arange(int(ok.sum()))
    return RecentCodes(
        code,
        c[ok].astype(np.int64),
        p[ok].astype(np.int64),
        last[ok].astype(np.int64),
        since[ok].astype(np.int64),
    )


@dataclass(frozen=True)
class DiscreteLayout:
    """How summaries are numbered: a mixed-radix index over
    (segment, conversions-recency-and-gap, recent contacts, engagement, optout, tenure).

    The "recent contacts" digit is the weeks since the last contact, joined with the contact
    pattern and the last contact's action when the state keeps them (only their reachable
    combinations, :func:`recent_codes`); without them it is ``contact - 1``.

    Attributes:
        spec: The caps.
        n_segments: Number of customer types ``S``.
        n_channels: Number of contact channels ``C``.
        n_actions: Number of actions ``A`` (``none`` included); only read when the state
            keeps the last contact's action (``spec.last_action``).
    """

    spec: DiscreteSpec
    n_segments: int
    n_channels: int
    n_actions: int = 1

    def __post_init__(self) -> None:
        if self.spec.last_action and self.n_actions < 2:
            raise ValueError("a layout with the last contact's action needs n_actions >= 2")

    @staticmethod
    def of(world: WorldSpec) -> DiscreteLayout:
        return DiscreteLayout(
            world.discrete, len(world.segments), len(world.channels), world.actions.n_actions
        )

    @cached_property
    def recent(self) -> RecentCodes:
        """The numbering of the recent-contacts digit (:func:`recent_codes`)."""
        return recent_codes(self.spec, self.n_actions, self.n_channels)

    @property
    def dims(self) -> tuple[int, int, int, int, int, int]:
        """Radices: (S, 1 + R + (K - 1) * n_gap_bins * R (``1 + K * R`` without the gap),
        recent-contact codes (the contact cap without the optional components), engagement
        cap, 2^C, tenure cap + 1)."""
        s = self.spec
        return (
            self.n_segments,
            1 + s.recency_cap_weeks * (1 + (s.conversions_cap - 1) * s.n_gap_bins),
            int(self.recent.contact.shape[0]),
            s.engagement_cap_weeks,
            2**self.n_channels,
            s.tenure_cap_weeks + 1,
        )

    @property
    def n_states(self) -> int:
        return int(np.prod(self.dims))

    def encode(self, summary: Summary) -> IntArray:
        """(N,) state index of each summary, in ``0..n_states-1``.

        Raises:
            ValueError: A summary's (contact, pattern, last action) cannot happen (see
                :func:`recent_codes`).
        """
        history = self.history_digit(summary)
        lasting = np.broadcast_to(np.asarray(summary.lasting, np.int64), history.shape)
        recent = self.recent.code[
            np.asarray(summary.contact, np.int64) - 1,
            np.broadcast_to(np.asarray(summary.pattern, np.int64), history.shape),
            np.broadcast_to(np.asarray(summary.last_action, np.int64), history.shape),
            np.maximum(lasting - 1, 0) if self.spec.lasting_actions else 0,
        ]
        if recent.size and int(recent.min()) < 0:
            raise ValueError("a summary's contact, contact pattern and last action disagree")
        index = np.ravel_multi_index(
            (
                summary.segment,
                history,
                recent,
                summary.engagement - 1,
                summary.optout,
                np.broadcast_to(np.asarray(summary.tenure, np.int64), history.shape),
            ),
            self.dims,
        )
        return np.asarray(index, np.int64)

    def history_digit(self, summary: Summary) -> IntArray:
        """(N,) the purchase-history digit: 0 for a prospect, ``recency`` for one conversion,
        ``1 + R + ((conversions - 2) * n_gap_bins + gap - 1) * R + recency - 1`` for more
        (the gap's term is 0 without the gap: ``1 + (conversions - 1) * R + recency - 1``)."""
        r_cap, n_gap = self.spec.recency_cap_weeks, self.spec.n_gap_bins
        conv = np.asarray(summary.conversions, np.int64)
        gap = np.maximum(np.broadcast_to(np.asarray(summary.gap, np.int64), conv.shape) - 1, 0)
        level = np.where(conv >= 2, 1 + (conv - 2) * n_gap + gap, np.maximum(conv - 1, 0))
        return np.asarray(np.where(conv == 0, 0, 1 + level * r_cap + summary.recency - 1), np.int64)

    def decode(self, index: NDArray[np.integer]) -> Summary:
        """Inverse of :meth:`encode`."""
        seg, history, recent, engagement, optout, tenure = np.unravel_index(
            np.asarray(index, np.int64), self.dims
        )
        r_cap, n_gap = self.spec.recency_cap_weeks, self.spec.n_gap_bins
        prospect = history == 0
        level = np.maximum(history - 1, 0) // r_cap  # 0: one conversion, then (K-1) x gap bins
        recency = np.where(prospect, 0, 1 + (history - 1) % r_cap)
        repeat = level >= 1
        conversions = np.where(prospect, 0, np.where(repeat, 2 + (level - 1) // n_gap, 1))
        gap = np.where(repeat & (self.spec.gap_cap_weeks > 0), 1 + (level - 1) % n_gap, 0)
        return Summary(
            segment=seg.astype(np.int64),
            conversions=conversions.astype(np.int64),
            recency=recency.astype(np.int64),
            contact=self.recent.contact[recent],
            engagement=(engagement + 1).astype(np.int64),
            optout=optout.astype(np.int64),
            tenure=tenure.astype(np.int64),
            pattern=self.recent.pattern[recent],
            last_action=self.recent.last_action[recent],
            gap=gap.astype(np.int64),
            lasting=self.recent.lasting[recent],
        )

    def all_states(self) -> Summary:
        """Every summary, in index order: (n_states,) arrays."""
        return self.decode(np.arange(self.n_states))


def _capped_weeks(weeks: NDArray[np.generic], cap: int) -> IntArray:
    """Weeks since an event capped at ``cap``; NaN ("never") maps to the cap."""
    w = np.asarray(weeks, np.float64)
    return np.where(np.isnan(w), cap, np.clip(np.nan_to_num(w, nan=cap), 1, cap)).astype(np.int64)


def summarise(
    features: Mapping[str, NDArray[np.generic]],
    segment: NDArray[np.integer],
    world: WorldSpec,
) -> Summary:
    """The discrete summary of customers from their features.

    Args:
        features: (N,) arrays from :func:`journeyopt.panel.state.state_features` (or panel
            columns of the same names): ``n_conversions``, ``recency_weeks``,
            ``weeks_since_contact``, ``weeks_since_engagement``, ``opted_out_<channel>``, and
            ``tenure_weeks`` when the world tracks tenure.
        segment: (N,) customer type index into ``world.segment_names``.
        world: Supplies the caps and channels.
    """
    return summarise_with(features, segment, world.discrete, world.channels)


def summarise_with(
    features: Mapping[str, NDArray[np.generic]],
    segment: NDArray[np.integer],
    spec: DiscreteSpec,
    channels: tuple[str, ...],
) -> Summary:
    """:func:`summarise` under the caps ``spec`` and opt-out ``channels`` of another layout
    than a world's (e.g. a practice estimated in a calibrated world acting in another)."""
    n_conv = np.asarray(features["n_conversions"], np.int64)
    conversions = np.minimum(n_conv, spec.conversions_cap)
    recency = np.where(
        n_conv > 0, _capped_weeks(features["recency_weeks"], spec.recency_cap_weeks), 0
    )
    optout = np.zeros(n_conv.shape[0], np.int64)
    for j, channel in enumerate(channels):
        optout |= np.asarray(features[f"opted_out_{channel}"], bool).astype(np.int64) << j
    return Summary(
        segment=np.asarray(segment, np.int64),
        conversions=conversions.astype(np.int64),
        recency=recency.astype(np.int64),
        contact=_capped_weeks(features["weeks_since_contact"], spec.contact_cap_weeks),
        engagement=_capped_weeks(features["weeks_since_engagement"], spec.engagement_cap_weeks),
        optout=optout,
        tenure=tenure_digit(features, spec),
        pattern=pattern_digit(features, spec, channels),
        last_action=last_action_digit(features, spec),
        gap=gap_digit(features, spec),
        lasting=lasting_digit(features, spec),
    )


def gap_digit(features: Mapping[str, NDArray[np.generic]], spec: DiscreteSpec) -> IntArray:
    """(N,) gap component: for a customer with two or more conversions the bin of the feature
    ``conversion_gap_weeks`` (``1 + (gap - 1) // gap_bin_weeks`` up to ``n_gap_bins``, a gap
    of 0 in bin 1), else 0; zeros when the world keeps no gap (``features`` need not hold it
    then)."""
    n_conv = np.asarray(features["n_conversions"], np.int64)
    if spec.gap_cap_weeks == 0:
        return np.zeros(n_conv.shape[0], np.int64)
    weeks = np.asarray(features[GAP_FEATURE], np.int64)
    bin_ = np.clip((np.maximum(weeks, 1) - 1) // spec.gap_bin_weeks + 1, 1, spec.n_gap_bins)
    return np.where(n_conv >= 2, bin_, 0).astype(np.int64)


def pattern_digit(
    features: Mapping[str, NDArray[np.generic]],
    spec: DiscreteSpec,
    channels: tuple[str, ...] = (),
) -> IntArray:
    """(N,) pattern component: the feature ``contact_pattern``'s first ``W`` bits; by
    channel, week ``k``'s digit is ``1 +`` the first of ``channels`` whose feature
    ``contact_pattern_<channel>`` has bit ``k - 1`` (0: none). Zeros when the world keeps no
    pattern (``features`` need not hold it then)."""
    n = np.asarray(features["n_conversions"]).shape[0]
    w = spec.contact_pattern_weeks
    if w == 0:
        return np.zeros(n, np.int64)
    if not spec.contact_pattern_by_channel:
        return np.asarray(features[PATTERN_FEATURE], np.int64) & ((1 << w) - 1)
    base = pattern_base(spec, len(channels))
    pattern = np.zeros(n, np.int64)
    for k in range(w):
        digit = np.zeros(n, np.int64)
        for j in range(len(channels) - 1, -1, -1):  # the lowest channel wins a shared week
            bit = (np.asarray(features[pattern_feature(channels[j])], np.int64) >> k) & 1
            digit = np.where(bit == 1, j + 1, digit)
        pattern += digit * base**k
    return pattern


def last_action_digit(features: Mapping[str, NDArray[np.generic]], spec: DiscreteSpec) -> IntArray:
    """(N,) last-action component: the feature ``last_contact_action`` (the world counts the
    catalogue's contacts first, so it is the catalogue index), 0 once weeks since the contact
    reach the contact cap ("long ago or never"); zeros when the world does not keep it. With
    lasting actions ``L``: ``1 +`` the position in ``L`` of the last lasting contact's action
    (:func:`journeyopt.panel.state.lasting_memory`), 0 once the weeks since it reach the
    contact cap."""
    n = np.asarray(features["n_conversions"]).shape[0]
    if not spec.last_action:
        return np.zeros(n, np.int64)
    if spec.lasting_actions:
        code, weeks = lasting_memory(features, spec.lasting_actions)
        below = _capped_weeks(weeks, spec.contact_cap_weeks) < spec.contact_cap_weeks
        return np.where(below, code, 0).astype(np.int64)
    contact = _capped_weeks(features["weeks_since_contact"], spec.contact_cap_weeks)
    last = np.asarray(features[LAST_ACTION_FEATURE], np.int64)
    return np.where(contact < spec.contact_cap_weeks, last, 0).astype(np.int64)


def lasting_digit(features: Mapping[str, NDArray[np.generic]], spec: DiscreteSpec) -> IntArray:
    """(N,) lasting component: weeks since the last contact of one of the lasting actions
    (:func:`journeyopt.panel.state.lasting_memory`) capped at the contact cap (the cap also
    means "never"); zeros when the world keeps no lasting actions (``features`` need not hold
    them then)."""
    n = np.asarray(features["n_conversions"]).shape[0]
    if not spec.lasting_actions:
        return np.zeros(n, np.int64)
    _, weeks = lasting_memory(features, spec.lasting_actions)
    return _capped_weeks(weeks, spec.contact_cap_weeks)


def tenure_digit(features: Mapping[str, NDArray[np.generic]], spec: DiscreteSpec) -> IntArray:
    """(N,) tenure component: ``tenure_weeks`` clipped to ``0..tenure_cap_weeks``; zeros
    when the world does not track tenure (``features`` need not hold it then)."""
    n = np.asarray(features["n_conversions"]).shape[0]
    if spec.tenure_cap_weeks == 0:
        return np.zeros(n, np.int64)
    tenure = np.nan_to_num(np.asarray(features["tenure_weeks"], np.float64), nan=0.0)
    return np.clip(tenure, 0, spec.tenure_cap_weeks).astype(np.int64)


def _capped(weeks: NDArray[np.generic], cap: int) -> IntArray:
    """(N,) ``_capped_weeks(weeks, cap)`` without the NaN masks: ``fmin`` ignores NaN, so
    "never" lands on the cap."""
    w = np.fmin(np.asarray(weeks, np.float64), float(cap))
    np.fmax(w, 1.0, out=w)
    return w.astype(np.int64)


def discrete_state(
    features: Mapping[str, NDArray[np.generic]],
    segment: NDArray[np.integer],
    world: WorldSpec,
) -> IntArray:
    """(N,) discrete state index of customers from their features and segment.

    Equal to ``DiscreteLayout.of(world).encode(summarise(features, segment, world))`` (the
    tests check it on arbitrary features) but computed directly, digit by digit, without the
    intermediate :class:`Summary`: the simulator calls it every week for every customer. The
    same index is used by the dynamics and the exact optimum; invert it with
    ``DiscreteLayout.of(world).decode``.

    Args:
        features: (N,) arrays as for :func:`summarise`.
        segment: (N,) customer type index, ``0..S-1``.
        world: Supplies the caps and channels.
    """
    spec = world.discrete
    if spec.contact_pattern_weeks or spec.last_action or spec.gap_cap_weeks:  # joined digits
        return DiscreteLayout.of(world).encode(summarise(features, segment, world))
    _, n_history, n_contact, n_engagement, n_optout, n_tenure = DiscreteLayout.of(world).dims
    seg = np.asarray(segment, np.int64)
    if seg.size and (int(seg.min()) < 0 or int(seg.max()) >= len(world.segments)):
        raise ValueError(f"segment must be in 0..{len(world.segments) - 1}")
    r_cap = spec.recency_cap_weeks
    n_conv = np.asarray(features["n_conversions"], np.int64)
    # history digit: 0 for a prospect, else (conversions - 1) * R + recency
    history = np.minimum(n_conv, spec.conversions_cap)
    history *= r_cap
    history += _capped(features["recency_weeks"], r_cap)
    history -= r_cap
    history *= n_conv > 0  # prospects: 0 (a product, no branch on the irregular mask)
    # contact and engagement digits are the capped weeks - 1: one offset at the end
    index = seg * n_history
    index += history
    index *= n_contact
    index += _capped(features["weeks_since_contact"], spec.contact_cap_weeks)
    index *= n_engagement
    index += _capped(features["weeks_since_engagement"], spec.engagement_cap_weeks)
    index *= n_optout
    for j, channel in enumerate(world.channels):
        index += np.asarray(features[f"opted_out_{channel}"], bool).astype(np.int64) << j
    index -= (n_engagement + 1) * n_optout
    if n_tenure > 1:
        index *= n_tenure
        index += tenure_digit(features, spec)
    return index


def next_summary(
    summary: Summary,
    spec: DiscreteSpec,
    converted: NDArray[np.bool_],
    engaged: NDArray[np.bool_],
    contacted: NDArray[np.bool_],
    optout_bits: NDArray[np.integer],
    action: NDArray[np.integer] | None = None,
    lasting_code: NDArray[np.integer] | None = None,
    channel: NDArray[np.integer] | None = None,
    n_channels: int = 0,
) -> Summary:
    """Next week's summary from this week's and the week's outcome, each (N,).

    Args:
        summary: This week's summary.
        spec: The caps.
        converted: At least one conversion this week.
        engaged: At least one engagement event this week.
        contacted: At least one company contact this week.
        optout_bits: Channels opted out of this week, as bits (0 = none).
        action: The action carried out this week (catalogue index); required when the
            summary keeps the last contact's action.
        lasting_code: ``1 +`` the position of this week's action in ``spec.lasting_actions``,
            0 when it is not lasting (``WorldSpec.lasting_codes[action]``); required when the
            summary keeps the last lasting action.
        channel: The channel index of this week's contact (``WorldSpec.params.channel`` of
            its action); required, with the world's ``n_channels``, when the pattern is by
            channel.
        n_channels: Number of the world's contact channels (a pattern by channel only).
    """
    if spec.last_action and action is None:
        raise ValueError("the summary keeps the last contact's action: pass the week's action")
    if spec.lasting_actions and lasting_code is None:
        raise ValueError("the summary keeps the last lasting action: pass the week's code")
    if spec.contact_pattern_by_channel and (channel is None or n_channels < 1):
        raise ValueError("the pattern is by channel: pass the contact's channel and n_channels")
    pattern = summary.pattern
    if spec.contact_pattern_weeks:
        base = pattern_base(spec, n_channels)
        digit = np.asarray(contacted, np.int64)
        if spec.contact_pattern_by_channel:
            digit = digit * (1 + np.maximum(np.asarray(channel, np.int64), 0))
        pattern = (np.asarray(summary.pattern, np.int64) * base + digit) % (
            base**spec.contact_pattern_weeks
        )
    contact = np.where(contacted, 1, np.minimum(summary.contact + 1, spec.contact_cap_weeks))
    last_action = (
        np.where(
            contacted,
            np.asarray(action, np.int64),
            np.where(contact < spec.contact_cap_weeks, summary.last_action, 0),
        ).astype(np.int64)
        if spec.last_action
        else summary.last_action
    )
    lasting = summary.lasting
    if spec.lasting_actions:  # only a lasting contact replaces the memory; others age it
        code = np.asarray(lasting_code, np.int64) * np.asarray(contacted, bool)
        cap = spec.contact_cap_weeks
        lasting = np.where(
            code > 0, 1, np.minimum(np.asarray(summary.lasting, np.int64) + 1, cap)
        ).astype(np.int64)
        last_action = np.where(
            code > 0, code, np.where(lasting < cap, summary.last_action, 0)
        ).astype(np.int64)
    conversions = np.where(
        converted, np.minimum(summary.conversions + 1, spec.conversions_cap), summary.conversions
    )
    recency = np.where(
        converted,
        1,
        np.where(
            summary.conversions > 0, np.minimum(summary.recency + 1, spec.recency_cap_weeks), 0
        ),
    )
    gap = summary.gap
    if spec.gap_cap_weeks:  # a repeat conversion: the gap is this week's recency, binned
        bin_ = np.minimum((summary.recency - 1) // spec.gap_bin_weeks + 1, spec.n_gap_bins)
        gap = np.where(converted & (summary.conversions > 0), bin_, summary.gap).astype(np.int64)
    return Summary(
        segment=summary.segment,
        conversions=conversions.astype(np.int64),
        recency=recency.astype(np.int64),
        contact=contact.astype(np.int64),
        engagement=np.where(
            engaged, 1, np.minimum(summary.engagement + 1, spec.engagement_cap_weeks)
        ).astype(np.int64),
        optout=(summary.optout | np.asarray(optout_bits, np.int64)).astype(np.int64),
        tenure=np.minimum(np.asarray(summary.tenure, np.int64) + 1, spec.tenure_cap_weeks)
        if spec.tenure_cap_weeks
        else summary.tenure,
        pattern=pattern,
        last_action=last_action,
        gap=gap,
        lasting=lasting,
    )


def allowed_actions(summary: Summary, world: WorldSpec) -> NDArray[np.bool_]:
    """(N, A) True where the action's channel is not opted out and the world can value the
    action (not in ``world.unsupported_actions``); ``none`` always allowed.

    The world's own contact rule over summaries; it agrees with
    :func:`journeyopt.sim.behaviour.contact_rules` ``(world).masks`` on the features.
    """
    channel = world.params.channel
    bit = np.where(channel >= 0, np.left_shift(1, np.maximum(channel, 0)), 0)
    return ((summary.optout[:, None] & bit[None, :]) == 0) & world.supported_actions[None, :]
