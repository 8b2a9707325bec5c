"""The counterfactual twin of the closed loop: common random numbers make a twin under the
served policy an exact copy, the control group's twin lives its real life, the twin is
deterministic for a seed, and the window truth is the mean of the weekly truths."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

from journeyopt.loop.closed_loop import ClosedLoop, WeekTruth
from journeyopt.loop.truth import CoworkingTruth
from journeyopt.loop.twin import control_actions, served_by, window_uplift
from journeyopt.panel.state import state_features
from journeyopt.serving.scorer import CustomerBatch, Scorer
from journeyopt.sim.config import GenerateConfig, shipped_practice
from journeyopt.sim.regime import RegimeChange
from journeyopt.sim.world import WorldSpec, load_world

from .scorers import random_scorer

WEEKS = 5


def scorer(world: WorldSpec, seed: int = 1) -> Scorer:
    return random_scorer(world, "coworking", seed)


def closed_loop(world: WorldSpec, seed: int = 0) -> ClosedLoop:
    history = GenerateConfig(
        staff=shipped_practice("coworking"), output_dir="unused", n_customers=400, weeks=20
    )
    return ClosedLoop(CoworkingTruth(world, RegimeChange("freelancer", 2), history), seed=seed)


@pytest.fixture(scope="module")
def world() -> WorldSpec:
    return load_world("coworking")


def test_a_twin_under_the_served_policy_has_exactly_zero_uplift(world: WorldSpec) -> None:
    loop, served = closed_loop(world), scorer(world)
    truths = [loop.step(served, served_by(served)) for _ in range(WEEKS)]
    assert [t.true_itt_uplift for t in truths] == [0.0] * WEEKS
    assert [t.control_twin_gap for t in truths] == [0.0] * WEEKS
    assert [t.regime for t in truths] == ["before"] * 2 + ["after"] * 3
    features = world.features
    real, twin = state_features(loop.state, features), state_features(loop.twin.state, features)
    for name in real:
        np.testing.assert_array_equal(real[name], twin[name])


def test_the_control_twin_differs_for_treatment_only(world: WorldSpec) -> None:
    loop = closed_loop(world)
    truths = [loop.step(scorer(world)) for _ in range(WEEKS)]
    # the control group lives the same life in the twin: common random numbers, same path
    assert [t.control_twin_gap for t in truths] == [0.0] * WEEKS
    uplift = np.array([t.true_itt_uplift for t in truths])
    assert np.all(uplift != 0.0)
    for t in truths:
        assert t.true_itt_uplift == pytest.approx(t.treatment_reward - t.twin_treatment_reward)


def test_the_twin_is_deterministic_for_a_seed_and_leaves_the_real_loop_alone(
    world: WorldSpec,
) -> None:
    served = scorer(world)

    def run(seed: int, twin: bool) -> list[WeekTruth]:
        loop = closed_loop(world, seed)
        policy = None if twin else served_by(served)
        return [loop.step(served, policy) for _ in range(3)]

    first, again, other = run(0, True), run(0, True), run(1, True)
    assert [asdict(t) for t in first] == [asdict(t) for t in again]
    assert [t.true_itt_uplift for t in first] != [t.true_itt_uplift for t in other]
    # the twin draws from a copy of the generator: the real weeks do not depend on it
    without = run(0, False)
    assert [t.treatment_reward for t in first] == [t.treatment_reward for t in without]
    assert [t.control_reward for t in first] == [t.control_reward for t in without]


def test_control_actions_are_the_scorers_control_path(world: WorldSpec) -> None:
    loop, served = closed_loop(world), scorer(world)
    features = state_features(loop.state, world.features)
    segment = loop.world.customers.segment.astype(np.int64)
    batch = CustomerBatch(
        loop.customer_ids, features, segment, np.ones(segment.shape, bool), loop.monday
    )
    decided = served.score(batch)
    assert decided.control.any() and (~decided.control).any()
    staff = control_actions(served, batch)
    np.testing.assert_array_equal(staff[decided.control], decided.actions[decided.control])
    assert (staff[~decided.control] != decided.actions[~decided.control]).any()


def test_window_uplift_is_the_mean_of_the_last_weeks() -> None:
    assert window_uplift([1.0, 2.0, 3.0, 6.0], 3) == pytest.approx(11.0 / 3.0)
    assert window_uplift([4.0, 2.0], 4) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="served week"):
        window_uplift([], 4)
    with pytest.raises(ValueError, match="weeks >= 1"):
        window_uplift([1.0], 0)
