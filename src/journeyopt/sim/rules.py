"""Contact rules: the one object that decides which actions are allowed for whom.

The same :class:`ContactRules` produces the action masks of the simulator (masked training),
the masking of target policies in off-policy evaluation, and the hard guard of serving, so a
policy is never credited in training for a contact that production would refuse.

Rules, checked in this order (the first that applies is the reason reported):

0. ``unsupported``: the world cannot value the action, for anybody: a calibrated world whose
   logs hold no (or too few) decisions that took it (``WorldSpec.unsupported_actions``, set by
   calibration; :func:`journeyopt.sim.behaviour.contact_rules` and
   :meth:`journeyopt.sim.config.RulesConfig.for_world` carry it into every world's rules).
1. ``opted_out``: the customer opted out of the action's channel (out of every channel: only
   ``none`` remains).
2. ``ineligible``: the customer cannot be reached on the channel (e.g. no phone number).
3. ``not_eligible``: the action (or its channel) is only for other customer types or
   lifecycle stages (:class:`Eligibility`).
4. ``quiet_week``: the week of year is a quiet week of the action or its channel
   (:class:`QuietWeeks`, e.g. no calls in ISO weeks 52 and 1).
5. ``frequency_cap``: a :class:`Cap` is reached: the customer already had ``max`` contacts
   counted by it (over all channels, some channels or some actions) within its own window
   (the state's ``contacts_<w>w*`` / ``action_contacts_<w>w_<action>`` features). The
   shorthands ``frequency_caps`` (per channel) and ``total_cap`` (all channels) are caps in
   the world's fatigue window.
6. ``cooldown``: the customer converted within the last ``cooldown_weeks`` weeks.
7. ``min_gap``: the customer was contacted (any channel) fewer than ``min_gap_weeks`` weeks ago.

``capacity`` (a weekly capacity per action, :attr:`ContactRules.capacity`) is not a rule of one
customer: serving reports it for the customers a full action was taken from
(:func:`journeyopt.serving.guards.apply_capacity`).

``none`` is always allowed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from journeyopt.data.source import SourceConfig
from journeyopt.errors import ConfigError
from journeyopt.panel.state import FeatureSpec, contacts_feature

REASONS: tuple[str, ...] = (
    "allowed",
    "opted_out",
    "ineligible",
    "frequency_cap",
    "cooldown",
    "min_gap",
    "quiet_week",
    "not_eligible",
    "capacity",
    "unsupported",
)
(
    ALLOWED,
    OPTED_OUT,
    INELIGIBLE,
    FREQUENCY_CAP,
    COOLDOWN,
    MIN_GAP,
    QUIET_WEEK,
    NOT_ELIGIBLE,
    CAPACITY,
    UNSUPPORTED,
) = range(len(REASONS))


PRICE_BASES: tuple[str, ...] = ("paid", "list")


@dataclass(frozen=True)
class ActionCatalog:
    """The company's actions: ``none`` first, each with its channel, cost and economics.

    No code tests an action's name: what an action costs and gives away is declared here.

    Attributes:
        names: (A,) action names; ``names[0] == "none"``.
        channels: (A,) contact channel of each action; ``""`` for ``none``.
        costs: (A,) cost of one contact, currency.
        discounts: (A,) fraction of the list value the action gives away on every conversion
            of the contacted customer in the week of the contact (a voucher, a price cut),
            in [0, 1); empty means no action gives a discount.
    """

    names: tuple[str, ...]
    channels: tuple[str, ...]
    costs: tuple[float, ...]
    discounts: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not self.names or self.names[0] != "none":
            raise ValueError(f"the first action must be 'none', got {self.names[:1]}")
        if not self.discounts:
            object.__setattr__(self, "discounts", (0.0,) * len(self.names))
        if not len(self.names) == len(self.channels) == len(self.costs) == len(self.discounts):
            raise ValueError("names, channels, costs and discounts must have the same length")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"duplicate action names: {self.names}")
        for name, rate in zip(self.names, self.discounts, strict=True):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"the discount of action {name!r} must be in [0, 1), got {rate}")
        if self.discounts[0] != 0.0:
            raise ValueError("the action 'none' gives no discount")

    @staticmethod
    def from_source(source: SourceConfig) -> ActionCatalog:
        """The catalogue declared in a source config (``data.actions``)."""
        specs = [source.actions[a] for a in source.action_names[1:]]
        return ActionCatalog(
            names=source.action_names,
            channels=("", *(s.channel for s in specs)),
            costs=(0.0, *(float(s.cost) for s in specs)),
            discounts=(0.0, *(float(s.discount) for s in specs)),
        )

    @cached_property
    def discount_rates(self) -> NDArray[np.float64]:
        """(A,) :attr:`discounts` as an array."""
        return np.asarray(self.discounts, np.float64)

    def list_divisors(self, prices: str) -> NDArray[np.float64]:
        """(A,) what logged revenue under each action is divided by to give its list value:
        ``1 - discount`` when the logged amounts are ``paid`` (after the discount), 1 when they
        are ``list`` prices (see :data:`PRICE_BASES`)."""
        if prices == "list":
            return np.ones(len(self.names))
        if prices != "paid":
            raise ValueError(f"prices must be one of {PRICE_BASES}, got {prices!r}")
        return 1.0 - self.discount_rates

    def list_values(
        self, revenue: NDArray[np.floating], actions: NDArray[np.integer], prices: str
    ) -> NDArray[np.float64]:
        """(N,) list value of logged revenue: what the week's conversions were worth before
        the discount of the week's action (the value the reward's margin is taken of).

        Args:
            revenue: (N,) logged revenue of a customer-week, currency (net of refunds).
            actions: (N,) index of the week's action.
            prices: What the logged amounts are: ``paid`` or ``list`` (:meth:`list_divisors`).
        """
        divisor = self.list_divisors(prices)[np.asarray(actions, np.int64)]
        return np.asarray(revenue, np.float64) / divisor

    @property
    def n_actions(self) -> int:
        return len(self.names)

    def index(self, names: NDArray[np.str_] | NDArray[np.object_] | list[str]) -> NDArray[np.int64]:
        """Action indices of action names; raises ``KeyError`` naming an unknown action."""
        lookup = {n: i for i, n in enumerate(self.names)}
        try:
            return np.array([lookup[str(n)] for n in names], dtype=np.int64)
        except KeyError as err:
            raise KeyError(f"unknown action {err.args[0]!r}; known: {self.names}") from None


@dataclass(frozen=True)
class Cap:
    """At most ``max`` contacts per customer within any ``window_weeks`` weeks, counting the
    contacts through ``channels`` or of ``actions`` (neither: every contact).

    Any ``window_weeks`` consecutive weeks hold at most ``max`` of the counted contacts: a
    counted action is forbidden this week when the ``window_weeks - 1`` weeks before it
    already hold ``max`` (the state's ``contacts_<window_weeks - 1>w*`` counts). A reached cap
    forbids every action it counts (every contact when it counts all).

    Attributes:
        max: Contacts allowed within the window (0 forbids the contacts it counts).
        window_weeks: The window, weeks, the current week included (1: this week alone).
        channels: Channels whose contacts are counted.
        actions: Actions whose contacts are counted (not together with ``channels``).
    """

    max: int
    window_weeks: int
    channels: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max < 0:
            raise ValueError(f"a cap's max must be >= 0, got {self.max}")
        if self.window_weeks < 1:
            raise ValueError(f"a cap's window_weeks must be >= 1, got {self.window_weeks}")
        if self.channels and self.actions:
            raise ValueError("a cap counts channels or actions, not both")

    @property
    def past_weeks(self) -> int:
        """Weeks before the current one the cap counts contacts in: ``window_weeks - 1``."""
        return self.window_weeks - 1

    def feature_names(self) -> tuple[str, ...]:
        """The state features whose sum this cap compares with :attr:`max` (none for a
        one-week window: no past contact counts)."""
        w = self.past_weeks
        if w == 0:
            return ()
        if self.actions:
            return tuple(contacts_feature(w, action=a) for a in self.actions)
        if self.channels:
            return tuple(contacts_feature(w, channel=c) for c in self.channels)
        return (contacts_feature(w),)

    def counted(self, catalog: ActionCatalog) -> NDArray[np.bool_]:
        """(A,) the actions this cap counts, hence forbids once reached (never ``none``)."""
        return selected_actions(catalog, self.channels, self.actions)


def selected_actions(
    catalog: ActionCatalog, channels: Collection[str], actions: Collection[str]
) -> NDArray[np.bool_]:
    """(A,) the contact actions named in ``actions``, or those of ``channels``, or (neither
    given) every contact action; never ``none``."""
    names, chans = np.asarray(catalog.names), np.asarray(catalog.channels)
    if actions:
        out = np.isin(names, list(actions))
    elif channels:
        out = np.isin(chans, list(channels))
    else:
        out = np.ones(len(names), np.bool_)
    out[0] = False
    return out


@dataclass(frozen=True)
class QuietWeeks:
    """No contact of ``actions`` (or through ``channels``; neither: no contact at all) in the
    ISO weeks of year ``weeks`` (every year: e.g. ``(52, 1)``, no calls around new year).

    Attributes:
        weeks: ISO weeks of year, 1..53.
        channels: Channels kept quiet.
        actions: Actions kept quiet (not together with ``channels``).
    """

    weeks: tuple[int, ...]
    channels: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.weeks or any(not 1 <= w <= 53 for w in self.weeks):
            raise ValueError(f"quiet weeks must be ISO weeks 1..53, got {self.weeks}")
        if self.channels and self.actions:
            raise ValueError("quiet weeks name channels or actions, not both")


@dataclass(frozen=True)
class Eligibility:
    """``actions`` (or the actions of ``channels``; neither: every contact) are only for
    customers of the given types and lifecycle stages.

    Attributes:
        segments: Customer type indices (into the world's segment names) allowed; empty: any.
        lifecycle: Lifecycle stage codes (:data:`journeyopt.panel.state.LIFECYCLE_STAGES`)
            allowed; empty: any.
        channels: Channels the rule is about.
        actions: Actions the rule is about (not together with ``channels``).
    """

    segments: tuple[int, ...] = ()
    lifecycle: tuple[int, ...] = ()
    channels: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.channels and self.actions:
            raise ValueError("an eligibility rule names channels or actions, not both")
        if not self.segments and not self.lifecycle:
            raise ValueError("an eligibility rule needs segments or lifecycle stages")

    def eligible(
        self, segment: NDArray[np.integer], lifecycle: NDArray[np.integer]
    ) -> NDArray[np.bool_]:
        """(N,) customers the rule's actions are allowed for (an unknown type, -1: not)."""
        ok = np.ones(segment.shape[0], np.bool_)
        if self.segments:
            ok &= np.isin(segment, self.segments)
        if self.lifecycle:
            ok &= np.isin(lifecycle, self.lifecycle)
        return ok


def shorthand_caps(
    spec: FeatureSpec, frequency_caps: Mapping[str, int], total_cap: int | None
) -> tuple[Cap, ...]:
    """The caps ``frequency_caps`` (channel -> contacts) and ``total_cap`` (all channels)
    stand for: fewer than the cap in the past fatigue window (``contacts_<fw>w*``) before a
    contact, i.e. any ``fatigue_weeks + 1`` weeks hold at most the cap."""
    w = spec.fatigue_weeks + 1
    caps = [Cap(n, w, channels=(c,)) for c, n in frequency_caps.items()]
    if total_cap is not None:
        caps.append(Cap(total_cap, w))
    return tuple(caps)


def rule_feature_spec(spec: FeatureSpec, caps: tuple[Cap, ...]) -> FeatureSpec:
    """``spec`` extended by the windows and actions ``caps`` count, so that the one state
    code computes every feature the caps read (the fatigue window's per-channel counts are
    there already)."""
    windows = [
        c.past_weeks
        for c in caps
        if c.past_weeks > 0 and (c.actions or c.past_weeks != spec.fatigue_weeks)
    ]
    actions = [a for c in caps for a in c.actions]
    return spec.with_rule_features(windows, actions)


@dataclass(frozen=True)
class ContactRules:
    """Business rules on contacts, applied as action masks.

    Attributes:
        catalog: The action catalogue.
        spec: Feature windows; the frequency caps count contacts in ``spec.fatigue_weeks``.
        frequency_caps: Channel -> maximum contacts within the fatigue window (channels not
            listed are uncapped).
        cooldown_weeks: No contact for this many weeks after a conversion (0 disables).
        total_cap: Maximum contacts within the fatigue window over all channels together
            (None: no such cap): "at most 2 contacts per person in any 4 weeks".
        min_gap_weeks: At least this many weeks between two contacts of a customer, any
            channel (0 or 1 disables: one decision a week already).
        caps: Caps over any set of channels or actions, each with its own window; their
            features must be in ``spec.all_feature_names`` (:func:`rule_feature_spec`).
        quiet: Weeks of year without given actions or channels.
        eligibility: Actions or channels only for given customer types / lifecycle stages.
        capacity: Action -> most customers it may be given in one week (the call team's
            size); applied over a whole week's decisions, not per customer: serving gives the
            action where it is worth most (:func:`journeyopt.serving.guards.apply_capacity`),
            simulations hold the optimum and training to it on average through a price on the
            action (:mod:`journeyopt.evaluation.capacity`); masks ignore it.
        unsupported: Actions forbidden to everybody because the world cannot value them (the
            world's ``unsupported_actions``: no logged support), reason ``unsupported``.
    """

    catalog: ActionCatalog
    spec: FeatureSpec
    frequency_caps: Mapping[str, int] = field(default_factory=dict)
    cooldown_weeks: int = 0
    total_cap: int | None = None
    min_gap_weeks: int = 0
    caps: tuple[Cap, ...] = ()
    quiet: tuple[QuietWeeks, ...] = ()
    eligibility: tuple[Eligibility, ...] = ()
    capacity: Mapping[str, int] = field(default_factory=dict)
    unsupported: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        channels = set(self.spec.contact_channels)
        if bad := [a for a in self.unsupported if a not in self.catalog.names[1:]]:
            raise ValueError(f"unsupported names unknown actions {bad}")
        unknown = {c for c in self.catalog.channels[1:] if c not in channels}
        if unknown:
            raise ValueError(f"actions use channels {unknown} not in {self.spec.contact_channels}")
        for channel, cap in self.frequency_caps.items():
            if channel not in channels:
                raise ValueError(f"frequency cap for unknown channel {channel!r}")
            if cap < 0:
                raise ValueError(f"frequency cap for {channel!r} must be >= 0, got {cap}")
        if self.cooldown_weeks < 0:
            raise ValueError(f"cooldown_weeks must be >= 0, got {self.cooldown_weeks}")
        if self.total_cap is not None and self.total_cap < 0:
            raise ValueError(f"total_cap must be >= 0, got {self.total_cap}")
        if self.min_gap_weeks < 0:
            raise ValueError(f"min_gap_weeks must be >= 0, got {self.min_gap_weeks}")
        for kind, rules in (
            ("cap", self.caps),
            ("quiet", self.quiet),
            ("eligibility", self.eligibility),
        ):
            for rule in rules:
                if bad := [c for c in rule.channels if c not in channels]:
                    raise ValueError(f"a {kind} rule names unknown channels {bad}")
                if bad := [a for a in rule.actions if a not in self.catalog.names[1:]]:
                    raise ValueError(f"a {kind} rule names unknown actions {bad}")
        for action, limit in self.capacity.items():
            if action not in self.catalog.names[1:]:
                raise ValueError(f"a capacity for unknown action {action!r}")
            if limit < 0:
                raise ValueError(f"the capacity of {action!r} must be >= 0, got {limit}")
        known = set(self.spec.all_feature_names)
        for rule in self.all_caps:
            if missing := [f for f in rule.feature_names() if f not in known]:
                raise ValueError(
                    f"the state cannot evaluate a cap of {rule.max} in {rule.window_weeks} "
                    f"weeks: it lacks the features {missing} (count them with rule_feature_spec)"
                )

    def require_features(self, names: Collection[str], where: str) -> None:
        """Raise a one-line ``ConfigError`` unless ``names`` hold every feature these rules
        read (e.g. a panel built without the rules' windows).

        Args:
            names: Feature names (of a spec, or columns of a panel) the rules will be given.
            where: What holds those features, for the message.
        """
        if missing := [f for f in self.spec.all_feature_names if f not in names]:
            raise ConfigError(
                f"{where} cannot evaluate the contact rules: it lacks {missing} (build it "
                f"with panel.rule_windows={list(self.spec.rule_windows)} "
                f"panel.rule_actions={list(self.spec.rule_actions)})"
            )

    @cached_property
    def all_caps(self) -> tuple[Cap, ...]:
        """Every cap: the shorthands then :attr:`caps`; the one list :meth:`reasons`
        evaluates (:func:`shorthand_caps`)."""
        return (*shorthand_caps(self.spec, self.frequency_caps, self.total_cap), *self.caps)

    def summary(self) -> str:
        """The rules in one line, for a start-up banner (caps with their windows, cool-down,
        gap, quiet weeks, eligibility, capacities); ``opt-outs only`` when there is none."""

        def what(channels: tuple[str, ...], actions: tuple[str, ...]) -> str:
            return "+".join(actions or channels) or "all contacts"

        parts = [
            f"{what(c.channels, c.actions)} <= {c.max} in any {c.window_weeks} weeks"
            for c in self.all_caps
        ]
        if self.cooldown_weeks:
            parts.append(f"cool-down {self.cooldown_weeks} weeks")
        if self.min_gap_weeks > 1:
            parts.append(f"gap {self.min_gap_weeks} weeks")
        parts += [
            f"no {what(q.channels, q.actions)} in weeks {','.join(map(str, q.weeks))}"
            for q in self.quiet
        ]
        parts += [
            f"{what(e.channels, e.actions)} for some customers only" for e in self.eligibility
        ]
        parts += [f"{a} <= {k} a week" for a, k in self.capacity.items()]
        return "; ".join(parts) or "opt-outs only"

    @cached_property
    def capacity_limits(self) -> NDArray[np.int64]:
        """(A,) most customers per week of each action; -1: no capacity."""
        out = np.full(self.catalog.n_actions, -1, np.int64)
        for action, limit in self.capacity.items():
            out[self.catalog.names.index(action)] = limit
        return out

    def reasons(
        self,
        features: Mapping[str, NDArray[np.generic]],
        reachable: NDArray[np.bool_] | None = None,
        *,
        segment: NDArray[np.integer] | None = None,
        week_of_year: int | NDArray[np.integer] | None = None,
    ) -> NDArray[np.int8]:
        """(N, A) reason code per customer and action (see :data:`REASONS`); 0 = allowed.

        Args:
            features: Feature arrays from :func:`journeyopt.panel.state.state_features` (or
                panel columns of the same names), each of shape (N,).
            reachable: Optional (N, C) channel eligibility in ``spec.contact_channels`` order;
                all reachable when omitted.
            segment: (N,) customer type index (-1: unknown); needed by eligibility rules on
                types.
            week_of_year: ISO week of year (1..53) of the decision, one for all or (N,);
                needed by quiet weeks.

        Raises:
            ValueError: The rules need ``segment`` or ``week_of_year`` and it is missing.
        """
        n = len(next(iter(features.values())))
        codes = np.zeros((n, self.catalog.n_actions), np.int8)
        base = np.zeros(n, np.int8)
        if self.min_gap_weeks > 1:  # NaN (never contacted) compares False: no gap to keep
            since = np.asarray(features["weeks_since_contact"], np.float64)
            base = np.where(since < self.min_gap_weeks, np.int8(MIN_GAP), base)
        if self.cooldown_weeks > 0:
            recency = np.asarray(features["recency_weeks"], np.float64)
            base = np.where(recency <= self.cooldown_weeks, np.int8(COOLDOWN), base)
        codes[:, 1:] = base[:, None]
        for cap in self.all_caps:
            recent = np.zeros(n)
            for name in cap.feature_names():
                recent = recent + np.asarray(features[name], np.float64)
            cols = np.flatnonzero(cap.counted(self.catalog))
            reached = (recent >= cap.max)[:, None]
            codes[:, cols] = np.where(reached, np.int8(FREQUENCY_CAP), codes[:, cols])
        if self.quiet:
            if week_of_year is None:
                raise ValueError("these contact rules have quiet weeks: give the week of year")
            woy = np.broadcast_to(np.asarray(week_of_year, np.int64), (n,))
            for quiet in self.quiet:
                cols = np.flatnonzero(selected_actions(self.catalog, quiet.channels, quiet.actions))
                hit = np.isin(woy, quiet.weeks)[:, None]
                codes[:, cols] = np.where(hit, np.int8(QUIET_WEEK), codes[:, cols])
        if self.eligibility:
            if segment is None and any(e.segments for e in self.eligibility):
                raise ValueError("these contact rules depend on the customer type: give segment")
            seg = np.full(n, -1, np.int64) if segment is None else np.asarray(segment, np.int64)
            stage = np.asarray(features["lifecycle"], np.int64)
            for rule in self.eligibility:
                cols = np.flatnonzero(selected_actions(self.catalog, rule.channels, rule.actions))
                out = ~rule.eligible(seg, stage)[:, None]
                codes[:, cols] = np.where(out, np.int8(NOT_ELIGIBLE), codes[:, cols])
        channels = self.spec.contact_channels
        for channel in dict.fromkeys(self.catalog.channels[1:]):
            j = channels.index(channel)
            cols = np.flatnonzero(np.asarray(self.catalog.channels) == channel)
            code = codes[:, cols]
            if reachable is not None:
                code = np.where(~reachable[:, j, None], np.int8(INELIGIBLE), code)
            opted = np.asarray(features[f"opted_out_{channel}"], bool)
            codes[:, cols] = np.where(opted[:, None], np.int8(OPTED_OUT), code)
        codes[:, self.unsupported_columns] = UNSUPPORTED
        return codes

    @cached_property
    def unsupported_columns(self) -> NDArray[np.int64]:
        """Indices of the :attr:`unsupported` actions."""
        return np.array([self.catalog.names.index(a) for a in self.unsupported], np.int64)

    def masks(
        self,
        features: Mapping[str, NDArray[np.generic]],
        reachable: NDArray[np.bool_] | None = None,
        *,
        segment: NDArray[np.integer] | None = None,
        week_of_year: int | NDArray[np.integer] | None = None,
    ) -> NDArray[np.bool_]:
        """(N, A) True where the action is allowed; column 0 (``none``) is always True
        (arguments as :meth:`reasons`)."""
        codes = self.reasons(features, reachable, segment=segment, week_of_year=week_of_year)
        return codes == ALLOWED

    def guard(
        self,
        actions: NDArray[np.integer],
        features: Mapping[str, NDArray[np.generic]],
        reachable: NDArray[np.bool_] | None = None,
        *,
        segment: NDArray[np.integer] | None = None,
        week_of_year: int | NDArray[np.integer] | None = None,
    ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Replace forbidden actions by ``none``; returns (actions, was_overridden), each (N,)
        (other arguments as :meth:`reasons`)."""
        actions = np.asarray(actions, np.int64)
        masks = self.masks(features, reachable, segment=segment, week_of_year=week_of_year)
        allowed = masks[np.arange(actions.shape[0]), actions]
        return np.where(allowed, actions, 0), ~allowed
