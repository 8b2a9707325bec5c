"""The behaviour policy of the logs: today's staff rules plus uniform exploration.

Staff rules, first match wins (each only if the action's channel is not opted out):

1. ``personal_call`` to a customer who engaged recently (weeks since the last engagement at
   most ``call_within_weeks``) and is of a ``call_segments`` type, or is a prospect when
   ``call_engaged_prospects``, and was not called within the fatigue window;
2. ``discount_offer`` to lapsed former customers (last conversion more than
   ``lapsed_after_weeks`` ago) in win-back weeks (every ``winback_every_weeks`` weeks);
3. ``newsletter`` to everyone in newsletter weeks (every ``newsletter_every_weeks`` weeks);
4. otherwise ``none``.

With probability ``epsilon`` the action is instead drawn uniformly from the allowed actions
(those whose channel is not opted out, ``none`` included), so the logged propensity of the
chosen action ``a`` is ``(1 - epsilon) * [a == staff action] + epsilon / n_allowed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from journeyopt.sim.rules import ContactRules
from journeyopt.sim.world import WorldSpec

IntArray = NDArray[np.int64]
Float = NDArray[np.float64]


@dataclass(frozen=True)
class StaffRules:
    """Today's contact practice (see the module docstring).

    Attributes:
        newsletter_every_weeks: The newsletter goes out in weeks ``t`` with ``t % n == 0``;
            0 disables it.
        winback_every_weeks: Win-back discount campaigns run every this many weeks; 0 disables.
        lapsed_after_weeks: A former customer is lapsed when the last conversion is more than
            this many weeks ago.
        call_segments: Customer types called after an engagement (inquiry, tour, click).
        call_engaged_prospects: Also call engaged prospects of the other types.
        call_within_weeks: Call when the last engagement was at most this many weeks ago.
    """

    newsletter_every_weeks: int = 4
    winback_every_weeks: int = 13
    lapsed_after_weeks: int = 26
    call_segments: tuple[str, ...] = ("startup_team", "corporate_team")
    call_engaged_prospects: bool = True
    call_within_weeks: int = 1

    def __post_init__(self) -> None:
        for name in ("newsletter_every_weeks", "winback_every_weeks"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("lapsed_after_weeks", "call_within_weeks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


def contact_rules(world: WorldSpec) -> ContactRules:
    """The world's own contact rules: only opted-out channels are forbidden."""
    return ContactRules(world.actions, world.features)


def staff_actions(
    world: WorldSpec,
    rules: StaffRules,
    features: Mapping[str, NDArray[np.generic]],
    segment: NDArray[np.integer],
    week: int,
) -> IntArray:
    """(N,) the staff's action for each customer at the start of week index ``week``.

    Args:
        world: The world (action names and segment names).
        rules: The staff rules.
        features: (N,) arrays from ``state_features``.
        segment: (N,) customer type index.
        week: Week index (campaign calendar: weeks since the logs' start).
    """
    names = world.actions.names
    allowed = contact_rules(world).masks(features)
    n = allowed.shape[0]
    fw = world.features.fatigue_weeks
    since_engagement = np.asarray(features["weeks_since_engagement"], np.float64)
    recently_engaged = np.nan_to_num(since_engagement, nan=np.inf) <= rules.call_within_weeks
    call_types = np.isin(
        np.asarray(segment),
        [world.segment_names.index(s) for s in rules.call_segments if s in world.segment_names],
    )
    prospect = np.asarray(features["n_conversions"]) == 0
    not_called = np.ones(n, dtype=bool)  # a catalogue without calls: nobody wants one
    if "personal_call" in names:  # the call's channel need not be called "phone"
        call_channel = world.actions.channels[names.index("personal_call")]
        not_called = np.asarray(features[f"contacts_{fw}w_{call_channel}"]) == 0
    wants_call = recently_engaged & not_called
    wants_call &= call_types | (prospect & rules.call_engaged_prospects)
    recency = np.nan_to_num(np.asarray(features["recency_weeks"], np.float64), nan=-np.inf)
    campaign = rules.winback_every_weeks > 0 and week % rules.winback_every_weeks == 0
    wants_discount = (recency > rules.lapsed_after_weeks) & campaign
    newsletter_week = rules.newsletter_every_weeks > 0 and week % rules.newsletter_every_weeks == 0

    action = np.zeros(n, np.int64)
    for name, wanted in (
        ("newsletter", np.full(n, newsletter_week)),
        ("discount_offer", wants_discount),
        ("personal_call", wants_call),
    ):  # later rules override earlier ones: calls win
        if name in names:
            a = names.index(name)
            action = np.where(wanted & allowed[:, a], a, action)
    return action


def explore(
    staff: NDArray[np.integer],
    allowed: NDArray[np.bool_],
    epsilon: float,
    rng: np.random.Generator,
) -> tuple[IntArray, Float]:
    """Epsilon-uniform exploration around the staff's actions.

    Args:
        staff: (N,) staff actions (must be allowed).
        allowed: (N, A) allowed actions.
        epsilon: Exploration rate in [0, 1].
        rng: Source of randomness.

    Returns:
        ``(actions, propensities)``, each (N,): the chosen action and the probability that
        the behaviour policy chose it.
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    n = allowed.shape[0]
    staff = np.asarray(staff, np.int64)
    if not allowed[np.arange(n), staff].all():
        raise ValueError("a staff action is not allowed")
    n_allowed = allowed.sum(axis=1)
    # uniform draw among allowed actions: the k-th allowed column, k uniform
    k = np.floor(rng.random(n) * n_allowed).astype(np.int64)
    uniform = np.argmax(np.cumsum(allowed, axis=1) > k[:, None], axis=1)
    explores = rng.random(n) < epsilon
    actions = np.where(explores, uniform, staff).astype(np.int64)
    propensity = (1.0 - epsilon) * (actions == staff) + epsilon / n_allowed
    return actions, propensity.astype(np.float64)
