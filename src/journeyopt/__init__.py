"""journeyopt: learn contact policies that grow long-term customer value.

Logs in -> weekly customer panel -> simulator -> agents -> evaluation -> serving.
See ``docs/architecture.md`` for the map of the package.

Importing the package registers the gymnasium environment ``journeyopt/CustomerJourney-v0``
(:class:`journeyopt.sim.env.CustomerJourneyEnv`).
"""

from __future__ import annotations

import gymnasium

__version__ = "0.1.0"

if "journeyopt/CustomerJourney-v0" not in gymnasium.registry:
    gymnasium.register(
        id="journeyopt/CustomerJourney-v0",
        entry_point="journeyopt.sim.env:CustomerJourneyEnv",
        disable_env_checker=False,
    )
