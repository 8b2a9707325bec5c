"""CDNOW repeat purchases in the reference hold-out, like for like: a calibrated world against
what happened, beside BG/NBD and Pareto/NBD.

    python experiments/cdnow_calibration/compare.py <output_dir> <CDNOW file or "sample"> \
        [--runs 20] [--seed 0]

The reference definition (Fader, Hardie & Lee 2005) is used exactly: the calibration period
is 1997-01-01..1997-09-30 and the hold-out 1997-10-01..1998-06-30 (273 days, 39 weeks), dates
in the file's own time zone; same-day lines of a customer are one transaction (ingestion merges
them); a repeat transaction is any transaction day after a customer's first. Every predictor
is scored on the same customers (the whole cohort: everyone's first purchase is in
1997-01..03), the same days and the same actual (each customer's transaction days in the
hold-out).

How the weekly world meets a split inside a week: its weeks start on Monday, and 1997-10-01
is a Wednesday. The world is fitted only on the complete weeks before the split (up to Sunday
1997-09-28; ``configs/calibration/cdnow.yaml``: ``split: 1997-09-29``), so no hold-out day is
fitted, and it is simulated from every customer's state at Monday 1997-09-29 (the two
calibration days 09-29 and 09-30 are not in that state: the world knows two days less than
the reference models) for the 40 weeks to Sunday 1998-07-05. Each simulated week is spread
evenly over its days: the reference's 7-day period ``k`` (Wednesday to Tuesday) gets 5/7 of
Monday week ``k`` and 2/7 of week ``k + 1``, so the hold-out gets 5/7 of the split week and 2/7
of the last. The world draws at most one purchase per customer-week; its transactions are its
purchase weeks times the transaction days per purchase week of the fitted weeks (customers'
weeks after their first, before 1997-09-29).

Predictors of each customer's hold-out transactions: the world (its exact expectation from
the world's tables, :func:`expected_weeks`, no simulation draws; each bootstrap member of its
ensemble likewise, for the refit spread; ``--runs`` simulations of the point fit give the
simulation noise of its total and check the expectation), zero, the customer's own past
rate (repeat transactions per week since the first purchase, times 39), BG/NBD fitted here
(:mod:`journeyopt.calibration.bgnbd`), and BG/NBD and Pareto/NBD of ``pymc-marketing`` (an
independently maintained implementation, maximum a posteriori with its default priors;
``pip install journeyopt[clv]``) when it is installed. Each model gives the conditional
distribution of each customer's hold-out transactions given their calibration data, not only
its mean: the world's exactly from its tables (:func:`purchase_weeks_pmf`: its counted purchase
weeks, the split and last weeks by day share, each purchase week with transaction days drawn
from the fitted weeks' distribution of transaction days per purchase week, whose mean is the
factor above; :func:`compound_pmf`), BG/NBD's in closed form
(:func:`~journeyopt.calibration.bgnbd.conditional_pmf`, also at pymc-marketing's parameters:
its BG/NBD gives only the probability of no purchase), Pareto/NBD's from pymc-marketing's
conditional PMF; zero is a point mass; the own past rate has no distribution. The **mean
forecast** (the conditional expectation) gives the totals, RMSE, the weekly curves and an MAE
as before; the **median forecast** (the lower median of the distribution: the point forecast
that minimises the expected absolute error) the MAE like for like; the ranked probability
score (the expected absolute error minus half the distribution's own mean absolute
difference; a point forecast's is its absolute error) and the mean log probability of the
actual count score the whole distribution.

Reported per predictor: the hold-out total and its error; per-customer MAE and RMSE
(transactions per customer); the weekly tracking MAPE (mean over the 39 reference weeks of
|predicted - actual| / actual) and the cumulative tracking MAPE (the same on the running total
of hold-out repeat transactions); per model with a distribution, the MAE of its median, the
share of customers whose median is 0, the sum of the medians, the ranked probability score, the
mean log probability of the actual count and the largest probability mass missing from a
customer's distribution; and each of these per-customer scores minus BG/NBD's (this
package's) on the same customers with the standard error of the mean difference. Written to
``<output_dir>/compare_summary.csv``, ``compare_distribution.csv``, ``compare_paired.csv`` and
``compare_weekly.csv`` and printed as Markdown;
``compare_by_frequency.csv`` holds the mean hold-out transactions per customer by calibration
repeat transactions (0, 1, 2, 3-4, 5-9, 10+), actual against each predictor's mean, and
``compare_median_by_frequency.csv`` each group's share of the MAE of each median forecast:
where the per-customer error comes from.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir
from numpy.typing import NDArray

import journeyopt
from journeyopt.calibration.bgnbd import BGNBD, conditional_expected, conditional_pmf, fit_bgnbd
from journeyopt.calibration.calibrated import CalibratedWorld
from journeyopt.calibration.config import register_configs
from journeyopt.cli.entry import to_object
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.schema import CanonicalLogs
from journeyopt.data.source import SourceConfig
from journeyopt.panel.build import build_panel, state_at
from journeyopt.panel.config import PanelConfig
from journeyopt.panel.state import CustomerState, advance, state_features
from journeyopt.sim.discrete import DiscreteLayout, discrete_state, next_summary
from journeyopt.sim.dynamics import ResponseTable, sample_outcome_at
from journeyopt.sim.world import WorldSpec

Float = NDArray[np.float64]

START = pd.Timestamp("1997-01-01")
SPLIT = pd.Timestamp("1997-10-01")  # first hold-out day (a Wednesday)
END = pd.Timestamp("1998-07-01")  # day after the last hold-out day
WORLD_START = pd.Timestamp("1997-09-29", tz="UTC")  # Monday of the split week
SPLIT_OFFSET_DAYS = 2  # Monday and Tuesday of the split week are calibration days


@dataclass(frozen=True)
class Reference:
    """The cohort's data in the reference definition, K customers in ``ids`` order.

    Attributes:
        ids: (K,) customer ids.
        x: (K,) repeat transactions in the calibration period.
        t_x: (K,) weeks from the first to the last calibration transaction.
        age: (K,) ``T``: weeks from the first transaction to the end of the calibration period.
        actual: (K, 39) transactions in each 7-day hold-out period (from 1997-10-01).
        calibration_repeat: Repeat transactions of the cohort in the calibration period.
    """

    ids: NDArray[np.object_]
    x: Float
    t_x: Float
    age: Float
    actual: Float
    calibration_repeat: int

    @property
    def periods(self) -> int:
        return int(self.actual.shape[1])


def reference_data(logs: CanonicalLogs, timezone: str) -> Reference:
    """Each customer's calibration summary and hold-out transactions by local day."""
    events = logs.events
    day = events["ts"].dt.tz_convert(timezone).dt.tz_localize(None).dt.normalize()
    frame = pd.DataFrame({"customer_id": events["customer_id"].astype(str), "day": day})
    frame = frame.drop_duplicates()  # one transaction per customer and day
    if frame["day"].min() < START or frame["day"].max() >= END:
        raise ValueError("transactions outside 1997-01-01..1998-06-30: not the CDNOW file")
    codes, ids = pd.factorize(frame["customer_id"])
    k = len(ids)
    days = ((frame["day"] - START).dt.days).to_numpy(np.float64)
    split = float((SPLIT - START).days)
    cal = days < split
    first = np.full(k, np.inf)
    last = np.full(k, -np.inf)
    np.minimum.at(first, codes[cal], days[cal])
    np.maximum.at(last, codes[cal], days[cal])
    if not np.all(np.isfinite(first)):
        raise ValueError("a customer's first purchase is in the hold-out: not the CDNOW cohort")
    x = np.bincount(codes[cal], minlength=k).astype(np.float64) - 1.0
    periods = int((END - SPLIT).days) // 7
    period = ((days[~cal] - split) // 7).astype(np.int64)
    actual = np.zeros((k, periods))
    np.add.at(actual, (codes[~cal], period), 1.0)
    return Reference(
        np.asarray(ids, object),
        x,
        (last - first) / 7.0,
        (split - first) / 7.0,
        actual,
        int(x.sum()),
    )


def simulate_weeks(
    world: WorldSpec, state: CustomerState, weeks_of_year: NDArray[np.int64], runs: int, seed: int
) -> tuple[Float, Float]:
    """Simulated purchase weeks without contacts: (K, H) each customer's mean over ``runs``
    and (runs, H) the cohort's weekly totals of each run."""
    k, h = state.n_customers, weeks_of_year.shape[0]
    segment = np.zeros(k, np.int64)  # CDNOW has one segment
    none = np.zeros(k, np.int64)
    rng = np.random.default_rng(seed)
    mean = np.zeros((k, h))
    totals = np.zeros((runs, h))
    for r in range(runs):
        s = state.take(slice(None))
        for t in range(h):
            x = discrete_state(state_features(s, world.features), segment, world)
            out = sample_outcome_at(world, x, none, int(weeks_of_year[t]), rng)
            bought = out.converted.astype(np.float64)
            mean[:, t] += bought / runs
            totals[r, t] = bought.sum()
            s = advance(s, out.activity, inplace=True)
    return mean, totals


@dataclass(frozen=True)
class Chain:
    """A world's summary chain without contacts: a week moves each state to one of four next
    states (a purchase or not x an engagement or not, independent given the state).

    Attributes:
        world: The world.
        table: Its response tables.
        next_state: ``(converted, engaged) ->`` (n_states,) next state of every state.
        tenure: (n_states,) each state's tenure (weeks; grows by one a week up to its cap).
    """

    world: WorldSpec
    table: ResponseTable
    next_state: dict[tuple[bool, bool], NDArray[np.int64]]
    tenure: NDArray[np.int64]

    @classmethod
    def of(cls, world: WorldSpec) -> Chain:
        layout = DiscreteLayout.of(world)
        states = layout.all_states()
        n = layout.n_states
        none = np.zeros(n, np.int64)
        nxt = {
            (c, e): layout.encode(
                next_summary(
                    states,
                    world.discrete,
                    np.full(n, c),
                    np.full(n, e),
                    np.zeros(n, bool),
                    none,
                    action=none,
                    lasting_code=none,
                )
            )
            for c in (False, True)
            for e in (False, True)
        }
        return cls(world, ResponseTable.of(world), nxt, np.asarray(states.tenure, np.int64))

    @property
    def n_states(self) -> int:
        return int(self.tenure.shape[0])

    def reachable(self, start: NDArray[np.int64], week: int) -> NDArray[np.int64]:
        """States that customers starting at ``start`` can be in after ``week`` weeks: those of
        their starting tenures + ``week`` (capped)."""
        first = np.unique(self.tenure[start])
        cap = self.world.discrete.tenure_cap_weeks
        return np.flatnonzero(np.isin(self.tenure, np.minimum(first + week, cap) if cap else first))

    def step(
        self, rows: NDArray[np.int64], week_of_year: int
    ) -> list[tuple[bool, Float, NDArray[np.int64]]]:
        """For the states ``rows`` in a week of year: each outcome's purchase flag, probability
        and next state."""
        p = self.table.convert(week_of_year)[rows * self.world.actions.n_actions]
        q = self.table.inquiry(week_of_year)[rows]
        return [
            (c, (p if c else 1.0 - p) * (q if e else 1.0 - q), target[rows])
            for (c, e), target in self.next_state.items()
        ]


def expected_weeks(
    world: WorldSpec, start: NDArray[np.int64], weeks_of_year: NDArray[np.int64]
) -> Float:
    """(K, H) each customer's exact expected purchase weeks without contacts, from the world's
    tables (no simulation draws): ``E[converted in week k | S_0 = start]``.

    Backward over the weeks (:class:`Chain`), ``V_t[s, k] = sum_o P(o | s) V_{t+1}[next(s, o),
    k]`` with ``V_k[s, k] = p_k(s)``, all ``k`` at once: an (n_states, H) array per step. The
    mean forecast of each customer (totals, RMSE, the weekly curves) is this expectation; the
    simulations only give the spread of the total.
    """
    chain = Chain.of(world)
    h = weeks_of_year.shape[0]
    value = np.zeros((chain.n_states, h))
    for t in range(h - 1, -1, -1):
        # in week t only the states of the starting tenures + t are reached: compute those
        # rows only (reads before writes)
        rows = chain.reachable(start, t)
        later = np.zeros((rows.shape[0], h))
        bought = np.zeros(rows.shape[0])
        for c, weight, target in chain.step(rows, int(weeks_of_year[t])):
            later += weight[:, None] * value[target]
            bought += weight if c else 0.0
        later[:, t] = bought
        value[rows] = later
    return value[start]


def purchase_weeks_pmf(
    world: WorldSpec, start: NDArray[np.int64], weeks_of_year: NDArray[np.int64], counted: Float
) -> Float:
    """(K, H + 1) each customer's exact distribution of counted purchase weeks without contacts:
    ``P(N = n | S_0 = start)``, ``n = 0..H``, where a purchase in week ``t`` is counted with
    probability ``counted[t]`` (the share of the week's days inside the window: a purchase
    week's transactions fall on a day drawn evenly from its seven; 1 for weeks wholly inside).

    Backward over the weeks like :func:`expected_weeks`, with a distribution of the count from
    week ``t`` on per state instead of an expectation per week: ``V_t[s] = sum_o P(o | s)
    (counted_t shift(V_{t+1}[next(s, o)]) + (1 - counted_t) V_{t+1}[next(s, o)])`` for the
    purchase outcomes, without the shift for the others; ``V_H[s] = delta_0``. Its mean is
    ``expected_weeks(...) @ counted``.
    """
    chain = Chain.of(world)
    h = weeks_of_year.shape[0]
    value = np.zeros((chain.n_states, h + 1))
    value[:, 0] = 1.0
    for t in range(h - 1, -1, -1):
        rows = chain.reachable(start, t)
        later = np.zeros((rows.shape[0], h + 1))
        for c, weight, target in chain.step(rows, int(weeks_of_year[t])):
            ahead = value[target]
            if c:
                later += (weight * (1.0 - counted[t]))[:, None] * ahead
                later[:, 1:] += (weight * counted[t])[:, None] * ahead[:, :-1]
            else:
                later += weight[:, None] * ahead
        value[rows] = later
    return value[start]


def compound_pmf(count_pmf: Float, per_count: Float) -> Float:
    """(K, M * D + 1) distribution of the sum of ``N`` independent draws from ``per_count``
    ((D + 1,) probabilities of 0..D) when ``N`` has the (K, M + 1) distribution ``count_pmf``:
    the world's transaction days from its counted purchase weeks, each week's transaction days
    drawn from the fitted weeks' distribution of transaction days per purchase week."""
    m, d = count_pmf.shape[1] - 1, per_count.shape[0] - 1
    powers = np.zeros((m + 1, m * d + 1))
    powers[0, 0] = 1.0
    for n in range(1, m + 1):
        powers[n] = np.convolve(powers[n - 1], per_count)[: m * d + 1]
    return np.asarray(count_pmf @ powers, np.float64)


def to_periods(weekly: Float) -> Float:
    """(..., H = P + 1) values per Monday week (the first starting Monday 1997-09-29) -> (..., P)
    values per reference 7-day period (Wednesday to Tuesday), each week spread evenly over its
    days."""
    share = (7 - SPLIT_OFFSET_DAYS) / 7.0
    return share * weekly[..., :-1] + (1.0 - share) * weekly[..., 1:]


def tracking_mape(predicted: Float, actual: Float) -> tuple[float, float]:
    """Weekly and cumulative tracking MAPE (%) of (P,) cohort totals per period."""
    weekly = np.mean(np.abs(predicted - actual) / actual)
    cum_p, cum_a = np.cumsum(predicted), np.cumsum(actual)
    return 100.0 * float(weekly), 100.0 * float(np.mean(np.abs(cum_p - cum_a) / cum_a))


MAX_COUNT = 300
"""Largest hold-out count given by the reference models' distributions (the mass beyond it is
reported; on CDNOW it is below 1e-9)."""


@dataclass(frozen=True)
class Forecast:
    """One predictor's forecast of each customer's hold-out transactions.

    Attributes:
        per_period: (K, P) expected transactions per reference period (the mean forecast).
        pmf: (K, M + 1) probability of 0..M hold-out transactions (the whole distribution);
            None for a predictor without one.
    """

    per_period: Float
    pmf: Float | None = None


def bgnbd_forecast(params: BGNBD, ref: Reference) -> Forecast:
    """BG/NBD's expected transactions per period (differences of the conditional expectation
    at 1, 2, ..., P weeks) and the conditional distribution of the hold-out count."""
    cum = np.column_stack(
        [
            conditional_expected(params, float(t), ref.x, ref.t_x, ref.age)
            for t in range(1, ref.periods + 1)
        ]
    )
    pmf = conditional_pmf(params, float(ref.periods), ref.x, ref.t_x, ref.age, MAX_COUNT)
    return Forecast(np.diff(cum, axis=1, prepend=0.0), pmf)


def bgnbd_own(ref: Reference) -> Forecast:
    """BG/NBD fitted by this package (maximum likelihood)."""
    params = fit_bgnbd(ref.x, ref.t_x, ref.age)
    print(
        f"BG/NBD (journeyopt): r={params.r:.3f} alpha={params.alpha:.3f} "
        f"a={params.a:.3f} b={params.b:.3f}"
    )
    return bgnbd_forecast(params, ref)


def pymc_marketing_models(ref: Reference) -> dict[str, Forecast]:
    """pymc-marketing's BG/NBD and Pareto/NBD (maximum a posteriori); empty when
    pymc-marketing is not installed.

    Means from its ``expected_purchases``. Distributions: Pareto/NBD's from its
    ``expected_purchase_probability`` (the conditional PMF, one count at a time); its BG/NBD
    exposes only the probability of no purchase, so its distribution is
    :func:`~journeyopt.calibration.bgnbd.conditional_pmf` at its parameters, checked against
    that probability."""
    try:
        from pymc_marketing.clv import BetaGeoModel, ParetoNBDModel
    except ImportError:
        print("pymc-marketing is not installed: no independent BG/NBD and Pareto/NBD")
        return {}
    data = pd.DataFrame(
        {
            "customer_id": np.arange(ref.ids.shape[0]),
            "frequency": ref.x,
            "recency": ref.t_x,
            "T": ref.age,
        }
    )
    horizon = ref.periods
    out: dict[str, Forecast] = {}
    for name, cls in (
        ("BG/NBD (pymc-marketing)", BetaGeoModel),
        ("Pareto/NBD (pymc-marketing)", ParetoNBDModel),
    ):
        model = cls(data=data)
        model.fit(method="map", progressbar=False)
        posterior = model.idata.posterior
        params = {
            v: float(posterior[v].mean()) for v in posterior.data_vars if posterior[v].ndim == 2
        }
        print(f"{name}: " + " ".join(f"{k}={v:.3f}" for k, v in params.items()))
        cum = np.column_stack(
            [
                np.asarray(model.expected_purchases(data=data, future_t=t).mean(("chain", "draw")))
                for t in range(1, horizon + 1)
            ]
        )
        per_period = np.diff(cum, axis=1, prepend=0.0)
        if isinstance(model, BetaGeoModel):
            bg = BGNBD(params["r"], params["alpha"], params["a"], params["b"])
            pmf = bgnbd_forecast(bg, ref).pmf
            assert pmf is not None
            none = np.asarray(
                model.expected_probability_no_purchase(t=horizon, data=data).mean(("chain", "draw"))
            )
            # its formula keeps a dropout term for customers without a repeat purchase, whom
            # BG/NBD keeps alive (dropout follows a repeat purchase): compared apart
            gap = np.abs(pmf[:, 0] - none)
            print(
                "  P(no purchase) against its expected_probability_no_purchase: max |difference| "
                f"{gap[ref.x > 0].max():.2e} (repeat buyers), {gap[ref.x == 0].max():.2e} (x = 0)"
            )
        else:
            pmf = pareto_nbd_pmf(model, data, horizon)
        out[name] = Forecast(per_period, pmf)
    return out


def pareto_nbd_pmf(model: Any, data: pd.DataFrame, horizon: int) -> Float:
    """(K, M + 1) pymc-marketing's Pareto/NBD conditional PMF of the hold-out count, counts
    0, 1, ... until every customer's remaining mass is below 1e-6 (at most
    :data:`MAX_COUNT`)."""
    columns: list[Float] = []
    for n in range(MAX_COUNT + 1):
        probability = model.expected_purchase_probability(
            data=data, n_purchases=n, future_t=horizon
        ).mean(("chain", "draw"))
        columns.append(np.clip(np.nan_to_num(np.asarray(probability, np.float64)), 0.0, 1.0))
        if np.max(1.0 - np.sum(columns, axis=0)) < 1e-6:
            break
    return np.column_stack(columns)


def median_count(pmf: Float) -> NDArray[np.int64]:
    """(K,) the lower median of each row's count distribution: the smallest ``n`` with
    ``P(N <= n) >= 1/2`` (the point forecast that minimises the expected absolute error)."""
    return np.asarray(np.argmax(np.cumsum(pmf, axis=1) >= 0.5 - 1e-12, axis=1), np.int64)


def ranked_probability_score(pmf: Float, actual: NDArray[np.int64]) -> Float:
    """(K,) ranked probability score of each row's count distribution at the actual count:
    ``sum_n (P(N <= n) - 1{actual <= n})^2`` over the row's counts (needs ``actual`` within
    them); a point forecast's is its absolute error, so it reads on MAE's scale."""
    if np.any(actual > pmf.shape[1] - 1):
        raise ValueError("an actual count beyond the distribution's counts")
    counts = np.arange(pmf.shape[1])[None, :]
    return np.asarray(
        ((np.cumsum(pmf, axis=1) - (counts >= actual[:, None])) ** 2).sum(axis=1), np.float64
    )


def customer_scores(forecast: Forecast, actual: NDArray[np.int64]) -> dict[str, Float]:
    """(K,) each customer's score of one forecast: the absolute error of its mean and, with a
    distribution, its median, that median's absolute error, its ranked probability score, the
    log probability of the actual count (-inf where it is 0) and the mass missing from it."""
    scores = {"abs_error_of_mean": np.abs(forecast.per_period.sum(axis=1) - actual)}
    if forecast.pmf is None:
        return scores
    width = max(forecast.pmf.shape[1], int(actual.max()) + 1)
    pmf = np.pad(forecast.pmf, ((0, 0), (0, width - forecast.pmf.shape[1])))
    median = median_count(pmf)
    with np.errstate(divide="ignore"):
        log_chance = np.log(pmf[np.arange(actual.shape[0]), actual])
    return scores | {
        "median": median.astype(np.float64),
        "abs_error_of_median": np.abs(median - actual).astype(np.float64),
        "rps": ranked_probability_score(pmf, actual),
        "log_score": np.asarray(log_chance, np.float64),
        "mass_missing": np.abs(1.0 - pmf.sum(axis=1)),
    }


def distribution_row(name: str, scores: dict[str, Float]) -> dict[str, object]:
    """One predictor's per-customer figures of its median forecast and whole distribution
    (NaN where it has none) beside the MAE of its mean forecast."""
    row: dict[str, object] = {
        "predictor": name,
        "mae_of_mean": float(scores["abs_error_of_mean"].mean()),
        "mae_of_median": np.nan,
        "median_zero_share": np.nan,
        "total_of_medians": np.nan,
        "rps": np.nan,
        "log_score": np.nan,
        "mass_missing": np.nan,
    }
    if "median" not in scores:
        return row
    return row | {
        "mae_of_median": float(scores["abs_error_of_median"].mean()),
        "median_zero_share": float(np.mean(scores["median"] == 0)),
        "total_of_medians": float(scores["median"].sum()),
        "rps": float(scores["rps"].mean()),
        "log_score": float(scores["log_score"].mean()),
        "mass_missing": float(scores["mass_missing"].max()),
    }


PAIRED = ("abs_error_of_mean", "abs_error_of_median", "rps", "log_score")
"""Per-customer scores compared between predictors on the same customers."""


def paired_differences(scores: dict[str, dict[str, Float]], reference: str) -> pd.DataFrame:
    """Each predictor's mean per-customer score minus ``reference``'s on the same customers,
    with the standard error of that mean difference (NaN unless both have the score and it is
    finite for every customer)."""
    rows = []
    for name, own in scores.items():
        row: dict[str, object] = {"predictor": name}
        for key in PAIRED:
            if key in own and key in scores[reference]:
                diff = own[key] - scores[reference][key]
            else:
                diff = np.full(2, np.nan)
            finite = bool(np.all(np.isfinite(diff)))
            row[key] = float(diff.mean()) if finite else np.nan
            row[f"{key}_se"] = (
                float(diff.std(ddof=1) / np.sqrt(diff.shape[0])) if finite else np.nan
            )
        rows.append(row)
    return pd.DataFrame.from_records(rows)


def summary_row(name: str, per_period: Float, ref: Reference) -> dict[str, object]:
    """One predictor's figures from its (K, P) forecast per customer and period."""
    actual_total = ref.actual.sum()
    per_customer = per_period.sum(axis=1)
    err = per_customer - ref.actual.sum(axis=1)
    weekly, cumulative = tracking_mape(per_period.sum(axis=0), ref.actual.sum(axis=0))
    return {
        "predictor": name,
        "total": float(per_customer.sum()),
        "total_error_pct": 100.0 * float(per_customer.sum() / actual_total - 1.0),
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "weekly_mape_pct": weekly,
        "cumulative_mape_pct": cumulative,
    }


FREQUENCY_GROUPS = (0, 1, 2, 3, 5, 10)
"""Lower bounds of the calibration repeat-transaction groups of the by-frequency table."""


def frequency_groups(x: Float) -> tuple[NDArray[np.int64], list[str]]:
    """Each customer's group of calibration repeat transactions (:data:`FREQUENCY_GROUPS`) and
    the groups' labels."""
    edges = [*FREQUENCY_GROUPS, np.inf]
    group = np.searchsorted(np.asarray(edges), x, side="right") - 1
    labels = [
        f"{lo}" if hi - lo == 1 else (f"{lo}+" if not np.isfinite(hi) else f"{lo}-{int(hi) - 1}")
        for lo, hi in pairwise(edges)
    ]
    return np.asarray(group, np.int64), labels


def by_frequency(predictions: dict[str, Float], ref: Reference) -> pd.DataFrame:
    """Mean hold-out transactions per customer of each group of calibration repeat
    transactions (:func:`frequency_groups`): customers, actual and every predictor's mean."""
    group, labels = frequency_groups(ref.x)
    rows = []
    for g, label in enumerate(labels):
        keep = group == g
        rows.append(
            {
                "repeat_transactions": label,
                "customers": int(keep.sum()),
                "actual": float(ref.actual[keep].sum(axis=1).mean()) if keep.any() else np.nan,
                **{
                    name: float(p[keep].sum(axis=1).mean()) if keep.any() else np.nan
                    for name, p in predictions.items()
                },
            }
        )
    return pd.DataFrame.from_records(rows)


def median_error_by_frequency(
    medians: dict[str, Float], actual: NDArray[np.int64], ref: Reference
) -> pd.DataFrame:
    """Each group of calibration repeat transactions' share of each median forecast's MAE (its
    summed absolute error / all customers; the shares add up to the MAE), and the share of the
    group's customers who buy in the hold-out."""
    group, labels = frequency_groups(ref.x)
    k = actual.shape[0]
    return pd.DataFrame.from_records(
        [
            {
                "repeat_transactions": label,
                "customers": int((group == g).sum()),
                "buyers_share": float(np.mean(actual[group == g] > 0)),
                **{
                    name: float(np.abs(m - actual)[group == g].sum() / k)
                    for name, m in medians.items()
                },
            }
            for g, label in enumerate(labels)
        ]
    )


def markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """``table`` as a Markdown table, numbers with ``digits`` decimals."""
    cells = [
        [f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row] for row in table.values
    ]
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * table.shape[1]]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def main(output_dir: Path, data: str, runs: int, seed: int) -> None:
    configs = Path(journeyopt.__file__).parent / "configs"
    overrides = ["data=cdnow_sample"] if data == "sample" else ["data=cdnow", f"data.path={data}"]
    register_configs()
    with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        cfg = compose(
            "calibrate", overrides=[*overrides, "panel=cdnow", "calibration=cdnow", "output_dir=x"]
        )
    source = to_object(cfg.data, SourceConfig)
    panel_cfg = to_object(cfg.panel, PanelConfig)
    logs, _ = ingest_to_logs(source)
    ref = reference_data(logs, source.timezone)
    actual_total = ref.actual.sum()
    print(
        f"cohort {ref.ids.shape[0]} customers; calibration repeat transactions "
        f"{ref.calibration_repeat}; hold-out transactions {actual_total:.0f} "
        f"over {ref.periods} weeks"
    )

    # the world's unit: purchase weeks; transactions per purchase week in the fitted weeks
    panel = build_panel(logs, panel_cfg, ())
    fitted = panel[(panel["week_start"] < WORLD_START) & (panel["tenure_weeks"] > 0)]
    per_week = float(fitted["conversions"].sum() / (fitted["conversions"] > 0).sum())
    print(f"transactions per purchase week (fitted weeks) {per_week:.4f}")

    calibrated = CalibratedWorld.load(output_dir)
    ids, state = state_at(logs, panel_cfg, (), WORLD_START)
    order = pd.Index(ids.astype(str)).get_indexer(pd.Index(ref.ids.astype(str)))
    if np.any(order < 0):
        raise ValueError("customers of the reference missing from the world's state")
    state = state.take(order)
    mondays = pd.date_range(WORLD_START, periods=ref.periods + 1, freq="7D")
    woy = np.asarray(mondays.isocalendar().week, np.int64)

    worlds = [("this world", calibrated.world)] + [
        (f"member {m}", w) for m, w in enumerate(calibrated.members)
    ]
    predictions: dict[str, Float] = {}
    for name, world in worlds:
        start = discrete_state(
            state_features(state, world.features), np.zeros(state.n_customers, np.int64), world
        )
        predictions[name] = to_periods(expected_weeks(world, start, woy)) * per_week
        if world is not calibrated.world:
            # a member's table is not used again: kept, 30 members of the full file held
            # 10 GB (4.1 GB peak with each released)
            ResponseTable.release(world)
    # the point fit's distribution of each customer's hold-out transaction days: its counted
    # purchase weeks (edge weeks by day share), each with the transaction days of a purchase
    # week drawn from the fitted weeks' (mean: per_week, so the mean forecast is unchanged)
    days = fitted.loc[fitted["conversions"] > 0, "conversions"].to_numpy(np.int64)
    per_count = np.bincount(days) / days.shape[0]
    counted = to_periods(np.eye(woy.shape[0])).sum(axis=-1)
    start = discrete_state(
        state_features(state, calibrated.world.features),
        np.zeros(state.n_customers, np.int64),
        calibrated.world,
    )
    world_pmf = compound_pmf(purchase_weeks_pmf(calibrated.world, start, woy, counted), per_count)
    gap = np.abs(world_pmf @ np.arange(world_pmf.shape[1]) - predictions["this world"].sum(1))
    print(
        "transaction days per purchase week (fitted weeks): "
        + ", ".join(f"{d}: {p:.4f}" for d, p in enumerate(per_count) if p > 0)
        + f"; the distribution's mean against the expectation: max |difference| {gap.max():.2e}"
    )
    # the simulations give only the spread of the point fit's total (simulation noise)
    mean, totals = simulate_weeks(calibrated.world, state, woy, runs, seed)
    simulated_mae = float(np.abs((to_periods(mean) * per_week).sum(1) - ref.actual.sum(1)).mean())
    point_runs = 100.0 * (to_periods(totals).sum(axis=1) * per_week / actual_total - 1.0)
    rows = [summary_row(name, p, ref) for name, p in predictions.items()]
    past_rate = np.where(ref.age > 0, ref.x / np.maximum(ref.age, 1e-9), 0.0)
    actual = ref.actual.sum(axis=1).astype(np.int64)
    others = {
        "zero": Forecast(np.zeros_like(ref.actual), np.ones((actual.shape[0], 1))),
        "own past rate": Forecast(np.repeat(past_rate[:, None], ref.periods, axis=1)),
        "BG/NBD (journeyopt)": bgnbd_own(ref),
        **pymc_marketing_models(ref),
    }
    rows += [summary_row(name, f.per_period, ref) for name, f in others.items()]
    forecasts = {"this world": Forecast(predictions["this world"], world_pmf), **others}
    scores = {name: customer_scores(f, actual) for name, f in forecasts.items()}
    distribution = pd.DataFrame.from_records(
        [distribution_row(name, s) for name, s in scores.items()]
    )
    against = paired_differences(scores, "BG/NBD (journeyopt)")
    summary = pd.DataFrame.from_records(rows)
    member_errors = summary.loc[summary["predictor"].str.startswith("member"), "total_error_pct"]
    print(
        f"world total error over {runs} simulations of the point fit: mean "
        f"{point_runs.mean():+.2f} %, SD {point_runs.std(ddof=1):.2f} points; MAE of their "
        f"mean {simulated_mae:.4f} (of the exact expectation {rows[0]['mae']:.4f})"
    )
    if len(member_errors) > 1:
        print(
            f"refit spread over {len(member_errors)} bootstrap members: errors "
            + ", ".join(f"{e:+.1f}" for e in member_errors)
            + f" %; SD {member_errors.std(ddof=1):.2f} points"
        )
    weekly = pd.DataFrame(
        {
            "period_start": pd.date_range(SPLIT, periods=ref.periods, freq="7D").date,
            "actual": ref.actual.sum(axis=0),
            **{name: p.sum(axis=0) for name, p in predictions.items()},
            **{name: f.per_period.sum(axis=0) for name, f in others.items()},
        }
    )
    for quarter, part in weekly.groupby(np.arange(ref.periods) // 13):
        print(
            f"weeks {13 * quarter + 1}-{13 * quarter + len(part)}: actual "
            f"{part['actual'].sum():.0f}, world {part['this world'].sum():.1f}, "
            f"BG/NBD {part['BG/NBD (journeyopt)'].sum():.1f}"
        )
    groups = by_frequency(
        {**predictions, **{name: f.per_period for name, f in others.items()}}, ref
    )
    summary.to_csv(output_dir / "compare_summary.csv", index=False)
    weekly.to_csv(output_dir / "compare_weekly.csv", index=False)
    groups.to_csv(output_dir / "compare_by_frequency.csv", index=False)
    distribution.to_csv(output_dir / "compare_distribution.csv", index=False)
    against.to_csv(output_dir / "compare_paired.csv", index=False)
    medians = {name: s["median"] for name, s in scores.items() if "median" in s}
    median_groups = median_error_by_frequency(medians, actual, ref)
    median_groups.to_csv(output_dir / "compare_median_by_frequency.csv", index=False)
    print(markdown(groups[[c for c in groups.columns if not c.startswith("member")]]))
    shown = summary[~summary["predictor"].str.startswith("member")]
    print("mean forecast:")
    print(markdown(shown))
    print("median forecast and the whole distribution (per customer):")
    print(markdown(distribution, digits=4))
    print("per-customer scores minus BG/NBD's (journeyopt) on the same customers, with SE:")
    print(markdown(against, digits=4))
    print("share of the MAE of each median forecast by calibration repeat transactions:")
    print(markdown(median_groups, digits=4))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", type=Path, help="folder of a CDNOW calibration")
    parser.add_argument("data", help='the CDNOW master file, or "sample"')
    parser.add_argument("--runs", type=int, default=20, help="simulations per world")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulations")
    args = parser.parse_args()
    main(args.output_dir, args.data, args.runs, args.seed)
