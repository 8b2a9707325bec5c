"""``tracked_run``: one MLflow run around a piece of work, never left RUNNING.

    with tracked_run(cfg, "compare") as parent:
        for name in policies:
            with tracked_run(cfg, name, parent_run_id=parent.run_id) as child:
                child.log_metrics({"eval/value_mean": value[name]}, step=0)

The run ends FINISHED when the block completes, FAILED when it raises, KILLED on Ctrl-C
(``KeyboardInterrupt``) or SIGTERM (turned into :class:`RunTerminated` while the run is open);
the exception is re-raised. With ``tracking.enabled = false`` the block gets a
:meth:`RunLogger.disabled` logger and nothing is written.

Starting a run also makes its tracking and registry URIs MLflow's process-wide defaults, so
MLflow functions that use them (model logging) write to the same backend.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from types import FrameType
from typing import Any

import mlflow
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from journeyopt.cli.entry import to_object
from journeyopt.errors import ConfigError
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.logger import RunLogger, RunTarget
from journeyopt.tracking.tags import current_user

log = logging.getLogger(__name__)

PARENT_RUN_TAG = "mlflow.parentRunId"
ERROR_TAG = "journeyopt.error"
OUTPUT_DIR_TAG = "journeyopt.output_dir"
"""Tag of a run that writes checkpoints: its output folder (absolute)."""
RESUMED_BY_TAG = "journeyopt.resumed_by"
"""Tag of a run another run resumed: that run's id."""
RESUMES_TAG = "journeyopt.resumes"
"""Tag of a resumed run: the id(s) of the run(s) it continues, comma-separated."""
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
"""The experiment tag the MLflow UI (3.x) reads to open an experiment on its runs
(``custom_model_development``) or on its GenAI traces (``genai_development``)."""
MODEL_TRAINING_KIND = "custom_model_development"
_SIGTERM_EXIT_CODE = 128 + signal.SIGTERM
_ENCLOSING_RUN: ContextVar[str | None] = ContextVar("journeyopt_enclosing_run", default=None)


class RunTerminated(SystemExit):
    """Raised in the main thread when the process receives SIGTERM inside a tracked run; as a
    ``SystemExit`` it ends the process with code 143 (128 + SIGTERM) once the run is marked
    KILLED."""

    def __init__(self) -> None:
        super().__init__(_SIGTERM_EXIT_CODE)


def tracking_config(cfg: DictConfig | Mapping[str, Any]) -> TrackingConfig:
    """The ``tracking`` node of a job config as a validated :class:`TrackingConfig`
    (defaults when the config has no ``tracking`` node)."""
    node = cfg.get("tracking")
    if node is None:
        return TrackingConfig()
    if isinstance(node, TrackingConfig):
        return node
    return to_object(node, TrackingConfig)


def open_client(settings: TrackingConfig) -> MlflowClient:
    """A client of the configured tracking store and registry; also makes both URIs MLflow's
    process-wide defaults."""
    tracking_uri = settings.resolved_tracking_uri()
    registry_uri = settings.resolved_registry_uri()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)


def experiment_id(client: MlflowClient, settings: TrackingConfig) -> str:
    """Id of the experiment ``settings.experiment``, created when missing with the artifact
    root :meth:`TrackingConfig.resolved_artifact_location` (for a local SQLite store: beside
    its database, so the store does not depend on the working directory; a server's own root
    for a server); an existing experiment keeps its own. Safe when parallel jobs create it at
    the same time.

    The experiment is marked as a model-training experiment (:data:`EXPERIMENT_KIND_TAG` =
    ``custom_model_development``), so the MLflow UI opens it on its runs, not on the GenAI
    traces page; an existing experiment without the tag gets it, one with another kind keeps
    its own."""
    found = client.get_experiment_by_name(settings.experiment)
    if found is None:
        try:
            return client.create_experiment(
                settings.experiment,
                artifact_location=settings.resolved_artifact_location(),
                tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND},
            )
        except MlflowException as err:
            if err.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            found = client.get_experiment_by_name(settings.experiment)
    if found is None or found.lifecycle_stage != "active":
        raise ConfigError(
            f"tracking.experiment {settings.experiment!r} is deleted in the tracking store: "
            "restore it (mlflow experiments restore) or choose another name"
        )
    if EXPERIMENT_KIND_TAG not in found.tags:
        client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
    return str(found.experiment_id)


@contextmanager
def child_runs_of(run_id: str | None) -> Iterator[None]:
    """Runs opened in the block without an explicit ``parent_run_id`` become children of
    ``run_id`` (``None``: top-level runs). Lets a job that calls other jobs (the weekly cycle
    calls calibration, training, promotion) show them as nested runs in the MLflow UI without
    those jobs knowing about it."""
    token = _ENCLOSING_RUN.set(run_id)
    try:
        yield
    finally:
        _ENCLOSING_RUN.reset(token)


