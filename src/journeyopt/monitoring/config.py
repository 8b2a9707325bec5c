"""Typed configuration of the measurement commands: ``configs/uplift.yaml``
(:class:`UpliftJobConfig`) and ``configs/drift.yaml`` (:class:`DriftJobConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from journeyopt.data.source import SourceConfig
from journeyopt.errors import ConfigError
from journeyopt.monitoring.uplift import INTERVALS, METHODS
from journeyopt.panel.config import PanelConfig, parse_as_of
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.config import register_configs as register_serving
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.config import register_configs as register_tracking

CONTACT_SOURCES: tuple[str, ...] = ("decisions", "source")


@dataclass
class EstimatorConfig:
    """How uplift is estimated (see :mod:`journeyopt.monitoring.uplift`).

    Attributes:
        method: ``regression`` (adjusted for each outcome's pre-period mean, CUPED / Lin) or
            ``difference`` (plain difference per customer-week).
        interval: ``normal`` (robust standard error) or ``bootstrap`` (customers resampled).
        confidence: Coverage of the intervals.
        bootstrap_samples: Resamples of a bootstrap interval.
        pre_weeks: Weeks before each customer's first scored week (at the latest ``since``)
            whose outcomes are the covariate (pre-treatment, so the adjustment cannot absorb
            the policy's own effect).
        min_customers: Fewest customers per group for a segment to get an estimate.
        seed: Seed of the bootstrap.
    """

    method: str = "regression"
    interval: str = "normal"
    confidence: float = 0.95
    bootstrap_samples: int = 1000
    pre_weeks: int = 13
    min_customers: int = 30
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"estimator.method must be one of {METHODS}, got {self.method!r}")
        if self.interval not in INTERVALS:
            raise ConfigError(
                f"estimator.interval must be one of {INTERVALS}, got {self.interval!r}"
            )
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"estimator.confidence must be in (0, 1), got {self.confidence}")
        if self.bootstrap_samples < 100:
            raise ConfigError("estimator.bootstrap_samples must be >= 100")
        if self.pre_weeks < 0 or self.min_customers < 2:
            raise ConfigError("estimator.pre_weeks must be >= 0 and min_customers >= 2")


@dataclass
class PredictionConfig:
    """What was predicted for the champion at promotion (optional).

    Attributes:
        run_id: MLflow run holding the prediction (the champion's training or promotion
            run); empty: no comparison.
        metric: Predicted uplift over the staff rules: discounted margin net of costs per
            customer over the run's horizon, currency (with ``<metric>_ci_low`` and
            ``<metric>_ci_high`` when logged).
        horizon_weeks: Horizon of that value, weeks; 0 = the run's ``simulator.horizon_weeks``.
        gamma: Weekly discount of that value; 0 = the run's ``simulator.gamma``.
    """

    run_id: str = ""
    metric: str = "eval/uplift_vs_staff"
    horizon_weeks: int = 0
    gamma: float = 0.0

    def __post_init__(self) -> None:
        if self.horizon_weeks < 0 or not 0.0 <= self.gamma <= 1.0:
            raise ConfigError("prediction.horizon_weeks must be >= 0 and gamma in [0, 1]")


@dataclass
class UpliftJobConfig:
    """Schema of ``configs/uplift.yaml`` (``journeyopt-uplift``).

    Attributes:
        data: The source of the new logs; ``data.path`` given by the user.
        panel: Feature windows (``panel.as_of`` ends the measurement; empty = last activity).
        tracking: MLflow settings.
        decisions: Decision-log file or folder of the served policy.
        since: ISO date: measure the weeks from the one containing it on.
        contacts: ``decisions`` (the decision log's contacts replace the source's from the
            first logged decision on) or ``source`` (the source's contacts only).
        estimator: How uplift is estimated.
        prediction: The champion's predicted uplift, to compare with.
        output_dir: Folder of the report.
        overwrite: Replace an earlier report in ``output_dir``.
    """

    data: SourceConfig = field(default_factory=SourceConfig)
    panel: PanelConfig = MISSING  # required: the business's panel windows (configs/panel/)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    decisions: str = MISSING
    since: str = MISSING
    contacts: str = "decisions"
    estimator: EstimatorConfig = field(default_factory=EstimatorConfig)
    prediction: PredictionConfig = field(default_factory=PredictionConfig)
    output_dir: str = MISSING
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.contacts not in CONTACT_SOURCES:
            raise ConfigError(f"contacts must be one of {CONTACT_SOURCES}, got {self.contacts!r}")
        try:
            parse_as_of(self.since)
        except ConfigError as err:
            raise ConfigError(f"since: not an ISO 8601 date: {self.since!r}") from err


@dataclass
class WindowConfig:
    """A range of weeks: those starting on or after ``start`` and before ``end`` (ISO dates;
    empty = the command's default window)."""

    start: str = ""
    end: str = ""

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            if getattr(self, name):
                try:
                    parse_as_of(getattr(self, name))
                except ConfigError as err:
                    raise ConfigError(f"window {name}: not an ISO 8601 date") from err
        if self.start and self.end and parse_as_of(self.start) >= parse_as_of(self.end):
            raise ConfigError(f"window start {self.start} must be before end {self.end}")


@dataclass
class DriftThresholds:
    """When a difference counts as drift (effect size and significance must both hold).

    Attributes:
        psi: Population stability index of a feature above which it drifted (0.1: watch,
            0.25: major shift, by the usual rule of thumb).
        ks_alpha: Significance level of the two-sample Kolmogorov-Smirnov test a drifted
            feature must also pass.
        action_psi: PSI of the action mix above which the mix drifted.
        chi2_alpha: Significance level of the chi-square test of the action mix.
        response_ratio: Observed / predicted rate of a response model further than this from
            1 (either way) counts as drift.
        response_z: ... and the calibration z-score (observed minus predicted events over
            their binomial standard deviation) at least this large in absolute value.
        min_rows: Fewest customers (population, action mix) or customer-weeks (responses)
            in each window for a comparison to decide anything.
        bins: Quantile bins of the reference distribution for the PSI.
    """

    psi: float = 0.2
    ks_alpha: float = 0.001
    action_psi: float = 0.1
    chi2_alpha: float = 0.001
    response_ratio: float = 0.25
    response_z: float = 4.0
    min_rows: int = 200
    bins: int = 10

    def __post_init__(self) -> None:
        if min(self.psi, self.action_psi, self.response_ratio, self.response_z) <= 0:
            raise ConfigError("thresholds.psi, action_psi, response_ratio, response_z must be > 0")
        if not (0 < self.ks_alpha < 1 and 0 < self.chi2_alpha < 1):
            raise ConfigError("thresholds.ks_alpha and chi2_alpha must be in (0, 1)")
        if self.min_rows < 1 or self.bins < 2:
            raise ConfigError("thresholds.min_rows must be >= 1 and bins >= 2")


@dataclass
class DriftJobConfig:
    """Schema of ``configs/drift.yaml`` (``journeyopt-drift``).

    Attributes:
        data: The source of the logs; ``data.path`` given by the user.
        panel: Feature windows (``panel.as_of`` ends the panel).
        tracking: MLflow settings.
        reference: The calibration window; empty: the ``reference_weeks`` weeks before the
            current window.
        current: The newest weeks; empty: the last ``current_weeks`` complete weeks.
        reference_weeks: Default reference length, weeks.
        current_weeks: Default current length, weeks.
        world: World whose one-step predictions are checked (a calibrated world's folder or
            a shipped world name); empty: no response drift.
        exclude_features: Panel features not compared (``tenure_weeks`` grows with the
            customers' age, not with their behaviour).
        thresholds: When a difference counts as drift.
        seed: Seed of the week drawn per customer for the population check.
        output_dir: Folder of the report.
        overwrite: Replace an earlier report in ``output_dir``.
    """

    data: SourceConfig = field(default_factory=SourceConfig)
    panel: PanelConfig = MISSING  # required: the business's panel windows (configs/panel/)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    reference: WindowConfig = field(default_factory=WindowConfig)
    current: WindowConfig = field(default_factory=WindowConfig)
    reference_weeks: int = 26
    current_weeks: int = 4
    world: str = ""
    exclude_features: list[str] = field(default_factory=lambda: ["tenure_weeks"])
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    seed: int = 0
    output_dir: str = MISSING
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.reference_weeks < 1 or self.current_weeks < 1:
            raise ConfigError("reference_weeks and current_weeks must be >= 1")


ROLLOUT_COMMANDS: tuple[str, ...] = ("status", "advance", "rollback")


@dataclass
class RolloutJobConfig:
    """Schema of ``configs/rollout.yaml`` (``journeyopt-rollout status|advance|rollback``).

    Attributes:
        command: ``status`` (measure and print, change nothing), ``advance`` (measure and
            carry out the decision: widen, roll back or continue) or ``rollback`` (return
            the champion alias to the previous version now, with ``reason``).
        data: The source of the logs since the rollout started (``data.path`` given by the
            user); required to measure the canary (``decisions`` given), not read otherwise
            (a ``rollback`` without ``decisions`` needs neither it nor ``panel``).
        panel: Feature windows (``panel.as_of`` ends the measurement; empty = last
            activity); required to measure the canary, like ``data``.
        tracking: MLflow settings (the registry holding the rollout state).
        serve: The serving config; its ``rollout`` holds the test's settings.
        decisions: Decision-log file or folder of the served policy (with its ``arm``
            column).
        reason: Why, for a manual ``rollback`` (recorded on the versions and the run).
        output_dir: Folder of the evidence (tables, Markdown); empty: not written.
        overwrite: Replace an earlier report in ``output_dir``.
    """

    command: str = "status"
    data: SourceConfig | None = None
    panel: PanelConfig | None = None
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    serve: ServingConfig = field(default_factory=ServingConfig)
    decisions: str = ""
    reason: str = ""
    output_dir: str = ""
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.command not in ROLLOUT_COMMANDS:
            raise ConfigError(
                f"command must be one of {', '.join(ROLLOUT_COMMANDS)}, got {self.command!r}"
            )
        if self.command == "rollback" and not self.reason.strip():
            raise ConfigError("a rollback needs a reason: reason='<why>'")
        if self.command != "rollback" and not self.decisions:
            raise ConfigError("decisions is required: the decision-log file or folder")
        for name, hint in MEASURE_NEEDS.items():
            if self.decisions and getattr(self, name) is None:
                raise ConfigError(f"no {name} chosen: measuring the canary (decisions=...) {hint}")

    def measured(self) -> tuple[SourceConfig, PanelConfig]:
        """``(data, panel)`` of a measuring command (``decisions`` given).

        Raises:
            ConfigError: One of them was not chosen.
        """
        if self.data is None or self.panel is None:
            raise ConfigError("measuring the canary needs data=<name> and panel=<name>")
        return self.data, self.panel


MEASURE_NEEDS = {
    "data": "reads your logs: choose your source with data=<name> (a file of <your configs>/data/)",
    "panel": "builds their panel: choose your panel windows with panel=<name> (a file of "
    "<your configs>/panel/)",
}
"""What measuring the canary needs that a ``rollback`` without ``decisions`` does not."""


def register_configs() -> None:
    """Register ``uplift_schema``, ``drift_schema`` and ``rollout_schema`` (and the tracking
    and serve groups' schemas)."""
    register_tracking()
    register_serving()
    cs = ConfigStore.instance()
    cs.store(name="uplift_schema", node=UpliftJobConfig)
    cs.store(name="drift_schema", node=DriftJobConfig)
    cs.store(name="rollout_schema", node=RolloutJobConfig)
