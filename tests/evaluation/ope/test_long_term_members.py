"""The long-term estimators per ensemble member and their model-based part (what the gate's
OPE interval counts of the world's own error, tracking.promotion / cli.promote.ope_evidence)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from journeyopt.agents.baselines import StaffPolicy
from journeyopt.evaluation.ope.evaluate import OPESettings, evaluate_long_term
from journeyopt.evaluation.ope.model_value import ValueModel
from journeyopt.sim.config import shipped_practice
from journeyopt.sim.world import load_world
from tests.evaluation.ope.coworking_logs import logged_coworking
from tests.evaluation.ope.wrong_world import booking_odds_scaled


def test_members_give_paired_values_and_the_value_to_go_is_the_models_part(
    tmp_path: Path,
) -> None:
    world = load_world("coworking")
    logged = logged_coworking(tmp_path / "logs", 2, seed=3, n_customers=400)
    policy = StaffPolicy(world, shipped_practice("coworking").to_practice())
    settings = OPESettings(n_boot=50, rollout_customers=200)
    wrong = booking_odds_scaled(world, 1.5)
    result = evaluate_long_term(policy, logged, ValueModel(world), settings, 8, (world, wrong))
    point = result.intervals["lt_dr"].value
    same, other = result.member_values["lt_dr"]
    assert same == pytest.approx(point)  # the point world as a member: the same value
    assert other > point  # booking odds 1.5 times as high: a higher value-to-go
    assert result.model_spread["lt_dr"] == pytest.approx(np.std([same, other], ddof=1))
    assert result.model_part["lt_dm"] == pytest.approx(result.intervals["lt_dm"].value)
    # a one-week window: the value-to-go is most of the 8-week value, not all of it
    assert 0.5 * point < result.model_part["lt_dr"] < point
    alone = evaluate_long_term(policy, logged, world, settings, 8)
    assert alone.member_values == {} and alone.model_spread == {}
    assert alone.intervals["lt_dr"].value == pytest.approx(point)
