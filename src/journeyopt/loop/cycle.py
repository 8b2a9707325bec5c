"""One weekly cycle (``journeyopt-cycle``): new logs in, the real effect measured, the system
adapted only on evidence.

1. **ingest**: fingerprint the logs and decision log; a cycle already completed for this
   (week, fingerprint) is reported and nothing else happens (:mod:`journeyopt.loop.state`);
2. **rollout**: during a staged rollout's canary, the canary against the previous champion
   and the holdout with an always-valid test; widened or rolled back on evidence
   (``journeyopt-rollout advance``, :mod:`journeyopt.monitoring.rollout_job`);
   **uplift**: the champion over the holdout on the newest weeks (``journeyopt-uplift``);
3. **drift**: population, action-mix and response drift against the champion's world
   (``journeyopt-drift``);
4. **decide**: re-train on drift, on schedule, or when no champion exists;
5. **calibrate** a world on a rolling window of the logs (``journeyopt-calibrate``; after
   drift on the shorter ``drift.calibration`` window);
6. **train** the champion's agent in it, warm-started from the new world's exact optimum
   (``journeyopt-train``); the policy is registered as a new version;
7. **promote**: the gate against the current champion (:mod:`journeyopt.loop.gate`); a refusal
   is a normal outcome, the champion stays.

All runs of a cycle are children of one MLflow parent run ``cycle-<week>``. A step that fails
marks its run and the parent FAILED (tags ``journeyopt.error`` and
``journeyopt.cycle.failed_step``), leaves the champion alias where it was and raises
:class:`CycleFailed`.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, cast

import pandas as pd
from mlflow.exceptions import MlflowException
from omegaconf import OmegaConf

from journeyopt.agents.config import train_config_in
from journeyopt.agents.train import train
from journeyopt.calibration.config import CalibrateConfig, CalibrationConfig
from journeyopt.calibration.pipeline import calibrate
from journeyopt.errors import JourneyoptError
from journeyopt.loop.config import DRIFT_CHECKS, CycleConfig
from journeyopt.loop.gate import gate
from journeyopt.loop.state import (
    CycleKey,
    CycleRecord,
    cycle_key,
    cycle_week,
    read_record,
    write_record,
)
from journeyopt.monitoring.config import DriftJobConfig, RolloutJobConfig, UpliftJobConfig
from journeyopt.monitoring.jobs import detect_drift, measure_uplift
from journeyopt.monitoring.rollout import verdict_metrics
from journeyopt.monitoring.rollout_job import run_rollout
from journeyopt.panel.weeks import WEEK
from journeyopt.reuse import reuse_scope
from journeyopt.sim.config import SimulatorConfig
from journeyopt.tracking.registry import CHAMPION, PolicyRegistry, ResolvedVersion
from journeyopt.tracking.rollout import CANARY, read_rollout
from journeyopt.tracking.run import child_runs_of, tracked_run
from journeyopt.tracking.sb3_policy import ALGORITHMS
from journeyopt.tracking.tags import AGENT_TAG, SIMULATOR_TAG, run_tags

WEEK_TAG = "journeyopt.cycle.week"
FINGERPRINT_TAG = "journeyopt.cycle.fingerprint"
FAILED_STEP_TAG = "journeyopt.cycle.failed_step"
OUTCOME_TAG = "journeyopt.cycle.outcome"
SCHEDULE_ORIGIN = pd.Timestamp("1970-01-05", tz="UTC")  # a Monday


class CycleFailed(JourneyoptError):
    """A step of the cycle failed; the champion is unchanged."""


@dataclass(frozen=True)
class CycleResult:
    """What :func:`run_cycle` did.

    Attributes:
        record: The cycle's record (also in ``<folder>/cycle.json``).
        folder: The cycle's output folder.
        already_done: True when an earlier run completed this (week, fingerprint): nothing
            was done this time.
    """

    record: CycleRecord
    folder: Path
    already_done: bool


def agent_to_train(configured: dict[str, Any], champion_algorithm: str) -> dict[str, Any]:
    """The agent a cycle re-trains: the champion's algorithm (with its defaults) when the
    champion was trained by one of the supported algorithms and it differs from the configured
    agent's, else the configured agent (today's practice as champion, or no champion, is not
    an algorithm to re-train).

    Args:
        configured: The cycle's ``agent`` config as a plain dict.
        champion_algorithm: The champion's agent tag ("" without a champion).
    """
    if champion_algorithm in ALGORITHMS and champion_algorithm != configured.get("algorithm"):
        return {"algorithm": champion_algorithm}
    return dict(configured)


@dataclass(frozen=True)
class Champion:
    """The serving champion at the start of the cycle (None fields: no champion).

    Attributes:
        version: Its registered version.
        world: The world it was trained in (a calibrated world folder or a world name).
        algorithm: Its agent's algorithm.
    """

    version: ResolvedVersion | None
    world: str
    algorithm: str


def current_champion(registry: PolicyRegistry | None) -> Champion:
    """The ``champion`` alias with the world and algorithm tags of its version."""
    if registry is None:
        return Champion(None, "", "")
    try:
        version = registry.alias(CHAMPION)
    except MlflowException:
        return Champion(None, "", "")
    tags = registry.client.get_model_version(registry.name, version.version).tags or {}
    return Champion(version, str(tags.get(SIMULATOR_TAG, "")), str(tags.get(AGENT_TAG, "")))


def schedule_due(cfg: CycleConfig, monday: pd.Timestamp) -> bool:
    """Whether the schedule asks for a re-training in the week starting ``monday``."""
    every = cfg.schedule.every_weeks
    if every == 0:
        return False
    origin = cycle_origin(cfg)
    return int((monday - origin) // WEEK) % every == 0


def cycle_origin(cfg: CycleConfig) -> pd.Timestamp:
    """The Monday the schedule counts weeks from."""
    return cycle_week(cfg.schedule.origin) if cfg.schedule.origin else SCHEDULE_ORIGIN


def retrain_reasons(
    champion: Champion, drift_reasons: list[str], retrain_on: list[str], scheduled: bool
) -> list[str]:
    """Why the cycle re-trains (empty: it does not): the drift reasons of the checks in
    ``retrain_on``, no champion, or the schedule."""
    prefixes = tuple(DRIFT_CHECKS[c] for c in retrain_on)
    reasons = [f"drift: {r}" for r in drift_reasons if r.startswith(prefixes)]
    if champion.version is None:
        reasons.append("no champion yet")
    if scheduled:
        reasons.append("scheduled re-training")
    return reasons


def training_simulator(cfg: CycleConfig) -> SimulatorConfig:
    """The simulator settings a re-training runs under: ``cfg.simulator`` with the contact rules
    the policy will be served under (``serve.rules``), so training masks, the calibration's
    summary and the gate read one rules object and a candidate is never refused for having
    been trained under other rules than it is served under."""
    return replace(cfg.simulator, rules=cfg.serve.rules)


def calibration_window(cfg: CycleConfig, on_drift: bool) -> CalibrationConfig:
    """The calibration of a re-training: ``cfg.calibration``, with the shorter window of
    ``drift.calibration`` when drift triggered it (see
    :class:`~journeyopt.loop.config.DriftCalibrationConfig`)."""
    after_drift = cfg.drift.calibration
    if not on_drift or after_drift.recent_weeks == 0:
        return cfg.calibration
    return replace(
        cfg.calibration, recent_weeks=after_drift.recent_weeks, seasonal=after_drift.seasonal
    )


def _node(cfg: object) -> dict[str, Any]:
    return cast(dict[str, Any], OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True))


class _Steps:
    """The steps of one cycle, sharing its config, folder and parent run."""

    def __init__(self, cfg: CycleConfig, key: CycleKey, folder: Path, monday: pd.Timestamp):
        self.cfg = cfg
        self.key = key
        self.folder = folder
        self.monday = monday
        self.child_runs: dict[str, str] = {}
        # the week before the cycle's Monday is complete: the panel ends there
        self.panel = cfg.panel if cfg.panel.as_of else replace(cfg.panel, as_of=key.week)

    def decision_log_weeks(self) -> bool:
        """Whether a decision log is configured and holds a non-empty file (the uplift step
        has something to measure)."""
        if not self.cfg.decisions:
            return False
        path = Path(self.cfg.decisions)
        files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
        return any(f.is_file() and f.stat().st_size > 0 for f in files)

    def uplift(self) -> dict[str, float]:
        cfg = self.cfg
        since = self.monday - cfg.uplift.weeks * WEEK
        job = UpliftJobConfig(
            data=cfg.data,
            panel=self.panel,
            tracking=cfg.tracking,
            decisions=cfg.decisions,
            since=since.strftime("%Y-%m-%d"),
            estimator=cfg.uplift.estimator,
            output_dir=str(self.folder / "uplift"),
            overwrite=True,  # the cycle's own folder: a failed attempt's leftovers
        )
        result = measure_uplift(job)
        self._child("uplift", result.run_id)
        return result.metrics

    def rollout(self, registry: PolicyRegistry | None) -> tuple[str, dict[str, float]]:
        """``journeyopt-rollout advance`` when a canary is in progress: what it did
        (``widen``, ``rollback``, ``continue``; empty without a canary) and its metrics."""
        state = read_rollout(registry) if registry is not None else None
        if state is None or state.stage != CANARY:
            return "", {}
        cfg = self.cfg
        job = RolloutJobConfig(
            command="advance",
            data=cfg.data,
            panel=self.panel,
            tracking=cfg.tracking,
            serve=cfg.serve,
            decisions=cfg.decisions,
            output_dir=str(self.folder / "rollout"),
            overwrite=True,
        )
        report = run_rollout(job)
        self._child("rollout", report.run_id)
        verdict = report.verdict
        metrics = verdict_metrics(verdict, state) if verdict is not None else {}
        return report.acted, metrics

    def drift(self, champion: Champion) -> tuple[bool, list[str]]:
        cfg = self.cfg
        world = champion.world if champion.world and Path(champion.world).is_dir() else ""
        job = DriftJobConfig(
            data=cfg.data,
            panel=self.panel,
            tracking=cfg.tracking,
            reference_weeks=cfg.drift.reference_weeks,
            current_weeks=cfg.drift.current_weeks,
            world=world,
            exclude_features=list(cfg.drift.exclude_features),
            thresholds=cfg.drift.thresholds,
            seed=cfg.drift.seed,
            output_dir=str(self.folder / "drift"),
            overwrite=True,
        )
        findings, run_id = detect_drift(job)
        self._child("drift", run_id)
        return findings.drift_detected, list(findings.reasons)

    def calibrate(self, on_drift: bool) -> Path:
        cfg = self.cfg
        job = CalibrateConfig(
            data=cfg.data,
            panel=self.panel,
            calibration=calibration_window(cfg, on_drift),
            rules=cfg.serve.rules,  # the world's summary represents the rules it is served under
            tracking=cfg.tracking,
            output_dir=str(self.folder / "world"),
            overwrite=True,
        )
        result = calibrate(job)
        self._child("calibrate", result.run_id)
        return result.output_dir

    def train(self, world: Path, champion: Champion) -> str:
        cfg = self.cfg
        configured = cast(dict[str, Any], OmegaConf.to_container(OmegaConf.create(cfg.agent)))
        agent = agent_to_train(configured, champion.algorithm)
        job = train_config_in(
            str(world),
            agent=agent,
            simulator=training_simulator(cfg),
            train=cfg.train,
            evaluation=cfg.evaluation,
            tracking=cfg.tracking,
            seed=cfg.seed,
            output_dir=str(self.folder / "train"),
            run_name=f"cycle-{self.key.week}-train",
        )
        result = train(job)
        self._child("train", result.run_id)
        if result.model_version is None:
            raise JourneyoptError("training registered no policy: the cycle needs tracking on")
        return result.model_version

    def promote(self, version: str, world: Path, champion: Champion) -> tuple[bool, list[str]]:
        """The gate (:func:`journeyopt.loop.gate.gate`); ``(promoted, reasons refused)``."""
        cfg = self.cfg
        registry = PolicyRegistry(cfg.tracking)
        job = cfg.gate_job(f"models:/{registry.name}/{version}", str(world), self.panel)
        decision = gate(job, registry.version(version), champion.world, self.monday)
        # a canary on an inconclusive gate is promoted: its reasons live in the decision run
        return decision.promote, [] if decision.promote else list(decision.reasons)

    def _child(self, step: str, run_id: str | None) -> None:
        if run_id:
            self.child_runs[step] = run_id


def _step(name: str, parent: Any, action: Any) -> Any:
    """Run one step; on failure tag the parent with the step and raise :class:`CycleFailed`."""
    try:
        return action()
    except Exception as err:
        parent.set_tags({FAILED_STEP_TAG: name, OUTCOME_TAG: "failed"})
        raise CycleFailed(f"cycle step {name} failed, champion unchanged: {err}") from err


def cycle_inputs(cfg: CycleConfig) -> list[Path]:
    """The files the cycle reads: the logs and the decision log."""
    if not cfg.data.path:
        raise JourneyoptError("data.path is required: the folder or file of the logs")
    inputs = [Path(cfg.data.path)]
    if cfg.decisions:
        inputs.append(Path(cfg.decisions))
    return inputs


def run_cycle(cfg: CycleConfig) -> CycleResult:
    """Run the cycle of ``cfg.week`` (see the module docstring).

    Raises:
        CycleFailed: A step failed (its run and the parent run are FAILED; champion
            unchanged).
        JourneyoptError: Missing inputs.
    """
    key = cycle_key(cfg.week, cycle_inputs(cfg))
    folder = Path(cfg.work_dir) / key.folder_name
    done = read_record(folder)
    if done is not None:
        return CycleResult(done, folder, already_done=True)
    folder.mkdir(parents=True, exist_ok=True)
    monday = pd.Timestamp(key.week, tz="UTC")
    registry = PolicyRegistry(cfg.tracking) if cfg.tracking.enabled else None
    steps = _Steps(cfg, key, folder, monday)
    tags = {**run_tags(data_fingerprint=key.fingerprint), WEEK_TAG: key.week,
            FINGERPRINT_TAG: key.fingerprint}  # fmt: skip
    with tracked_run(_node(cfg), f"cycle-{key.week}", tags=tags) as parent:
        with child_runs_of(parent.run_id), ExitStack() as measuring:
            # the measuring steps read the same logs and panels: ingested and built once
            # (content-keyed), released before a re-training needs the memory
            measuring.enter_context(reuse_scope())
            champion = _step("champion", parent, lambda: current_champion(registry))
            uplift: dict[str, float] = {}
            rolled = ""
            if champion.version is not None and steps.decision_log_weeks():
                rolled, rollout_metrics = _step("rollout", parent, lambda: steps.rollout(registry))
                uplift = {**_step("uplift", parent, steps.uplift), **rollout_metrics}
                if rolled:  # a rollback moved the alias
                    champion = _step("champion", parent, lambda: current_champion(registry))
            drifted, drift_reasons = _step("drift", parent, lambda: steps.drift(champion))
            measuring.close()
            reasons = retrain_reasons(
                champion, drift_reasons, cfg.drift.retrain_on, schedule_due(cfg, monday)
            )
            candidate, promoted, refused = "", False, []
            if reasons:
                on_drift = any(r.startswith("drift: ") for r in reasons)
                world = _step("calibrate", parent, lambda: steps.calibrate(on_drift))
                candidate = _step("train", parent, lambda: steps.train(world, champion))
                promoted, refused = _step(
                    "promote", parent, lambda: steps.promote(candidate, world, champion)
                )
            after = _step("champion", parent, lambda: current_champion(registry))
        outcome = "promoted" if promoted else ("refused" if candidate else "kept")
        parent.set_tags(
            {
                OUTCOME_TAG: outcome,
                "journeyopt.cycle.retrain_reasons": "; ".join(reasons) or "none",
                "journeyopt.cycle.refused_because": "; ".join(refused) or "none",
                "journeyopt.cycle.rollout": rolled or "none",
            }
        )
        parent.log_metrics(
            {
                "drift/detected": float(drifted),
                "eval/retrained": float(bool(reasons)),
                "eval/promoted": float(promoted),
                **uplift,
            },
            step=0,
        )
        record = CycleRecord(
            week=key.week,
            fingerprint=key.fingerprint,
            run_id=parent.run_id or "",
            retrained=bool(reasons),
            reasons=reasons or ["no drift and no scheduled re-training"],
            drift_detected=drifted,
            candidate=candidate,
            promoted=promoted,
            refused=refused,
            champion=after.version.version if after.version is not None else "",
            uplift=uplift,
            child_runs=steps.child_runs,
            rollout=rolled,
        )
        parent.log_dict(asdict(record), "cycle/cycle.json")
    write_record(folder, record)
    return CycleResult(record, folder, already_done=False)
