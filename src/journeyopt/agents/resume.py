"""Checkpoints a run continues from exactly as if it had never stopped.

A checkpoint is taken at the start of a rollout (after the previous update, before any step of
the next one), where everything that decides the continuation is small and known:

- ``model_<steps>_steps.zip``: SB3's own file (policy and optimizer state dicts, timestep
  count, schedules, update count);
- ``model_<steps>_steps.state.npz`` (numpy arrays and one JSON string, read without pickle):
  the population's customers (their :class:`~journeyopt.panel.state.CustomerState`, types and
  episode week), its numpy ``Generator`` state, the ensemble member simulating the episode,
  the agent's last observation and episode-start flags, the episode statistics of
  ``VecMonitor``, and the random states of torch (the policy's sampling), numpy's global
  generator (minibatch shuffling), Python's ``random`` and the action space; plus the MLflow
  run that wrote it.

:class:`RolloutCheckpoints` writes one every ``every_steps`` and keeps the latest rollout
start in memory, so an interrupted run (Ctrl-C, SIGTERM, an error) writes that one: resuming
from it repeats the interrupted rollout exactly. A run killed outright (SIGKILL, power loss)
resumes from its last periodic checkpoint. Not captured: VecNormalize (not used by
journeyopt) and DQN's replay buffer (a resumed DQN run starts with an empty one).
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecMonitor

from journeyopt.calibration.ensemble import EnsembleVecEnv
from journeyopt.errors import ConfigError
from journeyopt.panel.state import CustomerState
from journeyopt.sim.vec_env import PopulationVecEnv

log = logging.getLogger(__name__)

STATE_SUFFIX = ".state.npz"
STATE_FORMAT_VERSION = 1
_META = "meta"


@dataclass(frozen=True)
class Snapshot:
    """Everything a checkpoint holds, in memory.

    Attributes:
        step: Environment steps trained (``model.num_timesteps``).
        model_zip: SB3's ``model.zip`` content.
        arrays: Named arrays of the ``.state.npz`` file (without the JSON).
        meta: JSON-ready states (random generators, counters, run id).
    """

    step: int
    model_zip: bytes
    arrays: dict[str, NDArray[Any]]
    meta: dict[str, Any]


def state_file(checkpoint: Path) -> Path:
    """The ``.state.npz`` file beside the SB3 checkpoint ``checkpoint``."""
    return checkpoint.with_name(checkpoint.name.removesuffix(".zip") + STATE_SUFFIX)


def _wrappers(env: VecEnv) -> list[VecEnv]:
    """``env`` and every VecEnv it wraps, outermost first."""
    chain = [env]
    while isinstance(chain[-1], VecEnvWrapper):
        chain.append(chain[-1].venv)
    return chain


def _population(env: VecEnv) -> PopulationVecEnv:
    inner = _wrappers(env)[-1]
    if not isinstance(inner, PopulationVecEnv):
        raise TypeError(f"the training env wraps {type(inner).__name__}, not a population env")
    return inner


def _monitor(env: VecEnv) -> VecMonitor | None:
    return next((e for e in _wrappers(env) if isinstance(e, VecMonitor)), None)


def _model_env(model: BaseAlgorithm) -> VecEnv:
    env = model.get_env()
    if env is None:
        raise RuntimeError("the agent has no env")
    return env


def _population_arrays(population: PopulationVecEnv) -> dict[str, NDArray[Any]]:
    state = population._state
    if state is None:
        raise RuntimeError("the population was never reset")
    arrays = {
        f"state.{f.name}": np.array(getattr(state, f.name), copy=True)
        for f in fields(CustomerState)
        if f.name != "week"
    }
    arrays["segment"] = np.array(population.segment, copy=True)
    return arrays


def _population_meta(population: PopulationVecEnv) -> dict[str, Any]:
    state = population._state
    assert state is not None
    meta: dict[str, Any] = {
        "state_week": int(state.week),
        "week": population.week,
        "forbidden_actions": population.forbidden_actions,
        "np_random": population.np_random.bit_generator.state,
    }
    if isinstance(population, EnsembleVecEnv) and population.calibrated.members:
        members = population.calibrated.members
        meta["member"] = next(k for k, m in enumerate(members) if m is population.world)
        meta["episodes_per_member"] = population.episodes_per_member.tolist()
    return meta


def _random_states(model: BaseAlgorithm) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    # SB3 shuffles minibatches with numpy's global generator: its state is part of the run
    legacy: Any = np.random.get_state(legacy=False)  # noqa: NPY002
    arrays = {
        "torch_rng": torch.get_rng_state().numpy().copy(),
        "numpy_global_key": np.asarray(legacy["state"]["key"]).copy(),
    }
    version, python_state, gauss = random.getstate()
    meta = {
        "numpy_global": {
            "pos": int(legacy["state"]["pos"]),
            "has_gauss": int(legacy["has_gauss"]),
            "gauss": float(legacy["gauss"]),
        },
        "python_random": [version, list(python_state), gauss],
        "action_space": model.action_space.np_random.bit_generator.state,
    }
    return arrays, meta


def capture(model: BaseAlgorithm, run_id: str | None) -> Snapshot:
    """The state of ``model``'s training now (call it at the start of a rollout)."""
    env = _model_env(model)
    population = _population(env)
    buffer = io.BytesIO()
    model.save(buffer)
    arrays = _population_arrays(population)
    arrays["last_obs"] = np.array(model._last_obs, copy=True)
    arrays["last_episode_starts"] = np.array(model._last_episode_starts, copy=True)
    rng_arrays, rng_meta = _random_states(model)
    arrays.update(rng_arrays)
    meta: dict[str, Any] = {
        "format_version": STATE_FORMAT_VERSION,
        "step": int(model.num_timesteps),
        "run_id": run_id,
        "population": _population_meta(population),
        **rng_meta,
    }
    monitor = _monitor(env)
    if monitor is not None:
        arrays["monitor.returns"] = np.array(monitor.episode_returns, copy=True)
        arrays["monitor.lengths"] = np.array(monitor.episode_lengths, copy=True)
        meta["monitor_episodes"] = int(monitor.episode_count)
    return Snapshot(int(model.num_timesteps), buffer.getvalue(), arrays, meta)


