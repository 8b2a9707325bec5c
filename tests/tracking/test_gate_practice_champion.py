"""The gate against a champion that is today's practice, registered
(``journeyopt-register-practice champion=true``): the champion is the practice's
``StaffPolicy`` acting in the judged world, so "against the champion" measures the practice's
value — the blocking rows equal the rows against today's practice."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from journeyopt.agents.baselines import StaffPolicy
from journeyopt.cli.promote import champion_policy, promote
from journeyopt.serving.config import HoldoutConfig, ServingConfig
from journeyopt.serving.practice import register_practice
from journeyopt.sim.config import shipped_practice, shipped_rules
from journeyopt.sim.world import load_world
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.registry import CHAMPION, PolicyRegistry
from tests.tracking.test_promotion import (
    cloned_myopic,
    gate_config,
    recent_logs,  # noqa: F401 -- the module-scoped logs fixture
    register,
    without_model_tests,
)


def test_the_gate_judges_against_the_registered_practice_value(
    mlflow_sqlite: TrackingConfig,
    recent_logs: Path,  # noqa: F811
) -> None:
    serve = ServingConfig(
        world="coworking",
        rules=shipped_rules("coworking"),
        holdout=HoldoutConfig(staff=shipped_practice("coworking")),
    )
    practice = register_practice(serve, mlflow_sqlite, champion=True).version
    registry = PolicyRegistry(mlflow_sqlite)
    assert registry.alias(CHAMPION).version == practice.version
    world = load_world("coworking")
    champion, ref = champion_policy(
        registry, mlflow_sqlite, world, staff=shipped_practice("coworking")
    )
    assert ref == practice.uri and isinstance(champion, StaffPolicy)
    assert champion.practice == shipped_practice("coworking").to_practice()

    better = register(mlflow_sqlite, cloned_myopic(recent_logs), "myopic_clone")
    cfg = without_model_tests(
        gate_config(f"models:/{registry.name}/{better}", recent_logs, mlflow_sqlite)
    )
    cfg.ope.min_action_support = 5  # one logged week of 1,500 customers (see test_promotion)
    decision = promote(cfg)
    rows = decision.table.set_index("key")
    assert rows.loc["simulation", "baseline"] == f"champion ({practice.uri})"
    for test in ("simulation", "ope"):  # the champion's value is the practice's
        against_champion, against_practice = rows.loc[test], rows.loc[f"{test}_vs_practice"]
        assert against_champion["blocking"] and not against_practice["blocking"]
        np.testing.assert_allclose(
            against_champion["improvement"], against_practice["improvement"], rtol=1e-9
        )
    assert decision.promote, decision.reasons  # the clone beats today's practice
    assert registry.alias(CHAMPION).version == better
