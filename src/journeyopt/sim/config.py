"""Typed configuration of the simulator and of the log generator.

:class:`SimulatorConfig` is the schema of the ``simulator`` config group
(``configs/simulator/*.yaml``); :class:`GenerateConfig` the schema of ``configs/generate.yaml``.
Both are registered in Hydra's ConfigStore by :func:`register_configs`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from importlib.resources import files
from typing import Any, ClassVar, TypeVar

import pandas as pd
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from journeyopt.errors import ConfigError
from journeyopt.panel.state import LIFECYCLE_STAGES, FeatureSpec
from journeyopt.sim.practice import LoggedPractice, Practice, PracticeRule
from journeyopt.sim.rules import (
    ActionCatalog,
    Cap,
    ContactRules,
    Eligibility,
    QuietWeeks,
    rule_feature_spec,
    shorthand_caps,
)
from journeyopt.sim.world import WorldSpec, load_world

T = TypeVar("T")


@dataclass
class CapConfig:
    """One cap of ``rules.caps`` (see :class:`journeyopt.sim.rules.Cap`): at most ``max``
    contacts per customer within any ``window_weeks`` weeks, counting every contact
    (``over: all``), the contacts through ``channels``, or those of ``actions``.

    Attributes:
        max: Contacts allowed within the window.
        window_weeks: The cap's own window, weeks (any length: the state counts it).
        over: ``all`` to count every contact; empty when ``channels`` or ``actions`` is set.
        channels: Channels whose contacts are counted.
        actions: Actions whose contacts are counted.
    """

    max: int = MISSING
    window_weeks: int = MISSING
    over: str = ""
    channels: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.over not in ("", "all"):
            raise ConfigError(f"rules.caps: over must be 'all' or absent, got {self.over!r}")
        if (self.over == "all") + bool(self.channels) + bool(self.actions) != 1:
            raise ConfigError(
                "rules.caps: each cap counts exactly one of over: all, channels: [...] or "
                f"actions: [...], got over={self.over!r} channels={list(self.channels)} "
                f"actions={list(self.actions)}"
            )
        if self.max < 0:
            raise ConfigError(f"rules.caps: max must be >= 0, got {self.max}")
        if self.window_weeks < 1:
            raise ConfigError(f"rules.caps: window_weeks must be >= 1, got {self.window_weeks}")

    def cap(self) -> Cap:
        """The :class:`~journeyopt.sim.rules.Cap` this entry declares."""
        return Cap(self.max, self.window_weeks, tuple(self.channels), tuple(self.actions))


def _one_target(key: str, channels: list[str], actions: list[str]) -> None:
    if channels and actions:
        raise ConfigError(f"{key}: name channels or actions, not both")


@dataclass
class QuietWeeksConfig:
    """One entry of ``rules.quiet_weeks``: no contact of ``actions`` (or through
    ``channels``; neither: no contact at all) in the given weeks, every year.

    Attributes:
        weeks: ISO weeks of year (1..53), e.g. ``[52, 1]``.
        dates: Date ranges ``[first, last]`` (ISO dates, inclusive); the ISO weeks of year
            they touch are quiet, every year (simulations have weeks of year, not years).
        channels: Channels kept quiet.
        actions: Actions kept quiet.
    """

    weeks: list[int] = field(default_factory=list)
    dates: list[list[str]] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _one_target("rules.quiet_weeks", self.channels, self.actions)
        if bad := [w for w in self.weeks if not 1 <= w <= 53]:
            raise ConfigError(f"rules.quiet_weeks: weeks must be ISO weeks 1..53, got {bad}")
        if not self.weeks and not self.dates:
            raise ConfigError("rules.quiet_weeks: each entry needs weeks or dates")
        self.iso_weeks()

    def iso_weeks(self) -> tuple[int, ...]:
        """The quiet ISO weeks of year: :attr:`weeks` and those :attr:`dates` touch."""
        weeks = set(self.weeks)
        for span in self.dates:
            try:
                first, last = (pd.Timestamp(d) for d in span)
            except (ValueError, TypeError) as err:
                raise ConfigError(
                    f"rules.quiet_weeks: dates must be [first, last] ISO dates, got {span}"
                ) from err
            if last < first or (last - first).days > 366:
                raise ConfigError(f"rules.quiet_weeks: date range {span} is empty or > 1 year")
            days = pd.date_range(first, last, freq="D")
            weeks |= {int(w) for w in days.isocalendar().week}
        return tuple(sorted(weeks))


@dataclass
class EligibilityConfig:
    """One entry of ``rules.eligibility``: ``actions`` (or the actions of ``channels``;
    neither: every contact) only for customers of ``segments`` and ``lifecycle`` stages.

    Attributes:
        segments: Customer types (the world's segment names) allowed; empty: any.
        lifecycle: Lifecycle stages allowed (prospect, active, lapsed); empty: any.
        channels: Channels the rule is about.
        actions: Actions the rule is about.
    """

    segments: list[str] = field(default_factory=list)
    lifecycle: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _one_target("rules.eligibility", self.channels, self.actions)
        if not self.segments and not self.lifecycle:
            raise ConfigError("rules.eligibility: each entry needs segments or lifecycle")
        if bad := [s for s in self.lifecycle if s not in LIFECYCLE_STAGES]:
            raise ConfigError(
                f"rules.eligibility: unknown lifecycle stage(s) {bad}, known: "
                f"{list(LIFECYCLE_STAGES)}"
            )


@dataclass
class RulesConfig:
    """The business's contact rules (see :class:`journeyopt.sim.rules.ContactRules`), one
    object for every stage: the masks of training (``simulator.rules``), evaluation and the
    gate's simulation, and the guard of serving (``serve.rules``); the calibration's summary
    selection (``rules``) chooses a state that represents them. The schema sets none; the
    demo's are ``configs/rules/coworking.yaml``.

    Attributes:
        frequency_caps: Shorthand: channel -> maximum contacts within the world's fatigue
            window (``contacts_<w>w_<channel>``, ``panel.fatigue_weeks`` weeks) before a
            contact, i.e. a cap with ``window_weeks: fatigue_weeks + 1``; channels not listed
            are uncapped.
        cooldown_weeks: No contact for this many weeks after a conversion (0 disables).
        total_cap: Shorthand: maximum contacts within the fatigue window before a contact,
            all channels together (null: none), i.e. a cap ``over: all`` with
            ``window_weeks: fatigue_weeks + 1``.
        min_gap_weeks: At least this many weeks between two contacts of a customer, whatever
            the channel (0 or 1: no gap beyond one decision a week).
        caps: Caps over any set of channels or actions, each with its own window
            (:class:`CapConfig`), e.g. ``[{over: all, max: 2, window_weeks: 4},
            {actions: [call], max: 1, window_weeks: 8}]``. ``frequency_caps`` and
            ``total_cap`` are shorthands for caps in the fatigue window; all are one list.
        quiet_weeks: Weeks without given actions or channels (:class:`QuietWeeksConfig`),
            e.g. ``[{channels: [phone], weeks: [52, 1]}]``.
        eligibility: Actions or channels only for given customer types / lifecycle stages
            (:class:`EligibilityConfig`), e.g. ``[{actions: [call], segments: [b2b]}]``.
        capacity: Action -> most customers it may be given in one week (e.g. ``{call:
            300}``, the call team's size): serving gives it where it is worth most;
            the optimum (``journeyopt-compare``, which reports the value it costs) and the
            agent (``journeyopt-train``) are held to it on average by a price on the action.
        capacity_customers: How many customers the weekly contact list is scored for (the
            business's customer count): a simulation holds an action with a capacity to the
            weekly share ``capacity / capacity_customers`` of its customers, on average.
            Needed by simulations (compare, the optimum's price) when ``capacity`` is set.
    """

    frequency_caps: dict[str, int] = field(default_factory=dict)
    cooldown_weeks: int = 0
    total_cap: int | None = None
    min_gap_weeks: int = 0
    caps: list[CapConfig] = field(default_factory=list)
    quiet_weeks: list[QuietWeeksConfig] = field(default_factory=list)
    eligibility: list[EligibilityConfig] = field(default_factory=list)
    capacity: dict[str, int] = field(default_factory=dict)
    capacity_customers: int = 0

    def __post_init__(self) -> None:
        for channel, cap in self.frequency_caps.items():
            if cap < 0:
                raise ConfigError(f"rules.frequency_caps.{channel} must be >= 0, got {cap}")
        if self.cooldown_weeks < 0:
            raise ConfigError(f"rules.cooldown_weeks must be >= 0, got {self.cooldown_weeks}")
        if self.total_cap is not None and self.total_cap < 0:
            raise ConfigError(f"rules.total_cap must be >= 0 or null, got {self.total_cap}")
        if self.min_gap_weeks < 0:
            raise ConfigError(f"rules.min_gap_weeks must be >= 0, got {self.min_gap_weeks}")
        if self.capacity_customers < 0:
            raise ConfigError(
                f"rules.capacity_customers must be >= 0, got {self.capacity_customers}"
            )

    def fingerprint(self) -> str:
        """The rules as canonical JSON (sorted keys): what a registered policy records as the
        rules it was trained under (``journeyopt.rules`` tag), compared with the rules it is
        to be served under by the promotion gate."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @staticmethod
    def differences(recorded: str, other: RulesConfig) -> list[str]:
        """The options in which ``other`` differs from rules recorded by :meth:`fingerprint`,
        as ``option: recorded -> other`` (empty when they are the same rules)."""
        before = json.loads(recorded)
        after = json.loads(other.fingerprint())
        return [
            f"{f.name}: {json.dumps(before.get(f.name))} -> {json.dumps(after[f.name])}"
            for f in fields(other)
            if before.get(f.name) != after[f.name]
        ]

    def for_world(self, world: WorldSpec, key: str) -> ContactRules:
        """The rules for ``world``'s catalogue and features.

        Args:
            world: The world.
            key: Where the rules are configured (``serve.rules``, ``simulator.rules``), for
                the message.

        Raises:
            ConfigError: A frequency cap names a channel ``world`` does not have (it would cap
                nothing): the message names the world's channels and the overrides that fix it.
        """
        return self.for_catalog(
            world.actions,
            world.features,
            world.segment_names,
            key,
            f"world {world.name!r}",
            world.unsupported_actions,
        )

    def for_catalog(
        self,
        catalog: ActionCatalog,
        features: FeatureSpec,
        segment_names: Sequence[str],
        key: str,
        owner: str,
        unsupported: tuple[str, ...] = (),
    ) -> ContactRules:
        """The rules for an action catalogue and state features before there is a world (a
        calibration choosing its summary); :meth:`for_world` with a world's.

        Args:
            catalog: The actions, ``none`` first.
            features: The state's feature windows (contact channels, lapse threshold).
            segment_names: The customer types eligibility rules may name.
            key: Where the rules are configured, for the message.
            owner: Whose channels and actions they are, for the message (``world 'x'``).
            unsupported: Actions nobody may get (:attr:`WorldSpec.unsupported_actions`).

        Raises:
            ConfigError: A rule names a channel, action or customer type ``owner`` does not
                have.
        """
        channels = features.contact_channels
        unknown = [c for c in self.frequency_caps if c not in channels]
        if unknown:
            remove = " ".join(f"'~{key}.frequency_caps.{c}'" for c in unknown)
            raise ConfigError(
                f"{key}.frequency_caps caps channel(s) {unknown} that {owner} "
                f"does not have (its contact channels: {list(channels)}): remove them with "
                f"{remove}, and cap a channel of the world with "
                f"+{key}.frequency_caps.<channel>=<contacts>"
            )
        caps = tuple(_as(CapConfig, c).cap() for c in self.caps)
        quiet = tuple(
            QuietWeeks(q.iso_weeks(), tuple(q.channels), tuple(q.actions))
            for q in (_as(QuietWeeksConfig, q) for q in self.quiet_weeks)
        )
        eligibility = tuple(
            Eligibility(
                tuple(_segment_index(segment_names, owner, e.segments, f"{key}.eligibility[{i}]")),
                tuple(LIFECYCLE_STAGES.index(s) for s in e.lifecycle),
                tuple(e.channels),
                tuple(e.actions),
            )
            for i, e in enumerate(_as(EligibilityConfig, e) for e in self.eligibility)
        )
        actions = catalog.names[1:]
        named: list[tuple[str, Cap | QuietWeeks | Eligibility]] = [
            *((f"caps[{i}]", c) for i, c in enumerate(caps)),
            *((f"quiet_weeks[{i}]", q) for i, q in enumerate(quiet)),
            *((f"eligibility[{i}]", e) for i, e in enumerate(eligibility)),
        ]
        for what, entry in named:
            if unknown := [c for c in entry.channels if c not in channels]:
                raise ConfigError(
                    f"{key}.{what} names channel(s) {unknown} that {owner} "
                    f"does not have (its contact channels: {list(channels)})"
                )
            if unknown := [a for a in entry.actions if a not in actions]:
                raise ConfigError(
                    f"{key}.{what} names action(s) {unknown} that {owner} "
                    f"does not have (its actions: {list(actions)})"
                )
        for action, limit in self.capacity.items():
            if action not in actions:
                raise ConfigError(
                    f"{key}.capacity names action {action!r} that {owner} does "
                    f"not have (its actions: {list(actions)})"
                )
            if limit < 0:
                raise ConfigError(f"{key}.capacity.{action} must be >= 0, got {limit}")
        short = shorthand_caps(features, self.frequency_caps, self.total_cap)
        return ContactRules(
            catalog,
            rule_feature_spec(features, (*short, *caps)),
            dict(self.frequency_caps),
            self.cooldown_weeks,
            self.total_cap,
            self.min_gap_weeks,
            caps,
            quiet,
            eligibility,
            dict(self.capacity),
            unsupported,  # actions the world cannot value
        )

    def capacity_shares(self, key: str) -> dict[str, float]:
        """Action -> weekly share of customers its capacity allows in a simulation.

        Raises:
            ConfigError: A capacity is set without ``capacity_customers``.
        """
        if not self.capacity:
            return {}
        if self.capacity_customers < 1:
            raise ConfigError(
                f"{key}.capacity needs {key}.capacity_customers (how many customers the "
                "weekly list is scored for) to hold a simulation to the same weekly share"
            )
        return {a: k / self.capacity_customers for a, k in self.capacity.items()}

    def world_for(self, world: WorldSpec, key: str) -> WorldSpec:
        """``world`` whose state also counts what these rules read (their windows and
        actions): simulate and score it with them, so the one state code computes every
        feature the rules evaluate (:meth:`ContactRules.check_state`)."""
        return replace(world, features=self.for_world(world, key).spec)


def _as(cls: type[T], value: object) -> T:
    """``value`` as a ``cls`` config (a plain mapping when built without Hydra)."""
    return value if isinstance(value, cls) else cls(**value)  # type: ignore[arg-type]


def _segment_index(
    segment_names: Sequence[str], owner: str, names: list[str], key: str
) -> list[int]:
    """Indices of customer type ``names`` in ``segment_names`` (``owner``'s); a
    ``ConfigError`` names unknown ones."""
    if unknown := [n for n in names if n not in segment_names]:
        raise ConfigError(
            f"{key}.segments names customer type(s) {unknown} that {owner} does "
            f"not have (its types: {list(segment_names)})"
        )
    return [list(segment_names).index(n) for n in names]


@dataclass
class SimulatorConfig:
    """Which world to simulate and how returns are counted.

    Attributes:
        world: A shipped world name (``simulators/<name>/``), or a folder or ``world.yaml``;
            required (no default: the demo's is ``configs/simulator/coworking.yaml``).
        horizon_weeks: Episode length, weeks.
        gamma: Weekly discount factor of rewards (0.995 a week is about 0.77 a year).
        start_week_of_year: ISO week of year (1..53) of an episode's first week.
        rules: The contact rules every simulated policy is held to (training masks,
            evaluation, the gate's simulation): the rules it will be served under
            (``serve.rules``); the shipped configs take both from ``configs/rules/``.
    """

    world: str = MISSING
    horizon_weeks: int = 52
    gamma: float = 0.995
    start_week_of_year: int = 1
    rules: RulesConfig = field(default_factory=RulesConfig)

    REQUIRED_HINTS: ClassVar[Mapping[str, str]] = {
        "world": "the world policies are trained and compared in: your calibrated world's "
        "folder (journeyopt-calibrate's output_dir) or a shipped world's name",
    }
    """What to give for each required field (the message of a config without it)."""

    def contact_rules(self, world: WorldSpec) -> ContactRules:
        """:attr:`rules` for ``world`` (see :meth:`RulesConfig.for_world`)."""
        return self.rules.for_world(world, "simulator.rules")

    def __post_init__(self) -> None:
        if self.horizon_weeks < 1:
            raise ConfigError(f"simulator.horizon_weeks must be >= 1, got {self.horizon_weeks}")
        if not 0.0 < self.gamma <= 1.0:
            raise ConfigError(f"simulator.gamma must be in (0, 1], got {self.gamma}")
        if not 1 <= self.start_week_of_year <= 53:
            raise ConfigError("simulator.start_week_of_year must be in 1..53")


@dataclass
class PracticeRuleConfig:
    """One rule of today's practice (see :class:`journeyopt.sim.practice.PracticeRule`).

    Attributes:
        action: The action the staff take.
        segments: Customer types it applies to; empty: every type.
        lifecycle: Lifecycle stages it applies to (prospect, active, lapsed, opted_out);
            empty: every stage.
        when: State feature -> ``[min, max]``, inclusive, ``null`` for open (e.g.
            ``recency_weeks: [27, null]``: last conversion 27 or more weeks ago).
        every_weeks: Applies in weeks ``t`` of the campaign calendar with
            ``t % every_weeks == offset_weeks``; 1: every week.
        offset_weeks: See ``every_weeks`` (a campaign two weeks after another: the same
            ``every_weeks``, ``offset_weeks`` 2 more).
    """

    action: str = MISSING
    segments: list[str] = field(default_factory=list)
    lifecycle: list[str] = field(default_factory=list)
    when: dict[str, list[Any]] = field(default_factory=dict)
    every_weeks: int = 1
    offset_weeks: int = 0

    def to_rule(self) -> PracticeRule:
        bounds: dict[str, tuple[float | None, float | None]] = {}
        for name, pair in self.when.items():
            numbers = [
                v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in pair
            ]
            if len(pair) != 2 or not all(numbers):
                raise ValueError(
                    f"when.{name} must be [min, max] (null for open), got {list(pair)}"
                )
            bounds[name] = (
                None if pair[0] is None else float(pair[0]),
                None if pair[1] is None else float(pair[1]),
            )
        return PracticeRule(
            action=self.action,
            segments=tuple(self.segments),
            lifecycle=tuple(self.lifecycle),
            when=bounds,
            every_weeks=self.every_weeks,
            offset_weeks=self.offset_weeks,
        )


PRACTICE_SOURCES: tuple[str, ...] = ("rules", "logged", "auto")
"""Where today's practice comes from (:attr:`StaffRulesConfig.source`)."""


@dataclass
class StaffRulesConfig:
    """Today's contact practice, the baseline every policy is compared with and the control
    group's policy: either the practice *estimated from the logs* (``source: logged``, the
    :class:`journeyopt.sim.practice.LoggedPractice` a calibrated world carries,
    ``configs/practice/logged.yaml``) or a hand-written rule list in priority order, first
    match wins (``source: rules``, :class:`journeyopt.sim.practice.Practice`; also the
    behaviour policy of generated logs), or ``source: auto``: the practice estimated from the
    logs wherever the world carries one (every calibrated world), the rule list otherwise (a
    ground-truth world, generated logs). Empty rules (the schema's default): nobody is
    contacted; the demo's staff rules are ``configs/practice/coworking.yaml`` (``auto``).

    Attributes:
        source: ``rules`` (the hand-written :attr:`rules`), ``logged`` (estimated from the
            logs at calibration) or ``auto`` (``logged`` where the world carries an
            estimate, else ``rules``).
        rules: The rules, highest priority first (``source: rules`` or ``auto``).
        world: With ``source: logged``, the calibrated world (name or folder) whose estimated
            practice to use; empty: the world the practice acts in (it must be a calibrated
            world). Set it to compare in a ground-truth world under the logs' practice.
    """

    source: str = "rules"
    rules: list[PracticeRuleConfig] = field(default_factory=list)
    world: str = ""

    def __post_init__(self) -> None:
        if self.source not in PRACTICE_SOURCES:
            raise ConfigError(
                f"staff.source must be one of {', '.join(map(repr, PRACTICE_SOURCES))}, "
                f"got {self.source!r}"
            )
        if self.source == "logged" and self.rules:
            raise ConfigError(
                "staff.source=logged takes the practice from the logs: remove staff.rules "
                "(or set staff.source=rules to use them)"
            )

    def to_practice(self) -> Practice:
        """The hand-written rule list (``source: rules`` or ``auto``)."""
        if self.source == "logged":
            raise ConfigError(
                "staff: a practice estimated from the logs (source: logged) cannot generate "
                "logs or stand where hand-written rules are needed; choose a rule list, "
                "practice@staff=<a file of configs/practice/>"
            )
        try:
            return Practice(tuple(rule.to_rule() for rule in self.rules))
        except ValueError as err:
            raise ConfigError(f"staff: {err}") from err

    def practice_for(self, world: WorldSpec, key: str) -> Practice | LoggedPractice:
        """The practice, checked against ``world`` (actions, customer types, features).

        Args:
            world: The world the practice acts in.
            key: Where these settings live in the config (e.g. ``evaluation.staff``), for the
                message.

        Raises:
            ConfigError: A rule names something the world does not have
                (:meth:`~journeyopt.sim.practice.Practice.check`); ``source: logged`` and
                the world (or ``world``) carries no practice estimated from logs, or one that
                cannot act in ``world`` (:meth:`~journeyopt.sim.practice.LoggedPractice.check`).
        """
        if self.source == "rules":
            return self.to_practice().check(world, key)
        origin = load_world(self.world) if self.world else world
        if self.source == "auto" and origin.logged_practice is None:
            return self.to_practice().check(world, key)
        if origin.logged_practice is None:
            raise ConfigError(
                f"{key}.source=logged: world {origin.name!r} carries no practice estimated "
                "from logs (a ground-truth world, a world calibrated from logs without "
                "contacts, or calibrated before journeyopt estimated it): point "
                f"{key}.world at a calibrated world or choose a hand-written practice, "
                f"practice@{key}=<a file of configs/practice/>"
            )
        return origin.logged_practice.check(world, key)


def _shipped(group: str, name: str, schema: type[T]) -> T:
    """The shipped option ``configs/<group>/<name>.yaml`` as a ``schema`` object, for code
    that builds configs without Hydra (tests, experiments).

    Raises:
        ConfigError: No such option ships, or it does not fit the schema.
    """
    path = files("journeyopt").joinpath("configs", group, f"{name}.yaml")
    if not path.is_file():
        raise ConfigError(f"no {group} option {name!r} ships in configs/{group}/")
    try:
        merged = OmegaConf.merge(
            OmegaConf.structured(schema), OmegaConf.create(path.read_text("utf-8"))
        )
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise ConfigError(f"configs/{group}/{name}.yaml: {err}".splitlines()[0]) from err
    assert isinstance(obj, schema)
    return obj


def shipped_practice(name: str) -> StaffRulesConfig:
    """A practice shipped in ``configs/practice/<name>.yaml`` (the demo's staff rules:
    ``coworking``)."""
    return _shipped("practice", name, StaffRulesConfig)


def shipped_rules(name: str) -> RulesConfig:
    """Contact rules shipped in ``configs/rules/<name>.yaml`` (the demo's: ``coworking``)."""
    return _shipped("rules", name, RulesConfig)


@dataclass
class MessConfig:
    """Realistic mess injected into the logs; every rate defaults to 0 (clean logs).

    Attributes:
        exact_duplicate_rate: Share of events written twice, identical (a re-exported batch).
        near_duplicate_rate: Share of events written again a few seconds later under a new
            event id (double submit, retried webhook).
        near_duplicate_max_seconds: Largest delay of a near duplicate, seconds.
        identity_fragment_rate: Share of persons who also exist under a second customer
            reference whose e-mail differs by case, whitespace or plus-addressing, or whose
            phone number is formatted differently.
        fragment_event_share: Share of a fragmented person's events logged under the fragment.
        offset_timestamp_rate: Share of event and contact timestamps written with an explicit
            offset (``Z`` or ``+01:00``) instead of naive Europe/Berlin local time.
        malformed_rate: Extra malformed event rows, as a share of events, spread over
            unparseable dates, negative amounts, non-numeric amounts, unknown event types and
            empty customer references.
    """

    exact_duplicate_rate: float = 0.0
    near_duplicate_rate: float = 0.0
    near_duplicate_max_seconds: int = 30
    identity_fragment_rate: float = 0.0
    fragment_event_share: float = 0.3
    offset_timestamp_rate: float = 0.0
    malformed_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "exact_duplicate_rate",
            "near_duplicate_rate",
            "identity_fragment_rate",
            "fragment_event_share",
            "offset_timestamp_rate",
            "malformed_rate",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"mess.{name} must be in [0, 1], got {value}")
        if not 1 <= self.near_duplicate_max_seconds <= 59:
            raise ConfigError("mess.near_duplicate_max_seconds must be in 1..59")


@dataclass
class GenerateConfig:
    """``journeyopt-generate``: simulate a world under today's practice and write raw logs.

    Attributes:
        simulator: The world (``simulator.world``).
        output_dir: Folder the coworking-format CSV files and ``truth.json`` are written to.
        seed: Seed of the random generator; the same seed gives byte-identical files.
        n_customers: Customers in total: the initial population plus arrivals.
        weeks: Weeks simulated and logged.
        start_date: Monday (ISO date) the first logged week starts on, 00:00 UTC.
        initial_share: Share of the customers present at the start (the rest arrive as
            prospects spread uniformly over the weeks).
        exploration: Probability that the behaviour policy replaces the staff's action by a
            uniformly drawn allowed action.
        log_none_decisions: Write a ``none`` row to ``contacts.csv`` for every customer-week
            without contact, with its propensity.
        staff: Today's contact practice.
        mess: Mess injected into the logs.
        overwrite: Allow writing into a non-empty ``output_dir``.
    """

    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    output_dir: str = MISSING
    seed: int = 0
    n_customers: int = 2000
    weeks: int = 104
    start_date: str = "2023-01-02"
    initial_share: float = 0.4
    exploration: float = 0.1
    log_none_decisions: bool = True
    staff: StaffRulesConfig = field(default_factory=StaffRulesConfig)
    mess: MessConfig = field(default_factory=MessConfig)
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.n_customers < 1:
            raise ConfigError(f"n_customers must be >= 1, got {self.n_customers}")
        if self.weeks < 1:
            raise ConfigError(f"weeks must be >= 1, got {self.weeks}")
        if not 0.0 <= self.initial_share <= 1.0:
            raise ConfigError(f"initial_share must be in [0, 1], got {self.initial_share}")
        if not 0.0 <= self.exploration <= 1.0:
            raise ConfigError(f"exploration must be in [0, 1], got {self.exploration}")
        _ = self.start  # validates start_date

    @property
    def start(self) -> pd.Timestamp:
        """``start_date`` as Monday 00:00 UTC; a ``ConfigError`` if it is not a Monday."""
        try:
            ts = pd.Timestamp(self.start_date)
        except ValueError as err:
            raise ConfigError(f"start_date: not an ISO date: {self.start_date!r}") from err
        if ts.tzinfo is not None or ts != ts.normalize() or ts.weekday() != 0:
            raise ConfigError(f"start_date must be a Monday date, got {self.start_date!r}")
        return ts.tz_localize("UTC")


def register_configs() -> None:
    """Register the schemas in Hydra's ConfigStore (``simulator/base_simulator`` and
    ``base_generate``), referenced from the YAML defaults lists."""
    cs = ConfigStore.instance()
    cs.store(group="simulator", name="base_simulator", node=SimulatorConfig)
    cs.store(name="base_generate", node=GenerateConfig)
