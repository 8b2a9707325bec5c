"""Exploration in serving: the treatment group's policy with a share of uniform choices, drawn
reproducibly, and the true probability of every action.

A served policy picks its most probable allowed action (``greedy``). With exploration share
``eps`` the policy actually applied to a treatment customer is the mixture

    p(a) = (1 - eps) * [a == greedy] + eps * allowed(a) / n_allowed

over the actions the contact rules allow (``none`` always among them). The carried-out action is
drawn from ``p`` with one uniform number per customer and week,
``blake2b(salt + "\\0" + week + "\\0" + customer_id)`` (:func:`exploration_unit`; ``week`` the
Monday ``YYYY-MM-DD`` of the as-of week), by inverse CDF (:func:`draw`): no random state, so the
API and the batch scorer take the same decision for the same customer and week, a customer's
draw changes from week to week, and ``p`` of the carried-out action is exactly the probability
with which it was taken (the propensity that off-policy evaluation re-weights with).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.serving.holdout import hash_unit


def exploration_unit(
    customer_ids: Iterable[str], salt: str, monday: pd.Timestamp
) -> NDArray[np.float64]:
    """(N,) a uniform number in [0, 1) per customer for the week starting ``monday``:
    :func:`journeyopt.serving.holdout.hash_unit` with the salt ``salt + "\\0" + week``."""
    return hash_unit(customer_ids, f"{salt}\x00{monday.strftime('%Y-%m-%d')}")


def explored_probabilities(
    greedy: NDArray[np.integer], allowed: NDArray[np.bool_], share: float
) -> NDArray[np.float64]:
    """(N, A) probabilities of the greedy choice mixed with a uniform one.

    Args:
        greedy: (N,) the policy's choice; must be allowed.
        allowed: (N, A) the actions the contact rules allow (at least one per row).
        share: Exploration share ``eps`` in [0, 1].

    Returns:
        ``(1 - share) * one_hot(greedy) + share * allowed / allowed.sum(axis=1)``: rows sum
        to 1, zero on forbidden actions, at least ``1 - share`` on ``greedy``.
    """
    n, n_actions = allowed.shape
    probabilities = np.zeros((n, n_actions))
    probabilities[np.arange(n), np.asarray(greedy, np.int64)] = 1.0 - share
    if share > 0.0:
        probabilities += share * allowed / allowed.sum(axis=1, keepdims=True)
    return probabilities


def draw(probabilities: NDArray[np.floating], unit: NDArray[np.floating]) -> NDArray[np.int64]:
    """(N,) an action per row of (N, A) ``probabilities`` by inverse CDF at (N,) ``unit`` in
    [0, 1): action ``a`` is drawn for ``unit`` in [cdf(a - 1), cdf(a)), so with a uniform
    ``unit`` each action is drawn with its probability, and never one of probability 0."""
    cdf = np.cumsum(probabilities, axis=1)
    cdf /= cdf[:, -1:]  # last column exactly 1.0, above any unit
    return np.count_nonzero(cdf <= np.asarray(unit)[:, None], axis=1).astype(np.int64)
