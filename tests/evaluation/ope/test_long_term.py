"""The long-term DR over a short window: synthetic data with a known value, and the model
world's value-to-go against the exact evaluation of a policy over the discrete states."""

from __future__ import annotations

import numpy as np
import pytest

from journeyopt.agents.policy import Observation
from journeyopt.evaluation.ope.diagnostics import OverlapThresholds, diagnose
from journeyopt.evaluation.ope.logged import ActedPolicy
from journeyopt.evaluation.ope.model_value import ValueModel, long_term_model_values
from journeyopt.evaluation.ope.sequential import LongTermDR, SequentialDR, Trajectories
from journeyopt.panel.state import state_features
from journeyopt.sim.discrete import discrete_state
from journeyopt.sim.optimum import cyclic_weeks_of_year, evaluate_table_policy
from journeyopt.sim.population import initial_population
from journeyopt.sim.world import load_world

A = 3
GAMMA = 0.9
BEHAVIOUR = np.array([0.4, 0.3, 0.3])
TARGET = np.array([0.2, 0.2, 0.6])
TAIL = 5.0
"""After the window, a customer is worth ``TAIL * a`` with ``a`` the window's last action."""


def window(seed: int, k: int = 4000, h: int = 2) -> tuple[Trajectories, float, np.ndarray]:
    """Rewards ``a + noise`` for ``h`` weeks, then the value-to-go ``TAIL * a_{h-1}``."""
    rng = np.random.default_rng(seed)
    action = rng.choice(A, size=(k, h), p=BEHAVIOUR)
    reward = action + rng.normal(0, 0.5, (k, h))
    mean_action = float(TARGET @ np.arange(A))
    truth = mean_action * sum(GAMMA**t for t in range(h)) + GAMMA**h * TAIL * mean_action
    data = Trajectories(
        action, reward, BEHAVIOUR[action], np.broadcast_to(TARGET, (k, h, A)).copy(), GAMMA
    )
    return data, truth, TAIL * action[:, -1].astype(np.float64)


def exact_q(h: int) -> np.ndarray:
    """(1, h, A) ``q_t(a)``: the reward plus the discounted value of the rest."""
    mean_action = float(TARGET @ np.arange(A))
    q = np.zeros((1, h, A))
    v_next = 0.0
    for t in range(h - 1, -1, -1):
        tail = GAMMA * TAIL * np.arange(A) if t == h - 1 else GAMMA * v_next
        q[0, t] = np.arange(A) + tail
        v_next = float(TARGET @ q[0, t]) if t < h - 1 else mean_action * (1 + GAMMA * TAIL)
    return q


def test_long_term_dr_recovers_the_value_beyond_the_window() -> None:
    data, truth, terminal = window(0)
    q = np.broadcast_to(exact_q(2), data.target.shape).copy()
    assert LongTermDR().statistic(data, q, terminal).value() == pytest.approx(truth, rel=0.02)
    # a wrong model inside the window is corrected by the logs
    wrong = q + 3.0
    assert LongTermDR().statistic(data, wrong, terminal).value() == pytest.approx(truth, rel=0.04)
    # the window-only DR misses the value-to-go
    assert SequentialDR().statistic(data, q).value() < 0.5 * truth


def test_long_term_dr_is_unbiased_over_seeds_with_a_wrong_model() -> None:
    values = []
    for seed in range(100):
        data, truth, terminal = window(seed, k=300)
        wrong = np.broadcast_to(exact_q(2) - 2.0, data.target.shape).copy()
        values.append(LongTermDR().statistic(data, wrong, terminal).value())
    standard_error = np.std(values) / np.sqrt(len(values))
    assert abs(np.mean(values) - truth) < 4 * standard_error


def test_long_term_dr_checks_the_terminal_values() -> None:
    data, _, terminal = window(0, k=10)
    q = np.broadcast_to(exact_q(2), data.target.shape).copy()
    with pytest.raises(ValueError, match="terminal must be a finite"):
        LongTermDR().statistic(data, q, terminal[:5])


