"""The closed loop's one-week effect of the served action over today's practice's is measured
against the control path (the practice under the served contact rules): today's practice
served as the champion has no effect, week after week."""

from __future__ import annotations

import pytest

from journeyopt.loop.closed_loop import ClosedLoop
from journeyopt.loop.truth import CoworkingTruth
from journeyopt.serving.practice import served_practice
from journeyopt.serving.scorer import Scorer
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.config import GenerateConfig, shipped_practice
from journeyopt.sim.world import WorldSpec, load_world

from .scorers import random_scorer

WEEKS = 4


@pytest.fixture(scope="module")
def world() -> WorldSpec:
    return load_world("coworking")


def test_todays_practice_served_has_no_one_week_effect(world: WorldSpec) -> None:
    """The demo's rules cap e-mails and calls: the practice as the control path runs it never
    sends a capped contact, the practice without the rules does (the old measure credited the
    served practice with an effect over itself)."""
    settings = random_scorer(world, "coworking").settings
    model = ServedModel(served_practice(settings, world), "t", "journey-policy", "1", "t", "", "")
    served = Scorer(model, settings, world=world)  # type: ignore[arg-type]
    assert served.champion_arm is not None
    history = GenerateConfig(
        staff=shipped_practice("coworking"), output_dir="unused", n_customers=400, weeks=20
    )
    loop = ClosedLoop(CoworkingTruth(world, None, history), seed=0)
    truths = [loop.step(served) for _ in range(WEEKS)]
    assert [t.one_week_effect for t in truths] == [0.0] * WEEKS
    assert [t.true_itt_uplift for t in truths] == [0.0] * WEEKS  # the twin agrees
    assert max(t.contacts for t in truths) > 0.05  # the practice does contact
