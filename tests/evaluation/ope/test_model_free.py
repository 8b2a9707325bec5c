"""Model-free evidence first: the longest window the logs' exploration supports, the
importance-weighted value over it, and its agreement with the model world's value of the
same weeks."""

from __future__ import annotations

import numpy as np
import pytest

from journeyopt.agents.baselines import StaffPolicy
from journeyopt.evaluation.ope.bootstrap import Interval
from journeyopt.evaluation.ope.diagnostics import OverlapThresholds
from journeyopt.evaluation.ope.evaluate import OPESettings
from journeyopt.evaluation.ope.logged import (
    LoggedTrajectories,
    first_weeks,
    logged_weeks,
)
from journeyopt.evaluation.ope.model_free import (
    check_model_free,
    intervals_overlap,
    supported_window,
)
from journeyopt.evaluation.ope.sequential import Trajectories
from journeyopt.sim.config import shipped_practice
from journeyopt.sim.world import load_world
from tests.evaluation.ope.coworking_logs import logged_coworking
from tests.evaluation.ope.policies import FixedMix
from tests.evaluation.ope.wrong_world import booking_odds_scaled

WEEKS = 8
SETTINGS = OPESettings(n_boot=200, rollout_customers=300)


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> LoggedTrajectories:
    """3,000 customers of the coworking world over 8 weeks under today's practice with 10 %
    exploration (logged propensities), through ingestion and the panel."""
    return logged_coworking(tmp_path_factory.mktemp("logs"), WEEKS, seed=11)


def halving_weights(k: int = 4000, weeks: int = 5, matched: int = 3) -> Trajectories:
    """Known overlap: two actions logged with probability 1/2 each; the target is the same
    for ``matched`` weeks (weights 1), then always action 1 (weights 0 or 2), so the ESS share
    halves every week after them."""
    rng = np.random.default_rng(0)
    action = rng.integers(0, 2, size=(k, weeks))
    target = np.full((k, weeks, 2), 0.5)
    target[:, matched:] = [0.0, 1.0]
    return Trajectories(action, np.ones((k, weeks)), np.full((k, weeks), 0.5), target, 1.0)


def test_the_window_is_the_longest_the_diagnostics_pass() -> None:
    data = halving_weights()
    segment = np.zeros(data.n_customers, np.int64)
    found = supported_window(data, segment, ("all",), OverlapThresholds(min_ess_share=0.3))
    assert found.weeks == 4  # ESS share 1, 1, 1, ~0.5, ~0.25
    assert found.ess_share[:3] == pytest.approx((1.0, 1.0, 1.0))
    assert found.ess_share[3] == pytest.approx(0.5, abs=0.03)
    assert found.ess_share[4] == pytest.approx(0.25, abs=0.03)
    assert found.diagnostics.passed
    none = supported_window(
        halving_weights(matched=0), segment, ("all",), OverlapThresholds(min_ess_share=0.9)
    )
    assert none.weeks == 0 and not none.diagnostics.passed and none.diagnostics.reasons


def test_the_logging_policy_agrees_with_the_true_world_and_not_with_a_wrong_one(
    logged: LoggedTrajectories,
) -> None:
    """Today's practice as the candidate: its weights stay near 1, the window is every
    logged week and the importance-weighted value is tight. The true world's value of those
    weeks agrees with it; a world with doubled booking odds does not, and the refusal names
    both numbers."""
    world = load_world("coworking")
    practice = StaffPolicy(world, shipped_practice("coworking").to_practice())
    truth = check_model_free(practice, logged, world, SETTINGS)
    assert truth.window.weeks == WEEKS and truth.passed, truth.reason
    assert truth.importance is not None and truth.model is not None
    realised = float((logged.reward * SETTINGS.gamma ** np.arange(WEEKS)).sum(axis=1).mean())
    assert truth.importance.value == pytest.approx(realised, rel=0.05)  # on-policy: the logs

    wrong = check_model_free(practice, logged, booking_odds_scaled(world, 2.0), SETTINGS)
    assert not wrong.passed and wrong.model is not None and wrong.importance is not None
    assert wrong.model.ci_low > wrong.importance.ci_high
    assert wrong.reason.startswith(f"over the first {WEEKS} logged weeks the model world values")
    assert f"{wrong.model.value:,.2f}" in wrong.reason
    assert f"{wrong.importance.value:,.2f}" in wrong.reason
    assert "above what the logs say without the model" in wrong.reason


def test_a_policy_far_from_the_logs_gets_a_short_window(logged: LoggedTrajectories) -> None:
    """A third of all decisions a discount: the logs' 10 % exploration supports two weeks of
    weights, not eight (ESS share falls below 1 % after them)."""
    candidate = FixedMix({"discount_offer": 0.34})
    found = check_model_free(candidate, logged, load_world("coworking"), SETTINGS)
    assert 1 <= found.window.weeks < WEEKS
    assert found.window.ess_share[found.window.weeks] < SETTINGS.thresholds.min_ess_share
    strict = OPESettings(
        n_boot=50, rollout_customers=100, thresholds=OverlapThresholds(min_ess_share=0.9)
    )
    none = check_model_free(candidate, logged, load_world("coworking"), strict)
    assert none.window.weeks == 0 and not none.passed and none.importance is None
    assert none.reason.startswith("the logs' exploration supports no importance-weighted window")


def test_slices_of_the_logged_weeks(logged: LoggedTrajectories) -> None:
    part = logged_weeks(logged, 2, 5)
    assert part.horizon_weeks == 3 and part.first_week == logged.first_week + 2
    np.testing.assert_array_equal(part.action, logged.action[:, 2:5])
    np.testing.assert_array_equal(part.week_of_year, logged.week_of_year[2:5])
    assert first_weeks(logged, 1).horizon_weeks == 1


@pytest.mark.parametrize(("start", "stop"), [(0, 0), (-1, 2), (3, 2), (0, WEEKS + 1)])
def test_slices_outside_the_logged_weeks_are_refused(
    logged: LoggedTrajectories, start: int, stop: int
) -> None:
    with pytest.raises(ValueError, match="not within the 8 logged weeks"):
        logged_weeks(logged, start, stop)


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ((10.0, 8.0, 12.0), (11.0, 9.0, 13.0), True),
        ((10.0, 8.0, 12.0), (12.5, 12.0, 13.0), True),  # touching
        ((10.0, 8.0, 12.0), (14.0, 12.1, 16.0), False),
        ((14.0, 12.1, 16.0), (10.0, 8.0, 12.0), False),
    ],
)
def test_intervals_overlap(
    first: tuple[float, float, float], second: tuple[float, float, float], overlap: bool
) -> None:
    def interval(v: tuple[float, float, float]) -> Interval:
        return Interval(v[0], v[1], v[2], v[1], 0.95, 100)

    assert intervals_overlap(interval(first), interval(second)) is overlap
