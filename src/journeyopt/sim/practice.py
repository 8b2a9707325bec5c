"""Today's practice as data: a declarative list of rules, first match wins.

A marketing team's practice reads like "call key accounts who asked for something last week",
"a voucher to lapsed customers every quarter, two weeks after the newsletter", "the newsletter
every four weeks". Each such line is a :class:`PracticeRule`: an action and the conditions under
which the staff take it. For every customer and week, the first rule whose conditions hold *and*
whose action the contact rules allow (the channel is not opted out) gives the action; a customer
no rule matches gets ``none``.

Conditions of a rule, all of which must hold:

- ``segments``: the customer's type is one of them (empty: any type);
- ``lifecycle``: the customer's stage is one of them (``prospect``, ``active``, ``lapsed``,
  ``opted_out``; empty: any stage);
- ``when``: state features (the names of :func:`journeyopt.panel.state.state_features`, e.g.
  ``recency_weeks``, ``n_conversions``, ``weeks_since_engagement``, ``contacts_4w_phone``)
  within inclusive ``[min, max]`` bounds, either open (``None``). A ``weeks_since_*`` or
  ``recency_weeks`` of a customer to whom it never happened counts as infinitely long ago: it
  passes any ``min`` and fails any ``max``;
- the calendar: the week index ``t`` (weeks since the campaign calendar's origin) satisfies
  ``t % every_weeks == offset_weeks`` (``every_weeks: 1``: every week).

No code looks at an action's or a segment's name: the demo's staff rules are one such list in
the demo's configuration (``configs/evaluation/baselines.yaml``), a business's own practice
another. The same :class:`Practice` is the logs' behaviour policy (``journeyopt-generate``),
the ``staff_rules`` baseline of training, comparison and the gate, and the control group's
policy in serving.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from journeyopt.errors import ConfigError
from journeyopt.panel.state import LIFECYCLE_STAGES
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.world import WorldSpec

IntArray = NDArray[np.int64]
Bound = tuple[float | None, float | None]


@dataclass(frozen=True)
class PracticeRule:
    """One line of today's practice (see the module docstring).

    Attributes:
        action: The action the staff take (a name of the world's catalogue).
        segments: Customer types the rule applies to; empty: every type.
        lifecycle: Lifecycle stages the rule applies to; empty: every stage.
        when: Feature name -> inclusive ``(min, max)`` bounds, either None for open.
        every_weeks: The rule applies in weeks ``t`` with ``t % every_weeks == offset_weeks``;
            1: every week.
        offset_weeks: See ``every_weeks``; in ``0 .. every_weeks - 1``.
    """

    action: str
    segments: tuple[str, ...] = ()
    lifecycle: tuple[str, ...] = ()
    when: Mapping[str, Bound] = field(default_factory=dict)
    every_weeks: int = 1
    offset_weeks: int = 0

    def __post_init__(self) -> None:
        if self.every_weeks < 1:
            raise ValueError(f"every_weeks must be >= 1, got {self.every_weeks}")
        if not 0 <= self.offset_weeks < self.every_weeks:
            raise ValueError(
                f"offset_weeks must be in 0..{self.every_weeks - 1}, got {self.offset_weeks}"
            )
        unknown = [s for s in self.lifecycle if s not in LIFECYCLE_STAGES]
        if unknown:
            raise ValueError(f"unknown lifecycle stage(s) {unknown}; expected {LIFECYCLE_STAGES}")
        for name, (low, high) in self.when.items():
            if low is not None and high is not None and low > high:
                raise ValueError(f"when.{name}: min {low} is above max {high}")

    def applies(
        self,
        world: WorldSpec,
        features: Mapping[str, NDArray[np.generic]],
        segment: NDArray[np.integer],
        week: int,
    ) -> NDArray[np.bool_]:
        """(N,) whether the rule's conditions hold (the action's allowance aside)."""
        n = np.asarray(segment).shape[0]
        if week % self.every_weeks != self.offset_weeks:
            return np.zeros(n, bool)
        hit = np.ones(n, bool)
        if self.segments:
            codes = [world.segment_names.index(s) for s in self.segments]
            hit &= np.isin(np.asarray(segment), codes)
        if self.lifecycle:
            codes = [LIFECYCLE_STAGES.index(s) for s in self.lifecycle]
            hit &= np.isin(np.asarray(features["lifecycle"]), codes)
        for name, (low, high) in self.when.items():
            value = np.nan_to_num(np.asarray(features[name], np.float64), nan=np.inf)
            if low is not None:
                hit &= value >= low
            if high is not None:
                hit &= value <= high
        return hit


@dataclass(frozen=True)
class Practice:
    """Today's practice: rules in priority order, first match wins; empty: nobody is contacted.

    Attributes:
        rules: The rules, highest priority first.
    """

    rules: tuple[PracticeRule, ...] = ()

    def check(self, world: WorldSpec, key: str) -> Practice:
        """``self`` if every rule names what ``world`` has; else one clear error.

        Args:
            world: The world the practice acts in.
            key: Where the practice is configured (``evaluation.staff``), for the message.

        Raises:
            ConfigError: A rule names an action, customer type or state feature the world does
                not have: the practice would silently skip it, and a baseline or control group
                would be weaker than the practice it stands for.
        """
        features = set(world.features.feature_names)
        for k, rule in enumerate(self.rules):
            where = f"{key}.rules[{k}]"
            if rule.action not in world.actions.names:
                raise ConfigError(
                    f"{where}.action={rule.action!r} is not an action of world {world.name!r} "
                    f"(its actions: {list(world.actions.names)})"
                )
            unknown = [s for s in rule.segments if s not in world.segment_names]
            if unknown:
                raise ConfigError(
                    f"{where}.segments names customer type(s) {unknown} that world "
                    f"{world.name!r} does not have (its types: {list(world.segment_names)})"
                )
            missing = [f for f in rule.when if f not in features]
            if missing:
                raise ConfigError(
                    f"{where}.when names feature(s) {missing} the state of world "
                    f"{world.name!r} does not have (its features: {sorted(features)})"
                )
        return self

    def actions(
        self,
        world: WorldSpec,
        features: Mapping[str, NDArray[np.generic]],
        segment: NDArray[np.integer],
        week: int,
        rules: ContactRules | None = None,
    ) -> IntArray:
        """(N,) the practice's action for each customer at the start of week index ``week``.

        Args:
            world: The world (catalogue and customer types).
            features: (N,) arrays from ``state_features``.
            segment: (N,) customer type index.
            week: Week index of the campaign calendar.
            rules: Contact rules the practice respects (default: the world's own, opt-outs).
        """
        rules = rules or ContactRules(world.actions, world.features)
        allowed = rules.masks(features)
        n = allowed.shape[0]
        action = np.zeros(n, np.int64)
        open_ = np.ones(n, bool)
        for rule in self.rules:
            a = world.actions.names.index(rule.action)
            take = open_ & allowed[:, a] & rule.applies(world, features, segment, week)
            action[take] = a
            open_ &= ~take
        return action
