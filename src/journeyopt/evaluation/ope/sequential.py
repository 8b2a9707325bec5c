"""Sequential estimators of the long-term value: the expected discounted return over ``H``
weeks, ``V = E[sum_{t<H} gamma^t r_t]``, of a target policy from logged trajectories.

Data: ``K`` customers followed for ``H`` weeks (:class:`Trajectories`). With per-week ratios
``rho_t = pi_e(a_t | x_t) / pi_b(a_t | x_t)`` and cumulative ratios ``R_t = prod_{s<=t}
rho_s`` (``R_{-1} = 1``), the estimators (Precup et al. 2000; Jiang & Li 2016; Thomas &
Brunskill 2016; Le et al. 2019) are:

- per-decision IS (PDIS): ``sum_t gamma^t mean_k(R_kt r_kt)`` (unbiased);
- weighted PDIS (WPDIS): ``sum_t gamma^t sum_k R_kt r_kt / sum_k R_kt`` (consistent, each
  week's term within the range of the logged rewards);
- sequential doubly robust (DR): ``mean_k sum_t gamma^t (R_t r_t - R_t q_t(x_t, a_t) +
  R_{t-1} v_t(x_t))`` with ``v_t(x) = sum_a pi_e(a | x) q_t(x, a)`` (unbiased for any model
  ``q``; a good ``q`` shrinks the variance);
- direct value (model-based direct method or fitted-Q evaluation, depending on where ``q``
  comes from): ``mean_k v_0(x_k0)``;
- long-term DR over a short window (:class:`LongTermDR`): the sequential DR recursion
  ``V^(t) = v_t(x_t) + rho_t (r_t + gamma V^(t+1) - q_t(x_t, a_t))`` over the ``H`` logged
  weeks, ended by the model's value-to-go ``V^(H) = v_H(x_H)`` in the logged state after the
  window: the long-term value (e.g. 52 weeks) with the first ``H`` weeks corrected on the logs.
  Unbiased when the model's ``v_H`` is; weights of only ``H`` weeks keep its variance small.

``q`` is a (K, H, A) array: the model's expected discounted return from week ``t`` on of
taking action ``a`` in the logged state ``x_kt`` and following the target policy afterwards
(from the calibrated world, :mod:`journeyopt.evaluation.ope.model_value`, or fitted-Q
evaluation, :mod:`journeyopt.evaluation.ope.fqe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from journeyopt.evaluation.ope.bandit import check_logged
from journeyopt.evaluation.ope.bootstrap import Statistic

Float = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class Trajectories:
    """``K`` logged customer trajectories of ``H`` weeks over ``A`` actions.

    Attributes:
        action: (K, H) logged action index.
        reward: (K, H) reward of each customer-week, currency.
        propensity: (K, H) behaviour probability of the logged action, in (0, 1].
        target: (K, H, A) target probabilities in each logged state (masked by the contact
            rules).
        gamma: Weekly discount factor in (0, 1].
    """

    action: IntArray
    reward: Float
    propensity: Float
    target: Float
    gamma: float

    def __post_init__(self) -> None:
        if self.action.ndim != 2 or self.action.shape[0] < 1 or self.action.shape[1] < 1:
            raise ValueError(
                f"action must be a (K, H) array with K, H >= 1, got {self.action.shape}"
            )
        shape = self.action.shape
        for name in ("reward", "propensity"):
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {getattr(self, name).shape}")
        if self.target.ndim != 3 or self.target.shape[:2] != shape:
            raise ValueError(f"target must have shape {shape} + (A,), got {self.target.shape}")
        if np.any(self.action < 0) or np.any(self.action >= self.target.shape[2]):
            raise ValueError(f"actions must be in 0..{self.target.shape[2] - 1}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        check_logged(self.reward, self.propensity, self.target)

    @property
    def n_customers(self) -> int:
        return int(self.action.shape[0])

    @property
    def horizon_weeks(self) -> int:
        return int(self.action.shape[1])

    @property
    def discount(self) -> Float:
        """(H,) ``gamma^t``."""
        return self.gamma ** np.arange(self.horizon_weeks, dtype=np.float64)

    @property
    def ratio(self) -> Float:
        """(K, H) per-week ratios ``rho_t``."""
        chosen = np.take_along_axis(self.target, self.action[:, :, None], axis=2)[:, :, 0]
        return np.asarray(chosen / self.propensity, np.float64)

    @property
    def cumulative_ratio(self) -> Float:
        """(K, H) cumulative ratios ``R_t``."""
        return np.asarray(np.cumprod(self.ratio, axis=1), np.float64)

    def take(self, rows: NDArray[np.integer] | NDArray[np.bool_]) -> Trajectories:
        """The trajectories of customers ``rows``."""
        return Trajectories(
            self.action[rows],
            self.reward[rows],
            self.propensity[rows],
            self.target[rows],
            self.gamma,
        )


def check_model(data: Trajectories, q_hat: Float) -> None:
    """Raise ``ValueError`` unless ``q_hat`` is a finite (K, H, A) array like ``data.target``."""
    if q_hat.shape != data.target.shape:
        raise ValueError(f"q_hat must have shape {data.target.shape}, got {q_hat.shape}")
    if not np.all(np.isfinite(q_hat)):
        raise ValueError("q_hat must be finite")


class SequentialEstimator(Protocol):
    """A long-term value estimator."""

    @property
    def name(self) -> str: ...

    def statistic(self, data: Trajectories, q_hat: Float | None = None) -> Statistic:
        """The estimate in ratio form, one row per customer."""
        ...


@dataclass(frozen=True)
class PDIS:
    """Per-decision importance sampling."""

    name: str = "pdis"

    def statistic(self, data: Trajectories, q_hat: Float | None = None) -> Statistic:
        u = (data.discount * data.cumulative_ratio * data.reward).sum(axis=1)
        return Statistic(u[:, None], np.ones((data.n_customers, 1)))


@dataclass(frozen=True)
class WPDIS:
    """Weighted (self-normalised per week) per-decision importance sampling."""

    name: str = "wpdis"

    def statistic(self, data: Trajectories, q_hat: Float | None = None) -> Statistic:
        big_r = data.cumulative_ratio
        return Statistic(data.discount * big_r * data.reward, big_r)


def _model_values(data: Trajectories, q_hat: Float | None) -> tuple[Float, Float]:
    """``(q_t(x_t, a_t), v_t(x_t))``, each (K, H)."""
    if q_hat is None:
        raise ValueError("this estimator needs a value model (q_hat)")
    check_model(data, q_hat)
    logged = np.take_along_axis(q_hat, data.action[:, :, None], axis=2)[:, :, 0]
    return logged, (data.target * q_hat).sum(axis=2)


def _dr_sum(data: Trajectories, q_hat: Float | None) -> Float:
    """(K,) ``sum_t gamma^t (R_t (r_t - q_t(x_t, a_t)) + R_{t-1} v_t(x_t))``."""
    logged, v = _model_values(data, q_hat)
    big_r = data.cumulative_ratio
    previous = np.concatenate([np.ones((data.n_customers, 1)), big_r[:, :-1]], axis=1)
    terms = big_r * (data.reward - logged) + previous * v
    return np.asarray((data.discount * terms).sum(axis=1), np.float64)


@dataclass(frozen=True)
class SequentialDR:
    """Sequential doubly robust (Jiang & Li 2016)."""

    name: str = "seq_dr"

    def statistic(self, data: Trajectories, q_hat: Float | None = None) -> Statistic:
        u = _dr_sum(data, q_hat)
        return Statistic(u[:, None], np.ones((data.n_customers, 1)))


@dataclass(frozen=True)
class LongTermDR:
    """Sequential DR over the ``H``-week window with the model's value-to-go after it (see the
    module docstring): ``mean_k [sum_{t<H} gamma^t (R_t (r_t - q_t) + R_{t-1} v_t) +
    gamma^H R_{H-1} v_H(x_H)]``.

    ``q_hat`` must include the value-to-go (``q_{H-1} = r + gamma E[v_H]``,
    :func:`journeyopt.evaluation.ope.model_value.long_term_model_values`).
    """

    name: str = "lt_dr"

    def statistic(self, data: Trajectories, q_hat: Float | None, terminal: Float) -> Statistic:
        """The estimate with ``terminal`` (K,) ``v_H(x_kH)``, currency."""
        if terminal.shape != (data.n_customers,) or not np.all(np.isfinite(terminal)):
            raise ValueError(f"terminal must be a finite ({data.n_customers},) array")
        h = data.horizon_weeks
        tail = data.gamma**h * data.cumulative_ratio[:, -1] * terminal
        u = _dr_sum(data, q_hat) + tail
        return Statistic(u[:, None], np.ones((data.n_customers, 1)))


@dataclass(frozen=True)
class DirectValue:
    """``mean_k v_0(x_k0)``: the model's value of the target policy from the logged initial
    states (the direct method with the world's model, or fitted-Q evaluation).

    Attributes:
        name: ``dm`` or ``fqe``, after where ``q_hat`` comes from.
    """

    name: str = "dm"

    def statistic(self, data: Trajectories, q_hat: Float | None = None) -> Statistic:
        _, v = _model_values(data, q_hat)
        return Statistic(v[:, :1].copy(), np.ones((data.n_customers, 1)))
