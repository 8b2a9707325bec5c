"""BG/NBD (Fader, Hardie & Lee 2005), the reference model of repeat buying: fitted by maximum
likelihood and used to forecast a cohort's hold-out purchases beside a calibrated world.

Model, per customer: while alive, transactions follow a Poisson process with rate
``lambda ~ Gamma(r, alpha)`` (rate per week when time is in weeks); after every transaction the
customer drops out for good with probability ``p ~ Beta(a, b)``. A customer's data are the
*repeat* transactions ``x`` in the calibration period, the time ``t_x`` of the last one and the
customer's age ``T`` at the end of the period, both measured from the first transaction
(weeks). The likelihood and the conditional forecast are closed form (the paper's eqs. 6 and
10); scipy does the optimisation and the Gauss hypergeometric function.

Reference: P. S. Fader, B. G. S. Hardie, K. L. Lee, "Counting your customers the easy way: an
alternative to the Pareto/NBD model", Marketing Science 24(2), 275-284, 2005.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, special, stats

Float = NDArray[np.float64]


@dataclass(frozen=True)
class BGNBD:
    """BG/NBD parameters (all > 0): purchase rates ``Gamma(r, alpha)`` (``alpha`` in the time
    unit of the data, weeks here), dropout probabilities ``Beta(a, b)``."""

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        for name in ("r", "alpha", "a", "b"):
            if not getattr(self, name) > 0:
                raise ValueError(f"BG/NBD parameter {name} must be > 0")


def _check(x: Float, t_x: Float, age: Float) -> None:
    if not x.shape == t_x.shape == age.shape:
        raise ValueError("x, t_x and T must have the same shape (one entry per customer)")
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > age + 1e-9):
        raise ValueError("BG/NBD data need x >= 0 and 0 <= t_x <= T")


def log_likelihood(params: BGNBD, x: Float, t_x: Float, age: Float) -> Float:
    """(N,) log-likelihood of each customer's ``(x, t_x, T)`` (eq. 6 of the paper).

    Args:
        params: The model.
        x: (N,) repeat transactions in the calibration period.
        t_x: (N,) time of the last repeat transaction since the first one (0 when ``x = 0``).
        age: (N,) ``T``: time from the first transaction to the end of the period.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    log_common = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    alive = special.betaln(a, b + x) - special.betaln(a, b) - (r + x) * np.log(alpha + age)
    repeat = x > 0
    dropped = np.where(
        repeat,
        special.betaln(a + 1, np.maximum(b + x - 1, 1e-12))
        - special.betaln(a, b)
        - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return np.asarray(log_common + np.logaddexp(alive, dropped), np.float64)


def fit_bgnbd(x: Float, t_x: Float, age: Float, start: BGNBD | None = None) -> BGNBD:
    """Maximum-likelihood BG/NBD on customers' ``(x, t_x, T)`` (see :func:`log_likelihood`);
    optimised over log-parameters with L-BFGS-B.

    Raises:
        ValueError: on inconsistent data or when the optimiser does not converge.
    """
    x, t_x, age = (np.asarray(v, np.float64) for v in (x, t_x, age))
    _check(x, t_x, age)
    if x.size == 0:
        raise ValueError("BG/NBD needs at least one customer")
    init = start or BGNBD(1.0, max(float(np.mean(age)), 1.0), 1.0, 1.0)

    def loss(theta: Float) -> float:
        p = BGNBD(*np.exp(np.clip(theta, -20.0, 20.0)))
        return -float(np.mean(log_likelihood(p, x, t_x, age)))

    theta0 = np.log([init.r, init.alpha, init.a, init.b])
    result = optimize.minimize(loss, theta0, method="L-BFGS-B", bounds=[(-12.0, 12.0)] * 4)
    if not result.success and not np.isfinite(result.fun):
        raise ValueError(f"BG/NBD fit did not converge: {result.message}")
    return BGNBD(*(float(v) for v in np.exp(result.x)))


def probability_alive(params: BGNBD, x: Float, t_x: Float, age: Float) -> Float:
    """(N,) probability that each customer is still alive at the end of the calibration
    period given their ``(x, t_x, T)`` (1 for ``x = 0``: dropout follows a repeat transaction).

    Args:
        params: The model.
        x, t_x, age: (N,) as for :func:`log_likelihood`.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, t_x, age = (np.asarray(v, np.float64) for v in (x, t_x, age))
    odds_dropped = np.where(
        x > 0,
        a / np.maximum(b + x - 1, 1e-12) * ((alpha + age) / (alpha + t_x)) ** (r + x),
        0.0,
    )
    return np.asarray(1.0 / (1.0 + odds_dropped), np.float64)


def conditional_expected(params: BGNBD, horizon: float, x: Float, t_x: Float, age: Float) -> Float:
    """(N,) expected transactions of each customer in the next ``horizon`` time units given
    their calibration data (eq. 10 of the paper).

    Args:
        params: A fitted model (``a != 1``: the closed form divides by ``a - 1``; for
            ``a < 1``, as on CDNOW, both factors change sign and the result stays valid).
        horizon: Length of the forecast period, same unit as ``age``.
        x, t_x, age: (N,) as for :func:`log_likelihood`.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    if abs(a - 1.0) < 1e-9:
        raise ValueError("the BG/NBD conditional expectation's closed form needs a != 1")
    x, t_x, age = (np.asarray(v, np.float64) for v in (x, t_x, age))
    z = horizon / (alpha + age + horizon)
    hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
    numerator = (
        (a + b + x - 1)
        / (a - 1)
        * (1.0 - ((alpha + age) / (alpha + age + horizon)) ** (r + x) * hyp)
    )
    return np.asarray(numerator * probability_alive(params, x, t_x, age), np.float64)


def conditional_pmf(
    params: BGNBD, horizon: float, x: Float, t_x: Float, age: Float, max_count: int
) -> Float:
    """(N, max_count + 1) probability of each customer making 0, 1, ..., ``max_count``
    transactions in the next ``horizon`` time units given their calibration data; the mass
    beyond ``max_count`` is ``1 - row sum``.

    Given the data, a customer is alive with :func:`probability_alive`, and then their rate and
    dropout probability are independent ``Gamma(r + x, alpha + T)`` and ``Beta(a, b + x)`` and
    the future is a new BG/NBD customer's with those parameters, whose count has the closed
    form of the paper's eq. 8 (a negative binomial count weighted by staying alive through it,
    plus the survival of that count for dropping out after the last); dead customers make none.
    Its mean is :func:`conditional_expected`.

    Args:
        params: The model.
        horizon: Length of the forecast period, same unit as ``age``.
        x, t_x, age: (N,) as for :func:`log_likelihood`.
        max_count: Largest count given.
    """
    if max_count < 0:
        raise ValueError("max_count must be >= 0")
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, t_x, age = (np.asarray(v, np.float64) for v in (x, t_x, age))
    n = np.arange(max_count + 1, dtype=np.float64)[None, :]
    shape, scale, b_post = (r + x)[:, None], (alpha + age)[:, None], (b + x)[:, None]
    q = scale / (scale + horizon)  # negative binomial success probability
    base = special.betaln(a, b_post)
    stays = np.exp(special.betaln(a, b_post + n) - base + stats.nbinom.logpmf(n, shape, q))
    drops = np.where(
        n > 0,
        np.exp(special.betaln(a + 1, np.maximum(b_post + n - 1, 1e-12)) - base)
        * stats.nbinom.sf(n - 1, shape, q),
        0.0,
    )
    alive = probability_alive(params, x, t_x, age)[:, None]
    pmf = alive * (stays + drops)
    pmf[:, 0] += 1.0 - alive[:, 0]
    return np.asarray(pmf, np.float64)


def simulate_bgnbd(params: BGNBD, age: Float, rng: np.random.Generator) -> tuple[Float, Float]:
    """Draw ``(x, t_x)`` (each (N,)) for customers of ages ``age`` (N,) from the model (for
    tests of parameter recovery): each customer's rate and dropout probability, then the
    Poisson transactions until dropout or the end of the period."""
    n = age.shape[0]
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    t = np.zeros(n)
    alive = np.ones(n, bool)
    while alive.any():
        t = t + rng.exponential(1.0, n) / np.maximum(lam, 1e-300)
        buys = alive & (t <= age)
        x[buys] += 1
        t_x[buys] = t[buys]
        alive = buys & (rng.random(n) >= p)
    return x, t_x


def repeat_summary(
    customer: NDArray[np.integer], time: Float, end: float
) -> tuple[Float, Float, Float]:
    """Customers' ``(x, t_x, T)`` (each (K,), customers in order of their code) from their
    transactions up to ``end``.

    Args:
        customer: (M,) customer code ``0..K-1`` of each transaction.
        time: (M,) transaction time (weeks from any origin); transactions after ``end`` are
            ignored, and so are customers whose first transaction is after it (their rows are
            NaN).
        end: End of the calibration period, same unit.
    """
    customer = np.asarray(customer, np.int64)
    time = np.asarray(time, np.float64)
    k = int(customer.max()) + 1 if customer.size else 0
    keep = time <= end
    c, t = customer[keep], time[keep]
    first = np.full(k, np.inf)
    last = np.full(k, -np.inf)
    np.minimum.at(first, c, t)
    np.maximum.at(last, c, t)
    count = np.bincount(c, minlength=k).astype(np.float64)
    seen = count > 0
    x = np.where(seen, count - 1.0, np.nan)
    return x, np.where(seen, last - first, np.nan), np.where(seen, end - first, np.nan)


@dataclass(frozen=True)
class ReferenceForecast:
    """BG/NBD fitted on a panel's calibration weeks and its hold-out forecast, in purchase
    weeks (the unit of the world's conversions: at most one per customer-week).

    Attributes:
        params: Fitted parameters (time in weeks).
        customers: Customers with a purchase before the split (the BG/NBD cohort).
        forecast: Expected purchase weeks of those customers in the hold-out weeks.
    """

    params: BGNBD
    customers: int
    forecast: float


def panel_reference(
    customer: NDArray[np.integer], week: NDArray[np.integer], first_holdout: int, horizon: int
) -> ReferenceForecast:
    """BG/NBD on purchase weeks: each customer's weeks with a conversion before
    ``first_holdout`` (a week index), forecast over the ``horizon`` hold-out weeks.

    Args:
        customer: (M,) customer code of each customer-week with a conversion.
        week: (M,) its week index (weeks at or after ``first_holdout`` are ignored).
        first_holdout: First hold-out week.
        horizon: Hold-out length, weeks.
    """
    x, t_x, age = repeat_summary(customer, np.asarray(week, np.float64), first_holdout - 0.5)
    cohort = ~np.isnan(x)
    x, t_x, age = x[cohort], t_x[cohort], age[cohort] + 0.5
    params = fit_bgnbd(x, t_x, age)
    forecast = float(conditional_expected(params, float(horizon), x, t_x, age).sum())
    return ReferenceForecast(params, int(cohort.sum()), forecast)
