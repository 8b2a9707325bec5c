"""A second ground-truth world outside the calibrated model's family: an online coffee roastery.

The coworking world (:mod:`journeyopt.sim.dynamics`) responds only to the discrete summary the
calibrated worlds are built on (segment, lifetime conversions, recency, weeks since contact and
engagement, opt-outs). This world deliberately does not. Its customers respond to

- **count-based fatigue**: the number of contacts over all channels in the last
  ``history_weeks`` weeks (not the weeks since the last one) damps the lift of a contact and
  raises the opt-out risk;
- **delayed effects that depend on the action**: each action has a lift profile over the weeks
  after it (a call lifts the purchase probability two and three weeks later, a voucher only in
  its week, a postcard in its week and the next);
- **purchase cycles**: a customer re-buys about every ``cycle_weeks`` weeks, set by a latent
  type that is not on record (the customers file carries a weakly informative acquisition
  channel only);
- **refunds**: a share of orders is refunded one or two weeks later;
- **a contact rule over all channels**: at most ``max_contacts`` contacts in any
  ``history_weeks`` consecutive weeks, enforced on the world's own state.

The true state of ``N`` customers (:class:`ShopState`, each array (N,)) is the latent type, the
weeks since the last purchase (capped at ``recency_cap_weeks``, the cap meaning "that long or
longer"), the contact history of the last ``history_weeks`` weeks as a bit pattern (bit ``j``:
contacted ``j + 1`` weeks ago), the pending delayed effect (the latest action with a lift
profile longer than one week and its age; a newer such action replaces it) and the opt-out from
all marketing. The state is Markov and small, so :mod:`journeyopt.sim.shop_optimum` solves the
exact optimum over it.

Reward of a customer-week (currency): ``(margin_rate - discount[a]) * v - cost[a]`` with ``v``
the list value of the week's order (0 without one); a refunded order earns nothing: its
contribution is reversed ``lag`` weeks later, which the reward of the purchase week carries as
``- gamma**lag * (margin_rate - discount[a]) * v`` (the discounted value is the same and no
refund falls off the end of a finite horizon).

Every function here is pure and vectorised: (state, action, rng, params) in, arrays out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import NDArray

from journeyopt.errors import ConfigError, format_mismatch
from journeyopt.panel.state import FeatureSpec
from journeyopt.sim.rules import ActionCatalog
from journeyopt.sim.world import WORLDS_DIR, check_distribution, check_probability, required_section

Float = NDArray[np.float64]
IntArray = NDArray[np.int64]
Bool = NDArray[np.bool_]

SHOP_FORMAT_VERSION = 1
"""Format of a shop world file (``format_version`` in its ``world.yaml``, e.g.
``simulators/roastery/world.yaml``): its keys and what they mean. Bump it whenever a change
makes an earlier file read differently; :func:`load_shop` refuses another version with a
one-line :class:`ShopFormatError`. A file without it is format 0, read if it still reads."""

N_UNIFORMS = 5
"""Uniform draws per customer-week: purchase, opt-out, e-mail click, refund, refund lag (plus
one standard Gamma variate for the order value)."""


@dataclass(frozen=True)
class ShopType:
    """One latent customer type (not on record; inferred from behaviour at best).

    Logits are of the weekly purchase probability.

    Attributes:
        name: Type name (only in the world's files; never written to the logs).
        share: Share of customers of this type.
        cycle_weeks: Weeks between purchases ``k``: the logit rises from ``base_logit`` to
            ``peak_logit`` as ``(w / k)^2`` for weeks since purchase ``w <= k``.
        base_logit: Logit right after a purchase and long after the cycle.
        peak_logit: Logit at ``w = k``.
        decay_weeks: E-folding time of the decay back to ``base_logit`` after the cycle.
        order_value: Mean list value of an order, currency.
        value_shape: Gamma shape of the order value around its mean.
        refund_rate: Probability that an order is refunded (one or two weeks later).
        fatigue: Fraction of a contact's same-week lift lost per contact in the last
            ``history_weeks`` weeks (all channels): factor ``max(0, 1 - fatigue * n)``.
        optout_fatigue: The opt-out probability of a contact is multiplied by
            ``1 + optout_fatigue * n``.
        click_rate: Probability that an e-mail contact is clicked (an engagement event).
        lifts: Action -> purchase-logit lift at ages 0, 1, ... weeks after the contact; age 0
            is damped by fatigue, later ages are not.
        acquisition: Acquisition channel -> probability (the weakly informative attribute of
            the customers file).
    """

    name: str
    share: float
    cycle_weeks: float
    base_logit: float
    peak_logit: float
    decay_weeks: float
    order_value: float
    value_shape: float
    refund_rate: float
    fatigue: float
    optout_fatigue: float
    click_rate: float
    lifts: Mapping[str, tuple[float, ...]]
    acquisition: Mapping[str, float]

    def __post_init__(self) -> None:
        where = f"shop.types.{self.name}"
        for name in ("share", "refund_rate", "click_rate", "fatigue"):
            check_probability(getattr(self, name), f"{where}.{name}")
        for name in ("cycle_weeks", "decay_weeks", "order_value", "value_shape"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{where}.{name} must be > 0")
        if self.optout_fatigue < 0:
            raise ConfigError(f"{where}.optout_fatigue must be >= 0")
        check_distribution(self.acquisition, f"{where}.acquisition", tolerance=1e-6)


@dataclass(frozen=True)
class ShopSpec:
    """The roastery world's parameters (``simulators/<name>/world.yaml`` with ``kind: shop``).

    Attributes:
        name: World name.
        currency: Currency of values and costs.
        margin_rate: Share of an order's list value that is margin.
        channels: Contact channels, in the order of the panel's channel axis.
        actions: The action catalogue (``none`` first; channel, cost, discount).
        optout: (A,) opt-out probability of one contact of each action, unfatigued; 0 for
            ``none``. An opt-out is from all marketing.
        types: The latent customer types.
        season: (54,) purchase-logit shift by ISO week of year (index 0 unused).
        features: The panel's windows for this business (``features:`` of ``world.yaml``:
            lapse, frequency, fatigue and engagement weeks) over ``channels``: the features its
            practice and rules read and the truth's panel state keeps.
        recency_cap_weeks: Weeks since purchase are exact below the cap (``W``).
        history_weeks: Length of the contact history and of the contact rule's window.
        max_contacts: At most this many contacts in any ``history_weeks`` consecutive weeks.
        refund_lag_weeks: A refund comes this many weeks after the order (uniform choice).
        acquisition_labels: The acquisition channels of the customers file.
        campaign_codes: (A,) the marketing tool's code of each action in the raw export
            (``""`` for ``none``); an action without one is written under its name.
    """

    name: str
    currency: str
    margin_rate: float
    channels: tuple[str, ...]
    actions: ActionCatalog
    optout: tuple[float, ...]
    types: tuple[ShopType, ...]
    season: tuple[float, ...]
    features: FeatureSpec
    recency_cap_weeks: int
    history_weeks: int
    max_contacts: int
    refund_lag_weeks: tuple[int, ...]
    acquisition_labels: tuple[str, ...] = field(default=())
    campaign_codes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.campaign_codes:
            object.__setattr__(self, "campaign_codes", ("", *self.actions.names[1:]))
        if len(self.campaign_codes) != self.actions.n_actions:
            raise ConfigError("shop.actions: one campaign_code per action")
        check_probability(self.margin_rate, "shop.margin_rate")
        if len(self.optout) != self.actions.n_actions or self.optout[0] != 0.0:
            raise ConfigError("shop.optout must give one probability per action, 0 for 'none'")
        for p in self.optout:
            check_probability(p, "shop.actions.<name>.optout")
        check_distribution(
            {t.name: t.share for t in self.types}, "shop.types shares", tolerance=1e-6
        )
        if len(self.season) != 54:
            raise ConfigError("shop.season must have 54 entries")
        if self.recency_cap_weeks < 2 or not 1 <= self.max_contacts <= self.history_weeks:
            raise ConfigError("shop: recency_cap_weeks >= 2, 1 <= max_contacts <= history_weeks")
        if not self.refund_lag_weeks or min(self.refund_lag_weeks) < 1:
            raise ConfigError("shop.refund_lag_weeks must be positive weeks")
        for t in self.types:
            unknown = set(t.lifts) - set(self.actions.names[1:])
            if unknown:
                raise ConfigError(f"shop.types.{t.name}.lifts: unknown actions {unknown}")
            labels = set(t.acquisition) - set(self.acquisition_labels)
            if labels:
                raise ConfigError(f"shop.types.{t.name}.acquisition: unknown labels {labels}")
        unknown_channels = {c for c in self.actions.channels[1:] if c not in self.channels}
        if unknown_channels:
            raise ConfigError(f"shop.actions use channels {unknown_channels} not in channels")

    @property
    def type_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.types)

    @property
    def n_types(self) -> int:
        return len(self.types)

    @cached_property
    def params(self) -> ShopParams:
        """The parameters as read-only arrays (see :class:`ShopParams`)."""
        return _params(self)


@dataclass(frozen=True, eq=False)
class ShopParams:
    """A shop's parameters as arrays; ``Z`` types, ``A`` actions, ``L`` lift ages, ``P``
    pending effects, ``W`` the recency cap.

    Attributes:
        cycle_logit: (Z, W + 1) purchase logit by weeks since purchase ``w`` (index 0 unused).
        order_value, value_shape, refund_rate, fatigue, optout_fatigue, click_rate: (Z,).
        share: (Z,) type shares.
        lift: (Z, A, L) logit lift at each age after a contact (zero-padded).
        optout: (A,) unfatigued opt-out probability of a contact.
        cost: (A,) contact cost; discount: (A,) discount rate; email: (A,) e-mail action.
        channel: (A,) channel index, -1 for ``none``.
        pending_action, pending_age: (P,) action and age of each pending effect; entry 0 is
            "no pending effect" (action 0, age 0).
        start_pending: (A,) pending effect an action starts (0 when its profile is one week).
        next_pending: (P,) the pending effect one week later without a new one.
        pending_lift: (Z, P) the logit lift a pending effect gives this week.
        acquisition: (Z, G) probability of each acquisition label.
        season: (54,) purchase-logit shift by ISO week of year.
    """

    cycle_logit: Float
    order_value: Float
    value_shape: Float
    refund_rate: Float
    fatigue: Float
    optout_fatigue: Float
    click_rate: Float
    share: Float
    lift: Float
    optout: Float
    cost: Float
    discount: Float
    email: Bool
    channel: IntArray
    pending_action: IntArray
    pending_age: IntArray
    start_pending: IntArray
    next_pending: IntArray
    pending_lift: Float
    acquisition: Float
    season: Float

    @property
    def n_pending(self) -> int:
        return int(self.pending_action.shape[0])


def cycle_curve(t: ShopType, cap: int) -> Float:
    """(cap + 1,) purchase logit of type ``t`` by weeks since purchase (index 0 unused): a rise
    as ``(w / k)^2`` up to the cycle ``k``, then an exponential decay back to the base."""
    w = np.arange(cap + 1, dtype=np.float64)
    k = t.cycle_weeks
    shape = np.where(w <= k, (w / k) ** 2, np.exp(-(w - k) / t.decay_weeks))
    return t.base_logit + (t.peak_logit - t.base_logit) * shape


def _params(spec: ShopSpec) -> ShopParams:
    names = spec.actions.names
    n_ages = max([1, *(len(v) for t in spec.types for v in t.lifts.values())])
    lift = np.zeros((spec.n_types, len(names), n_ages))
    for z, t in enumerate(spec.types):
        for a, name in enumerate(names):
            profile = t.lifts.get(name, ())
            lift[z, a, : len(profile)] = profile
    # an action starts a pending effect when any type's profile is longer than one week
    length = np.zeros(len(names), np.int64)
    for a, name in enumerate(names):
        length[a] = max([0, *(len(t.lifts.get(name, ())) for t in spec.types)])
    pending = [(0, 0)] + [(a, age) for a in range(len(names)) for age in range(1, length[a])]
    pending_action = np.array([p[0] for p in pending], np.int64)
    pending_age = np.array([p[1] for p in pending], np.int64)
    index = {p: i for i, p in enumerate(pending)}
    start = np.array([index.get((a, 1), 0) for a in range(len(names))], np.int64)
    nxt = np.array([index.get((a, age + 1), 0) if a else 0 for a, age in pending], np.int64)
    pending_lift = lift[:, pending_action, pending_age]
    pending_lift[:, 0] = 0.0
    channel = np.array([spec.channels.index(c) if c else -1 for c in spec.actions.channels])
    email_channel = spec.channels.index("email") if "email" in spec.channels else -2
    labels = spec.acquisition_labels
    params = ShopParams(
        cycle_logit=np.stack([cycle_curve(t, spec.recency_cap_weeks) for t in spec.types]),
        order_value=np.array([t.order_value for t in spec.types]),
        value_shape=np.array([t.value_shape for t in spec.types]),
        refund_rate=np.array([t.refund_rate for t in spec.types]),
        fatigue=np.array([t.fatigue for t in spec.types]),
        optout_fatigue=np.array([t.optout_fatigue for t in spec.types]),
        click_rate=np.array([t.click_rate for t in spec.types]),
        share=np.array([t.share for t in spec.types]),
        lift=lift,
        optout=np.array(spec.optout, np.float64),
        cost=np.array(spec.actions.costs, np.float64),
        discount=spec.actions.discount_rates.copy(),
        email=channel == email_channel,
        channel=channel.astype(np.int64),
        pending_action=pending_action,
        pending_age=pending_age,
        start_pending=start,
        next_pending=nxt,
        pending_lift=pending_lift,
        acquisition=np.array([[t.acquisition.get(g, 0.0) for g in labels] for t in spec.types]),
        season=np.array(spec.season, np.float64),
    )
    for value in vars(params).values():
        value.flags.writeable = False
    return params


@dataclass(frozen=True)
class ShopState:
    """The true state of ``N`` customers at the start of a week, each array (N,) int64.

    Attributes:
        type: Latent type index, ``0..Z-1``.
        weeks: Weeks since the last purchase, ``1..W`` (``W``: that long or longer).
        history: Contact bits of the last ``history_weeks`` weeks (bit ``j``: a contact
            ``j + 1`` weeks ago), ``0..2^history_weeks - 1``.
        pending: Pending delayed effect index (0 = none; see :class:`ShopParams`).
        optout: 1 when the customer opted out of all marketing.
    """

    type: IntArray
    weeks: IntArray
    history: IntArray
    pending: IntArray
    optout: IntArray

    @property
    def n(self) -> int:
        return int(self.type.shape[0])

    def take(self, index: NDArray[np.integer]) -> ShopState:
        """The state of customers ``index``."""
        return ShopState(*(np.asarray(getattr(self, f))[index] for f in _STATE_FIELDS))


_STATE_FIELDS = ("type", "weeks", "history", "pending", "optout")


def popcount(bits: NDArray[np.integer]) -> IntArray:
    """(N,) number of set bits of small non-negative integers (< 2^8)."""
    b = np.asarray(bits, np.int64)
    count = np.zeros(b.shape, np.int64)
    for j in range(8):
        count += (b >> j) & 1
    return count


def recent_contacts(spec: ShopSpec, state: ShopState) -> IntArray:
    """(N,) contacts over all channels in the last ``history_weeks`` weeks."""
    return popcount(state.history)


def allowed_actions(spec: ShopSpec, state: ShopState) -> Bool:
    """(N, A) the world's own contact rule: ``none`` always; a contact only without an
    opt-out and when the last ``history_weeks - 1`` weeks hold fewer than ``max_contacts``
    contacts (so no ``history_weeks`` consecutive weeks ever hold more than ``max_contacts``)."""
    window = (1 << (spec.history_weeks - 1)) - 1
    room = popcount(state.history & window) < spec.max_contacts
    contact_ok = room & (state.optout == 0)
    out = np.repeat(contact_ok[:, None], spec.actions.n_actions, axis=1)
    out[:, 0] = True
    return out


def guard(spec: ShopSpec, state: ShopState, actions: NDArray[np.integer]) -> IntArray:
    """(N,) ``actions`` with the ones the contact rule forbids replaced by ``none``."""
    a = np.asarray(actions, np.int64)
    ok = allowed_actions(spec, state)[np.arange(a.shape[0]), a]
    return np.where(ok, a, 0)


@dataclass(frozen=True)
class ShopResponses:
    """Response probabilities of ``N`` customer-weeks to their (allowed) actions, each (N,).

    Attributes:
        purchase: Probability of an order this week.
        optout: Probability of opting out of all marketing (0 for ``none``).
        click: Probability of an e-mail click (0 unless the action is an e-mail).
        value: Expected list value of an order, currency.
    """

    purchase: Float
    optout: Float
    click: Float
    value: Float


def responses(
    spec: ShopSpec, state: ShopState, actions: NDArray[np.integer], week_of_year: int
) -> ShopResponses:
    """Response probabilities of customers in ``state`` to ``actions`` (N,), which must be
    allowed (:func:`allowed_actions`), in ISO week ``week_of_year`` (1..53)."""
    p = spec.params
    z = state.type
    a = np.asarray(actions, np.int64)
    n_recent = recent_contacts(spec, state)
    damp = np.maximum(0.0, 1.0 - p.fatigue[z] * n_recent)
    logit = (
        p.cycle_logit[z, state.weeks]
        + p.season[week_of_year]
        + p.pending_lift[z, state.pending]
        + p.lift[z, a, 0] * damp
    )
    optout = np.where(a > 0, p.optout[a] * (1.0 + p.optout_fatigue[z] * n_recent), 0.0)
    return ShopResponses(
        purchase=1.0 / (1.0 + np.exp(-logit)),
        optout=np.minimum(optout, 1.0),
        click=np.where(p.email[a], p.click_rate[z], 0.0),
        value=p.order_value[z].astype(np.float64),
    )


def refund_discount(spec: ShopSpec, gamma: float) -> float:
    """``E[gamma ** lag]`` over the refund lags (uniform)."""
    return float(np.mean([gamma**lag for lag in spec.refund_lag_weeks]))


def expected_reward(
    spec: ShopSpec,
    state: ShopState,
    actions: NDArray[np.integer],
    r: ShopResponses,
    gamma: float,
) -> Float:
    """(N,) expected reward of a customer-week (refunds discounted to the purchase week),
    currency."""
    p = spec.params
    a = np.asarray(actions, np.int64)
    keep = 1.0 - p.refund_rate[state.type] * refund_discount(spec, gamma)
    return r.purchase * r.value * (spec.margin_rate - p.discount[a]) * keep - p.cost[a]


def next_state(
    spec: ShopSpec,
    state: ShopState,
    actions: NDArray[np.integer],
    purchased: NDArray[np.bool_],
    opted_out: NDArray[np.bool_],
) -> ShopState:
    """Next week's true state from this week's, the executed ``actions`` and the outcome (each
    (N,)); a deterministic function (the DP's transition)."""
    p = spec.params
    a = np.asarray(actions, np.int64)
    mask = (1 << spec.history_weeks) - 1
    start = p.start_pending[a]
    return ShopState(
        type=state.type,
        weeks=np.where(purchased, 1, np.minimum(state.weeks + 1, spec.recency_cap_weeks)),
        history=((state.history << 1) | (a > 0)) & mask,
        pending=np.where(start > 0, start, p.next_pending[state.pending]),
        optout=np.maximum(state.optout, np.asarray(opted_out, np.int64)),
    )


@dataclass(frozen=True)
class ShopOutcome:
    """One week of ``N`` customers, each array (N,).

    Attributes:
        actions: Executed actions (forbidden ones replaced by ``none``).
        purchased: An order was placed.
        list_value: List value of the order, currency (0 without).
        paid: Amount paid (after the action's discount), currency.
        refunded: The order will be refunded.
        refund_lag: Weeks until the refund (0 without one).
        clicked: An e-mail click happened.
        opted_out: The customer opted out of all marketing this week.
        reward: Reward with the refund discounted to this week, currency.
    """

    actions: IntArray
    purchased: Bool
    list_value: Float
    paid: Float
    refunded: Bool
    refund_lag: IntArray
    clicked: Bool
    opted_out: Bool
    reward: Float


def step(
    spec: ShopSpec,
    state: ShopState,
    actions: NDArray[np.integer],
    week_of_year: int,
    rng: np.random.Generator,
    gamma: float,
) -> tuple[ShopState, ShopOutcome]:
    """Draw one week for customers in ``state`` and return ``(next state, outcome)``.

    Common random numbers: a (5, N) block of uniforms and N standard Gamma variates are drawn
    whatever the actions, so two policies run from one seed differ only through their actions.

    Args:
        spec: The world.
        state: True state at the start of the week.
        actions: (N,) requested actions; those the contact rule forbids become ``none``.
        week_of_year: ISO week of year (1..53).
        rng: Source of randomness.
        gamma: Weekly discount factor, for the refund term of the reward.
    """
    p = spec.params
    a = guard(spec, state, actions)
    r = responses(spec, state, a, week_of_year)
    u = rng.random((N_UNIFORMS, state.n))
    shape = p.value_shape[state.type]
    noise = rng.standard_gamma(shape) / shape
    purchased = u[0] < r.purchase
    opted = u[1] < r.optout
    clicked = u[2] < r.click
    refunded = purchased & (u[3] < p.refund_rate[state.type])
    lags = np.asarray(spec.refund_lag_weeks, np.int64)
    pick = np.minimum((u[4] * lags.shape[0]).astype(np.int64), lags.shape[0] - 1)
    lag = np.where(refunded, lags[pick], 0)
    value = np.where(purchased, np.round(r.value * noise, 2), 0.0)
    paid = np.round(value * (1.0 - p.discount[a]), 2)
    earned = value * (spec.margin_rate - p.discount[a])
    reward = earned - np.where(refunded, earned * gamma**lag, 0.0) - p.cost[a]
    outcome = ShopOutcome(a, purchased, value, paid, refunded, lag, clicked, opted, reward)
    return next_state(spec, state, a, purchased, opted), outcome


def draw_population(spec: ShopSpec, n: int, rng: np.random.Generator) -> tuple[ShopState, IntArray]:
    """``n`` customers who bought before: types by share, weeks since purchase uniform in
    ``1..W``, no contacts, no opt-out; and (n,) their acquisition label index."""
    p = spec.params
    z = np.minimum((rng.random(n)[:, None] > np.cumsum(p.share)[None, :]).sum(1), spec.n_types - 1)
    weeks = rng.integers(1, spec.recency_cap_weeks + 1, n)
    cdf = np.cumsum(p.acquisition[z], axis=1)
    label = np.minimum((rng.random(n)[:, None] > cdf).sum(1), cdf.shape[1] - 1)
    zeros = np.zeros(n, np.int64)
    state = ShopState(z.astype(np.int64), weeks.astype(np.int64), zeros, zeros.copy(), zeros.copy())
    return state, label.astype(np.int64)


def load_shop(name_or_path: str | Path) -> ShopSpec:
    """Load a shop world: a shipped name (``roastery``), a folder or a YAML file."""
    path = Path(name_or_path)
    if path.is_dir():
        path = path / "world.yaml"
    elif path.suffix not in (".yaml", ".yml"):
        path = WORLDS_DIR / str(name_or_path) / "world.yaml"
    if not path.is_file():
        raise ConfigError(f"no shop world {str(name_or_path)!r} ({path})")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or raw.get("kind") != "shop":
        raise ConfigError(f"{path}: not a shop world (expected 'kind: shop')")
    found = raw.get("format_version", 0)
    if "format_version" in raw and found != SHOP_FORMAT_VERSION:
        raise ShopFormatError(path, found, "")
    try:
        return shop_from_dict(raw)
    except (KeyError, TypeError, ValueError) as err:
        if found != SHOP_FORMAT_VERSION:  # written before the version was recorded
            raise ShopFormatError(path, found, str(err).splitlines()[0]) from err
        raise ConfigError(f"{path}: invalid shop world: {err}") from err
    except ConfigError as err:
        if found != SHOP_FORMAT_VERSION:
            raise ShopFormatError(path, found, str(err).splitlines()[0]) from err
        raise


class ShopFormatError(ConfigError):
    """A shop world file in another format than this journeyopt reads (one line: the file,
    the format found, the format expected, what to do)."""

    def __init__(self, path: Path, found: object, problem: str) -> None:
        remedy = (
            f"rewrite it in format {SHOP_FORMAT_VERSION} (the shop worlds shipped in "
            "simulators/ show its keys) or load it with the journeyopt version that read it"
        )
        super().__init__(
            format_mismatch(path, "shop world", found, SHOP_FORMAT_VERSION, remedy, problem)
        )


def shop_from_dict(raw: Mapping[str, Any]) -> ShopSpec:
    """Build a :class:`ShopSpec` from the parsed YAML mapping (see ``world.yaml``)."""
    actions = raw["actions"]
    names = ("none", *(a for a in actions if a != "none"))

    def per_action(key: str, default: Any) -> tuple[Any, ...]:
        return tuple(actions[a].get(key, default) if a in actions else default for a in names)

    catalog = ActionCatalog(
        names=names,
        channels=tuple(str(c) for c in per_action("channel", "")),
        costs=tuple(float(c) for c in per_action("cost", 0.0)),
        discounts=tuple(float(d) for d in per_action("discount", 0.0)),
    )
    season = np.zeros(54)
    weeks = np.arange(54)
    for window in raw.get("seasonality", {}).values():
        first, last = int(window["first_week"]), int(window["last_week"])
        inside = (weeks >= first) & (weeks <= last)
        season = season + np.where(inside, float(window["logit"]), 0.0)
    types = tuple(
        ShopType(
            name=name,
            **{
                **t,
                "lifts": {a: tuple(float(x) for x in v) for a, v in t["lifts"].items()},
                "acquisition": {k: float(v) for k, v in t["acquisition"].items()},
            },
        )
        for name, t in raw["types"].items()
    )
    return ShopSpec(
        name=str(raw["name"]),
        currency=str(raw["currency"]),  # no default: the shop's own currency
        margin_rate=float(raw["margin_rate"]),
        channels=tuple(raw["channels"]),
        actions=catalog,
        optout=tuple(float(x) for x in per_action("optout", 0.0)),
        types=types,
        season=tuple(float(x) for x in season),
        features=FeatureSpec(
            contact_channels=tuple(raw["channels"]),
            **required_section(raw, "features", FeatureSpec),
        ),
        recency_cap_weeks=int(raw["recency_cap_weeks"]),  # no defaults: the shop's own choices
        history_weeks=int(raw["history_weeks"]),
        max_contacts=int(raw["max_contacts"]),
        refund_lag_weeks=tuple(int(x) for x in raw["refund_lag_weeks"]),
        acquisition_labels=tuple(raw["acquisition_labels"]),
        campaign_codes=tuple(
            str(code or name)
            for name, code in zip(names, per_action("campaign_code", ""), strict=True)
        ),
    )
