"""Register the control group's practice as a served policy version
(``journeyopt-register-practice``).

The version holds the very practice ``serve.holdout.staff`` gives the control group (the
practice estimated from the logs, ``logged``, or a hand-written rule list), with the calendar
the control group counts its campaign weeks from, as a
:class:`~journeyopt.agents.practice_model.ServedPractice`. Served (as the champion, or as the
previous arm of a staged rollout) it decides exactly as the control group does; judged by the
gate it is today's practice. A business's first champion can so be "what we do today", and a
later candidate is promoted over it only on evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hydra.core.config_store import ConfigStore
from mlflow.exceptions import MlflowException

from journeyopt.agents.practice_model import PRACTICE_NAME, ServedPractice
from journeyopt.errors import ConfigError
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.config import register_configs as register_serving
from journeyopt.serving.guards import serving_rules, staff_rules
from journeyopt.sim.behaviour import world_under_rules
from journeyopt.sim.world import WorldSpec, load_world
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.model import log_policy_model
from journeyopt.tracking.registry import CHAMPION, RULES_TAG, PolicyRegistry, ResolvedVersion
from journeyopt.tracking.rollout import start_rollout
from journeyopt.tracking.run import tracked_run
from journeyopt.tracking.tags import AGENT_TAG, SIMULATOR_TAG


@dataclass(frozen=True)
class RegisteredPractice:
    """What :func:`register_practice` did.

    Attributes:
        version: The registered version.
        practice: The served practice it holds.
        champion: Whether the version now holds the ``champion`` alias.
    """

    version: ResolvedVersion
    practice: ServedPractice
    champion: bool


def served_practice(serve: ServingConfig, world: WorldSpec | None = None) -> ServedPractice:
    """The control group's practice of ``serve`` as a served policy: ``serve.holdout.staff``
    checked against the served world (``serve.world``, or ``world``) as the scorer sees it, on
    the control group's calendar."""
    try:
        base = world if world is not None else load_world(serve.world)
        seen = world_under_rules(base, serving_rules(base, serve.rules))
    except (ValueError, FileNotFoundError) as err:
        raise ConfigError(f"serve: {err}") from err
    practice = staff_rules(seen, serve.holdout)
    seen = practice.world_for(seen)  # counts what the practice's state reads
    return ServedPractice.build(seen, practice, serve.holdout.calendar_origin)


def register_practice(
    serve: ServingConfig,
    tracking: TrackingConfig,
    *,
    champion: bool = False,
    world: WorldSpec | None = None,
) -> RegisteredPractice:
    """Log today's practice (:func:`served_practice`) as an MLflow model in a run
    ``todays_practice`` and register it as a new version of ``tracking.registered_model``,
    tagged with the served world (``journeyopt.simulator``: ``serve.world``), the contact
    rules it runs under (``journeyopt.rules``: ``serve.rules``) and ``journeyopt.agent``
    ``todays_practice``.

    Args:
        serve: The serving settings (world, contact rules, the control group's practice and
            calendar).
        tracking: Where the registry is (``off`` is refused).
        champion: Make the version the first champion (serving the whole treatment group)
            when no version holds the alias; a business that has a champion judges the
            practice against it with ``journeyopt-promote candidate=<the version>``.
        world: The served world, when the caller has it loaded (default: ``serve.world``).

    Raises:
        ConfigError: Tracking is off; ``champion`` while a version holds the alias; the
            practice does not fit the served world.
    """
    if not tracking.enabled:
        raise ConfigError("tracking=off: registering today's practice needs the MLflow registry")
    served = served_practice(serve, world)
    registry = PolicyRegistry(tracking)
    if champion:
        try:
            holder = registry.alias(CHAMPION).version
        except MlflowException:
            holder = ""
        if holder:
            raise ConfigError(
                f"champion=true: version {holder} is the champion already; register without "
                "champion=true and judge today's practice against it with journeyopt-promote "
                "candidate=models:/<name>/<the new version>"
            )
    d, a = len(served.spec.feature_names), len(served.spec.action_names)
    tags = {AGENT_TAG: PRACTICE_NAME, SIMULATOR_TAG: serve.world}
    with tracked_run({}, PRACTICE_NAME, tracking=tracking, tags=tags, log_config=False) as run:
        run.log_params(
            {"practice.kind": type(served.practice).__name__,
             "practice.calendar_origin": served.calendar_origin}
        )  # fmt: skip
        info = log_policy_model(run, served, np.zeros((1, d), np.float32), np.ones((1, a), bool))
    if info is None:
        raise ConfigError("tracking: the practice model was not logged")
    version = registry.register(info, tags={**tags, RULES_TAG: serve.rules.fingerprint()})
    if champion:
        registry.promote(
            version.version,
            CHAMPION,
            reason="today's practice as the first champion (what the control group gets)",
        )
        start_rollout(registry, version.version, None, serve.rollout.canary_share)
    return RegisteredPractice(version, served, champion)


@dataclass
class RegisterPracticeConfig:
    """``journeyopt-register-practice``: today's practice as a registered policy version.

    Attributes:
        serve: The serving settings the practice is registered for: ``serve.world`` (your
            calibrated world), ``serve.rules`` (the contact rules it runs under) and
            ``serve.holdout`` (the control group's practice ``staff`` and its
            ``calendar_origin``) — the same settings ``journeyopt-serve`` and
            ``journeyopt-score`` take.
        tracking: Where the registry is.
        champion: Make the version the first champion when no version holds the alias.
    """

    serve: ServingConfig = field(default_factory=ServingConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    champion: bool = False


def register_configs() -> None:
    """Register ``register_practice_schema`` (and the ``serve`` and ``tracking`` groups')
    in Hydra's ConfigStore."""
    register_serving()
    ConfigStore.instance().store(name="register_practice_schema", node=RegisterPracticeConfig)
