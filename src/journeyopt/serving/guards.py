"""Hard guards after the model: whatever a policy says, a forbidden contact becomes ``none``.

The rules themselves live in :class:`journeyopt.sim.rules.ContactRules` (the same object masks
training and off-policy evaluation); this module only applies their verdict to a chosen
action and its probabilities, and gives unknown customers the safe default ``none``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from journeyopt.serving.config import HoldoutConfig, RulesConfig
from journeyopt.sim.practice import LoggedPractice, Practice
from journeyopt.sim.rules import ALLOWED, CAPACITY, ContactRules
from journeyopt.sim.world import WorldSpec

UNKNOWN_CUSTOMER = "unknown_customer"
"""Reason reported for every contact of a customer the scorer knows nothing about."""


def serving_rules(world: WorldSpec, rules: RulesConfig) -> ContactRules:
    """The contact rules ``serve.rules`` sets for ``world``'s catalogue (see
    :meth:`~journeyopt.sim.config.RulesConfig.for_world`)."""
    return rules.for_world(world, "serve.rules")


def staff_rules(world: WorldSpec, holdout: HoldoutConfig) -> Practice | LoggedPractice:
    """Today's practice ``serve.holdout.staff`` (hand-written or estimated from the logs) for
    the control group in ``world`` (checked:
    see :meth:`~journeyopt.sim.config.StaffRulesConfig.practice_for`)."""
    return holdout.staff.practice_for(world, "serve.holdout.staff")


@dataclass(frozen=True)
class Guarded:
    """Guarded decisions of ``N`` customers over ``A`` actions.

    Attributes:
        actions: (N,) int64 action carried out.
        probabilities: (N, A) float64 probabilities of the applied policy after masks and
            guards: zero on forbidden actions, rows sum to 1, positive on ``actions``.
        overridden: (N,) the policy's choice was replaced by ``none``.
    """

    actions: NDArray[np.int64]
    probabilities: NDArray[np.float64]
    overridden: NDArray[np.bool_]


def allowed_actions(reasons: NDArray[np.int8], known: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """(N, A) allowed actions: the rules' verdict, and ``none`` only for unknown customers."""
    allowed = reasons == ALLOWED
    allowed[:, 0] = True
    allowed[~known, 1:] = False
    return allowed


@dataclass(frozen=True)
class Capacitated:
    """Decisions after the weekly capacities of :func:`apply_capacity`.

    Attributes:
        actions: (N,) int64 action carried out; no action is given to more customers than
            its capacity.
        demoted: (N,) the customer lost a full action to customers where it is worth more
            and got its next-best allowed action instead.
        lost: (N,) int64 the action a demoted customer lost (-1 for the others).
    """

    actions: NDArray[np.int64]
    demoted: NDArray[np.bool_]
    lost: NDArray[np.int64]


def apply_capacity(
    actions: NDArray[np.integer],
    values: NDArray[np.floating],
    allowed: NDArray[np.bool_],
    limits: NDArray[np.integer],
) -> Capacitated:
    """Give each capacity-limited action to at most ``limits[a]`` customers: to those where it
    is worth most against their next-best choice; the others get that next-best choice.

    An action over its capacity keeps the ``limits[a]`` choosers with the largest gain
    ``values[i, a] - values[i, b_i]``, ``b_i`` the customer's best allowed action other than
    it and the actions already filled; the others move to ``b_i`` (``none`` is always
    allowed and has no capacity). Each action is filled once, so at most ``A`` rounds.

    Args:
        actions: (N,) chosen (guarded) actions.
        values: (N, A) value of every action for every customer (e.g. this week's expected
            margin minus contact cost), currency.
        allowed: (N, A) actions the contact rules allow.
        limits: (A,) most customers per action; -1: no capacity.
    """
    chosen = np.asarray(actions, np.int64).copy()
    limits = np.asarray(limits, np.int64)
    lost = np.full(chosen.shape[0], -1, np.int64)
    filled = np.zeros(limits.shape[0], np.bool_)
    for _ in range(limits.shape[0]):
        counts = np.bincount(chosen, minlength=limits.shape[0])
        over = np.flatnonzero((limits >= 0) & (counts > limits))
        if over.size == 0:
            break
        a = int(over[0])
        rows = np.flatnonzero(chosen == a)
        options = allowed[rows] & ~filled[None, :]
        options[:, a] = False
        options[:, 0] = True
        alternative = np.argmax(np.where(options, values[rows], -np.inf), axis=1)
        gain = values[rows, a] - values[rows, alternative]
        order = np.argsort(-gain, kind="stable")
        moved = order[limits[a] :]
        chosen[rows[moved]] = alternative[moved]
        lost[rows[moved]] = np.where(lost[rows[moved]] < 0, a, lost[rows[moved]])
        filled[a] = True
    return Capacitated(chosen, lost >= 0, lost)


