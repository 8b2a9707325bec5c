"""The staged rollout measured and decided: is the canary better than the policy it replaces
and than today's practice, with an always-valid test, and what to do about it.

During a canary (:mod:`journeyopt.tracking.rollout`) the decision log's ``arm`` column says
which policy decided for each customer (:mod:`journeyopt.serving.rollout`). From the weeks
since the canary started, each customer's arm is the arm of their first decision (intent to
treat; a customer seen in two arms, e.g. after the shares were changed by hand, is left out),
and their outcome per customer-week (``serve.rollout.outcome``, by default the margin net of
contact cost) comes from the panel of the real logs (:mod:`journeyopt.monitoring.exposure`).

Two comparisons, each the regression-adjusted difference per customer-week of
:func:`journeyopt.monitoring.uplift.regression_uplift` (customer-clustered standard error;
covariates from each customer's history before their first decision, up to
``serve.rollout.pre_weeks`` weeks: the outcome's pre-period mean and
``serve.rollout.covariates``, CUPED with several covariates; a fixed population's customers
keep much of their margin from week to week, so a long pre-period removes most of the
between-customer variance that otherwise keeps the interval wide however many weeks pass)
wrapped in the normal-mixture confidence sequence
of :mod:`journeyopt.monitoring.sequential`, so that looking every week keeps the error level
``serve.rollout.alpha``:

- canary minus ``previous`` (the champion it replaces, on the rest of treatment);
- canary minus ``control`` (today's practice, the A/B holdout).

Decision (:func:`decide`), rollback first:

- **rollback** when the upper bound against the previous policy or against control is below
  zero once that comparison has ``serve.rollout.min_exposure_rollback_weeks`` customer-weeks
  (at most the widening's ``min_exposure_weeks``, by default shorter: harm is acted on
  earlier than a gain is shipped, as guardrail metrics are); or, before that exposure against
  the previous policy, the estimated loss per canary customer against it (the shortfall per
  customer-week times the canary's weeks per customer) passes ``serve.rollout.loss_budget``.

The two minimum exposures are the sequence's burn-in for each decision: its coverage is
asymptotic (a central limit theorem at every look), and with a few hundred customers of
zero-inflated, heavy-tailed margins the first looks miss more often than ``alpha`` (with no
burn-in at all, 6.25 % wrong at 2,000 customers). Both decisions read one sequence, tuned to
be tightest at ``min_exposure_weeks`` (about 3.15 standard errors at 720 customer-weeks
against 3.04 at 2,000; a sequence tuned at the rollback's exposure would be 3.5 % narrower
there), so that its coverage at every look holds for both bounds at once. Before the
rollback's exposure only the budget acts; it is an early-harm guard on a point estimate, not
an error-controlled test, so it stops there (an estimated loss that grows with the weeks would
otherwise roll back, sooner or later, a canary as good as the previous policy). All of it is
measured in ``experiments/rollout/``.
- **widen** (the canary takes the whole treatment group) when both compared arms have at
  least ``serve.rollout.min_exposure_weeks`` customer-weeks and the lower bounds against the
  previous policy and against control (when a control group exists) are above zero;
- else **continue**.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from journeyopt.monitoring.sequential import confidence_sequence
from journeyopt.monitoring.uplift import regression_uplift
from journeyopt.serving.config import RolloutConfig
from journeyopt.serving.rollout import CANARY_ARM, CONTROL_ARM, PREVIOUS_ARM
from journeyopt.tracking.rollout import RolloutState

SEGMENT = "segment"
"""The customers table's static attribute, usable as a covariate (one indicator a segment)."""
MIN_SEGMENT_CUSTOMERS = 30
"""Fewest compared customers a segment needs for its own indicator in the adjustment."""
WIDEN = "widen"
ROLLBACK = "rollback"
CONTINUE = "continue"
DECISIONS: tuple[str, ...] = (WIDEN, CONTINUE, ROLLBACK)


