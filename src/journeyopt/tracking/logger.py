"""One metrics logger for the whole package, with MLflow as its output.

Metric names live in namespaces: ``train/`` (learning: losses, rollout returns, speed),
``eval/`` (periodic and final evaluation in the simulator), ``sim/`` (simulator statistics)
and ``ope/`` (off-policy estimates on logs), plus ``uplift/`` (A/B holdout measurements) and
``drift/`` (drift checks) of the served policy, and ``gate/`` (the promotion gate's tests).
Values are buffered and written with ``MlflowClient.log_batch`` (up to 1,000 per request),
never one request per metric and step: a synchronous ``log_metric`` on the SQLite store
costs about 5 ms.

    with tracked_run(cfg, "ppo-seed0") as run:           # journeyopt.tracking.run
        model.set_logger(run.sb3_logger())               # SB3 writes train/... through it
        run.log_metrics({"eval/value_mean": 812.5}, step=100_000)

A :class:`RunLogger` without a target (``RunLogger.disabled()``, what ``tracking=off`` gives)
checks names the same way and writes nothing, so training code has no ``if tracking:``.
The logger is not thread-safe: one logger per thread (or process).

Final numbers of a run (a comparison's values per policy, the gate's tests) are logged once
at step 0 (:meth:`RunLogger.log_final_metrics`): the MLflow UI's chart view draws a metric as
a bar per run when no compared run's latest value of it is at a step >= 1, and as a line over
steps otherwise — a final value logged at a training step shows as a single-point line.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from journeyopt.tracking.config import MAX_METRICS_PER_BATCH
from journeyopt.tracking.params import config_container, flatten_config, param_key, param_value

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from omegaconf import DictConfig
    from stable_baselines3.common.logger import Logger

    from journeyopt.tracking.sb3_writer import MlflowKVWriter

NAMESPACES: tuple[str, ...] = ("train", "eval", "sim", "ope", "uplift", "drift", "gate", "rollout")
FINAL_STEP = 0
"""The step of a run's final metrics (see the module docstring)."""
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_TAG_VALUE_LENGTH = 8000


def metric_key(key: str) -> str:
    """``key`` if it is a metric name of one of :data:`NAMESPACES` (``eval/value_mean``);
    a ``ValueError`` naming the namespaces otherwise."""
    namespace, _, name = key.partition("/")
    if namespace not in NAMESPACES or not name:
        raise ValueError(
            f"metric {key!r} is not in a namespace: names start with one of "
            f"{', '.join(n + '/' for n in NAMESPACES)}"
        )
    return key


SB3_KEPT_NAMESPACES: tuple[str, ...] = ("train", "eval")
"""SB3's own key prefixes that are journeyopt namespaces with the same meaning (its ``rollout/``
means training rollouts, not the staged rollout of a served policy)."""


def sb3_metric_key(key: str) -> str:
    """The metric name of an SB3 logger key: SB3's ``train/`` and ``eval/`` keys stay
    (``train/loss``, ``eval/mean_reward``), the others go under ``train/``
    (``rollout/ep_rew_mean`` -> ``train/rollout/ep_rew_mean``, ``time/fps`` ->
    ``train/time/fps``)."""
    namespace = key.partition("/")[0]
    return key if namespace in SB3_KEPT_NAMESPACES and "/" in key else f"train/{key}"


@dataclass(frozen=True)
class RunTarget:
    """The MLflow run a :class:`RunLogger` writes to.

    Attributes:
        client: Client of the tracking server or store holding the run.
        run_id: The run's id.
    """

    client: MlflowClient
    run_id: str


