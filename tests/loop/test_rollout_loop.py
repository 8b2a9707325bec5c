"""A staged rollout in the closed loop: the loop serves a canary beside the previous champion
(both arms in the decision log), the weekly cycle measures it from the week the canary
started (the served week, not the wall clock), and after a rollback the loop serves the
restored champion to the whole treatment group. (Whether the test rolls a loser back in time
is measured in experiments/rollout/: a few weeks of 400 customers cannot show it.)"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from journeyopt.agents.sb3 import policy_spec
from journeyopt.cli.promote import promote_version
from journeyopt.loop.closed_loop import ClosedLoop, run_closed_loop
from journeyopt.loop.truth import CoworkingTruth
from journeyopt.monitoring.config import RolloutJobConfig
from journeyopt.monitoring.rollout_job import run_rollout
from journeyopt.serving.config import HoldoutConfig, RolloutConfig, ServingConfig
from journeyopt.serving.rollout import ARMS, CANARY_ARM, FULL_ARM, PREVIOUS_ARM
from journeyopt.sim.config import GenerateConfig, shipped_practice, shipped_rules
from journeyopt.sim.observation import observation_layout
from journeyopt.sim.world import WorldSpec, load_world
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.model import LinearSoftmaxPolicy, log_policy_model
from journeyopt.tracking.promotion import Decision
from journeyopt.tracking.registry import CHAMPION, PolicyRegistry
from journeyopt.tracking.rollout import CANARY, ROLLED_BACK, read_rollout, start_rollout
from journeyopt.tracking.run import tracked_run
from journeyopt.tracking.tags import SIMULATOR_TAG
from tests.loop.test_cycle import tiny_cycle


def constant(world: WorldSpec, action: int) -> LinearSoftmaxPolicy:
    """A policy that takes ``action`` whenever the rules allow it."""
    layout = observation_layout(world)
    bias = np.zeros(world.actions.n_actions)
    bias[action] = 20.0
    weights = np.zeros((layout.size, world.actions.n_actions))
    return LinearSoftmaxPolicy(policy_spec(world, layout), weights, bias)


def register(tracking: TrackingConfig, policy: LinearSoftmaxPolicy) -> str:
    d, a = len(policy.spec.feature_names), len(policy.spec.action_names)
    with tracked_run({}, "policy", tracking=tracking, log_config=False) as run:
        info = log_policy_model(run, policy, np.zeros((2, d), np.float32), np.ones((2, a), bool))
    assert info is not None
    tags = {SIMULATOR_TAG: "coworking"}
    return PolicyRegistry(tracking).register(info, tags=tags).version


def test_a_losing_canary_is_served_measured_and_rolled_back(
    mlflow_sqlite: TrackingConfig, tmp_path: Path
) -> None:
    world = load_world("coworking")
    history = GenerateConfig(
        staff=shipped_practice("coworking"), output_dir="unused", n_customers=400, weeks=30
    )
    loop = ClosedLoop(CoworkingTruth(world, None, history), seed=0)
    loop.write(str(tmp_path / "logs"), str(tmp_path / "decisions"))
    (tmp_path / "decisions").mkdir()
    rollout = RolloutConfig(canary_share=0.5, loss_budget=2.0)
    registry = PolicyRegistry(mlflow_sqlite)
    # the costliest action earns in this world (3 weeks: +8 per customer-week over no
    # contact); a canary that contacts no one loses against it
    costliest = int(np.argmax(world.actions.costs))
    caller = register(mlflow_sqlite, constant(world, costliest))
    registry.promote(caller, CHAMPION, reason="test")
    start_rollout(registry, caller, None, rollout.canary_share)
    silent = registry.version(register(mlflow_sqlite, constant(world, 0)))
    refused = Decision(promote=False, evidence=(), reasons=("forced past the gate",))
    promote_version(registry, silent, refused, "forced canary", rollout, loop.monday)
    state = read_rollout(registry)
    assert state is not None and state.stage == CANARY and state.previous == caller
    assert state.started == loop.monday  # the served week, not the wall clock

    serving = replace(
        ServingConfig(
            rules=shipped_rules("coworking"),
            holdout=HoldoutConfig(staff=shipped_practice("coworking")),
        ),
        rollout=rollout,
    )
    cfg = replace(tiny_cycle(mlflow_sqlite, tmp_path / "cycles"), serve=serving)
    (week,) = run_closed_loop(loop, cfg, serving, 1, tmp_path)

    first = pd.read_csv(sorted((tmp_path / "decisions").glob("*.csv"))[0], dtype=str)
    assert set(first.loc[first["arm"] == CANARY_ARM, "model_version"]) == {silent.version}
    assert set(first.loc[first["arm"] == PREVIOUS_ARM, "model_version"]) == {caller}
    assert week.cycle is not None and week.cycle.record.rollout in ("continue", "rollback")
    canary = int((first["arm"] == CANARY_ARM).sum())
    measured = week.cycle.record.uplift  # one week of every canary customer, from the loop's
    assert measured["rollout/canary_customers"] == canary  # week (not the wall clock)
    assert measured["rollout/vs_previous_exposure_weeks"] == min(
        canary, int((first["arm"] == PREVIOUS_ARM).sum())
    )
    if week.cycle.record.rollout != "rollback":  # 400 customers, one week: roll back by hand
        job = RolloutJobConfig(command="rollback", data=cfg.data, tracking=mlflow_sqlite,
                               serve=serving, reason="test")  # fmt: skip
        run_rollout(job)
    assert read_rollout(registry) is not None
    assert read_rollout(registry).champion == caller  # type: ignore[union-attr]
    tags = registry.client.get_model_version(registry.name, silent.version).tags
    assert tags["journeyopt.rollout.stage"] == ROLLED_BACK

    (after,) = run_closed_loop(loop, cfg, serving, 1, tmp_path, adapt=False)
    assert after.champion == caller  # the loop follows the alias back
    assert ARMS.index(CANARY_ARM) not in loop.last_arm
    assert ARMS.index(FULL_ARM) in loop.last_arm
