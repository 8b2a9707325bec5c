"""Today's practice as data: a declarative list of rules, first match wins.

A marketing team's practice reads like "call key accounts who asked for something last week",
"a voucher to lapsed customers every quarter, two weeks after the mailing", "the mailing
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
the demo's configuration (``configs/practice/coworking.yaml``), a business's own practice
another. The same :class:`Practice` is the logs' behaviour policy (``journeyopt-generate``),
the ``staff_rules`` baseline of training, comparison and the gate, and the control group's
policy in serving.

Today's practice can also be *estimated from the logs* (:class:`LoggedPractice`, fitted by
``journeyopt-calibrate``, :func:`journeyopt.calibration.propensity.logged_practice`): the
logging policy's probability of each action given the customer's discrete state, the week of
year and the week of each campaign cycle. It stands wherever a hand-written practice does
(``practice=logged``); it is stochastic, as the logging policy was.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from journeyopt.errors import ConfigError
from journeyopt.panel.state import LIFECYCLE_STAGES
from journeyopt.sim.behaviour import contact_rules
from journeyopt.sim.discrete import DiscreteLayout, summarise_with
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.world import DiscreteSpec, WorldSpec

IntArray = NDArray[np.int64]
Float = NDArray[np.float64]
N_WEEKS_OF_YEAR = 53
PRACTICE_FILE = "practice.npz"
"""File of a calibrated world's :class:`LoggedPractice`, beside its ``world.yaml``."""
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

    def world_for(self, world: WorldSpec) -> WorldSpec:
        """``world`` itself: the rules read the world's own features (as
        :meth:`LoggedPractice.world_for`, which may need more)."""
        return world

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
                    f"(its actions: {list(world.actions.names)}); a calibrated world also "
                    f"carries the practice estimated from its logs: practice@{key}=logged"
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
        rules = rules or contact_rules(world)
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

    def to_json(self) -> list[dict[str, object]]:
        """The rules as JSON-ready dicts (open bounds as ``None``), read by :meth:`from_json`."""
        return [
            {
                "action": rule.action,
                "segments": list(rule.segments),
                "lifecycle": list(rule.lifecycle),
                "when": {name: list(bounds) for name, bounds in rule.when.items()},
                "every_weeks": rule.every_weeks,
                "offset_weeks": rule.offset_weeks,
            }
            for rule in self.rules
        ]

    @staticmethod
    def from_json(rules: Sequence[Mapping[str, object]]) -> Practice:
        """The practice :meth:`to_json` wrote.

        Raises:
            ValueError: A rule is malformed (see :class:`PracticeRule`).
        """
        out = []
        for rule in rules:
            when = dict(rule.get("when") or {})  # type: ignore[call-overload]
            out.append(
                PracticeRule(
                    action=str(rule["action"]),
                    segments=tuple(str(s) for s in rule.get("segments") or ()),  # type: ignore[attr-defined]
                    lifecycle=tuple(str(s) for s in rule.get("lifecycle") or ()),  # type: ignore[attr-defined]
                    when={
                        str(k): (
                            None if low is None else float(low),
                            None if high is None else float(high),
                        )
                        for k, (low, high) in when.items()
                    },
                    every_weeks=int(rule.get("every_weeks", 1)),  # type: ignore[call-overload]
                    offset_weeks=int(rule.get("offset_weeks", 0)),  # type: ignore[call-overload]
                )
            )
        return Practice(tuple(out))


def masked_softmax(logits: Float, masks: NDArray[np.bool_]) -> Float:
    """(N, A) softmax of (N, A) ``logits`` restricted to the allowed actions ``masks``; a row
    whose allowed actions all have logit ``-inf`` gets ``none`` (column 0, always allowed)."""
    z = np.where(masks, logits, -np.inf)
    top = z.max(axis=1, keepdims=True)
    fallback = ~np.isfinite(top[:, 0])
    e = np.exp(z - np.where(np.isfinite(top), top, 0.0))
    e[fallback] = 0.0
    e[fallback, 0] = 1.0
    return np.asarray(e / e.sum(axis=1, keepdims=True), np.float64)