def _replace(path: Path, write: Any) -> None:
    """Write ``path`` all at once: into a temporary file, then renamed over it."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def write_checkpoint(snapshot: Snapshot, path: Path) -> Path:
    """Write ``snapshot`` as the SB3 checkpoint ``path`` and its ``.state.npz`` file (the
    state first: a checkpoint zip always has its state beside it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {**snapshot.arrays, _META: np.array(json.dumps(snapshot.meta))}
    _replace(state_file(path), lambda handle: np.savez(handle, **arrays))
    _replace(path, lambda handle: handle.write(snapshot.model_zip))
    return path


def read_state(checkpoint: Path) -> tuple[dict[str, NDArray[Any]], dict[str, Any]] | None:
    """The arrays and JSON states saved beside ``checkpoint``; ``None`` for a checkpoint
    without them (written by an older journeyopt: it resumes, but not exactly)."""
    path = state_file(checkpoint)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(str(arrays.pop(_META)))
    if meta.get("format_version") != STATE_FORMAT_VERSION:
        raise ConfigError(
            f"train.resume: {path} has state format {meta.get('format_version')}, this "
            f"journeyopt reads {STATE_FORMAT_VERSION}: {_START_AFRESH}"
        )
    return arrays, meta


_START_AFRESH = (
    "start a new run (train.resume='') or resume with the journeyopt version that wrote it"
)


def missing_state_fields(arrays: Mapping[str, NDArray[Any]]) -> list[str]:
    """The :class:`~journeyopt.panel.state.CustomerState` fields a checkpoint's arrays lack
    (a checkpoint written before the field existed, e.g. ``conversion_gap``)."""
    return [
        f.name
        for f in fields(CustomerState)
        if f.name != "week" and f"state.{f.name}" not in arrays
    ]


def recorded_run_id(checkpoint: Path) -> str | None:
    """The MLflow run that wrote ``checkpoint`` (``None`` if unknown)."""
    state = read_state(checkpoint)
    return None if state is None else state[1].get("run_id")


def _restore_population(
    population: PopulationVecEnv, arrays: dict[str, NDArray[Any]], meta: dict[str, Any]
) -> NDArray[np.float32]:
    values: dict[str, Any] = {
        f.name: arrays[f"state.{f.name}"] for f in fields(CustomerState) if f.name != "week"
    }
    population._state = CustomerState(week=int(meta["state_week"]), **values)
    population._segment = arrays["segment"]
    population._week = int(meta["week"])
    population.forbidden_actions = int(meta["forbidden_actions"])
    population.np_random.bit_generator.state = meta["np_random"]
    if isinstance(population, EnsembleVecEnv) and "member" in meta:
        population.world = population.calibrated.members[int(meta["member"])]
        population.episodes_per_member = np.asarray(meta["episodes_per_member"], np.int64)
    population._reset_seeds()  # the agent's load seeded the env for a reset that never comes
    return population._observe()


def _restore_random(model: BaseAlgorithm, arrays: dict[str, NDArray[Any]], meta: Any) -> None:
    torch.set_rng_state(torch.from_numpy(arrays["torch_rng"].copy()))
    legacy = meta["numpy_global"]
    key = arrays["numpy_global_key"]
    global_state = ("MT19937", key, legacy["pos"], legacy["has_gauss"], legacy["gauss"])
    np.random.set_state(global_state)  # noqa: NPY002 (SB3's minibatch shuffling)
    version, python_state, gauss = meta["python_random"]
    random.setstate((version, tuple(python_state), gauss))
    model.action_space.np_random.bit_generator.state = meta["action_space"]


def restore(model: BaseAlgorithm, checkpoint: Path) -> bool:
    """Put ``model`` (just loaded from ``checkpoint`` on a new training env) and its env in the
    state saved beside the checkpoint, so ``learn(..., reset_num_timesteps=False)`` continues
    as the interrupted run would have; ``False`` (and nothing changed) without a state file.
    """
    state = read_state(checkpoint)
    if state is None:
        log.warning("%s has no %s: the run resumes, but not exactly", checkpoint, STATE_SUFFIX)
        return False
    arrays, meta = state
    missing = missing_state_fields(arrays)
    if missing:
        raise ConfigError(
            f"train.resume: {state_file(checkpoint)} was written by an older journeyopt whose "
            f"customer state has no {', '.join(missing)}: {_START_AFRESH}"
        )
    env = _model_env(model)
    observed = _restore_population(_population(env), arrays, meta["population"])
    if observed.shape != arrays["last_obs"].shape or not np.array_equal(
        observed, arrays["last_obs"]
    ):
        raise ConfigError(
            f"train.resume: the customers saved in {state_file(checkpoint)} do not match this "
            "run's world and features: resume with the config of the run that wrote it"
        )
    model._last_obs = arrays["last_obs"]
    model._last_episode_starts = arrays["last_episode_starts"]
    if hasattr(model, "_last_original_obs"):
        model._last_original_obs = arrays["last_obs"]
    monitor = _monitor(env)
    if monitor is not None and "monitor.returns" in arrays:
        monitor.episode_returns = arrays["monitor.returns"]
        monitor.episode_lengths = arrays["monitor.lengths"]
        monitor.episode_count = int(meta["monitor_episodes"])
    _restore_random(model, arrays, meta)
    return True


class RolloutCheckpoints(BaseCallback):
    """Writes the training state at a rollout start every ``every_steps`` environment steps
    (0: never) as ``<folder>/<prefix>_<steps>_steps.zip``; with ``keep_latest``, captures it
    at every rollout start and writes the latest on demand (:meth:`write_latest`, for an
    interrupted run).

    Args:
        folder: Checkpoint folder.
        prefix: File name prefix.
        every_steps: Environment steps between written checkpoints (0: none).
        run_id: MLflow run recorded in the checkpoints.
        keep_latest: Capture every rollout start (about 10-20 ms each: right for on-policy
            agents, whose rollouts last a second or more; not for DQN, whose rollouts are
            single steps).
    """

    def __init__(
        self,
        folder: Path,
        prefix: str,
        every_steps: int,
        run_id: str | None,
        *,
        keep_latest: bool = True,
    ) -> None:
        super().__init__()
        self._folder, self._prefix = folder, prefix
        self._every = every_steps
        self._run_id = run_id
        self._keep_latest = keep_latest
        self._done = -1
        self.latest: Snapshot | None = None

    def path(self, step: int) -> Path:
        """The checkpoint of ``step`` steps."""
        return self._folder / f"{self._prefix}_{step}_steps.zip"

    def _on_training_start(self) -> None:
        steps = self.model.num_timesteps
        self._done = steps // self._every if self._every > 0 else 0

    def _on_rollout_start(self) -> None:
        step = int(self.model.num_timesteps)
        due = step // self._every if self._every > 0 else 0
        if not (self._keep_latest or due > self._done):
            return
        self.latest = capture(self.model, self._run_id)
        if due > self._done:
            self._done = due
            write_checkpoint(self.latest, self.path(step))

    def _on_step(self) -> bool:
        return True

    def write_latest(self) -> Path | None:
        """Write the state of the latest rollout start (if not written yet); its path, or
        ``None`` without one (no rollout yet, or ``keep_latest`` off)."""
        if self.latest is None or not self._keep_latest:
            return None
        path = self.path(self.latest.step)
        if not path.is_file():
            write_checkpoint(self.latest, path)
        return path
