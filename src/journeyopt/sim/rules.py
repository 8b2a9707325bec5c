"""Contact rules: the one object that decides which actions are allowed for whom.

The same :class:`ContactRules` produces the action masks of the simulator (masked training),
the masking of target policies in off-policy evaluation, and the hard guard of serving, so a
policy is never credited in training for a contact that production would refuse.

Rules, checked in this order (the first that applies is the reason reported):

1. ``opted_out``: the customer opted out of the action's channel (out of every channel: only
   ``none`` remains).
2. ``ineligible``: the customer cannot be reached on the channel (e.g. no phone number).
3. ``frequency_cap``: the customer already had ``cap`` contacts on the channel within the
   fatigue window (``contacts_<w>w_<channel>`` feature), or ``total_cap`` contacts over all
   channels together (``contacts_<w>w``).
4. ``cooldown``: the customer converted within the last ``cooldown_weeks`` weeks.
5. ``min_gap``: the customer was contacted (any channel) fewer than ``min_gap_weeks`` weeks ago.

``none`` is always allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from journeyopt.data.source import SourceConfig
from journeyopt.panel.state import FeatureSpec

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
    """

    catalog: ActionCatalog
    spec: FeatureSpec
    frequency_caps: Mapping[str, int] = field(default_factory=dict)
    cooldown_weeks: int = 0
    total_cap: int | None = None
    min_gap_weeks: int = 0

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
        if self.total_cap is not None:
            recent = np.asarray(features[f"contacts_{self.spec.fatigue_weeks}w"])
            base = np.where(recent >= self.total_cap, np.int8(FREQUENCY_CAP), base)
        channels = self.spec.contact_channels
        by_channel: dict[str, NDArray[np.int8]] = {}  # the code depends on the channel only
        for a, channel in enumerate(self.catalog.channels):
            if a == 0:
                continue
            if channel not in by_channel:
                j = channels.index(channel)
                cap = self.frequency_caps.get(channel)
                code = base
                if cap is not None:
                    recent = np.asarray(features[f"contacts_{self.spec.fatigue_weeks}w_{channel}"])
                    code = np.where(recent >= cap, np.int8(FREQUENCY_CAP), code)
                if reachable is not None:
                    code = np.where(~reachable[:, j], np.int8(INELIGIBLE), code)
                opted = np.asarray(features[f"opted_out_{channel}"], bool)
                by_channel[channel] = np.where(opted, np.int8(OPTED_OUT), code)
            codes[:, a] = by_channel[channel]
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
