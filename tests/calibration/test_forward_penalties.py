"""With ``calibration.summary.forward_weeks`` the point fit's penalties are chosen on the rows
the summary's candidates are scored on (every customer's last weeks, fitted on the weeks
before), not on a seed's random validation customers: how much the models are smoothed decides
how they extrapolate to later weeks, and the calibration seed no longer moves the point fit."""

from __future__ import annotations

import numpy as np
import pytest

from journeyopt.calibration.config import SummaryConfig
from journeyopt.calibration.models import Penalties
from journeyopt.sim.world import FittedResponses

from .test_response_family import Logs, _estimate, logs

__all__ = ["logs"]  # the fixture of the interaction truth's logs, used below


@pytest.mark.slow
def test_forward_penalties_do_not_depend_on_the_seed(logs: Logs) -> None:
    """Two calibration seeds scored forward: the same penalties and the same point fit; on
    seed 0's validation customers over the same weeks (forward_weeks 0) another choice."""

    def fit(seed: int, forward: int) -> tuple[Penalties, FittedResponses]:
        est = _estimate(
            logs,
            seed=seed,
            response_model="glm",
            ensemble_size=1,
            summary=SummaryConfig(forward_weeks=forward),
        )
        assert est.calibrated.world.responses is not None
        return est.penalties, est.calibrated.world.responses

    (p0, t0), (p1, t1) = fit(0, 13), fit(1, 13)
    assert p0 == p1, (p0, p1)
    np.testing.assert_array_equal(t1.convert_logit, t0.convert_logit)
    same_weeks, _ = fit(0, 0)
    assert same_weeks != p0, (same_weeks, p0)