def apply_guards(
    actions: NDArray[np.integer],
    probabilities: NDArray[np.floating],
    reasons: NDArray[np.int8],
    known: NDArray[np.bool_],
) -> Guarded:
    """Replace forbidden choices by ``none`` and renormalise the probabilities.

    Args:
        actions: (N,) the policy's choices.
        probabilities: (N, A) the policy's probabilities.
        reasons: (N, A) :meth:`journeyopt.sim.rules.ContactRules.reasons` of the customers.
        known: (N,) customers the scorer has features for.
    """
    allowed = allowed_actions(reasons, known)
    chosen = np.asarray(actions, np.int64)
    rows = np.arange(chosen.shape[0])
    probs = np.where(allowed, np.asarray(probabilities, np.float64), 0.0)
    total = probs.sum(axis=1)
    keep = allowed[rows, chosen] & (probs[rows, chosen] > 0.0)
    safe = np.zeros_like(probs)
    safe[:, 0] = 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        probs = np.where(keep[:, None], probs / total[:, None], safe)
    return Guarded(np.where(keep, chosen, 0).astype(np.int64), probs, ~keep)


def arm_capacities(limits: NDArray[np.integer], sizes: NDArray[np.integer]) -> NDArray[np.int64]:
    """Each arm's share of every weekly capacity: in proportion to its customers in the batch.

    ``limits[a]`` is split over the arms by the largest-remainder method: arm ``g`` gets
    ``floor(limits[a] * sizes[g] / sum(sizes))`` and the units left go one each to the arms
    with the largest remainders (ties to the lower arm code), so the shares sum to
    ``limits[a]`` and every arm gets the same capacity per customer up to one unit.

    Args:
        limits: (A,) most customers per action in the batch; -1: no capacity.
        sizes: (G,) customers of each arm in the batch.

    Returns:
        (G, A) most customers of each arm per action; -1 where the action has no capacity.
    """
    limits = np.asarray(limits, np.int64)
    sizes = np.asarray(sizes, np.int64)
    total = int(sizes.sum())
    shares = np.zeros((sizes.shape[0], limits.shape[0]), np.int64)
    if total > 0:
        exact = np.maximum(limits, 0)[None, :] * sizes[:, None] / total  # (G, A)
        shares = np.floor(exact).astype(np.int64)
        left = np.maximum(limits, 0) - shares.sum(axis=0)
        order = np.argsort(-(exact - shares), axis=0, kind="stable")  # (G, A)
        for a in np.flatnonzero(left > 0):
            shares[order[: left[a], a], a] += 1
    return np.where(limits[None, :] >= 0, shares, -1)


def guard_capacity(
    guarded: Guarded,
    reasons: NDArray[np.int8],
    values: NDArray[np.floating],
    arm: NDArray[np.integer],
    limits: NDArray[np.integer],
) -> tuple[Guarded, NDArray[np.int8]]:
    """The weekly capacities (``serve.rules.capacity``) over one batch of decisions.

    A capacity is a limit of the business: it holds every contact of the batch, the control
    group's included. Each arm (control, and the treatment's ``full``, or ``canary`` and
    ``previous`` during a staged rollout: :data:`journeyopt.serving.rollout.ARMS`) gets its
    share in proportion to its customers (:func:`arm_capacities`) and, within it, the one
    priority order :func:`apply_capacity` (where the action gains most over the customer's
    next-best allowed action). So every arm has the same capacity per customer, and one arm's
    contacts never take capacity from another: an arm compared with control (today's practice
    served as the champion against today's practice in control) differs only by its policy.
    Capacity an arm leaves unused is not passed to another arm (it would make one arm's
    contacts depend on the other's policy).
    A demoted customer's action is one-hot in the probabilities (the batch decided it) and
    ``overridden``; the action it lost gets the reason ``capacity``.

    Args:
        guarded: Decisions after :func:`apply_guards`.
        reasons: (N, A) the contact rules' reason codes.
        values: (N, A) value of every action for every customer, currency.
        arm: (N,) each customer's arm code (index into :data:`~journeyopt.serving.rollout.ARMS`).
        limits: (A,) most customers per action (:attr:`ContactRules.capacity_limits`).

    Returns:
        The decisions within capacity and the reason codes with ``capacity`` added.
    """
    limits = np.asarray(limits, np.int64)
    arm = np.asarray(arm, np.int64)
    allowed = reasons == ALLOWED
    allowed[:, 0] = True
    actions = guarded.actions.copy()
    lost = np.full(actions.shape[0], -1, np.int64)
    codes, sizes = np.unique(arm, return_counts=True)
    for code, budget in zip(codes, arm_capacities(limits, sizes), strict=True):
        rows = np.flatnonzero(arm == code)
        done = apply_capacity(actions[rows], values[rows], allowed[rows], budget)
        actions[rows], lost[rows] = done.actions, done.lost
    demoted = np.flatnonzero(lost >= 0)
    probabilities = guarded.probabilities.copy()
    probabilities[demoted] = 0.0
    probabilities[demoted, actions[demoted]] = 1.0
    reasons = reasons.copy()
    reasons[demoted, lost[demoted]] = CAPACITY
    overridden = guarded.overridden.copy()
    overridden[demoted] = True
    return Guarded(actions, probabilities, overridden), reasons
