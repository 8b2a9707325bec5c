"""The promotion gate of the cycle: ``journeyopt-promote``'s tests, with the champion read
through the observation layout of the world it was trained in.

Every re-calibration gives a new world, and a world's observation layout (the caps that scale
the features, e.g. twice its largest mean booking value) changes with it, so the champion
cannot be loaded over the new world's layout as :func:`journeyopt.cli.promote.promote` does.
Here the candidate is read over the new world's layout and the champion over its own; both
see the same customer features, and both are judged in the new world (simulation in each
ensemble member, off-policy evaluation on the newest logs) by the same public pieces of the
gate (:func:`~journeyopt.cli.promote.run_gate`, :func:`~journeyopt.cli.promote.promote_version`).
"""

from __future__ import annotations

from mlflow.exceptions import MlflowException

from journeyopt.agents.baselines import StaffPolicy
from journeyopt.agents.policy import Policy
from journeyopt.calibration.calibrated import CalibratedWorld
from journeyopt.cli.promote import PromoteConfig, load_served, promote_version, run_gate
from journeyopt.sim.world import WorldSpec, load_world
from journeyopt.tracking.promotion import Decision
from journeyopt.tracking.registry import CHAMPION, PolicyRegistry, ResolvedVersion


def champion_in_own_layout(
    registry: PolicyRegistry, cfg: PromoteConfig, champion_world: str, world: WorldSpec
) -> tuple[Policy, str]:
    """The ``champion`` version over the layout of ``champion_world`` (the world it was
    trained in; the new ``world`` when empty), or the staff rules when no version holds the
    alias."""
    try:
        version = registry.alias(CHAMPION)
    except MlflowException:  # no version holds the alias
        return StaffPolicy(world), "staff_rules"
    own = load_world(champion_world) if champion_world else world
    return load_served(version, cfg.tracking, own, f"champion_v{version.version}"), version.uri


def gate(cfg: PromoteConfig, candidate: ResolvedVersion, champion_world: str) -> Decision:
    """Judge ``candidate`` against the champion in ``cfg.calibrated_world``; promote it when
    every test passes. The decision is recorded as an MLflow run either way.

    Returns:
        The decision (``promote`` False: the champion stays).
    """
    calibrated = CalibratedWorld.load(cfg.calibrated_world)
    world = calibrated.world
    registry = PolicyRegistry(cfg.tracking)
    challenger = load_served(candidate, cfg.tracking, world, f"candidate_v{candidate.version}")
    champion, champion_ref = champion_in_own_layout(registry, cfg, champion_world, world)
    members = calibrated.members or (world,)
    decision = run_gate(cfg, world, members, candidate, challenger, champion, champion_ref)
    if decision.promote:
        promote_version(
            registry,
            candidate,
            decision,
            f"beats {champion_ref} in simulation and by off-policy evaluation (weekly cycle)",
        )
    return decision
