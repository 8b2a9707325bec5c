"""Typed configuration of the weekly cycle: ``configs/cycle.yaml`` (:class:`CycleConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from journeyopt.agents.config import TrainSettings
from journeyopt.agents.config import register_configs as register_agents
from journeyopt.calibration.config import CalibrationConfig
from journeyopt.calibration.config import register_configs as register_calibration
from journeyopt.cli.promote import PromoteConfig, PromoteOPEConfig
from journeyopt.data.source import SourceConfig
from journeyopt.errors import ConfigError
from journeyopt.evaluation.config import EvaluationConfig
from journeyopt.monitoring.config import DriftThresholds, EstimatorConfig
from journeyopt.panel.config import PanelConfig, parse_as_of
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.config import register_configs as register_serving
from journeyopt.sim.config import SimulatorConfig
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.promotion import GateConfig


@dataclass
class ScheduleConfig:
    """When the cycle re-trains without drift.

    Attributes:
        every_weeks: Re-calibrate and re-train every this many weeks counted from ``origin``
            even without drift; 0: only on drift (or when no champion exists).
        origin: ISO date of a week the schedule counts from; empty: the weeks since
            1970-01-05 (a Monday).
    """

    every_weeks: int = 0
    origin: str = ""

    def __post_init__(self) -> None:
        if self.every_weeks < 0:
            raise ConfigError(f"schedule.every_weeks must be >= 0, got {self.every_weeks}")
        if self.origin:
            try:
                parse_as_of(self.origin)
            except ConfigError as err:
                raise ConfigError(f"schedule.origin: not an ISO date: {self.origin!r}") from err


@dataclass
class UpliftStepConfig:
    """The uplift step: the champion over the holdout on the newest weeks.

    Attributes:
        weeks: Weeks measured, ending with the last complete week before the cycle's week.
        estimator: How uplift is estimated.
    """

    weeks: int = 4
    estimator: EstimatorConfig = field(default_factory=EstimatorConfig)

    def __post_init__(self) -> None:
        if self.weeks < 1:
            raise ConfigError(f"uplift.weeks must be >= 1, got {self.weeks}")


DRIFT_CHECKS: dict[str, str] = {
    "population": "population:",
    "action_mix": "action mix",
    "response": "response:",
}
"""Drift checks a cycle can re-train on, and the prefix of their reasons."""


@dataclass
class DriftCalibrationConfig:
    """How the cycle re-calibrates when drift (not the schedule) triggered the re-training.

    After a change, a window reaching far back mixes the old regime with the new one and the
    new world is fitted mostly to customers who no longer exist; a shorter window fits the
    new regime alone, at the price of fewer customer-weeks (wider uncertainty). Seasonal
    effects need a window of a year to be told apart from the change itself: on a shorter
    window they would absorb it.

    Attributes:
        recent_weeks: Fit only the newest this many weeks when drift triggered (0: the
            ``calibration.recent_weeks`` of every re-calibration).
        seasonal: Fit week-of-year effects then (``calibration.seasonal`` when
            ``recent_weeks`` is 0).
    """

    recent_weeks: int = 0
    seasonal: bool = True

    def __post_init__(self) -> None:
        if self.recent_weeks < 0:
            raise ConfigError(
                f"drift.calibration.recent_weeks must be >= 0, got {self.recent_weeks}"
            )


@dataclass
class DriftStepConfig:
    """The drift step (see ``journeyopt-drift``).

    Attributes:
        reference_weeks: Weeks before the current window compared against.
        current_weeks: Newest complete weeks checked.
        exclude_features: Panel features not compared.
        thresholds: When a difference counts as drift.
        seed: Seed of the week drawn per customer.
        retrain_on: Checks whose drift triggers re-training (``population``, ``action_mix``,
            ``response``). The others are still reported. Response drift (customers respond
            differently to the same contact) invalidates the world the champion was trained
            in; population drift alone (an ageing customer base) and action-mix drift (a
            new champion contacts differently, by design) need not.
        calibration: The calibration window after drift.
    """

    reference_weeks: int = 26
    current_weeks: int = 4
    exclude_features: list[str] = field(default_factory=lambda: ["tenure_weeks"])
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    seed: int = 0
    retrain_on: list[str] = field(default_factory=lambda: ["response"])
    calibration: DriftCalibrationConfig = field(default_factory=DriftCalibrationConfig)

    def __post_init__(self) -> None:
        if self.reference_weeks < 1 or self.current_weeks < 1:
            raise ConfigError("drift.reference_weeks and drift.current_weeks must be >= 1")
        unknown = sorted(set(self.retrain_on) - set(DRIFT_CHECKS))
        if unknown:
            raise ConfigError(
                f"drift.retrain_on: unknown checks {unknown}; known: {list(DRIFT_CHECKS)}"
            )


@dataclass
class PromotionStepConfig:
    """The promotion gate of the cycle (see ``journeyopt-promote``).

    Attributes:
        n_customers: Simulated customers of the simulation test.
        gate: Thresholds.
        ope: Off-policy evaluation on the newest logs.
    """

    n_customers: int = 5000
    gate: GateConfig = field(default_factory=GateConfig)
    ope: PromoteOPEConfig = field(default_factory=PromoteOPEConfig)

    def __post_init__(self) -> None:
        if self.n_customers < 2:
            raise ConfigError(f"promotion.n_customers must be >= 2, got {self.n_customers}")


@dataclass
class CycleConfig:
    """Schema of ``configs/cycle.yaml`` (``journeyopt-cycle``).

    Attributes:
        week: ISO date in the week the cycle prepares (rounded down to its Monday): the logs
            up to that Monday are used, the champion it leaves serves that week.
        data: The logs' source; ``data.path`` given by the user.
        panel: Feature windows.
        decisions: Decision-log folder or file of the served policy; empty: no uplift step.
        uplift: The uplift step.
        drift: The drift step.
        schedule: Re-training without drift.
        calibration: Re-calibration; ``calibration.recent_weeks`` is the rolling window.
        simulator: Horizon, discount factor and first week of year of training and gate.
        agent: The agent trained when no champion exists (any ``agent`` group option); a
            champion's own algorithm is re-trained otherwise.
        train: Training budget; ``train.warm_start`` clones the new world's exact optimum.
        evaluation: The trained agent's final evaluation against the baselines.
        promotion: The gate.
        serve: How the champion is served; the gate reads ``serve.rules`` (its off-policy
            evaluation masks policies with the contact rules they are served under).
        tracking: MLflow (the registry holds the champion).
        work_dir: Folder of the cycles' outputs, one sub-folder per week and data fingerprint.
        seed: Seed of training and simulation.
    """

    week: str = MISSING
    data: SourceConfig = field(default_factory=SourceConfig)
    panel: PanelConfig = MISSING  # required: the business's panel windows (configs/panel/)
    decisions: str = ""
    uplift: UpliftStepConfig = field(default_factory=UpliftStepConfig)
    drift: DriftStepConfig = field(default_factory=DriftStepConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    agent: Any = MISSING
    train: TrainSettings = field(default_factory=TrainSettings)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    promotion: PromotionStepConfig = field(default_factory=PromotionStepConfig)
    serve: ServingConfig = field(default_factory=ServingConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    work_dir: str = MISSING
    seed: int = 0

    def __post_init__(self) -> None:
        try:
            parse_as_of(self.week)
        except ConfigError as err:
            raise ConfigError(f"week: not an ISO 8601 date: {self.week!r}") from err

    def gate_job(self, candidate: str, world: str, panel: PanelConfig) -> PromoteConfig:
        """The promotion gate's job for ``candidate`` (a models URI) in the calibrated
        ``world`` (folder), on the logs as ``panel`` sees them: the cycle's own data,
        simulator, promotion settings, baseline, serving rules and tracking."""
        return PromoteConfig(
            candidate=candidate,
            data=self.data,
            panel=panel,
            simulator=self.simulator,
            calibrated_world=world,
            n_customers=self.promotion.n_customers,
            seed=self.seed,
            gate=self.promotion.gate,
            ope=self.promotion.ope,
            tracking=self.tracking,
            evaluation=self.evaluation,
            serve=self.serve,
        )


def register_configs() -> None:
    """Register ``cycle_schema`` and the schemas of the groups ``cycle.yaml`` composes."""
    register_agents()
    register_calibration()
    register_serving()
    ConfigStore.instance().store(name="cycle_schema", node=CycleConfig)
