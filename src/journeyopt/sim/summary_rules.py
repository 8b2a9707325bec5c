"""The contact rules over discrete summaries: what the exact optimum can plan under.

The DP optimum (:mod:`journeyopt.sim.optimum`) sees a customer only through the world's
discrete summary (:mod:`journeyopt.sim.discrete`) and the week of year. A contact rule
(:class:`journeyopt.sim.rules.ContactRules`) reads state features; it can be planned under
exactly when the summary determines those features, or at least the rule's verdict. This
module derives those features from summaries and evaluates **the rules object itself** on them
(:meth:`ContactRules.masks`): there is no second implementation of any rule.

A rule is *representable* (:func:`plan_rules`) when its verdict over the summary equals its
verdict over the full state, for every customer whose weeks hold at most one contact (every
simulated week; a starting customer's logged history may hold more):

- opt-outs (the summary's opt-out bits), unsupported actions, quiet weeks (the DP's week of
  year): always;
- eligibility by customer type (the summary's segment): always; by lifecycle stage: when the
  summary's recency resolves the lapse threshold (``lapse_weeks < recency_cap_weeks``) or the
  rule does not separate ``active`` from ``lapsed``;
- cool-down: ``cooldown_weeks < recency_cap_weeks`` (recency is exact below its cap);
- minimum gap: ``min_gap_weeks <= contact_cap_weeks`` (weeks since contact, exact below its cap);
- a cap counting every contact (all channels, or channels / actions that cover every contact
  action): over a one-week window or with ``max`` 0, always; else when the summary's contact
  pattern covers the ``window_weeks - 1`` past weeks it counts (their count is the pattern's
  bits), or, for ``max`` 1, when weeks since contact resolve the window
  (``window_weeks - 1 < contact_cap_weeks``);
- a cap counting some channels or actions only: over a one-week window or with ``max`` 0,
  always; over a two-week window when the summary keeps the last contact's action (last week's
  contact is the last one); a cap counting channels when the summary's contact pattern is by
  channel and covers the ``window_weeks - 1`` past weeks; otherwise not.

The rules that are not representable still apply at execution (the evaluation's masks and the
serving guard); :class:`PlannedRules` names them, so a plan never approximates silently.
:func:`unseen_rules` asks the same of a summary before there is a world, and
:func:`rule_components` what a summary needs to represent the caps (the calibration's candidate
summaries, :mod:`journeyopt.calibration.rules_check`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from journeyopt.panel.state import ACTIVE, LAPSED, contacts_feature, lifecycle_code
from journeyopt.sim.discrete import Summary, pattern_contacts
from journeyopt.sim.rules import Cap, ContactRules, Eligibility
from journeyopt.sim.world import DiscreteSpec, WorldSpec

Bool = NDArray[np.bool_]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class PlannedRules:
    """Contact rules split into what a plan over the world's summary sees and what it does not.

    Attributes:
        rules: The representable part, itself a :class:`ContactRules` (caps over every contact
            written as caps over all contacts; the unrepresentable rules left out; no capacity,
            which is not a rule of one customer).
        unseen: One line per rule the summary cannot evaluate, with the reason (empty: the
            plan sees every rule).
        world: The world whose summary the rules are evaluated on.
    """

    rules: ContactRules
    unseen: tuple[str, ...]
    world: WorldSpec

    @cached_property
    def _quiet_weeks(self) -> tuple[frozenset[int], ...]:
        return tuple(frozenset(q.weeks) for q in self.rules.quiet)

    def week_key(self, week_of_year: int) -> tuple[bool, ...]:
        """Which quiet-week rules hold in ``week_of_year``: weeks with the same key have the
        same masks."""
        return tuple(week_of_year in q for q in self._quiet_weeks)

    def masks(self, states: Summary, week_of_year: int) -> Bool:
        """(N, A) True where the representable rules allow the action for the summaries
        ``states`` (N,) in ISO week ``week_of_year``; ``none`` always allowed."""
        features = summary_features(states, self.world, self.rules)
        return self.rules.masks(features, segment=states.segment, week_of_year=week_of_year)


def _covers_every_contact(cap: Cap, rules: ContactRules) -> bool:
    """Whether the cap counts every contact action of the catalogue."""
    return bool(cap.counted(rules.catalog)[1:].all())


def _cap_reason(cap: Cap, rules: ContactRules, spec: DiscreteSpec) -> str:
    """Why the summary cannot evaluate ``cap`` ("" when it can)."""
    w = cap.past_weeks
    if w == 0 or cap.max == 0:
        return ""
    if _covers_every_contact(cap, rules):
        if w <= spec.contact_pattern_weeks:
            return ""
        if cap.max == 1 and w < spec.contact_cap_weeks:
            return ""
        return (
            f"it counts contacts in the {w} weeks before a decision; the summary's contact "
            f"pattern covers {spec.contact_pattern_weeks} (contact_pattern_weeks >= {w} would)"
        )
    if w == 1 and spec.last_action and not spec.lasting_actions:
        return ""
    if cap.channels and spec.contact_pattern_by_channel and w <= spec.contact_pattern_weeks:
        return ""
    if cap.channels:
        return (
            f"it counts contacts through {'+'.join(cap.channels)} only in the {w} weeks before a "
            f"decision; the summary's contact pattern {_pattern_words(spec)} (a pattern of at "
            f"least {w} weeks by channel would)"
        )
    return (
        "it counts some actions only; the summary keeps no count of an action's contacts "
        "over several weeks"
    )


def _pattern_words(spec: DiscreteSpec) -> str:
    if not spec.contact_pattern_weeks:
        return "is off"
    by = "by channel" if spec.contact_pattern_by_channel else "over all channels"
    return f"covers {spec.contact_pattern_weeks} weeks {by}"


def _eligibility_reason(rule: Eligibility, lapse_weeks: int, spec: DiscreteSpec) -> str:
    if not rule.lifecycle or lapse_weeks < spec.recency_cap_weeks:
        return ""
    stages = set(rule.lifecycle)
    if (ACTIVE in stages) == (LAPSED in stages):
        return ""
    return (
        f"it separates active from lapsed customers ({lapse_weeks} weeks), which the summary's "
        f"recency cap of {spec.recency_cap_weeks} weeks does not resolve"
    )


def _what(channels: tuple[str, ...], actions: tuple[str, ...]) -> str:
    return "+".join(actions or channels) or "all contacts"


def plan_rules(rules: ContactRules, world: WorldSpec) -> PlannedRules:
    """Split ``rules`` into the part the summary of ``world`` represents and the rest (see the
    module docstring).

    Raises:
        ValueError: ``rules`` were made for another action catalogue or other channels.
    """
    if rules.catalog.names != world.actions.names:
        raise ValueError(
            f"the contact rules are for the actions {list(rules.catalog.names)}, world "
            f"{world.name!r} has {list(world.actions.names)}"
        )
    if set(rules.spec.contact_channels) != set(world.channels):
        raise ValueError(
            f"the contact rules are for the channels {list(rules.spec.contact_channels)}, world "
            f"{world.name!r} has {list(world.channels)}"
        )
    return PlannedRules(*split_rules(rules, world.discrete), world)


def unseen_rules(rules: ContactRules, spec: DiscreteSpec) -> tuple[str, ...]:
    """One line per rule of ``rules`` a summary with caps and components ``spec`` cannot
    evaluate, with the reason (empty: it represents every rule; :func:`plan_rules` without a
    world, e.g. for a calibration's candidate summaries)."""
    return split_rules(rules, spec)[1]


class RuleComponents(NamedTuple):
    """What a summary needs to represent a set of caps (:func:`rule_components`).

    Attributes:
        pattern_weeks: Contact-pattern lengths, weeks, ascending (empty: none needed).
        last_action: The last contact's action is needed.
        by_channel: The pattern must record each week's channel.
    """

    pattern_weeks: tuple[int, ...]
    last_action: bool
    by_channel: bool


def rule_components(rules: ContactRules) -> RuleComponents:
    """The contact-pattern lengths, last-action setting and pattern kind a summary needs to
    represent the caps of ``rules``: a cap counting every contact over ``w`` past weeks
    (``window_weeks - 1``) needs a pattern of at least ``w`` weeks (and 2, the shortest
    pattern); a cap counting some channels over ``w >= 2`` past weeks the same pattern by
    channel; a cap over a two-week window counting some channels or actions needs the last
    action (a cap of channels also a pattern by channel). Caps with ``max`` 0 or a one-week
    window need none. A length above the longest pattern a summary has (6 weeks) is listed as
    it is: no pattern represents that cap (weeks since contact do when its ``max`` is 1, it
    counts every contact and they resolve its window). Caps over some actions over more than
    two weeks are not representable (no summary counts an action's contacts)."""
    weeks: set[int] = set()
    last = by_channel = False
    for cap in rules.all_caps:
        if cap.past_weeks == 0 or cap.max == 0:
            continue
        if _covers_every_contact(cap, rules):
            weeks.add(max(cap.past_weeks, 2))
        elif cap.past_weeks == 1:
            last = True
        elif cap.channels:
            weeks.add(cap.past_weeks)
            by_channel = True
    return RuleComponents(tuple(sorted(weeks)), last, by_channel)


def split_rules(rules: ContactRules, spec: DiscreteSpec) -> tuple[ContactRules, tuple[str, ...]]:
    """``(planned, unseen)`` of :class:`PlannedRules` for a summary with caps and components
    ``spec`` (see the module docstring)."""
    unseen: list[str] = []
    caps: list[Cap] = []
    for cap in rules.all_caps:
        label = f"{_what(cap.channels, cap.actions)} <= {cap.max} in any {cap.window_weeks} weeks"
        if reason := _cap_reason(cap, rules, spec):
            unseen.append(f"{label}: {reason}")
        elif cap.max == 0:
            caps.append(Cap(0, 1, cap.channels, cap.actions))  # reached whatever the count
        elif cap.past_weeks > 0 and _covers_every_contact(cap, rules):
            caps.append(Cap(cap.max, cap.window_weeks))
        else:
            caps.append(cap)
    cooldown = rules.cooldown_weeks
    if cooldown and cooldown >= spec.recency_cap_weeks:
        unseen.append(
            f"cool-down {cooldown} weeks: the summary's recency is exact below "
            f"{spec.recency_cap_weeks} weeks only"
        )
        cooldown = 0
    gap = rules.min_gap_weeks
    if gap > 1 and gap > spec.contact_cap_weeks:
        unseen.append(
            f"gap {gap} weeks: the summary's weeks since contact are exact below "
            f"{spec.contact_cap_weeks} weeks only"
        )
        gap = 0
    eligibility: list[Eligibility] = []
    for rule in rules.eligibility:
        if reason := _eligibility_reason(rule, rules.spec.lapse_weeks, spec):
            unseen.append(f"{_what(rule.channels, rule.actions)} for some customers only: {reason}")
        else:
            eligibility.append(rule)
    planned = replace(
        rules,
        frequency_caps={},
        total_cap=None,
        caps=tuple(caps),
        cooldown_weeks=cooldown,
        min_gap_weeks=gap,
        eligibility=tuple(eligibility),
        capacity={},
    )
    return planned, tuple(unseen)


def summary_features(
    states: Summary, world: WorldSpec, rules: ContactRules
) -> dict[str, NDArray[np.generic]]:
    """The features ``rules`` read, derived from summaries ``states`` (N,) of ``world``
    (names of :func:`journeyopt.panel.state.state_features`).

    Exact where :func:`plan_rules` calls the rules representable; elsewhere the summary's
    value (a capped count or age at its cap), which only rules it represents may read:

    - ``recency_weeks`` (NaN for a prospect), ``weeks_since_contact``: the capped weeks;
    - ``lifecycle``: opted out of every channel, prospect, active up to ``lapse_weeks``, lapsed
      (as :func:`journeyopt.panel.state.lifecycle_stage`);
    - ``opted_out_<channel>``: the opt-out bits;
    - ``contacts_<w>w``: the pattern's contacts in the last ``w`` weeks (one a week at most)
      when it covers them, else ``1`` if weeks since contact are at most ``w`` (exact for a cap
      of 1);
    - ``contacts_<w>w_<channel>``: a pattern by channel's contacts through the channel in the
      last ``w`` weeks, when it covers them;
    - ``contacts_1w_<channel>``, ``action_contacts_1w_<action>``: last week's contact by its
      action, when the summary keeps the last action.
    """
    spec = world.discrete
    n = int(np.asarray(states.segment).shape[0])
    conversions = np.asarray(states.conversions, np.int64)
    recency = np.where(conversions > 0, np.asarray(states.recency, np.float64), np.nan)
    contact = np.asarray(states.contact, np.int64)
    optout = np.broadcast_to(np.asarray(states.optout, np.int64), (n,))
    channels = world.channels  # the summary's opt-out bit j is channel j of the world
    out_bits = [(optout >> j) & 1 == 1 for j in range(len(channels))]
    everywhere = np.logical_and.reduce(out_bits) if out_bits else np.zeros(n, bool)
    stage = lifecycle_code(conversions, recency, everywhere, rules.spec.lapse_weeks)
    features: dict[str, NDArray[np.generic]] = {
        "recency_weeks": recency,
        "weeks_since_contact": contact.astype(np.float64),
        "lifecycle": stage,
        **{f"opted_out_{c}": out_bits[j] for j, c in enumerate(channels)},
    }
    pattern = np.broadcast_to(np.asarray(states.pattern, np.int64), (n,))
    last = np.broadcast_to(np.asarray(states.last_action, np.int64), (n,))
    last_week = contact == 1
    names = np.asarray(rules.catalog.names)
    action_channel = np.asarray(rules.catalog.channels)
    for cap in rules.all_caps:
        w = cap.past_weeks
        if w == 0:
            continue
        total = contacts_feature(w)
        covered = w <= spec.contact_pattern_weeks
        if total not in features:
            features[total] = (
                pattern_contacts(pattern, spec, len(channels), w)
                if covered
                else (contact <= w).astype(np.int64)
            )
        if covered and spec.contact_pattern_by_channel:
            for j, c in enumerate(channels):
                through = np.arange(len(channels)) == j
                features.setdefault(
                    contacts_feature(w, channel=c),
                    pattern_contacts(pattern, spec, len(channels), w, through),
                )
        if w == 1 and spec.last_action and not spec.lasting_actions:
            for c in channels:
                features[contacts_feature(1, channel=c)] = (
                    last_week & (action_channel[last] == c)
                ).astype(np.int64)
            for a in rules.spec.rule_actions:
                features[contacts_feature(1, action=a)] = (last_week & (names[last] == a)).astype(
                    np.int64
                )
    return features


def rule_masks(
    planned: PlannedRules, states: Summary, weeks_of_year: IntArray
) -> Mapping[tuple[bool, ...], Bool]:
    """(N, A) masks of the representable rules for each distinct quiet-week key of
    ``weeks_of_year`` (:meth:`PlannedRules.week_key`): the DP's masks, computed once per key."""
    out: dict[tuple[bool, ...], Bool] = {}
    for woy in np.unique(np.asarray(weeks_of_year, np.int64)):
        key = planned.week_key(int(woy))
        if key not in out:
            out[key] = planned.masks(states, int(woy))
    return out
