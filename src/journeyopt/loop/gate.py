"""The promotion gate of the cycle: ``journeyopt-promote``'s tests, with the champion read
through the observation layout of the world it was trained in.

Every re-calibration gives a new world, and a world's observation layout (the caps that scale
the features, e.g. twice its largest mean booking value) changes with it. Here the candidate is
read over the new world's layout and the champion over its own
(:func:`~journeyopt.cli.promote.champion_policy` with ``champion_world``); both are judged in
the new world by the gate's tests (:func:`~journeyopt.cli.promote.run_gate`), and against
today's practice too (rows that do not block) while a champion holds the alias. Unlike
``journeyopt-promote``, a refusal is a normal outcome of a cycle, not an error.
"""

from __future__ import annotations

import pandas as pd

from journeyopt.calibration.calibrated import CalibratedWorld
from journeyopt.cli.promote import (
    PromoteConfig,
    champion_policy,
    load_served,
    promote_version,
    promotion_reason,
    run_gate,
    todays_practice,
)
from journeyopt.tracking.promotion import Decision
from journeyopt.tracking.registry import PolicyRegistry, ResolvedVersion


def gate(
    cfg: PromoteConfig,
    candidate: ResolvedVersion,
    champion_world: str,
    serving_from: pd.Timestamp | None = None,
) -> Decision:
    """Judge ``candidate`` against the champion in ``cfg.calibrated_world``; promote it when
    every test passes (or as a canary only on an inconclusive gate with
    ``gate.inconclusive=canary``). The decision is recorded as an MLflow run either way. A promoted
    canary's rollout counts from ``serving_from`` (the cycle's week, UTC; default now).

    Returns:
        The decision (``promote`` False: the champion stays).
    """
    calibrated = CalibratedWorld.load(cfg.calibrated_world)
    world = calibrated.world
    registry = PolicyRegistry(cfg.tracking)
    challenger = load_served(candidate, cfg.tracking, world, f"candidate_v{candidate.version}")
    champion, champion_ref = champion_policy(
        registry, cfg.tracking, world, champion_world, staff=cfg.evaluation.staff
    )
    practice = todays_practice(world, champion_ref, cfg.evaluation.staff)
    members = calibrated.members or (world,)
    decision = run_gate(
        cfg, world, members, candidate, challenger, champion, champion_ref, practice=practice
    )
    if decision.promote:
        promote_version(
            registry,
            candidate,
            decision,
            promotion_reason(decision, champion_ref, "weekly cycle"),
            cfg.serve.rollout,
            serving_from,
        )
    return decision
