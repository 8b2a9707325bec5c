"""Parameter recovery: a calibration of logs from a known parametric world gets that world's
responses back."""

from __future__ import annotations

import numpy as np

from journeyopt.calibration.pipeline import CalibrationResult
from journeyopt.sim.discrete import DiscreteLayout
from journeyopt.sim.dynamics import fitted_responses, response_probabilities
from journeyopt.sim.world import WorldSpec


def test_conversion_probabilities_recovered(
    small_calibration: CalibrationResult, small_world: WorldSpec
) -> None:
    world = small_calibration.estimate.calibrated.world
    assert world.responses is not None
    visits = small_calibration.estimate.visits.astype(np.float64)
    states = np.flatnonzero(visits > 0)
    layout = DiscreteLayout.of(small_world)
    for action in range(small_world.actions.n_actions):
        actions = np.full(states.shape[0], action)
        truth = response_probabilities(small_world, layout.decode(states), actions, 10)
        fitted = fitted_responses(world.responses, states, actions, 10)
        error = np.average(np.abs(fitted.convert - truth.convert), weights=visits[states])
        assert error < 0.01, (action, error)


def test_parametric_summary_close_to_truth(
    small_calibration: CalibrationResult, small_world: WorldSpec
) -> None:
    fitted = small_calibration.estimate.calibrated.world.segments[0]
    true = small_world.segments[0]
    assert abs(fitted.prospect_logit - true.prospect_logit) < 0.2
    assert abs(fitted.return_logit - true.return_logit) < 0.3
    assert abs(fitted.lapsed_logit - true.lapsed_logit) < 0.3
    assert abs(fitted.engagement_logit - true.engagement_logit) < 0.3
    assert abs(fitted.inquiry_rate - true.inquiry_rate) < 0.003
    assert abs(fitted.action_logit["discount_offer"] - true.action_logit["discount_offer"]) < 0.3
    assert abs(fitted.optout["personal_call"] - true.optout["personal_call"]) < 0.01
    assert abs(fitted.optout["newsletter"] - true.optout["newsletter"]) < 0.003
    engagement = fitted.action_engagement["personal_call"]
    assert abs(engagement - true.action_engagement["personal_call"]) < 0.04
    assert fitted.action_engagement["discount_offer"] < 0.01
