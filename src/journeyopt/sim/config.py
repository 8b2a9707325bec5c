"""Typed configuration of the simulator and of the log generator.

:class:`SimulatorConfig` is the schema of the ``simulator`` config group
(``configs/simulator/*.yaml``); :class:`GenerateConfig` the schema of ``configs/generate.yaml``.
Both are registered in Hydra's ConfigStore by :func:`register_configs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from journeyopt.errors import ConfigError
from journeyopt.sim.behaviour import StaffRules


@dataclass
class SimulatorConfig:
    """Which world to simulate and how returns are counted.

    Attributes:
        world: A shipped world name (``simulators/<name>/``), or a folder or ``world.yaml``.
        horizon_weeks: Episode length, weeks.
        gamma: Weekly discount factor of rewards (0.995 a week is about 0.77 a year).
        start_week_of_year: ISO week of year (1..53) of an episode's first week.
    """

    world: str = "coworking"
    horizon_weeks: int = 52
    gamma: float = 0.995
    start_week_of_year: int = 1

    def __post_init__(self) -> None:
        if self.horizon_weeks < 1:
            raise ConfigError(f"simulator.horizon_weeks must be >= 1, got {self.horizon_weeks}")
        if not 0.0 < self.gamma <= 1.0:
            raise ConfigError(f"simulator.gamma must be in (0, 1], got {self.gamma}")
        if not 1 <= self.start_week_of_year <= 53:
            raise ConfigError("simulator.start_week_of_year must be in 1..53")


@dataclass
class StaffRulesConfig:
    """Today's contact practice, the behaviour policy of the logs (see
    :class:`journeyopt.sim.behaviour.StaffRules` for each field)."""

    newsletter_every_weeks: int = 4
    winback_every_weeks: int = 13
    lapsed_after_weeks: int = 26
    call_segments: list[str] = field(default_factory=lambda: ["startup_team", "corporate_team"])
    call_engaged_prospects: bool = True
    call_within_weeks: int = 1

    def to_rules(self) -> StaffRules:
        try:
            return StaffRules(
                newsletter_every_weeks=self.newsletter_every_weeks,
                winback_every_weeks=self.winback_every_weeks,
                lapsed_after_weeks=self.lapsed_after_weeks,
                call_segments=tuple(self.call_segments),
                call_engaged_prospects=self.call_engaged_prospects,
                call_within_weeks=self.call_within_weeks,
            )
        except ValueError as err:
            raise ConfigError(f"staff: {err}") from err

    def rules_for(self, world_name: str, segment_names: Sequence[str], key: str) -> StaffRules:
        """The rules, checked against a world's customer types ``segment_names``.

        Args:
            world_name: The world's name, for the message.
            segment_names: The world's customer types.
            key: Where these settings live in the config (e.g. ``evaluation.staff``), for the
                message.

        Raises:
            ConfigError: ``call_segments`` names a type the world does not have: today's
                practice would silently call nobody of it, and a baseline or control group
                would be weaker than the practice it stands for.
        """
        unknown = [s for s in self.call_segments if s not in segment_names]
        if unknown:
            raise ConfigError(
                f"{key}.call_segments names customer type(s) {unknown} that world "
                f"{world_name!r} does not have (its types: {list(segment_names)}): set the "
                f"types today's practice calls after an engagement, e.g. "
                f"'{key}.call_segments=[{','.join(segment_names[:2])}]', or [] for none"
            )
        return self.to_rules()


@dataclass
class MessConfig:
    """Realistic mess injected into the logs; every rate defaults to 0 (clean logs).

    Attributes:
        exact_duplicate_rate: Share of events written twice, identical (a re-exported batch).
        near_duplicate_rate: Share of events written again a few seconds later under a new
            event id (double submit, retried webhook).
        near_duplicate_max_seconds: Largest delay of a near duplicate, seconds.
        identity_fragment_rate: Share of persons who also exist under a second customer
            reference whose e-mail differs by case, whitespace or plus-addressing, or whose
            phone number is formatted differently.
        fragment_event_share: Share of a fragmented person's events logged under the fragment.
        offset_timestamp_rate: Share of event and contact timestamps written with an explicit
            offset (``Z`` or ``+01:00``) instead of naive Europe/Berlin local time.
        malformed_rate: Extra malformed event rows, as a share of events, spread over
            unparseable dates, negative amounts, non-numeric amounts, unknown event types and
            empty customer references.
    """

    exact_duplicate_rate: float = 0.0
    near_duplicate_rate: float = 0.0
    near_duplicate_max_seconds: int = 30
    identity_fragment_rate: float = 0.0
    fragment_event_share: float = 0.3
    offset_timestamp_rate: float = 0.0
    malformed_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "exact_duplicate_rate",
            "near_duplicate_rate",
            "identity_fragment_rate",
            "fragment_event_share",
            "offset_timestamp_rate",
            "malformed_rate",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"mess.{name} must be in [0, 1], got {value}")
        if not 1 <= self.near_duplicate_max_seconds <= 59:
            raise ConfigError("mess.near_duplicate_max_seconds must be in 1..59")


@dataclass
class GenerateConfig:
    """``journeyopt-generate``: simulate a world under today's practice and write raw logs.

    Attributes:
        simulator: The world (``simulator.world``).
        output_dir: Folder the coworking-format CSV files and ``truth.json`` are written to.
        seed: Seed of the random generator; the same seed gives byte-identical files.
        n_customers: Customers in total: the initial population plus arrivals.
        weeks: Weeks simulated and logged.
        start_date: Monday (ISO date) the first logged week starts on, 00:00 UTC.
        initial_share: Share of the customers present at the start (the rest arrive as
            prospects spread uniformly over the weeks).
        exploration: Probability that the behaviour policy replaces the staff's action by a
            uniformly drawn allowed action.
        log_none_decisions: Write a ``none`` row to ``contacts.csv`` for every customer-week
            without contact, with its propensity.
        staff: Today's contact practice.
        mess: Mess injected into the logs.
        overwrite: Allow writing into a non-empty ``output_dir``.
    """

    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    output_dir: str = MISSING
    seed: int = 0
    n_customers: int = 2000
    weeks: int = 104
    start_date: str = "2023-01-02"
    initial_share: float = 0.4
    exploration: float = 0.1
    log_none_decisions: bool = True
    staff: StaffRulesConfig = field(default_factory=StaffRulesConfig)
    mess: MessConfig = field(default_factory=MessConfig)
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.n_customers < 1:
            raise ConfigError(f"n_customers must be >= 1, got {self.n_customers}")
        if self.weeks < 1:
            raise ConfigError(f"weeks must be >= 1, got {self.weeks}")
        if not 0.0 <= self.initial_share <= 1.0:
            raise ConfigError(f"initial_share must be in [0, 1], got {self.initial_share}")
        if not 0.0 <= self.exploration <= 1.0:
            raise ConfigError(f"exploration must be in [0, 1], got {self.exploration}")
        _ = self.start  # validates start_date

    @property
    def start(self) -> pd.Timestamp:
        """``start_date`` as Monday 00:00 UTC; a ``ConfigError`` if it is not a Monday."""
        try:
            ts = pd.Timestamp(self.start_date)
        except ValueError as err:
            raise ConfigError(f"start_date: not an ISO date: {self.start_date!r}") from err
        if ts.tzinfo is not None or ts != ts.normalize() or ts.weekday() != 0:
            raise ConfigError(f"start_date must be a Monday date, got {self.start_date!r}")
        return ts.tz_localize("UTC")


def register_configs() -> None:
    """Register the schemas in Hydra's ConfigStore (``simulator/base_simulator`` and
    ``base_generate``), referenced from the YAML defaults lists."""
    cs = ConfigStore.instance()
    cs.store(group="simulator", name="base_simulator", node=SimulatorConfig)
    cs.store(name="base_generate", node=GenerateConfig)
