"""Typed configuration of experiment tracking (the ``tracking`` config group).

:class:`TrackingConfig` is the schema of ``configs/tracking/*.yaml``: ``mlflow.yaml`` (the
default: MLflow, embedded SQLite store unless ``MLFLOW_TRACKING_URI`` points at a server) and
``off.yaml`` (nothing is written; the training code is the same).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hydra.core.config_store import ConfigStore

from journeyopt.errors import ConfigError

MAX_METRICS_PER_BATCH = 1000
"""MLflow's limit on the metrics of one ``log_batch`` request."""
LOCAL_ARTIFACT_DIR = "mlruns"
"""The artifact folder beside a local SQLite store's database (MLflow's own name for a local
artifact root, so a store started from its own folder looks as MLflow would make it)."""


@dataclass
class TrackingConfig:
    """Where runs, metrics, artifacts and policies go.

    Attributes:
        enabled: ``False`` turns every tracking call into a no-op (``tracking=off``).
        tracking_uri: MLflow tracking URI. Empty: the ``MLFLOW_TRACKING_URI`` environment
            variable, else ``sqlite:///mlflow.db`` in the working directory (MLflow 3's own
            default; the artifacts then go to ``./mlruns`` beside it).
        registry_uri: Model registry URI; empty: the tracking URI.
        experiment: MLflow experiment the runs are created in (created when missing).
        artifact_location: Artifact root of a newly created experiment; empty: beside the
            database for a local SQLite store (``<db dir>/mlruns``), the server's artifact root
            for a server (:meth:`resolved_artifact_location`). Existing experiments keep
            theirs.
        registered_model: Registered model that policies are registered as versions of.
        flush_every_seconds: Buffered metrics are written at the first logging call this many
            seconds (wall clock) after the last write, and when the run ends.
        max_buffered_metrics: Buffered metric values that trigger a write (one ``log_batch``
            request each; at most MLflow's 1,000 metrics per request).
    """

    enabled: bool = True
    tracking_uri: str = ""
    registry_uri: str = ""
    experiment: str = "journeyopt"
    artifact_location: str = ""
    registered_model: str = "journey-policy"
    flush_every_seconds: float = 10.0
    max_buffered_metrics: int = MAX_METRICS_PER_BATCH

    def __post_init__(self) -> None:
        if not self.experiment.strip():
            raise ConfigError("tracking.experiment must not be empty")
        if not self.registered_model.strip():
            raise ConfigError("tracking.registered_model must not be empty")
        if self.flush_every_seconds < 0:
            raise ConfigError(
                f"tracking.flush_every_seconds must be >= 0, got {self.flush_every_seconds}"
            )
        if not 1 <= self.max_buffered_metrics <= MAX_METRICS_PER_BATCH:
            raise ConfigError(
                f"tracking.max_buffered_metrics must be in 1..{MAX_METRICS_PER_BATCH}, "
                f"got {self.max_buffered_metrics}"
            )

    def resolved_tracking_uri(self) -> str:
        """The tracking URI in force: ``tracking_uri``, else ``MLFLOW_TRACKING_URI``, else the
        SQLite file ``mlflow.db`` in the current working directory (absolute)."""
        if self.tracking_uri:
            return self.tracking_uri
        from_env = os.environ.get("MLFLOW_TRACKING_URI", "")
        if from_env:
            return from_env
        return f"sqlite:///{Path.cwd() / 'mlflow.db'}"

    def resolved_registry_uri(self) -> str:
        """The model registry URI in force: ``registry_uri``, else the tracking URI."""
        return self.registry_uri or self.resolved_tracking_uri()

    def resolved_artifact_location(self) -> str | None:
        """Artifact root of an experiment journeyopt creates: ``artifact_location``, else for a
        local SQLite tracking store the folder :data:`LOCAL_ARTIFACT_DIR` beside its database
        file (a ``file://`` URI), else ``None`` (the backend decides: a server's own artifact
        root). Beside the database, a store is one folder whatever the working directory a
        command starts from; MLflow's own default, ``./mlruns`` of the working directory, is
        the same folder when a command starts where the database is."""
        if self.artifact_location:
            return self.artifact_location
        database = sqlite_database(self.resolved_tracking_uri())
        if database is None:
            return None
        return (database.parent / LOCAL_ARTIFACT_DIR).as_uri()


def sqlite_database(uri: str) -> Path | None:
    """The absolute path of the database file of a local SQLite URI (``sqlite:///<path>``,
    relative to the working directory, or ``sqlite:////<absolute path>``, query ignored);
    ``None`` for any other URI and for an in-memory database."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    path = uri.removeprefix(prefix).split("?", 1)[0]
    if path in ("", ":memory:"):
        return None
    return Path(path).absolute()


def register_configs() -> None:
    """Register :class:`TrackingConfig` in Hydra's ConfigStore as ``tracking/base_tracking``,
    referenced from the defaults lists of ``configs/tracking/*.yaml``."""
    ConfigStore.instance().store(group="tracking", name="base_tracking", node=TrackingConfig)
