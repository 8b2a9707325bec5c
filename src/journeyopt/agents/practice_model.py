"""Today's practice as a registered, served policy: a business's first champion can be "what
we do today", and a staged rollout's previous arm can be today's practice.

:class:`ServedPractice` holds the one practice object (a hand-written
:class:`~journeyopt.sim.practice.Practice` or the :class:`~journeyopt.sim.practice.LoggedPractice`
estimated from the logs) and the Monday its campaign calendar counts from; it is logged as an
MLflow model like any trained policy (``served_practice.json``, plus ``practice.npz`` for an
estimated practice; open formats) and registered with :func:`register_practice`
(``journeyopt-register-practice``). The serving scorer runs it exactly as it runs the control
group (:meth:`journeyopt.serving.scorer.Scorer.practice_choice`: the same
:class:`~journeyopt.agents.baselines.StaffPolicy` over the customers' state features, the same
calendar, the same hashed draw, the same contact rules and guards), and the promotion gate
judges it as the same ``StaffPolicy`` it uses for today's practice.

A practice reads the week of its campaign calendar, which the observation vector does not
carry: :meth:`ServedPractice.act` (MLflow's ``predict``, ``mlflow models serve``) refuses;
``journeyopt-serve`` and ``journeyopt-score`` serve it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.agents.baselines import StaffPolicy
from journeyopt.agents.sb3 import policy_spec
from journeyopt.errors import ConfigError
from journeyopt.sim.observation import observation_layout
from journeyopt.sim.practice import PRACTICE_FILE, LoggedPractice, Practice
from journeyopt.sim.world import WorldSpec
from journeyopt.tracking.model import PolicySpec

META_FILE = "served_practice.json"
PRACTICE_NAME = "todays_practice"
"""Name of a served practice in tables, its MLflow run and its ``journeyopt.agent`` tag."""


def monday_origin(calendar_origin: str) -> pd.Timestamp:
    """``calendar_origin`` (an ISO Monday date) as Monday 00:00 UTC.

    Raises:
        ConfigError: Not an ISO date of a Monday.
    """
    try:
        ts = pd.Timestamp(calendar_origin)
    except ValueError as err:
        raise ConfigError(f"calendar origin {calendar_origin!r} is not an ISO date") from err
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    if ts != ts.normalize() or ts.weekday() != 0:
        raise ConfigError(f"calendar origin must be a Monday date, got {calendar_origin!r}")
    return ts.tz_localize("UTC")


class ServedPractice:
    """Today's practice as a :class:`~journeyopt.tracking.model.ServablePolicy`.

    Args:
        practice: The practice (checked against the serving world when served).
        calendar_origin: Monday (ISO date) of week 0 of its campaign calendar: an estimated
            practice's own origin (the logs' first logged week) when it has one, else the
            control group's ``serve.holdout.calendar_origin`` at registration.
        spec: Actions and the observation layout of the world it was registered for (the
            scorer checks the actions; the practice reads the state features, not the
            observation vector).
    """

    pip_requirements: tuple[str, ...] = ()
    reads_observations = False
    """Whether :meth:`act` decides from observation vectors (no: from the state and date)."""

    def __init__(
        self, practice: Practice | LoggedPractice, calendar_origin: str, spec: PolicySpec
    ) -> None:
        self.practice = practice
        self.calendar_origin = calendar_origin
        self.origin = monday_origin(calendar_origin)
        self._spec = spec

    @classmethod
    def build(
        cls, world: WorldSpec, practice: Practice | LoggedPractice, calendar_origin: str
    ) -> ServedPractice:
        """The practice served in ``world`` (the world as the scorer sees it), its calendar
        counting from the practice's own origin when it has one, else ``calendar_origin``
        (``serve.holdout.calendar_origin``): the control group's calendar."""
        own = practice.calendar_origin if isinstance(practice, LoggedPractice) else ""
        return cls(practice, own or calendar_origin, policy_spec(world, observation_layout(world)))

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def staff(self, world: WorldSpec, key: str, name: str = PRACTICE_NAME) -> StaffPolicy:
        """The practice acting in ``world`` as the policy ``name`` (checked:
        ``Practice.check`` / ``LoggedPractice.check``; ``key`` names the model in the
        message)."""
        return StaffPolicy(world, self.practice.check(world, key), name=name)

    def campaign_week(self, monday: pd.Timestamp) -> int:
        """Week index of the campaign calendar of the week starting ``monday`` (UTC; 0
        before the origin)."""
        return max(0, int((monday - self.origin) // pd.Timedelta(weeks=1)))

    def act(
        self, observations: NDArray[np.float32], masks: NDArray[np.bool_]
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Refused: the practice needs the week of its campaign calendar and the state
        features, which observation vectors do not carry (see the module docstring).

        Raises:
            ValueError: Always.
        """
        raise ValueError(
            "today's practice reads its campaign calendar's week, which the observation "
            "vector does not carry: serve it with journeyopt-serve or journeyopt-score"
        )

    def save(self, folder: Path) -> None:
        """``served_practice.json`` (kind, calendar origin, a hand-written practice's rules)
        and, for an estimated practice, ``practice.npz``."""
        meta: dict[str, object] = {"calendar_origin": self.calendar_origin}
        if isinstance(self.practice, LoggedPractice):
            meta["kind"] = "logged"
            self.practice.save(folder / PRACTICE_FILE)
        else:
            meta |= {"kind": "rules", "rules": self.practice.to_json()}
        (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, spec: PolicySpec) -> ServedPractice:
        """The practice :meth:`save` wrote into ``folder`` (no pickles)."""
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        practice: Practice | LoggedPractice
        if meta["kind"] == "logged":
            practice = LoggedPractice.load(folder / PRACTICE_FILE)
        else:
            practice = Practice.from_json(meta["rules"])
        return cls(practice, str(meta["calendar_origin"]), spec)
