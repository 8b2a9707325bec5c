"""Typed configuration of serving (the ``serve`` config group) and of its two commands.

:class:`ServingConfig` is the schema of ``configs/serve/*.yaml``: the world the policy was
trained for, the contact rules every decision is held to, the A/B holdout, the request limits
and the bearer token. The scoring API (``configs/serve.yaml``, :class:`ServeJobConfig`) and the
batch scorer (``configs/score.yaml``, :class:`ScoreJobConfig`) both compose it, so the API and
the batch scorer take the same decisions for the same customers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from journeyopt.data.source import SourceConfig
from journeyopt.errors import ConfigError
from journeyopt.sim.config import RulesConfig, StaffRulesConfig
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.config import register_configs as register_tracking


@dataclass
class HoldoutConfig:
    """The A/B holdout: a stable share of customers gets today's staff rules instead.

    Attributes:
        control_share: Share of customers in the control group, in [0, 1).
        salt: Salt of the hash; changing it reshuffles every customer's group.
        calendar_origin: Monday (ISO date) week 0 of the staff's campaign calendar (a practice
            rule's ``every_weeks`` and ``offset_weeks`` count from it).
        staff: Today's contact practice, applied to the control group.
    """

    control_share: float = 0.1
    salt: str = "journeyopt-holdout-1"
    calendar_origin: str = "2024-01-01"
    staff: StaffRulesConfig = field(default_factory=StaffRulesConfig)

    def __post_init__(self) -> None:
        if not 0.0 <= self.control_share < 1.0:
            raise ConfigError(
                f"serve.holdout.control_share must be in [0, 1), got {self.control_share}"
            )
        if not self.salt:
            raise ConfigError("serve.holdout.salt must not be empty")
        self.origin  # noqa: B018 -- validates the date

    @property
    def origin(self) -> pd.Timestamp:
        """``calendar_origin`` as Monday 00:00 UTC."""
        try:
            ts = pd.Timestamp(self.calendar_origin)
        except ValueError as err:
            raise ConfigError(
                f"serve.holdout.calendar_origin: not an ISO date: {self.calendar_origin!r}"
            ) from err
        if ts.tzinfo is not None or ts != ts.normalize() or ts.weekday() != 0:
            raise ConfigError(
                f"serve.holdout.calendar_origin must be a Monday date, got {self.calendar_origin!r}"
            )
        return ts.tz_localize("UTC")


@dataclass
class ExplorationConfig:
    """Exploration of the treatment group (see :mod:`journeyopt.serving.exploration`).

    Attributes:
        share: Exploration share ``eps`` in [0, 1]: a treatment customer gets the policy's
            choice with probability ``1 - eps`` and a uniform choice among the actions the
            contact rules allow with probability ``eps``; 0 (default): always the policy's
            choice, propensity 1. The control group is never explored.
        salt: Salt of the per-customer-and-week draw; changing it redraws every decision.
    """

    share: float = 0.0
    salt: str = "journeyopt-explore-1"

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ConfigError(f"serve.exploration.share must be in [0, 1], got {self.share}")
        if not self.salt:
            raise ConfigError("serve.exploration.salt must not be empty")


@dataclass
class ReloadConfig:
    """Reloading the model when its registry alias moves (``journeyopt-serve`` only).

    Attributes:
        poll_seconds: Every worker asks the registry which version the served alias
            (``models:/<name>@<alias>``) points to every this many seconds, and swaps in the
            new version when it moved (requests in flight finish on the old one); 0: never
            (reload with ``POST /admin/reload``). A version URI or a folder is never polled.
    """

    poll_seconds: float = 0.0

    def __post_init__(self) -> None:
        if not self.poll_seconds >= 0.0:
            raise ConfigError(f"serve.reload.poll_seconds must be >= 0, got {self.poll_seconds}")


@dataclass
class RolloutConfig:
    """The staged rollout of a newly promoted policy (see :mod:`journeyopt.serving.rollout`
    and :mod:`journeyopt.monitoring.rollout`).

    A promotion that replaces a champion starts the new version on ``canary_share`` of the
    treatment group; the rest of treatment keeps the previous champion, the control group
    keeps today's practice. The state lives in the MLflow registry (alias ``previous``, tags
    ``journeyopt.rollout.*`` on the champion version), so every serving process agrees.

    Attributes:
        enabled: Start a canary when a promotion replaces a champion (false: the new
            champion serves the whole treatment group at once). A first champion (no
            previous one) always serves the whole treatment group.
        canary_share: Share of the treatment group served by the new version, in (0, 1).
        salt: Salt of the canary hash (another than the holdout's, so the canary is an
            independent random share of treatment).
        min_exposure_weeks: Fewest customer-weeks in each of the compared arms before the
            test widens the canary, and the exposure the confidence sequence is tuned to be
            tightest at (for both decisions).
        min_exposure_rollback_weeks: Fewest customer-weeks in a compared arm before the test
            rolls back on its bound (the upper bound against that arm below zero); a larger
            value than ``min_exposure_weeks`` counts as that (:attr:`rollback_exposure`):
            harm is acted on no later, and by default earlier, than a gain is shipped. The
            sequence is valid at every look, but its coverage is asymptotic, so it needs a
            short burn-in of its own; the default is chosen by simulation (type-I error of
            rollback and widen under weekly looks, ``experiments/rollout/``).
        loss_budget: Most estimated loss per canary customer against the previous policy
            (margin per customer-week below the previous arm's, times the canary's weeks per
            customer), currency; past it, before ``min_exposure_rollback_weeks`` are reached,
            the canary is rolled back (an early-harm guard; afterwards the test decides).
        alpha: Level of the always-valid test: the confidence sequences cover the true
            effects at every weekly look at once with probability ``1 - alpha``.
        outcome: Outcome compared (a column of
            :data:`journeyopt.monitoring.exposure.OUTCOMES`), per customer-week.
        pre_weeks: Most weeks of each customer's history before their first decision that
            the regression adjustment (CUPED) reads, weeks (customers with a shorter history
            use all of theirs; 0: no adjustment, the plain difference). A longer pre-period
            predicts a fixed population's persistent margins better, so the interval narrows.
        covariates: Pre-period covariates of the adjustment besides the outcome's own
            pre-period mean (always used): columns of
            :data:`journeyopt.monitoring.exposure.COVARIATES` (e.g. ``conversions_pre``,
            ``active_pre`` the share of weeks with a conversion, ``pre_weeks`` the history's
            length, ``segment`` the static segment as one indicator a segment of at least 30
            compared customers).
    """

    enabled: bool = True
    canary_share: float = 0.2
    salt: str = "journeyopt-canary-1"
    min_exposure_weeks: int = 2000
    min_exposure_rollback_weeks: int = 720
    loss_budget: float = 10.0
    alpha: float = 0.05
    outcome: str = "margin"
    pre_weeks: int = 52
    covariates: list[str] = field(
        default_factory=lambda: ["conversions_pre", "active_pre", "pre_weeks", "segment"]
    )

    def __post_init__(self) -> None:
        if self.pre_weeks < 0:
            raise ConfigError(f"serve.rollout.pre_weeks must be >= 0, got {self.pre_weeks}")
        if not 0.0 < self.canary_share < 1.0:
            raise ConfigError(
                f"serve.rollout.canary_share must be in (0, 1), got {self.canary_share}"
            )
        if not self.salt:
            raise ConfigError("serve.rollout.salt must not be empty")
        if self.min_exposure_weeks < 1:
            raise ConfigError(
                f"serve.rollout.min_exposure_weeks must be >= 1, got {self.min_exposure_weeks}"
            )
        if self.min_exposure_rollback_weeks < 1:
            raise ConfigError(
                "serve.rollout.min_exposure_rollback_weeks must be >= 1, got "
                f"{self.min_exposure_rollback_weeks}"
            )
        if not self.loss_budget > 0.0:
            raise ConfigError(f"serve.rollout.loss_budget must be > 0, got {self.loss_budget}")
        if not 0.0 < self.alpha < 1.0:
            raise ConfigError(f"serve.rollout.alpha must be in (0, 1), got {self.alpha}")
        if not self.outcome:
            raise ConfigError("serve.rollout.outcome must name an outcome (e.g. margin)")

    @property
    def rollback_exposure(self) -> int:
        """Customer-weeks a compared arm needs before its bound may roll back:
        ``min_exposure_rollback_weeks``, at most ``min_exposure_weeks``."""
        return min(self.min_exposure_rollback_weeks, self.min_exposure_weeks)


@dataclass
class ServingConfig:
    """How decisions are taken (the ``serve`` group, shared by the API and the batch scorer).

    Attributes:
        world: The world the policy was trained for (a shipped world name or a folder): its
            action catalogue, feature windows, customer types and response model (the
            expected value of a decision); required (the demo's: ``coworking``, set by the quick
            start's ``configs/serve.yaml`` and ``configs/score.yaml``).
        rules: Contact rules applied after the model, whatever it says.
        holdout: The A/B holdout.
        exploration: Exploration of the treatment group (true propensities in the decision
            log, for off-policy evaluation of later policies).
        reload: Reloading the model when its alias moves (the API only).
        rollout: The staged rollout of a new champion (canary share of treatment).
        max_batch: Most customers in one ``/v1/score/batch`` request (413 above).
        max_body_bytes: Largest request body, bytes (413 above).
        token_env: Environment variable holding the API's bearer token; when it is set and
            not empty, every ``/v1`` and ``/admin`` request needs ``Authorization: Bearer
            <token>``.
        decision_log: Folder the API appends its decisions to (``decisions-<day>.csv``);
            empty: the API logs no decisions.
        max_events: Most raw events plus contacts in one customer's request.
        decision_log_file_bytes: A decision log file is continued in the day's next part
            (``decisions-<day>.<k>.csv``) once it holds this many bytes.
        decision_log_max_bytes: Most bytes of decision log files kept in the folder: the
            oldest files are deleted past it; 0: no bound.
        allow_unauthenticated: Let ``journeyopt-serve`` listen on a non-loopback address
            without a bearer token (every ``/v1`` route then open to anyone who reaches it).
    """

    world: str = MISSING
    rules: RulesConfig = field(default_factory=RulesConfig)
    holdout: HoldoutConfig = field(default_factory=HoldoutConfig)
    exploration: ExplorationConfig = field(default_factory=ExplorationConfig)
    reload: ReloadConfig = field(default_factory=ReloadConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    max_batch: int = 10_000
    max_body_bytes: int = 50_000_000
    token_env: str = "JOURNEYOPT_API_TOKEN"
    decision_log: str = ""
    max_events: int = 10_000
    decision_log_file_bytes: int = 100_000_000
    decision_log_max_bytes: int = 10_000_000_000
    allow_unauthenticated: bool = False

    def __post_init__(self) -> None:
        if self.decision_log_max_bytes < 0:
            raise ConfigError(
                f"serve.decision_log_max_bytes must be >= 0, got {self.decision_log_max_bytes}"
            )
        for name in ("max_batch", "max_body_bytes", "max_events", "decision_log_file_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"serve.{name} must be >= 1, got {getattr(self, name)}")
        if not self.token_env:
            raise ConfigError("serve.token_env must name an environment variable")
        if self.rollout.salt == self.holdout.salt:
            raise ConfigError("serve.rollout.salt must differ from serve.holdout.salt")


@dataclass
class ServeJobConfig:
    """``journeyopt-serve``: the scoring API behind uvicorn.

    Attributes:
        model: ``models:/<name>@<alias>``, ``models:/<name>/<version>`` or a local model
            folder.
        data: The data source config (``data=<source>``, a user's own via ``--config-dir``;
            default the demo's) whose ``event_roles`` give the role of a request's raw event
            from its name; its files and ``path`` are not read.
        host: Interface to listen on.
        port: TCP port.
        workers: uvicorn worker processes.
        serve: How decisions are taken.
        tracking: Where the registry is.
    """

    model: str = "models:/journey-policy@champion"
    data: SourceConfig = field(default_factory=SourceConfig)
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    serve: ServingConfig = field(default_factory=ServingConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("model must name a registered model version, alias or folder")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"port must be in 1..65535, got {self.port}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")


@dataclass
class ScoreJobConfig:
    """``journeyopt-score``: this week's contact list from raw logs.

    Attributes:
        data: The source of the logs (any ``data`` config, a user's own via
            ``--config-dir``).
        as_of: Date or instant (UTC if naive) the customers' features are computed at.
        model: As for ``journeyopt-serve``.
        out: The contact list CSV; ``decisions.csv``, ``rejects.csv`` and ``summary.json``
            are written beside it.
        overwrite: Replace existing output files.
        serve: How decisions are taken.
        tracking: Where the registry is.
    """

    data: SourceConfig = field(default_factory=SourceConfig)
    as_of: str = MISSING
    model: str = "models:/journey-policy@champion"
    out: str = MISSING
    overwrite: bool = False
    serve: ServingConfig = field(default_factory=ServingConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


def register_configs() -> None:
    """Register the schemas in Hydra's ConfigStore: ``serve/base_serve`` (the group) and
    ``serve_schema`` / ``score_schema`` (the commands), and the ``tracking`` group's schema."""
    register_tracking()
    cs = ConfigStore.instance()
    cs.store(group="serve", name="base_serve", node=ServingConfig)
    cs.store(name="serve_schema", node=ServeJobConfig)
    cs.store(name="score_schema", node=ScoreJobConfig)
