"""The always-valid test of the staged rollout: error rate under weekly looks measured on
synthetic rollouts with no effect (against the naive repeated 95 % interval it replaces),
coverage of a true effect, the confidence sequence's shape, and the decision rule."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from journeyopt.data.source import SourceConfig
from journeyopt.errors import ConfigError, JourneyoptError
from journeyopt.monitoring.config import RolloutJobConfig
from journeyopt.monitoring.rollout import (
    CONTINUE,
    ROLLBACK,
    WIDEN,
    ArmComparison,
    adjustment_covariates,
    compare_arms,
    covariate_matrix,
    decide,
    exposure_stage,
)
from journeyopt.monitoring.rollout_job import measure_rollout
from journeyopt.monitoring.rollout_sim import Scenario, error_rates, error_rates_many, with_lift
from journeyopt.monitoring.sequential import (
    confidence_sequence,
    mixture_precision,
    radius_factor,
)
from journeyopt.serving.config import RolloutConfig, ServingConfig
from journeyopt.tracking.rollout import CANARY, RolloutState
from tests.panel.windows import panel_config

SMALL = Scenario(customers=2000, weeks=12)
"""360 canary customers: the default minimum exposure (2,000 customer-weeks) after 6 weeks."""


def test_weekly_looks_keep_the_error_rate_where_naive_intervals_inflate_it() -> None:
    """120 rollouts without effect, 12 weekly looks each: the decision rule (widen or roll
    back) errs in at most about 5 %; the naive interval rejects in over 15 %."""
    runs = error_rates(SMALL, RolloutConfig(), experiments=120, seed=3)
    wrong = float((runs["decision"] != CONTINUE).mean())
    assert wrong <= 0.07, f"{wrong:.1%} of null rollouts were widened or rolled back"
    assert float(runs["missed"].mean()) <= 0.07
    assert float(runs["naive_rejected"].mean()) >= 0.15  # the problem the sequence solves


def test_the_sequence_covers_a_true_effect_and_finds_it() -> None:
    scenario = with_lift(SMALL, 1.0)
    runs = error_rates(scenario, RolloutConfig(), experiments=40, seed=5)
    assert scenario.true_effect > 0
    assert float(runs["missed"].mean()) <= 0.1
    assert float((runs["decision"] == WIDEN).mean()) >= 0.5
    assert not (runs["decision"] == ROLLBACK).any()


def test_sequence_is_tightest_near_the_planned_exposure_and_wider_than_one_look() -> None:
    rho2 = mixture_precision(0.05, 2000.0)
    factors = {t: radius_factor(t, rho2, 0.05) for t in (200.0, 2000.0, 20000.0)}
    assert all(f > 1.96 for f in factors.values())
    assert factors[2000.0] < factors[200.0]
    assert 2.5 < factors[2000.0] < 3.5
    assert math.isinf(radius_factor(0.0, rho2, 0.05))
    bound = confidence_sequence(1.0, 0.1, 2000.0, 0.05, 2000.0)
    assert bound.low == pytest.approx(1.0 - 0.1 * factors[2000.0])
    assert bound.high == pytest.approx(1.0 + 0.1 * factors[2000.0])


@pytest.mark.parametrize(
    ("alpha", "planned"), [(0.0, 100.0), (1.0, 100.0), (0.05, 0.0), (0.05, -1.0)]
)
def test_invalid_sequence_settings_are_refused(alpha: float, planned: float) -> None:
    with pytest.raises(ValueError, match=r"alpha|planned_exposure"):
        mixture_precision(alpha, planned)


def comparison(
    against: str, estimate: float, low: float, high: float, weeks: float = 5000.0
) -> ArmComparison:
    return ArmComparison(against, estimate, 0.1, low, high, 1.0, 1.0 - estimate, 500, 2000,
                         weeks, 4 * weeks)  # fmt: skip


@pytest.mark.parametrize(
    ("previous", "control", "decision", "why"),
    [
        (comparison("previous", 0.5, 0.1, 0.9), comparison("control", 1.0, 0.5, 1.5), WIDEN,
         "lower bound"),
        (comparison("previous", 0.5, 0.1, 0.9), None, WIDEN, "lower bound"),
        (comparison("previous", 0.5, 0.1, 0.9), comparison("control", 0.2, -0.1, 0.5),
         CONTINUE, "holds 0"),
        (comparison("previous", 0.5, 0.1, 0.9, weeks=100.0), None, CONTINUE, "customer-weeks"),
        (comparison("previous", -0.5, -0.9, -0.1), comparison("control", 1.0, 0.5, 1.5),
         ROLLBACK, "upper bound"),
        (comparison("previous", 0.1, -0.2, 0.4), comparison("control", -0.5, -0.9, -0.1),
         ROLLBACK, "below control"),
        (comparison("previous", -0.5, -0.9, -0.1, weeks=100.0), None, CONTINUE,
         "customer-weeks"),  # a bound before the burn-in does not decide
        (comparison("previous", -30.0, -60.0, 5.0, weeks=500.0), None, ROLLBACK, "budget"),
        (comparison("previous", -0.005, -0.4, 0.3, weeks=5e6), None, CONTINUE, "holds 0"),
        (None, None, CONTINUE, "too few"),
    ],
)  # fmt: skip
def test_decision_rule(
    previous: ArmComparison | None, control: ArmComparison | None, decision: str, why: str
) -> None:
    verdict = decide(previous, control, RolloutConfig())
    assert verdict.decision == decision
    assert any(why in r for r in verdict.reasons), verdict.reasons


EARLY = RolloutConfig(min_exposure_rollback_weeks=720)
"""Rollback on the bound from 720 customer-weeks, widening from 2,000."""


@pytest.mark.parametrize(
    ("previous", "settings", "decision", "why"),
    [
        (comparison("previous", -0.5, -0.9, -0.1, weeks=1000.0), EARLY, ROLLBACK,
         "rollback from 720"),  # harm: rolled back before the widening's exposure
        (comparison("previous", -0.5, -0.9, -0.1, weeks=1000.0),
         RolloutConfig(min_exposure_rollback_weeks=2000), CONTINUE, "bound rolls back from 2000"),
        (comparison("previous", -0.5, -0.9, -0.1, weeks=500.0), EARLY, CONTINUE,
         "customer-weeks"),  # before the rollback's burn-in
        (comparison("previous", -0.05, -0.5, 0.4, weeks=1000.0), EARLY, CONTINUE,
         "customer-weeks"),  # neutral: nothing to act on
        (comparison("previous", 0.5, 0.1, 0.9, weeks=1000.0), EARLY, CONTINUE,
         "widening needs them"),  # a gain still waits for the widening's exposure
        (comparison("previous", 0.5, 0.1, 0.9, weeks=2000.0), EARLY, WIDEN, "lower bound"),
        (comparison("previous", -0.5, -0.9, -0.1, weeks=300.0),
         RolloutConfig(min_exposure_weeks=200, min_exposure_rollback_weeks=720), ROLLBACK,
         "rollback from 200"),  # never later than the widening's exposure
    ],
)  # fmt: skip
def test_harm_is_rolled_back_at_the_earlier_exposure(
    previous: ArmComparison, settings: RolloutConfig, decision: str, why: str
) -> None:
    verdict = decide(previous, None, settings)
    assert verdict.decision == decision
    assert any(why in r for r in verdict.reasons), verdict.reasons


def test_exposure_stage_says_which_decision_the_bound_may_take() -> None:
    stages = [
        exposure_stage(comparison(against, 0.0, -1.0, 1.0, weeks=weeks), EARLY)
        for against, weeks in (("previous", 500.0), ("control", 500.0), ("previous", 1000.0),
                               ("control", 2500.0))
    ]  # fmt: skip
    assert "the loss budget guards" in stages[0] and "rollback from 720" in stages[0]
    assert "budget" not in stages[1]
    assert stages[2].endswith("may roll back; widening from 2000")
    assert stages[3] == "2500 customer-weeks, its bound may roll back or widen"
    with pytest.raises(ConfigError, match=r"min_exposure_rollback_weeks must be >= 1"):
        RolloutConfig(min_exposure_rollback_weeks=0)


def test_a_harmful_canary_is_rolled_back_earlier_on_the_same_rollouts() -> None:
    """The same synthetic rollouts of a canary 50 % worse (2,000 customers), decided with the
    rollback's own exposure (720) and with the widening's (2,000): as often rolled back, and
    sooner."""
    rules = (EARLY, RolloutConfig(min_exposure_rollback_weeks=2000))
    early, late = error_rates_many(with_lift(SMALL, -0.5), rules, experiments=8, seed=17)
    assert (early["decision"] == ROLLBACK).all() and (late["decision"] == ROLLBACK).all()
    assert (early["week"] <= late["week"]).all()
    assert early["week"].mean() < late["week"].mean(), (list(early["week"]), list(late["week"]))


def test_loss_per_customer_counts_only_a_shortfall() -> None:
    behind = comparison("previous", -0.2, -0.5, 0.1, weeks=1000.0)
    assert behind.loss_per_customer == pytest.approx(0.2 * 1000.0 / 500)
    assert comparison("previous", 0.2, -0.1, 0.5).loss_per_customer == 0.0
    assert np.isclose(behind.exposure, 1000.0)


BEFORE = RolloutConfig(pre_weeks=13, covariates=[])
"""The rollout's earlier adjustment: the outcome's mean over 13 pre-period weeks only."""


def test_a_longer_history_with_more_covariates_narrows_the_sequence() -> None:
    """Same synthetic rollouts (same seed), 52 weeks of history: the default adjustment's
    sequence is narrower at week 12 than the earlier 13-week one, and finds a real loss
    at least as often."""
    widths = {}
    for name, settings in {"before": BEFORE, "after": RolloutConfig()}.items():
        runs = error_rates(SMALL, settings, experiments=25, seed=11)
        widths[name] = np.nanmean([w[-1] for w in runs["half_widths"] if len(w) == SMALL.weeks])
    assert widths["after"] < 0.9 * widths["before"], widths
    bad = with_lift(SMALL, -0.5)
    found = {
        name: float((error_rates(bad, s, 25, seed=13)["decision"] == ROLLBACK).mean())
        for name, s in {"before": BEFORE, "after": RolloutConfig()}.items()
    }
    assert found["after"] >= found["before"], found


def test_segment_covariate_and_no_adjustment() -> None:
    segment = ["a"] * 50 + ["b"] * 40 + ["c"] * 5  # c too small for its own indicator
    rows = pd.DataFrame(
        {"group": ["canary", "previous"] * 47 + ["canary"], "weeks": 4.0,
         "margin": np.linspace(0.0, 3.0, 95), "margin_pre": np.linspace(1.0, 0.0, 95),
         "segment": segment}
    )  # fmt: skip
    matrix = covariate_matrix(rows, ("margin_pre", "segment"))
    assert matrix is not None and matrix.shape == (95, 2)  # the value, then b
    np.testing.assert_array_equal(matrix[:, 1], (rows["segment"] == "b").to_numpy(float))
    assert adjustment_covariates("margin", RolloutConfig(pre_weeks=0)) == ()
    assert adjustment_covariates("margin", RolloutConfig())[0] == "margin_pre"
    with pytest.raises(ValueError, match="no column"):
        compare_arms(rows, "margin", "previous", RolloutConfig(covariates=["tenure"]))
    with pytest.raises(ConfigError, match=r"serve\.rollout\.pre_weeks"):
        RolloutConfig(pre_weeks=-1)


def test_the_rollout_job_refuses_an_unknown_covariate_before_reading_anything() -> None:
    settings = RolloutConfig(covariates=["conversions_pre", "tenure"])
    job = RolloutJobConfig(
        decisions="nowhere",
        data=SourceConfig(),
        panel=panel_config(),
        serve=ServingConfig(rollout=settings),
    )
    state = RolloutState("2", CANARY, 0.2, "1", None)
    with pytest.raises(JourneyoptError, match=r"unknown \['tenure'\]; known: .*'active_pre'"):
        measure_rollout(job, state)
