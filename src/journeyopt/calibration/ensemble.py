"""Training and evaluation that are robust to calibration error: a vectorised population whose
world is a bootstrap member of a calibrated world, drawn anew for every episode."""

from __future__ import annotations

from typing import Any

import numpy as np

from journeyopt.calibration.calibrated import CalibratedWorld
from journeyopt.sim.vec_env import PopulationVecEnv


class EnsembleVecEnv(PopulationVecEnv):
    """:class:`~journeyopt.sim.vec_env.PopulationVecEnv` over a calibrated world's ensemble.

    At every reset (explicit or the automatic one at the horizon) one member is drawn
    uniformly with the population's own generator and simulates the whole next episode; all
    members share the structure (actions, channels, features, discrete caps), so observations,
    masks and the initial pool are the same whatever the member.

    Args:
        calibrated: The calibrated world and its members (the point estimate when it has none).
        n_customers: Customers stepped at once.
        **kwargs: As for :class:`PopulationVecEnv` (``horizon_weeks``, ``pool``, ``seed``...).
    """

    def __init__(self, calibrated: CalibratedWorld, n_customers: int, **kwargs: Any) -> None:
        self.calibrated = calibrated
        self.episodes_per_member = np.zeros(max(len(calibrated.members), 1), np.int64)
        super().__init__(calibrated.world, n_customers, **kwargs)

    def _new_customers(self) -> np.ndarray:
        members = self.calibrated.members
        if members:
            k = int(self.np_random.integers(len(members)))
            self.world = members[k]
            self.episodes_per_member[k] += 1
        return super()._new_customers()