def test_window_diagnostics_judge_the_window_only() -> None:
    data, _, _ = window(1, k=500, h=8)
    deterministic = np.zeros_like(data.target)
    deterministic[..., 2] = 1.0
    segment = np.zeros(500, np.int64)

    def far(h: int) -> Trajectories:
        return Trajectories(
            data.action[:, :h], data.reward[:, :h], data.propensity[:, :h],
            deterministic[:, :h], GAMMA,
        )  # fmt: skip

    assert diagnose(far(1), segment, ("all",)).passed
    report = diagnose(far(8), segment, ("all",))
    assert not report.passed and "effective sample size" in report.reasons[0]


def test_value_to_go_matches_the_exact_evaluation_of_a_policy() -> None:
    """No contact is a function of the discrete state, so the model's long-term value from
    logged states equals the exact evaluation over the world's discrete states."""
    world = load_world("coworking")
    state, customers, _ = initial_population(world, 300, np.random.default_rng(0))
    features = {n: v[:, None] for n, v in state_features(state, world.features).items()}
    features = {n: np.repeat(v, 2, axis=1) for n, v in features.items()}  # weeks 0 and 1
    segment = customers.segment.astype(np.int64)
    target = np.zeros((300, 2, world.actions.n_actions))
    target[..., 0] = 1.0
    woy = cyclic_weeks_of_year(10, 2)
    model = ValueModel(world)
    q, terminal = long_term_model_values(model, features, segment, woy, target, 0.99, 8)
    exact = evaluate_table_policy(
        world, lambda s, t: np.zeros_like(s.segment), 0.99, cyclic_weeks_of_year(10, 8)
    )
    x = discrete_state({n: v[:, 0] for n, v in features.items()}, segment, world)
    np.testing.assert_allclose(q[:, 0, 0], exact[0, x], rtol=1e-9)
    # the terminal state is week 1's (here: the same features), valued over weeks 1..7
    exact_from_1 = evaluate_table_policy(
        world, lambda s, t: np.zeros_like(s.segment), 0.99, cyclic_weeks_of_year(11, 7)
    )
    np.testing.assert_allclose(terminal, exact_from_1[0, x], rtol=1e-9)


class SoftmaxActingGreedy:
    """Returns softmax probabilities but takes the most probable action (like a trained
    agent's ``LearnedPolicy``)."""

    name = "greedy"

    def act(
        self, observation: Observation, masks: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        probs = np.tile([0.1, 0.6, 0.3], (masks.shape[0], 1))
        return np.ones(masks.shape[0], np.int64), probs


def test_acted_policy_values_what_the_policy_does() -> None:
    seen = Observation({}, np.zeros(2, np.int64), 1, 0)
    masks = np.ones((2, 3), bool)
    actions, probs = ActedPolicy(SoftmaxActingGreedy()).act(seen, masks, np.random.default_rng(0))
    np.testing.assert_array_equal(actions, [1, 1])
    np.testing.assert_array_equal(probs, [[0, 1, 0], [0, 1, 0]])
    assert ActedPolicy(SoftmaxActingGreedy()).name == "greedy"


def test_wrong_propensities_are_flagged_but_noise_is_not() -> None:
    data, _, _ = window(2, k=4000, h=1)
    segment = np.zeros(4000, np.int64)
    assert diagnose(data, segment, ("all",)).passed
    halved = Trajectories(data.action, data.reward, data.propensity / 2, data.target, GAMMA)
    report = diagnose(halved, segment, ("all",))
    assert not report.passed and "mean trajectory weight" in report.reasons[0]
    # one heavy weight in a small sample moves the mean by chance, not by error
    rare = np.zeros((40, 1, A))
    rare[..., 1] = 1.0
    action = np.zeros((40, 1), np.int64)
    action[0] = 1
    propensity = np.full((40, 1), 0.9)
    propensity[0] = 0.02  # weight 50 on one customer, 0 elsewhere: mean 1.25
    small = Trajectories(action, np.zeros((40, 1)), propensity, rare, GAMMA)
    strict = OverlapThresholds(min_ess_share=0.05)
    reasons = diagnose(small, np.zeros(40, np.int64), ("all",), strict).reasons
    assert not any("mean trajectory weight" in r for r in reasons)
    assert any("effective sample size" in r for r in reasons)
