"""One-step (weekly decision) estimators: the value of a target policy's next decision.

Data: ``n`` logged customer-weeks of ``K`` customers, ``A`` actions (:class:`BanditData`).
With importance weight ``w_i = pi_e(a_i | x_i) / pi_b(a_i | x_i)`` and reward model
``q(x, a)`` (expected reward of action ``a`` this week, currency), the estimators of the mean
weekly reward per customer-week under ``pi_e`` are (Dudik et al. 2011, Swaminathan &
Joachims 2015, Wang et al. 2017):

- IPS: ``mean(w r)``; clipped when ``max_weight`` is set: ``mean(min(w, M) r)``;
- SNIPS: ``sum(w r) / sum(w)`` (always within the range of the logged rewards);
- direct method (DM): ``mean(sum_a pi_e(a | x) q(x, a))``;
- doubly robust (DR): ``DM + mean(w (r - q(x, a_i)))``;
- switch-DR: DR on rows with ``w <= tau``, DM alone on rows with larger weights.

Every estimator is a frozen dataclass validated at construction whose :meth:`statistic`
returns the estimate in ratio form (:class:`~journeyopt.evaluation.ope.bootstrap.Statistic`,
one row per customer) for the bootstrap over customers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from journeyopt.evaluation.ope.bootstrap import Statistic

Float = NDArray[np.float64]
IntArray = NDArray[np.int64]

PROBABILITY_TOLERANCE = 1e-6
"""How far a row of target probabilities may sum from 1."""


def check_probabilities(target: Float, what: str = "target") -> None:
    """Raise ``ValueError`` unless ``target`` (..., A) holds probability rows."""
    if not np.all(np.isfinite(target)) or np.any(target < 0):
        raise ValueError(f"{what} probabilities must be finite and >= 0")
    bad = np.abs(target.sum(axis=-1) - 1.0) > PROBABILITY_TOLERANCE
    if np.any(bad):
        raise ValueError(
            f"{what} probabilities must sum to 1 over actions ({int(bad.sum())} rows do not)"
        )


def check_propensities(propensity: Float) -> None:
    """Raise ``ValueError`` unless every logged propensity is in (0, 1]."""
    if not np.all(np.isfinite(propensity)) or np.any(propensity <= 0) or np.any(propensity > 1):
        raise ValueError("propensities must be in (0, 1] (a logged action had probability 0?)")


def check_logged(reward: Float, propensity: Float, target: Float) -> None:
    """Raise ``ValueError`` unless the logged ``reward`` are finite, the ``propensity`` valid
    (:func:`check_propensities`) and ``target`` (..., A) probability rows
    (:func:`check_probabilities`), in that order."""
    if not np.all(np.isfinite(reward)):
        raise ValueError("rewards must be finite")
    check_propensities(propensity)
    check_probabilities(target)


@dataclass(frozen=True)
class BanditData:
    """Logged one-step decisions.

    Attributes:
        action: (n,) logged action index in ``0..A-1``.
        reward: (n,) reward of the customer-week, currency.
        propensity: (n,) behaviour probability ``pi_b(a_i | x_i)`` in (0, 1].
        target: (n, A) target probabilities ``pi_e(. | x_i)`` (masked by the contact rules).
        q_hat: (n, A) reward model ``q(x_i, a)``, currency; None when no model is given.
        customer: (n,) customer index in ``0..K-1`` (rows of one customer are resampled
            together); None: every row is its own customer.
    """

    action: IntArray
    reward: Float
    propensity: Float
    target: Float
    q_hat: Float | None = None
    customer: IntArray | None = None

    def __post_init__(self) -> None:
        n = self.action.shape[0]
        if n < 1:
            raise ValueError("bandit data needs at least one row")
        if self.target.ndim != 2 or self.target.shape[0] != n:
            raise ValueError(f"target must have shape (n, A) with n = {n}, got {self.target.shape}")
        for name in ("reward", "propensity", "customer"):
            value = getattr(self, name)
            if value is not None and value.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {value.shape}")
        if self.q_hat is not None and self.q_hat.shape != self.target.shape:
            raise ValueError(f"q_hat must have shape {self.target.shape}, got {self.q_hat.shape}")
        if np.any(self.action < 0) or np.any(self.action >= self.target.shape[1]):
            raise ValueError(f"actions must be in 0..{self.target.shape[1] - 1}")
        check_logged(self.reward, self.propensity, self.target)

    @property
    def n(self) -> int:
        return int(self.action.shape[0])

    @property
    def weight(self) -> Float:
        """(n,) importance weights ``pi_e(a_i | x_i) / pi_b(a_i | x_i)``."""
        return self.target[np.arange(self.n), self.action] / self.propensity

    def model(self) -> Float:
        """(n, A) the reward model; raises when there is none."""
        if self.q_hat is None:
            raise ValueError("this estimator needs a reward model (q_hat)")
        return self.q_hat

    def per_customer(self, terms: Float, counts: Float | None = None) -> Statistic:
        """Per-row ``terms`` (n,) summed per customer over per-row ``counts`` (default 1):
        the ratio form of ``sum(terms) / sum(counts)``."""
        counts = np.ones(self.n) if counts is None else np.asarray(counts, np.float64)
        terms = np.asarray(terms, np.float64)
        if self.customer is None:
            return Statistic(terms[:, None], counts[:, None])
        k = int(self.customer.max()) + 1
        u = np.bincount(self.customer, weights=terms, minlength=k).astype(np.float64)
        d = np.bincount(self.customer, weights=counts, minlength=k).astype(np.float64)
        return Statistic(u[:, None], d[:, None])


class BanditEstimator(Protocol):
    """A one-step estimator."""

    @property
    def name(self) -> str: ...

    def statistic(self, data: BanditData) -> Statistic:
        """The estimate of ``data`` in ratio form, one row per customer."""
        ...


def _check_max_weight(max_weight: float | None) -> None:
    if max_weight is not None and not max_weight > 0:
        raise ValueError(f"max_weight must be > 0 (or None for no clipping), got {max_weight}")


@dataclass(frozen=True)
class IPS:
    """Inverse propensity scoring, clipped at ``max_weight`` when set.

    Attributes:
        max_weight: Clip importance weights at this value (biased, lower variance); None:
            unclipped (unbiased).
    """

    max_weight: float | None = None

    def __post_init__(self) -> None:
        _check_max_weight(self.max_weight)

    @property
    def name(self) -> str:
        return "ips" if self.max_weight is None else f"clipped_ips_{self.max_weight:g}"

    def statistic(self, data: BanditData) -> Statistic:
        w = data.weight if self.max_weight is None else np.minimum(data.weight, self.max_weight)
        return data.per_customer(w * data.reward)


@dataclass(frozen=True)
class SNIPS:
    """Self-normalised IPS: ``sum(w r) / sum(w)``."""

    name: str = "snips"

    def statistic(self, data: BanditData) -> Statistic:
        w = data.weight
        return data.per_customer(w * data.reward, w)


@dataclass(frozen=True)
class DirectMethod:
    """The reward model's value of the target policy: ``mean(sum_a pi_e(a | x) q(x, a))``."""

    name: str = "dm"

    def statistic(self, data: BanditData) -> Statistic:
        return data.per_customer((data.target * data.model()).sum(axis=1))


