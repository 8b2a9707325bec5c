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
from journeyopt.sim.rules import ALLOWED, ContactRules
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