@dataclass(frozen=True)
class ArmComparison:
    """The canary against one other arm, per customer-week of the rollout's outcome.

    Attributes:
        against: The other arm (``previous`` or ``control``).
        estimate: Canary minus the other arm, regression-adjusted (outcome units, e.g.
            currency per customer-week).
        std_error: Its customer-clustered standard error.
        low: Lower bound of the confidence sequence (valid at every look at once).
        high: Upper bound.
        canary_mean: The canary's realised outcome per customer-week (unadjusted).
        other_mean: The other arm's.
        canary_customers: Customers in the canary.
        other_customers: Customers in the other arm.
        canary_weeks: Customer-weeks of the canary.
        other_weeks: Customer-weeks of the other arm.
    """

    against: str
    estimate: float
    std_error: float
    low: float
    high: float
    canary_mean: float
    other_mean: float
    canary_customers: int
    other_customers: int
    canary_weeks: float
    other_weeks: float

    @property
    def exposure(self) -> float:
        """Customer-weeks of the smaller arm (the exposure the test's tuning counts)."""
        return min(self.canary_weeks, self.other_weeks)

    @property
    def loss_per_customer(self) -> float:
        """Estimated loss per canary customer so far: the shortfall per customer-week (0 when
        the canary is ahead) times the canary's weeks per customer, outcome units."""
        weeks_per_customer = self.canary_weeks / max(self.canary_customers, 1)
        return max(0.0, -self.estimate) * weeks_per_customer


@dataclass(frozen=True)
class RolloutVerdict:
    """What the evidence says to do.

    Attributes:
        decision: ``widen``, ``continue`` or ``rollback``.
        reasons: Why, one sentence each.
        vs_previous: The canary against the previous policy (None: too few customers).
        vs_control: The canary against today's practice (None: no control group or too few
            customers).
    """

    decision: str
    reasons: tuple[str, ...]
    vs_previous: ArmComparison | None
    vs_control: ArmComparison | None


def adjustment_covariates(outcome: str, settings: RolloutConfig) -> tuple[str, ...]:
    """The columns of the customers table the comparison adjusts for: ``<outcome>_pre`` and
    ``serve.rollout.covariates`` (none when ``serve.rollout.pre_weeks`` is 0)."""
    if settings.pre_weeks == 0:
        return ()
    return tuple(dict.fromkeys([f"{outcome}_pre", *settings.covariates]))


def covariate_matrix(rows: pd.DataFrame, names: tuple[str, ...]) -> np.ndarray | None:
    """(n, k) covariates of ``rows``: numeric columns as they are, ``segment`` (a static
    attribute) as one indicator per segment with at least :data:`MIN_SEGMENT_CUSTOMERS` of
    the rows, the largest segment and the small ones forming the baseline (each indicator
    costs the regression two slopes); None without ``names``.

    Raises:
        ValueError: A name is not a column of ``rows``.
    """
    if not names:
        return None
    missing = [name for name in names if name not in rows.columns]
    if missing:
        raise ValueError(f"serve.rollout.covariates: no column {missing} in the customers table")
    columns: list[np.ndarray] = []
    for name in names:
        if name == SEGMENT:
            values = rows[name].astype(str)
            counts = values.value_counts()
            levels = sorted(counts.index[1:][counts.iloc[1:] >= MIN_SEGMENT_CUSTOMERS])
            columns += [(values == level).to_numpy(np.float64) for level in levels]
        else:
            columns.append(rows[name].to_numpy(np.float64))
    return np.column_stack(columns) if columns else None


def compare_arms(
    customers: pd.DataFrame, outcome: str, against: str, settings: RolloutConfig
) -> ArmComparison | None:
    """The canary against the arm ``against`` (see the module docstring); None when either
    arm has fewer than 2 customers.

    Args:
        customers: One row per exposed customer (``group`` = arm, ``weeks``, ``<outcome>``
            and the covariates of :func:`adjustment_covariates`), from
            :func:`journeyopt.monitoring.exposure.customer_outcomes`.
        outcome: Outcome column compared.
        against: ``previous`` or ``control``.
        settings: ``serve.rollout`` (level and minimum exposure of the test, covariates).

    Raises:
        ValueError: A covariate of ``serve.rollout.covariates`` is not a column.
    """
    rows = customers[customers["group"].isin([CANARY_ARM, against])]
    canary = (rows["group"] == CANARY_ARM).to_numpy()
    if min(int(canary.sum()), int((~canary).sum())) < 2:
        return None
    weeks = rows["weeks"].to_numpy(np.float64)
    estimate = regression_uplift(
        rows[outcome].to_numpy(np.float64),
        weeks,
        canary,
        covariate_matrix(rows, adjustment_covariates(outcome, settings)),
    )
    canary_weeks, other_weeks = float(weeks[canary].sum()), float(weeks[~canary].sum())
    bound = confidence_sequence(
        estimate.uplift,
        estimate.std_error,
        min(canary_weeks, other_weeks),
        settings.alpha,
        float(settings.min_exposure_weeks),
    )
    return ArmComparison(
        against=against,
        estimate=estimate.uplift,
        std_error=estimate.std_error,
        low=bound.low,
        high=bound.high,
        canary_mean=estimate.treatment_mean,
        other_mean=estimate.control_mean,
        canary_customers=estimate.treatment_customers,
        other_customers=estimate.control_customers,
        canary_weeks=canary_weeks,
        other_weeks=other_weeks,
    )


