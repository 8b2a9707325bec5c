"""Policy-value fidelity under the contact rules the policies are served under: both worlds
mask every policy with them, both optima plan under them, and the exact sim-to-real ratio is
given only where the summaries represent them."""

from __future__ import annotations

import numpy as np
import pytest

from journeyopt.calibration.config import CalibrationConfig
from journeyopt.calibration.policy_fidelity import policy_fidelity
from journeyopt.sim.config import RulesConfig, shipped_practice
from journeyopt.sim.world import WorldSpec, load_world
from tests.calibration.test_summary_selection import tabulated


@pytest.fixture(scope="module")
def truth() -> WorldSpec:
    return load_world("coworking")


@pytest.fixture(scope="module")
def cfg() -> CalibrationConfig:
    return CalibrationConfig(
        policy_customers=400, policy_horizon_weeks=4, staff=shipped_practice("coworking")
    )


def test_under_represented_rules_the_ratio_is_exact_and_at_most_one(
    truth: WorldSpec, cfg: CalibrationConfig
) -> None:
    """The world as fitted tables against itself: under rules both summaries represent, the
    calibrated plan valued under the truth's guard cannot beat the truth's rule-aware optimum."""
    calibrated = tabulated(truth, 0.0)
    free = policy_fidelity(truth, calibrated, cfg)
    ruled = policy_fidelity(truth, calibrated, cfg, RulesConfig(cooldown_weeks=2, min_gap_weeks=2))
    assert 0.9 < ruled.sim_to_real <= 1.0 + 1e-12
    assert ruled.sim_to_real != free.sim_to_real  # both optima planned under the rules
    # the rules bind: every contact policy earns differently under them
    moved = (
        ruled.table.set_index("policy")["true_value"] - free.table.set_index("policy")["true_value"]
    )
    assert moved.drop("no_contact").abs().min() > 0


def test_rules_a_summary_cannot_evaluate_give_no_exact_ratio(
    truth: WorldSpec, cfg: CalibrationConfig
) -> None:
    rules = RulesConfig(frequency_caps={truth.channels[0]: 1})
    fidelity = policy_fidelity(truth, tabulated(truth, 0.0), cfg, rules)
    assert np.isnan(fidelity.sim_to_real)
    assert np.isfinite(fidelity.table["calibrated_value"]).all()