@dataclass(frozen=True)
class LoggedPractice:
    """Today's practice estimated from the logs: the logging policy ``pi_b(a | x)``.

    A multinomial logistic regression on the calibrated world's discrete state (see
    :mod:`journeyopt.calibration.design`), the ISO week of year and the week of each campaign
    cycle (``week % c`` for ``c`` in :attr:`cycles`), tabulated: the logit of action ``a`` is
    ``state_logit[s, a] + season_logit[woy - 1, a] + sum_c cycle_logit[c][week % c, a]``.
    An action the logs never show has logit ``-inf`` (never taken). The practice carries its
    own state layout (caps, customer types, opt-out channels), so it acts in any world whose
    features include the discrete state's (the ground truth beside a calibrated world too).

    Attributes:
        action_names: Actions, ``none`` first (the columns ``A``).
        segment_names: Customer types in the order of the state numbering.
        channels: Opt-out channels of the state numbering.
        discrete: Caps of the state numbering.
        state_logit: (n_states, A) logits per discrete state (intercept included).
        season_logit: (53, A) logits per ISO week of year (zeros: not seasonal).
        cycles: Campaign cycle lengths, weeks.
        cycle_logit: One (c, A) array per cycle: logits per week of the cycle.
        calendar_origin: Monday (ISO date) of the cycles' week 0: the first week with a
            logged decision; in simulation week 0 is the episode's first week, in serving the
            control group counts its weeks from this date. Empty: unknown.
        diagnostics: Held-out calibration on customers the fit did not see: ``ece``,
            ``log_loss`` and ``constant_log_loss`` (nats per customer-week, the second of a
            model that knows only each action's overall rate), ``agreement`` (share of
            customer-weeks whose most probable action is the logged one) and
            ``constant_agreement``, ``n_validation``; ``propensity_gap`` (mean absolute gap
            to the logged propensities) when propensities were logged.
    """

    action_names: tuple[str, ...]
    segment_names: tuple[str, ...]
    channels: tuple[str, ...]
    discrete: DiscreteSpec
    state_logit: Float
    season_logit: Float
    cycles: tuple[int, ...] = ()
    cycle_logit: tuple[Float, ...] = ()
    calendar_origin: str = ""
    diagnostics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n_actions = len(self.action_names)
        layout = DiscreteLayout(
            self.discrete, len(self.segment_names), len(self.channels), len(self.action_names)
        )
        if self.state_logit.shape != (layout.n_states, n_actions):
            raise ConfigError(
                f"practice: state_logit has shape {self.state_logit.shape}, expected "
                f"{(layout.n_states, n_actions)}"
            )
        if self.season_logit.shape != (N_WEEKS_OF_YEAR, n_actions):
            raise ConfigError(f"practice: season_logit must be (53, {n_actions})")
        if len(self.cycles) != len(self.cycle_logit) or any(
            t.shape != (c, n_actions) for c, t in zip(self.cycles, self.cycle_logit, strict=True)
        ):
            raise ConfigError("practice: one (c, A) cycle_logit per cycle c expected")

    def world_for(self, world: WorldSpec) -> WorldSpec:
        """``world`` whose features also count what the practice's discrete state reads (its
        contact pattern's window, the last contact's action, the previous gap, the lasting
        actions' weeks since): features only, the world's dynamics and summary unchanged
        (e.g. the ground truth a practice estimated in a calibrated world acts in)."""
        d = self.discrete
        contacts = self.action_names[1:] if d.last_action or d.lasting_actions else ()
        windows = (d.contact_pattern_weeks,) if d.contact_pattern_weeks else ()
        reads = replace(
            world.features.without_counts(),
            rule_windows=windows,
            rule_actions=contacts,
            recent_contacts=bool(windows) or d.last_action,
            conversion_gap=d.gap_cap_weeks > 0,
            action_recency=bool(d.lasting_actions),
        )
        spec = world.features.counting(reads)
        if d.last_action and spec.rule_actions[: len(contacts)] != contacts:
            raise ConfigError(
                f"the practice estimated from the logs reads the last contact's action, which "
                f"world {world.name!r} cannot count: its rule actions "
                f"{list(world.features.rule_actions)} do not start with {list(contacts)}"
            )
        return world if spec == world.features else replace(world, features=spec)

    def check(self, world: WorldSpec, key: str) -> LoggedPractice:
        """``self`` if it can act in ``world``; else one clear error.

        Raises:
            ConfigError: The world has other actions, customer types the practice never saw,
                or lacks an opt-out channel of the practice's state.
        """
        if tuple(world.actions.names) != self.action_names:
            raise ConfigError(
                f"{key}: the practice estimated from the logs chooses among "
                f"{list(self.action_names)}, world {world.name!r} has actions "
                f"{list(world.actions.names)}"
            )
        unknown = [s for s in world.segment_names if s not in self.segment_names]
        if unknown:
            raise ConfigError(
                f"{key}: world {world.name!r} has customer type(s) {unknown} the logs' "
                f"practice never saw (its types: {list(self.segment_names)})"
            )
        missing = [c for c in self.channels if c not in world.channels]
        if missing:
            raise ConfigError(
                f"{key}: the logs' practice needs the opt-out state of channel(s) {missing}, "
                f"which world {world.name!r} does not have"
            )
        return self

    def logits(
        self,
        features: Mapping[str, NDArray[np.generic]],
        segment: NDArray[np.integer],
        segment_names: Sequence[str],
        week_of_year: int,
        week: int,
    ) -> Float:
        """(N, A) logits of the practice for ``N`` customers (``-inf``: never taken).

        Args:
            features: (N,) arrays of ``state_features``.
            segment: (N,) customer type index into ``segment_names``.
            segment_names: Names of the segment indices (the acting world's order).
            week_of_year: ISO week of year, 1..53.
            week: Week index of the campaign calendar (0-based).
        """
        position = {name: k for k, name in enumerate(self.segment_names)}
        recode = np.array([position[name] for name in segment_names], np.int64)
        summary = summarise_with(
            features, recode[np.asarray(segment, np.int64)], self.discrete, self.channels
        )
        layout = DiscreteLayout(
            self.discrete, len(self.segment_names), len(self.channels), len(self.action_names)
        )
        return self.state_logits(layout.encode(summary), week_of_year, week)

    def state_logits(self, state: NDArray[np.integer], week_of_year: int, week: int) -> Float:
        """(N, A) logits of the practice for (N,) discrete state indices of its own numbering
        (``-inf``: never taken); ``week_of_year`` 1..53, ``week`` of the campaign calendar."""
        out = self.state_logit[np.asarray(state, np.int64)] + self.season_logit[week_of_year - 1]
        for c, table in zip(self.cycles, self.cycle_logit, strict=True):
            out = out + table[week % c]
        return np.asarray(out, np.float64)

    def probabilities(
        self,
        features: Mapping[str, NDArray[np.generic]],
        segment: NDArray[np.integer],
        segment_names: Sequence[str],
        week_of_year: int,
        week: int,
        masks: NDArray[np.bool_],
    ) -> Float:
        """(N, A) probabilities of the practice restricted to the allowed actions ``masks``
        (N, A) and renormalised; a customer whose allowed actions the practice never takes
        gets ``none`` (column 0, always allowed)."""
        return masked_softmax(
            self.logits(features, segment, segment_names, week_of_year, week), masks
        )

    def state_probabilities(
        self,
        state: NDArray[np.integer],
        week_of_year: int,
        week: int,
        masks: NDArray[np.bool_],
    ) -> Float:
        """(N, A) :meth:`probabilities` for (N,) discrete state indices of the practice's own
        numbering (the calibration's customer-weeks)."""
        return masked_softmax(self.state_logits(state, week_of_year, week), masks)

    def save(self, path: Path) -> Path:
        """Write the practice to ``path`` (npz, no pickle); returns ``path``."""
        meta = {
            "action_names": list(self.action_names),
            "segment_names": list(self.segment_names),
            "channels": list(self.channels),
            "discrete": asdict(self.discrete),
            "cycles": list(self.cycles),
            "calendar_origin": self.calendar_origin,
            "diagnostics": {k: float(v) for k, v in self.diagnostics.items()},
        }
        arrays: dict[str, NDArray[np.generic]] = {
            "meta": np.array(json.dumps(meta)),
            "state_logit": self.state_logit,
            "season_logit": self.season_logit,
        }
        for c, table in zip(self.cycles, self.cycle_logit, strict=True):
            arrays[f"cycle_{c}"] = table
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
        return path

    @staticmethod
    def load(path: Path) -> LoggedPractice:
        """Read a practice written by :meth:`save`."""
        if not path.is_file():
            raise ConfigError(f"{path}: the world's practice estimated from the logs is missing")
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            cycles = tuple(int(c) for c in meta["cycles"])
            return LoggedPractice(
                action_names=tuple(meta["action_names"]),
                segment_names=tuple(meta["segment_names"]),
                channels=tuple(meta["channels"]),
                discrete=DiscreteSpec(**meta["discrete"]),
                state_logit=np.asarray(z["state_logit"], np.float64),
                season_logit=np.asarray(z["season_logit"], np.float64),
                cycles=cycles,
                cycle_logit=tuple(np.asarray(z[f"cycle_{c}"], np.float64) for c in cycles),
                calendar_origin=str(meta.get("calendar_origin", "")),
                diagnostics={k: float(v) for k, v in meta["diagnostics"].items()},
            )