def decide(
    vs_previous: ArmComparison | None, vs_control: ArmComparison | None, settings: RolloutConfig
) -> RolloutVerdict:
    """Widen, roll back or continue (see the module docstring)."""
    if vs_previous is None:
        return RolloutVerdict(
            CONTINUE, ("too few customers in the canary or previous arm yet",), None, vs_control
        )
    back: list[str] = []
    for c in (vs_previous, vs_control):
        if c is not None and c.exposure >= settings.rollback_exposure and c.high < 0.0:
            back.append(
                f"canary below {c.against}: {c.estimate:+.4f} per customer-week, upper bound "
                f"{c.high:+.4f} < 0 after {c.exposure:.0f} customer-weeks (rollback from "
                f"{settings.rollback_exposure})"
            )
    loss = vs_previous.loss_per_customer
    early = vs_previous.exposure < settings.rollback_exposure
    if early and loss > settings.loss_budget:
        back.append(
            f"estimated loss {loss:.3f} per canary customer against previous passes the "
            f"budget {settings.loss_budget:g} before the rollback's minimum exposure "
            f"({settings.rollback_exposure} customer-weeks)"
        )
    if back:
        return RolloutVerdict(ROLLBACK, tuple(back), vs_previous, vs_control)
    compared = [c for c in (vs_previous, vs_control) if c is not None]
    short = [c for c in compared if c.exposure < settings.min_exposure_weeks]
    if short:
        return RolloutVerdict(
            CONTINUE,
            tuple(
                f"{c.exposure:.0f} of {settings.min_exposure_weeks} customer-weeks against "
                f"{c.against} so far (widening needs them; the bound rolls back from "
                f"{settings.rollback_exposure})"
                for c in short
            ),
            vs_previous,
            vs_control,
        )
    undecided = [c for c in compared if not c.low > 0.0]
    if undecided:
        return RolloutVerdict(
            CONTINUE,
            tuple(
                f"against {c.against}: {c.estimate:+.4f} per customer-week, sequence "
                f"[{c.low:+.4f}, {c.high:+.4f}] holds 0"
                for c in undecided
            ),
            vs_previous,
            vs_control,
        )
    return RolloutVerdict(
        WIDEN,
        tuple(
            f"canary above {c.against}: {c.estimate:+.4f} per customer-week, lower bound "
            f"{c.low:+.4f} > 0"
            for c in compared
        ),
        vs_previous,
        vs_control,
    )


def exposure_stage(c: ArmComparison, settings: RolloutConfig) -> str:
    """Which decisions the comparison's exposure allows its bound to take, one line (the
    minimum exposures of :func:`decide`: the rollback's, then the widening's)."""
    rollback, widen = settings.rollback_exposure, settings.min_exposure_weeks
    if c.exposure >= widen:
        allowed = "its bound may roll back or widen"
    elif c.exposure >= rollback:
        allowed = f"its bound may roll back; widening from {widen}"
    else:
        allowed = f"before the bound's burn-in (rollback from {rollback}, widening from {widen})"
        if c.against == PREVIOUS_ARM:
            allowed += "; the loss budget guards"
    return f"{c.exposure:.0f} customer-weeks, {allowed}"


