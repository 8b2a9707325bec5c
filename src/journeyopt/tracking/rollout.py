"""The staged rollout's state in the MLflow registry, where every serving process and a user
in the MLflow UI read the same thing.

- alias ``champion``: the version being rolled out (the canary while the stage is
  ``canary``);
- alias ``previous``: the champion it replaced, still serving the rest of the treatment group
  during the canary (removed when the canary is widened or rolled back);
- tags on the champion version: ``journeyopt.rollout.stage`` (``canary`` or ``full``),
  ``journeyopt.rollout.canary_share``, ``journeyopt.rollout.previous_version``,
  ``journeyopt.rollout.started`` (UTC instant the canary started) and, on every decision,
  ``journeyopt.rollout.decision`` / ``.reason`` / ``.at``. A rolled-back version keeps
  ``journeyopt.rollout.stage=rolled_back``.

A version without rollout tags serves the whole treatment group (a first champion, or one
promoted before rollouts existed). Deciding *whether* to widen or roll back is done in
:mod:`journeyopt.monitoring.rollout`; here the decisions are only carried out.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
from mlflow.exceptions import MlflowException

from journeyopt.tracking.registry import CHAMPION, PolicyRegistry

PREVIOUS = "previous"
"""Alias of the champion a canary replaced."""
TAG = "journeyopt.rollout"
CANARY = "canary"
FULL = "full"
ROLLED_BACK = "rolled_back"
STAGES: tuple[str, ...] = (CANARY, FULL, ROLLED_BACK)


@dataclass(frozen=True)
class RolloutState:
    """Where the rollout of the champion stands.

    Attributes:
        champion: Version the ``champion`` alias points to.
        stage: ``canary`` (``canary_share`` of treatment on ``champion``, the rest on
            ``previous``) or ``full`` (all of treatment on ``champion``).
        canary_share: Share of treatment served by ``champion`` (1.0 when ``full``).
        previous: Version serving the rest of treatment during the canary (None when full).
        started: UTC instant the canary started (None without a rollout record).
    """

    champion: str
    stage: str
    canary_share: float
    previous: str | None
    started: pd.Timestamp | None

    @property
    def key(self) -> str:
        """What a server compares to know whether it must reload: the champion's version,
        plus the previous version and the share during a canary."""
        if self.stage != CANARY or self.previous is None:
            return self.champion
        return f"{self.champion}+{self.previous}@{self.canary_share:g}"


def _tags(registry: PolicyRegistry, version: str) -> dict[str, str]:
    return dict(registry.client.get_model_version(registry.name, version).tags or {})


def _holder(registry: PolicyRegistry, alias: str) -> str | None:
    try:
        return registry.alias(alias).version
    except MlflowException:
        return None


def read_rollout(registry: PolicyRegistry) -> RolloutState | None:
    """The rollout state of the current champion; None without a champion.

    A canary whose ``previous`` alias is gone (deleted by hand) serves fully."""
    champion = _holder(registry, CHAMPION)
    if champion is None:
        return None
    tags = _tags(registry, champion)
    stage = tags.get(f"{TAG}.stage", FULL)
    started_tag = tags.get(f"{TAG}.started", "")
    started = pd.Timestamp(started_tag) if started_tag else None
    previous = _holder(registry, PREVIOUS) if stage == CANARY else None
    if stage != CANARY or previous is None or previous == champion:
        return RolloutState(champion, FULL, 1.0, None, started)
    share = float(tags.get(f"{TAG}.canary_share", "nan"))
    if not 0.0 < share < 1.0:
        return RolloutState(champion, FULL, 1.0, None, started)
    return RolloutState(champion, CANARY, share, previous, started)


def _record(registry: PolicyRegistry, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        registry.client.set_model_version_tag(registry.name, version, f"{TAG}.{key}", value)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def start_rollout(
    registry: PolicyRegistry,
    champion: str,
    previous: str | None,
    canary_share: float,
    started: pd.Timestamp | None = None,
) -> RolloutState:
    """Record that ``champion`` (just promoted) starts on ``canary_share`` of treatment with
    ``previous`` serving the rest; with no previous champion (or the same version) it serves
    fully at once.

    Args:
        started: UTC instant the canary starts serving (the weekly cycle's week, whose
            decisions the rollout measures from); default now.

    Raises:
        ValueError: ``canary_share`` outside (0, 1).
    """
    if not 0.0 < canary_share < 1.0:
        raise ValueError(f"canary_share must be in (0, 1), got {canary_share}")
    now = _now() if started is None else started.isoformat()
    if previous is None or previous == champion:
        _record(registry, champion, {"stage": FULL, "canary_share": "1", "started": now})
        return RolloutState(champion, FULL, 1.0, None, pd.Timestamp(now))
    registry.set_alias(PREVIOUS, previous)
    _record(
        registry,
        champion,
        {
            "stage": CANARY,
            "canary_share": f"{canary_share:g}",
            "previous_version": previous,
            "started": now,
        },
    )
    return RolloutState(champion, CANARY, canary_share, previous, pd.Timestamp(now))


def _drop_previous(registry: PolicyRegistry) -> None:
    with contextlib.suppress(MlflowException):  # already gone
        registry.client.delete_registered_model_alias(registry.name, PREVIOUS)


def widen(registry: PolicyRegistry, reason: str) -> RolloutState:
    """The canary serves the whole treatment group; the ``previous`` alias is removed.

    Raises:
        ValueError: No canary in progress.
    """
    state = read_rollout(registry)
    if state is None or state.stage != CANARY:
        raise ValueError("no canary in progress: nothing to widen")
    _record(
        registry,
        state.champion,
        {"stage": FULL, "canary_share": "1", "decision": "widen", "reason": reason, "at": _now()},
    )
    _drop_previous(registry)
    return RolloutState(state.champion, FULL, 1.0, None, state.started)


def roll_back(registry: PolicyRegistry, reason: str) -> RolloutState:
    """The ``champion`` alias returns to the previous version, which serves the whole
    treatment group again; the canary version is tagged ``rolled_back`` with the reason.

    Raises:
        ValueError: No canary in progress (no previous version to return to).
    """
    state = read_rollout(registry)
    if state is None or state.stage != CANARY or state.previous is None:
        raise ValueError("no canary in progress: no previous version to roll back to")
    now = _now()
    _record(
        registry,
        state.champion,
        {"stage": ROLLED_BACK, "decision": "rollback", "reason": reason, "at": now},
    )
    registry.promote(
        state.previous,
        CHAMPION,
        reason=f"rollback of version {state.champion}: {reason}",
        evidence={"rolled_back_version": state.champion},
    )
    # the restored version serves all of treatment, whatever its own rollout once said
    _record(registry, state.previous, {"stage": FULL, "canary_share": "1", "restored": now})
    _drop_previous(registry)
    return RolloutState(state.previous, FULL, 1.0, None, pd.Timestamp(now))