@dataclass(frozen=True)
class DoublyRobust:
    """``DM + mean(w (r - q(x, a_i)))``; weights clipped at ``max_weight`` when set.

    Attributes:
        max_weight: Clip importance weights at this value; None: unclipped.
    """

    max_weight: float | None = None

    def __post_init__(self) -> None:
        _check_max_weight(self.max_weight)

    @property
    def name(self) -> str:
        return "dr" if self.max_weight is None else f"clipped_dr_{self.max_weight:g}"

    def statistic(self, data: BanditData) -> Statistic:
        q = data.model()
        w = data.weight if self.max_weight is None else np.minimum(data.weight, self.max_weight)
        logged_q = q[np.arange(data.n), data.action]
        return data.per_customer((data.target * q).sum(axis=1) + w * (data.reward - logged_q))


@dataclass(frozen=True)
class SwitchDR:
    """Switch doubly robust (Wang et al. 2017): DR where ``w <= tau``; where the weight is
    larger, the model alone (``sum_a pi_e q``) stands in for the correction.

    Attributes:
        tau: Weight threshold, > 0.
    """

    tau: float

    def __post_init__(self) -> None:
        if not self.tau > 0:
            raise ValueError(f"tau must be > 0, got {self.tau}")

    @property
    def name(self) -> str:
        return f"switch_dr_{self.tau:g}"

    def statistic(self, data: BanditData) -> Statistic:
        q = data.model()
        w = data.weight
        logged_q = q[np.arange(data.n), data.action]
        correction = np.where(w <= self.tau, w * (data.reward - logged_q), 0.0)
        return data.per_customer((data.target * q).sum(axis=1) + correction)