def rollout_groups(decisions: pd.DataFrame, state: RolloutState) -> tuple[pd.DataFrame, int]:
    """Each customer's arm since the canary started (the arm of their first decision).

    Rows count when their arm is ``control``, ``canary`` decided by the champion, or
    ``previous`` decided by the previous version, in weeks from the one the canary started
    in. Customers seen in more than one arm are left out; their number is returned.

    Args:
        decisions: :func:`journeyopt.monitoring.decisions_contacts.read_decisions` output.
        state: The rollout (a canary with its start).

    Returns:
        ``(groups, n_moved)``: ``customer_id``, ``group`` (the arm), ``first_week`` and
        ``first_scored`` (UTC Mondays), as
        :func:`journeyopt.monitoring.exposure.customer_outcomes` takes them.
    """
    since = rollout_monday(state)
    version = decisions["model_version"]
    arm = decisions["arm"]
    counted = (
        (arm == CONTROL_ARM)
        | ((arm == CANARY_ARM) & (version == state.champion))
        | ((arm == PREVIOUS_ARM) & (version == (state.previous or "")))
    )
    rows = decisions[counted & (decisions["week"] >= since)]
    per = (
        rows.sort_values("as_of", kind="stable")
        .groupby("customer_id", sort=True)
        .agg(group=("arm", "first"), n_arms=("arm", "nunique"), first_week=("week", "min"))
    )
    per["first_scored"] = decisions.groupby("customer_id")["week"].min().reindex(per.index)
    moved = per["n_arms"] > 1
    kept = per.loc[~moved, ["group", "first_week", "first_scored"]].reset_index()
    return kept, int(moved.sum())


def rollout_monday(state: RolloutState) -> pd.Timestamp:
    """Monday 00:00 UTC of the week the canary started (1970-01-05 without a record)."""
    if state.started is None:
        return pd.Timestamp("1970-01-05", tz="UTC")
    started = state.started
    started = started.tz_localize("UTC") if started.tzinfo is None else started.tz_convert("UTC")
    day = started.normalize()
    return day - pd.Timedelta(days=int(day.day_of_week))


def arm_table(customers: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """Per arm: customers, customer-weeks and the realised outcome per customer-week."""
    rows = []
    for arm, part in customers.groupby("group", sort=True):
        weeks = part["weeks"].to_numpy(np.float64)
        total = float((part[outcome].to_numpy(np.float64) * weeks).sum())
        rows.append(
            {
                "arm": arm,
                "customers": len(part),
                "customer_weeks": float(weeks.sum()),
                f"{outcome}_per_customer_week": total / max(float(weeks.sum()), 1e-12),
            }
        )
    return pd.DataFrame(rows)


def comparison_table(verdict: RolloutVerdict) -> pd.DataFrame:
    """The verdict's comparisons, one row each (with exposure and loss per customer)."""
    rows: list[dict[str, Any]] = []
    for c in (verdict.vs_previous, verdict.vs_control):
        if c is not None:
            rows.append(
                {**asdict(c), "exposure": c.exposure, "loss_per_customer": c.loss_per_customer}
            )
    return pd.DataFrame(rows)


def verdict_metrics(verdict: RolloutVerdict, state: RolloutState) -> dict[str, float]:
    """The ``rollout/`` metrics of one look (one value per run)."""
    metrics = {
        "rollout/decision": float({WIDEN: 1, CONTINUE: 0, ROLLBACK: -1}[verdict.decision]),
        "rollout/canary_share": state.canary_share,
    }
    for c in (verdict.vs_previous, verdict.vs_control):
        if c is None:
            continue
        key = f"rollout/vs_{c.against}"
        metrics |= {
            key: c.estimate,
            f"{key}_cs_low": c.low,
            f"{key}_cs_high": c.high,
            f"{key}_std_error": c.std_error,
            f"{key}_exposure_weeks": c.exposure,
            f"rollout/{c.against}_mean": c.other_mean,
            "rollout/canary_mean": c.canary_mean,
            "rollout/canary_customers": float(c.canary_customers),
        }
    if verdict.vs_previous is not None:
        metrics["rollout/loss_per_customer"] = verdict.vs_previous.loss_per_customer
    return {k: float(v) for k, v in metrics.items() if np.isfinite(v)}
