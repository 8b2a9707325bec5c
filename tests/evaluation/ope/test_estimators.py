"""One-step and sequential estimators on synthetic data with a known value."""

from __future__ import annotations

import numpy as np
import pytest

from journeyopt.evaluation.ope.bandit import (
    IPS,
    SNIPS,
    BanditData,
    DirectMethod,
    DoublyRobust,
    SwitchDR,
)
from journeyopt.evaluation.ope.bootstrap import Statistic, bootstrap_interval
from journeyopt.evaluation.ope.diagnostics import OverlapThresholds, diagnose
from journeyopt.evaluation.ope.sequential import (
    PDIS,
    WPDIS,
    DirectValue,
    SequentialDR,
    Trajectories,
)

A = 3
MEAN_REWARD = np.array([[1.0, 2.0, 0.5], [0.0, 3.0, 1.0]])  # (context, action)
BEHAVIOUR = np.array([0.5, 0.3, 0.2])
TARGET = np.array([[0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])


def true_value() -> float:
    return float(0.5 * (TARGET * MEAN_REWARD).sum())  # two equally likely contexts


def bandit(seed: int, n: int = 400, noisy_model: bool = True) -> BanditData:
    rng = np.random.default_rng(seed)
    context = rng.integers(0, 2, n)
    action = rng.choice(A, size=n, p=BEHAVIOUR)
    reward = MEAN_REWARD[context, action] + rng.normal(0, 1, n)
    q_hat = MEAN_REWARD[context] + (0.5 if noisy_model else 0.0)  # a biased model
    return BanditData(action, reward, BEHAVIOUR[action], TARGET[context], q_hat)


@pytest.mark.parametrize("estimator", [IPS(), DoublyRobust()], ids=["ips", "dr"])
def test_unbiased_over_many_seeds(estimator: IPS | DoublyRobust) -> None:
    values = [estimator.statistic(bandit(seed)).value() for seed in range(300)]
    standard_error = np.std(values) / np.sqrt(len(values))
    assert abs(np.mean(values) - true_value()) < 4 * standard_error + 1e-3


def test_biased_model_biases_dm_but_not_dr() -> None:
    data = bandit(0, n=20_000)
    assert DirectMethod().statistic(data).value() == pytest.approx(true_value() + 0.5, abs=0.05)
    assert DoublyRobust().statistic(data).value() == pytest.approx(true_value(), abs=0.1)
    assert SwitchDR(tau=100).statistic(data).value() == DoublyRobust().statistic(data).value()


def test_snips_stays_within_logged_rewards() -> None:
    for seed in range(20):
        data = bandit(seed, n=30)
        value = SNIPS().statistic(data).value()
        assert data.reward.min() - 1e-12 <= value <= data.reward.max() + 1e-12


def test_clipping_bounds_weights() -> None:
    data = bandit(1)
    clipped = IPS(max_weight=1.0).statistic(data).value()
    assert clipped == pytest.approx(float(np.mean(np.minimum(data.weight, 1.0) * data.reward)))


def test_interval_coverage_on_small_case() -> None:
    covered = 0
    runs = 60
    for seed in range(runs):
        interval = bootstrap_interval(IPS().statistic(bandit(seed, n=300)), n_boot=200, seed=seed)
        covered += interval.covers(true_value())
        assert interval.lower_bound >= interval.ci_low
    assert covered / runs >= 0.85


def trajectories(seed: int, k: int = 2000, h: int = 3) -> tuple[Trajectories, float]:
    """Rewards depend on the action only: r = a + noise; target prefers action 2."""
    rng = np.random.default_rng(seed)
    behaviour = np.array([0.4, 0.3, 0.3])
    target = np.array([0.2, 0.2, 0.6])
    action = rng.choice(A, size=(k, h), p=behaviour)
    reward = action + rng.normal(0, 0.5, (k, h))
    gamma = 0.9
    truth = float((target @ np.arange(A)) * sum(gamma**t for t in range(h)))
    data = Trajectories(
        action, reward, behaviour[action], np.broadcast_to(target, (k, h, A)).copy(), gamma
    )
    return data, truth


def test_sequential_estimators_recover_the_value() -> None:
    data, truth = trajectories(0)
    discount = np.array([sum(0.9**s * (s >= 0) for s in range(0, 3 - t)) for t in range(3)])
    q_exact = np.broadcast_to(np.arange(A)[None, None, :] * 1.0, data.target.shape).copy()
    # q_t(a) = a + gamma * value of the rest under the target policy
    rest = np.array([(0.9 * (discount[t + 1] if t + 1 < 3 else 0.0)) * 1.4 for t in range(3)])
    q_exact += rest[None, :, None]
    for estimator in (PDIS(), WPDIS()):
        assert estimator.statistic(data).value() == pytest.approx(truth, rel=0.05)
    assert SequentialDR().statistic(data, q_exact).value() == pytest.approx(truth, rel=0.02)
    assert DirectValue().statistic(data, q_exact).value() == pytest.approx(truth, rel=1e-9)
    assert SequentialDR().statistic(data, q_exact + 3.0).value() == pytest.approx(truth, rel=0.05)


def test_diagnostics_flag_no_overlap() -> None:
    data, _ = trajectories(1, k=500, h=6)
    deterministic = np.zeros_like(data.target)
    deterministic[..., 2] = 1.0
    far = Trajectories(data.action, data.reward, data.propensity, deterministic, data.gamma)
    segment = np.zeros(500, np.int64)
    report = diagnose(far, segment, ("all_customers",), OverlapThresholds(min_ess_share=0.05))
    assert not report.passed
    assert "effective sample size" in report.reasons[0]
    assert report.overall["zero_target_share"] == pytest.approx(0.7, abs=0.05)
    assert diagnose(data, segment, ("all_customers",)).passed


GOOD = dict(
    action=np.array([0, 1]),
    reward=np.array([1.0, 2.0]),
    propensity=np.array([0.5, 0.5]),
    target=np.array([[0.5, 0.5], [0.5, 0.5]]),
)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"propensity": np.array([0.0, 0.5])}, "propensities must be in"),
        ({"propensity": np.array([1.5, 0.5])}, "propensities must be in"),
        ({"target": np.array([[0.5, 0.6], [0.5, 0.5]])}, "sum to 1"),
        ({"target": np.array([[1.5, -0.5], [0.5, 0.5]])}, ">= 0"),
        ({"action": np.array([0, 2])}, "actions must be in"),
        ({"reward": np.array([1.0, np.nan])}, "rewards must be finite"),
        ({"reward": np.array([1.0])}, "reward must have shape"),
    ],
)
def test_invalid_bandit_data(change: dict[str, np.ndarray], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BanditData(**{**GOOD, **change})


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: IPS(max_weight=0), "max_weight must be > 0"),
        (lambda: SwitchDR(tau=-1), "tau must be > 0"),
        (lambda: DirectMethod().statistic(BanditData(**GOOD)), "needs a reward model"),
        (lambda: Statistic(np.ones((2, 1)), np.ones((3, 1))), "one shape"),
        (lambda: OverlapThresholds(min_ess_share=0), "min_ess_share"),
        (
            lambda: Trajectories(
                np.zeros((2, 2), np.int64),
                np.zeros((2, 2)),
                np.ones((2, 2)),
                np.ones((2, 2, 1)),
                1.5,
            ),
            "gamma must be in",
        ),
    ],
)
def test_invalid_estimator_inputs(make: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()  # type: ignore[operator]
