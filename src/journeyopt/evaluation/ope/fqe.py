"""Fitted-Q evaluation (Le et al. 2019) on logged trajectories, finite horizon.

Backward over the weeks ``t = H-1 .. 0``, one ridge regression per action ``a`` on the logged
customer-weeks that took it:

    y_kt = r_kt + gamma * sum_a' pi_e(a' | x_k,t+1) q_{t+1}(x_k,t+1, a')   (0 after the horizon)
    q_t(x, a) = phi(x) . beta_{t,a},   beta = argmin |y - Phi beta|^2 + ridge |beta|^2

with ``phi(x)`` a small fixed encoding of the features (:func:`state_design`). It needs no
world model and no propensities, only that each action was taken in each week often enough to
fit its regression (rare actions are shrunk toward zero by the ridge penalty).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

Float = NDArray[np.float64]
IntArray = NDArray[np.int64]

WEEKS_CAP = 52.0
"""Weeks-since features are capped at a year (and scaled to [0, 1])."""


def _weeks(values: NDArray[np.generic]) -> tuple[Float, Float]:
    """(scaled capped weeks since, never-happened indicator)."""
    w = np.asarray(values, np.float64)
    never = ~np.isfinite(w)
    return np.where(never, 1.0, np.minimum(w, WEEKS_CAP) / WEEKS_CAP), never.astype(np.float64)


def state_design(
    features: Mapping[str, NDArray[np.generic]], segment: IntArray, n_segments: int
) -> Float:
    """(N, p) encoding of customers' features: intercept, segment and lifecycle indicators,
    scaled recency / weeks since contact and engagement (with "never" flags), log lifetime
    conversions, log monetary value, and every count and opt-out flag of the contact channels.

    Args:
        features: Feature name -> (N,) values (``state_features`` names).
        segment: (N,) segment index.
        n_segments: Number of segments.
    """
    n = segment.shape[0]
    columns = [np.ones(n)]
    columns += [(segment == k).astype(np.float64) for k in range(1, n_segments)]
    lifecycle = np.asarray(features["lifecycle"], np.int64)
    columns += [(lifecycle == k).astype(np.float64) for k in range(1, 4)]
    for name in ("recency_weeks", "weeks_since_contact", "weeks_since_engagement"):
        columns += list(_weeks(features[name]))
    columns.append(np.log1p(np.asarray(features["n_conversions"], np.float64)))
    columns.append(np.log1p(np.nan_to_num(np.asarray(features["monetary"], np.float64))))
    for name, values in features.items():
        if name.startswith(("contacts_", "engagements_", "opted_out_")):
            columns.append(np.asarray(values, np.float64))
    return np.stack(columns, axis=1)


def _ridge(x: Float, y: Float, ridge: float) -> Float:
    """(p,) ridge coefficients (intercept penalised like the rest: ``ridge`` is small)."""
    gram = x.T @ x + ridge * np.eye(x.shape[1])
    return np.asarray(np.linalg.solve(gram, x.T @ y), np.float64)


def fitted_q(
    features: Mapping[str, NDArray[np.generic]],
    segment: IntArray,
    n_segments: int,
    action: IntArray,
    reward: Float,
    target: Float,
    gamma: float,
    ridge: float = 1.0,
) -> Float:
    """(K, H, A) fitted ``q_t(x_kt, a)`` in the logged states (see the module docstring).

    Args:
        features: Feature name -> (K, H) logged features.
        segment: (K,) segment index.
        n_segments: Number of segments.
        action: (K, H) logged actions.
        reward: (K, H) rewards, currency.
        target: (K, H, A) target probabilities in the logged states.
        gamma: Weekly discount factor in (0, 1].
        ridge: L2 penalty, > 0.
    """
    if not ridge > 0:
        raise ValueError(f"ridge must be > 0, got {ridge}")
    k, h, n_actions = target.shape
    out = np.zeros((k, h, n_actions))
    v_next = np.zeros(k)
    for t in range(h - 1, -1, -1):
        phi = state_design({n: v[:, t] for n, v in features.items()}, segment, n_segments)
        y = reward[:, t] + gamma * v_next
        for a in range(n_actions):
            rows = action[:, t] == a
            if rows.any():
                out[:, t, a] = phi @ _ridge(phi[rows], y[rows], ridge)
        v_next = (target[:, t] * out[:, t]).sum(axis=1)
    return out