class RunLogger:
    """Buffered metrics, params, tags and artifacts of one MLflow run, or of none.

    Args:
        target: The run written to; ``None`` writes nothing (tracking off).
        flush_every_seconds: Buffered metrics are written at the first :meth:`log_metrics`
            this many seconds (wall clock) after the previous write; and by :meth:`flush`.
        max_buffered_metrics: Buffered values that trigger a write (1..1000).
    """

    def __init__(
        self,
        target: RunTarget | None,
        *,
        flush_every_seconds: float = 10.0,
        max_buffered_metrics: int = MAX_METRICS_PER_BATCH,
    ) -> None:
        if not 1 <= max_buffered_metrics <= MAX_METRICS_PER_BATCH:
            raise ValueError(f"max_buffered_metrics must be in 1..{MAX_METRICS_PER_BATCH}")
        self._target = target
        self._flush_every = flush_every_seconds
        self._max_buffered = max_buffered_metrics
        self._buffer: list[Metric] = []
        self._last_flush = time.monotonic()

    @classmethod
    def disabled(cls) -> RunLogger:
        """A logger that checks metric names and writes nothing."""
        return cls(None)

    @property
    def enabled(self) -> bool:
        """Whether anything is written."""
        return self._target is not None

    @property
    def run_id(self) -> str | None:
        """Id of the MLflow run written to; ``None`` when tracking is off."""
        return None if self._target is None else self._target.run_id

    # -- metrics -------------------------------------------------------------------------

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Buffer ``metrics`` (name -> value) at ``step`` (environment steps, or the index of
        an evaluation); written by the next batch.

        Raises:
            ValueError: A name outside :data:`NAMESPACES`, or a value that is not a number.
        """
        stamp = int(time.time() * 1000)
        for key, value in metrics.items():
            number = _number(key, value)
            if self._target is not None:
                self._buffer.append(Metric(metric_key(key), number, stamp, int(step)))
            else:
                metric_key(key)
        if self._due():
            self.flush()

    def log_final_metrics(self, metrics: Mapping[str, float]) -> None:
        """Buffer a run's final ``metrics``, once each, at :data:`FINAL_STEP` (0): one value
        per run, which the MLflow UI charts as bars across runs (see the module docstring).

        Raises:
            ValueError: As :meth:`log_metrics`.
        """
        self.log_metrics(metrics, step=FINAL_STEP)

    def _due(self) -> bool:
        return len(self._buffer) >= self._max_buffered or (
            bool(self._buffer) and time.monotonic() - self._last_flush >= self._flush_every
        )

    def flush(self) -> None:
        """Write every buffered metric value (``log_batch`` requests of at most
        ``max_buffered_metrics`` values)."""
        self._last_flush = time.monotonic()
        if self._target is None or not self._buffer:
            return
        pending, self._buffer = self._buffer, []
        for start in range(0, len(pending), self._max_buffered):
            chunk = pending[start : start + self._max_buffered]
            self._target.client.log_batch(self._target.run_id, metrics=chunk)

    @property
    def buffered(self) -> int:
        """Metric values waiting to be written."""
        return len(self._buffer)

    # -- params and tags -----------------------------------------------------------------

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log ``params`` (flat key -> value) within MLflow's limits (see
        :mod:`journeyopt.tracking.params`). A param cannot change once logged."""
        if self._target is None:
            return
        items = [Param(param_key(k), param_value(v)) for k, v in params.items()]
        for start in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
            chunk = items[start : start + MAX_PARAMS_TAGS_PER_BATCH]
            self._target.client.log_batch(self._target.run_id, params=chunk)

    def log_config(self, cfg: DictConfig | Mapping[str, Any]) -> None:
        """Log the resolved config as params (``a.b.c`` keys) and as ``config.yaml``."""
        if self._target is None:
            return
        self.log_params(flatten_config(cfg))
        self.log_dict(config_container(cfg), "config.yaml")

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set run tags (values cut to MLflow's 8,000 characters); a tag can be overwritten."""
        if self._target is None:
            return
        items = [RunTag(param_key(k), str(v)[:MAX_TAG_VALUE_LENGTH]) for k, v in tags.items()]
        for start in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
            chunk = items[start : start + MAX_PARAMS_TAGS_PER_BATCH]
            self._target.client.log_batch(self._target.run_id, tags=chunk)

    # -- artifacts -----------------------------------------------------------------------

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Copy a file, or a folder with everything in it, into the run's artifacts (under
        ``artifact_path`` when given)."""
        if self._target is None:
            return
        path = Path(path)
        if path.is_dir():
            self._target.client.log_artifacts(self._target.run_id, str(path), artifact_path)
        else:
            self._target.client.log_artifact(self._target.run_id, str(path), artifact_path)

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        """Write ``data`` as JSON (``*.json``) or YAML (``*.yaml``, ``*.yml``) artifact."""
        if artifact_file.endswith(".json"):
            text = json.dumps(data, indent=2, default=str)
        elif artifact_file.endswith((".yaml", ".yml")):
            text = yaml.safe_dump(_yaml_safe(data), sort_keys=False)
        else:
            raise ValueError(f"{artifact_file!r}: a dict is logged as .json, .yaml or .yml")
        self._write_artifact(artifact_file, text.encode())

    def log_figure(self, figure: Figure, artifact_file: str, dpi: int = 120) -> None:
        """Save a matplotlib ``figure`` as a PNG artifact (``artifact_file`` ends in .png)."""
        if not artifact_file.endswith(".png"):
            raise ValueError(f"{artifact_file!r}: figures are logged as .png")
        if self._target is None:
            return
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / Path(artifact_file).name
            figure.savefig(local, dpi=dpi, bbox_inches="tight")
            self.log_artifact(local, _parent(artifact_file))

    def _write_artifact(self, artifact_file: str, content: bytes) -> None:
        if self._target is None:
            return
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / Path(artifact_file).name
            local.write_bytes(content)
            self.log_artifact(local, _parent(artifact_file))

    # -- stable-baselines3 ---------------------------------------------------------------

    def sb3_writer(self) -> MlflowKVWriter:
        """An SB3 output format writing through this logger (see
        :class:`journeyopt.tracking.sb3_writer.MlflowKVWriter`)."""
        from journeyopt.tracking.sb3_writer import MlflowKVWriter

        return MlflowKVWriter(self)

    def sb3_logger(self, *, stdout: bool = False) -> Logger:
        """An SB3 ``Logger`` for ``model.set_logger(...)``: its values go to this run
        (``rollout/*`` and ``time/*`` under ``train/``); with ``stdout``, also SB3's table.
        (SB3 and torch are imported here, not when tracking is imported.)"""
        from stable_baselines3.common.logger import KVWriter, make_output_format
        from stable_baselines3.common.logger import Logger as SB3Logger

        formats: list[KVWriter] = [self.sb3_writer()]
        if stdout:
            formats.append(make_output_format("stdout", ""))
        return SB3Logger(folder=None, output_formats=formats)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number (Python, numpy scalar or 0-d array; not a bool)."""
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, int | float | np.integer | np.floating):
        return True
    return bool(isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf")


def _number(key: str, value: Any) -> float:
    if not is_number(value):
        raise ValueError(f"metric {key!r}: {value!r} is not a number")
    return float(value)


def _yaml_safe(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {str(k): _yaml_safe(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_yaml_safe(v) for v in data]
    if isinstance(data, np.generic):
        return data.item()
    if data is None or isinstance(data, str | int | float | bool):
        return data
    return str(data)


def _parent(artifact_file: str) -> str | None:
    parent = Path(artifact_file).parent.as_posix()
    return None if parent in ("", ".") else parent
