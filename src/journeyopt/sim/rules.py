"""Contact rules: the one object that decides which actions are allowed for whom.

The same :class:`ContactRules` produces the action masks of the simulator (masked training),
the masking of target policies in off-policy evaluation, and the hard guard of serving, so a
policy is never credited in training for a contact that production would refuse.

Rules, checked in this order (the first that applies is the reason reported):

1. ``opted_out``: the customer opted out of the action's channel (out of every channel: only
   ``none`` remains).
2. ``ineligible``: the customer cannot be reached on the channel (e.g. no phone number).
3. ``frequency_cap``: a :class:`Cap` is reached: the customer already had ``max`` contacts
   counted by it (over all channels, some channels or some actions) within its own window
   (the state's ``contacts_<w>w*`` / ``action_contacts_<w>w_<action>`` features). The
   shorthands ``frequency_caps`` (per channel) and ``total_cap`` (all channels) are caps in
   the world's fatigue window.
4. ``cooldown``: the customer converted within the last ``cooldown_weeks`` weeks.
5. ``min_gap``: the customer was contacted (any channel) fewer than ``min_gap_weeks`` weeks ago.

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
)
ALLOWED, OPTED_OUT, INELIGIBLE, FREQUENCY_CAP, COOLDOWN, MIN_GAP = range(len(REASONS))


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
        names, channels = np.asarray(catalog.names), np.asarray(catalog.channels)
        if self.actions:
            out = np.isin(names, self.actions)
        elif self.channels:
            out = np.isin(channels, self.channels)
        else:
            out = np.ones(len(names), np.bool_)
        out[0] = False
        return out


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
    """

    catalog: ActionCatalog
    spec: FeatureSpec
    frequency_caps: Mapping[str, int] = field(default_factory=dict)
    cooldown_weeks: int = 0
    total_cap: int | None = None
    min_gap_weeks: int = 0
    caps: tuple[Cap, ...] = ()

    def __post_init__(self) -> None:
        channels = set(self.spec.contact_channels)
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
        for rule in self.caps:
            if bad := [c for c in rule.channels if c not in channels]:
                raise ValueError(f"a cap counts unknown channels {bad}")
            if bad := [a for a in rule.actions if a not in self.catalog.names[1:]]:
                raise ValueError(f"a cap counts unknown actions {bad}")
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

    def reasons(
        self,
        features: Mapping[str, NDArray[np.generic]],
        reachable: NDArray[np.bool_] | None = None,
    ) -> NDArray[np.int8]:
        """(N, A) reason code per customer and action (see :data:`REASONS`); 0 = allowed.

        Args:
            features: Feature arrays from :func:`journeyopt.panel.state.state_features` (or
                panel columns of the same names), each of shape (N,).
            reachable: Optional (N, C) channel eligibility in ``spec.contact_channels`` order;
                all reachable when omitted.
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
        channels = self.spec.contact_channels
        for channel in dict.fromkeys(self.catalog.channels[1:]):
            j = channels.index(channel)
            cols = np.flatnonzero(np.asarray(self.catalog.channels) == channel)
            code = codes[:, cols]
            if reachable is not None:
                code = np.where(~reachable[:, j, None], np.int8(INELIGIBLE), code)
            opted = np.asarray(features[f"opted_out_{channel}"], bool)
            codes[:, cols] = np.where(opted[:, None], np.int8(OPTED_OUT), code)
        return codes

    def masks(
        self,
        features: Mapping[str, NDArray[np.generic]],
        reachable: NDArray[np.bool_] | None = None,
    ) -> NDArray[np.bool_]:
        """(N, A) True where the action is allowed; column 0 (``none``) is always True."""
        return self.reasons(features, reachable) == ALLOWED

    def guard(
        self,
        actions: NDArray[np.integer],
        features: Mapping[str, NDArray[np.generic]],
        reachable: NDArray[np.bool_] | None = None,
    ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Replace forbidden actions by ``none``; returns (actions, was_overridden), each (N,)."""
        actions = np.asarray(actions, np.int64)
        allowed = self.masks(features, reachable)[np.arange(actions.shape[0]), actions]
        return np.where(allowed, actions, 0), ~allowed