@contextmanager
def tracked_run(
    cfg: DictConfig | Mapping[str, Any],
    run_name: str,
    *,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    tracking: TrackingConfig | None = None,
    log_config: bool = True,
) -> Iterator[RunLogger]:
    """Open an MLflow run for the block and yield its :class:`RunLogger`.

    Args:
        cfg: The job's resolved config; its ``tracking`` node configures tracking, and the
            whole config is logged as params and ``config.yaml`` (unless ``log_config`` is
            false).
        run_name: Name shown in the MLflow UI.
        parent_run_id: Make this run a child (nested run) of that run; default: the run of
            an enclosing :func:`child_runs_of` block, if any.
        tags: Extra run tags (see :func:`journeyopt.tracking.tags.run_tags`).
        tracking: Tracking settings overriding ``cfg.tracking``.
        log_config: Log ``cfg`` as params and artifact.

    Yields:
        The run's logger; metrics still buffered are written when the block ends.

    Raises:
        Whatever the block raises, after the run is marked FAILED or KILLED.
    """
    settings = tracking if tracking is not None else tracking_config(cfg)
    if parent_run_id is None:
        parent_run_id = _ENCLOSING_RUN.get()
    if not settings.enabled:
        yield RunLogger.disabled()
        return
    client = open_client(settings)
    run = client.create_run(
        experiment_id(client, settings),
        run_name=run_name,
        tags=_start_tags(parent_run_id, tags),
    )
    logger = RunLogger(
        RunTarget(client, run.info.run_id),
        flush_every_seconds=settings.flush_every_seconds,
        max_buffered_metrics=settings.max_buffered_metrics,
    )
    with _sigterm_raises():
        try:
            if log_config:
                logger.log_config(cfg)
            yield logger
        except BaseException as err:
            _end_run(logger, client, _status_of(err), err)
            raise
    _end_run(logger, client, "FINISHED", None)


def _start_tags(parent_run_id: str | None, tags: Mapping[str, str] | None) -> dict[str, str]:
    start = {"mlflow.user": current_user(), "mlflow.source.name": sys.argv[0] or "python"}
    if parent_run_id is not None:
        start[PARENT_RUN_TAG] = parent_run_id
    return {**start, **(tags or {})}


def _status_of(err: BaseException) -> str:
    """Run status for a block that raised ``err``: KILLED for Ctrl-C and SIGTERM, FINISHED
    for ``sys.exit(0)``, FAILED for everything else."""
    if isinstance(err, KeyboardInterrupt | RunTerminated):
        return RunStatus.to_string(RunStatus.KILLED)
    if isinstance(err, SystemExit) and err.code in (0, None):
        return RunStatus.to_string(RunStatus.FINISHED)
    return RunStatus.to_string(RunStatus.FAILED)


def _end_run(
    logger: RunLogger, client: MlflowClient, status: str, err: BaseException | None
) -> None:
    """Write what is buffered, record the error, set the final status. While an exception is
    propagating, a failure to write is logged instead of hiding that exception."""
    run_id = logger.run_id
    assert run_id is not None
    try:
        logger.flush()
        if err is not None and status != "FINISHED":
            logger.set_tags({ERROR_TAG: f"{type(err).__name__}: {err}"})
    except Exception:
        if err is None:
            client.set_terminated(run_id, "FAILED")
            raise
        log.exception("could not write the last metrics of run %s", run_id)
    try:
        client.set_terminated(run_id, status)
    except Exception:
        if err is None:
            raise
        log.exception("could not mark run %s as %s", run_id, status)


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While open, SIGTERM raises :class:`RunTerminated` in the main thread (elsewhere,
    signal handlers cannot be set and the block runs unchanged)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise RunTerminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _running_in(client: MlflowClient, settings: TrackingConfig, output_dir: str) -> list[str]:
    """Ids of RUNNING runs of the experiment tagged with ``output_dir``."""
    if "'" in output_dir:
        return []
    found = client.get_experiment_by_name(settings.experiment)
    if found is None:
        return []
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.`{OUTPUT_DIR_TAG}` = '{output_dir}' and attributes.status = 'RUNNING'",
    )
    return [r.info.run_id for r in runs]


def _close_resumed(client: MlflowClient, run_id: str, new_run_id: str) -> bool:
    """Mark ``run_id`` as resumed by ``new_run_id``; KILLED first if still RUNNING (its
    process died without ending it). False if the run is not in this store."""
    try:
        status = client.get_run(run_id).info.status
    except MlflowException as err:
        log.warning("run %s, resumed by %s, is not in this store: %s", run_id, new_run_id, err)
        return False
    if status == RunStatus.to_string(RunStatus.RUNNING):
        message = f"ended without closing its run (killed); resumed by run {new_run_id}"
        client.set_tag(run_id, ERROR_TAG, message)
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
    client.set_tag(run_id, RESUMED_BY_TAG, new_run_id)
    return True


def link_resumed_runs(
    settings: TrackingConfig,
    new_run_id: str | None,
    run_ids: Sequence[str] = (),
    output_dir: str = "",
) -> list[str]:
    """Link a resumed run to the run(s) it continues: ``run_ids`` (the run recorded in the
    checkpoint) and the RUNNING runs tagged with ``output_dir`` (the checkpoint's folder).
    Runs left RUNNING by a killed process are marked KILLED; every one gets
    ``journeyopt.resumed_by=<new run id>`` and the new run
    ``journeyopt.resumes=<their ids>``.

    Returns:
        The linked run ids (none with tracking off).
    """
    if not settings.enabled or new_run_id is None:
        return []
    client = open_client(settings)
    candidates = set(run_ids)
    if output_dir:
        candidates.update(_running_in(client, settings, output_dir))
    candidates.discard(new_run_id)
    linked = [r for r in sorted(candidates) if _close_resumed(client, r, new_run_id)]
    if linked:
        client.set_tag(new_run_id, RESUMES_TAG, ",".join(linked))
    return linked
