"""Idempotence of the weekly cycle: a cycle is keyed by (week, data fingerprint).

The fingerprint is the SHA-256 of the logs' files and of the decision log
(:func:`journeyopt.tracking.tags.fingerprint_files`). A completed cycle leaves a record
(``cycle.json``) in its folder ``<work_dir>/<week>-<fingerprint[:12]>/``; running the same week
on the same data again finds it and changes nothing (no run, no training, no alias move). New
data for the same week (late logs) is a new key, so the cycle runs again on it. A failed cycle
leaves no record: re-running it retries.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from journeyopt.errors import InputFileError
from journeyopt.panel.config import parse_as_of
from journeyopt.panel.weeks import monday_on_or_before
from journeyopt.tracking.tags import fingerprint_files

RECORD_FILE = "cycle.json"


@dataclass(frozen=True)
class CycleKey:
    """What identifies a cycle.

    Attributes:
        week: Monday (``YYYY-MM-DD``) of the week the cycle prepares.
        fingerprint: SHA-256 (hex) of the logs and decision log it read.
    """

    week: str
    fingerprint: str

    @property
    def folder_name(self) -> str:
        """``<week>-<first 12 hex digits of the fingerprint>``."""
        return f"{self.week}-{self.fingerprint[:12]}"


@dataclass(frozen=True)
class CycleRecord:
    """What a completed cycle did (the content of ``cycle.json``).

    Attributes:
        week, fingerprint: The key.
        run_id: The cycle's parent MLflow run (empty with tracking off).
        retrained: Whether it re-calibrated and re-trained.
        reasons: Why it re-trained (drift reasons, schedule, no champion), or why not.
        drift_detected: The drift step's verdict (False when skipped).
        candidate: Registered version trained by the cycle (empty when none).
        promoted: Whether the candidate became champion.
        refused: Why the gate refused it (empty when promoted or not trained).
        champion: Champion version after the cycle (empty when none).
        uplift: ``uplift/`` metrics of the uplift step (empty when skipped).
        child_runs: Step name -> MLflow run id.
        rollout: What the staged rollout step did: ``widen``, ``rollback``, ``continue``
            (measured, nothing changed) or empty (no canary in progress).
    """

    week: str
    fingerprint: str
    run_id: str
    retrained: bool
    reasons: list[str]
    drift_detected: bool
    candidate: str
    promoted: bool
    champion: str
    refused: list[str] = field(default_factory=list)
    uplift: dict[str, float] = field(default_factory=dict)
    child_runs: dict[str, str] = field(default_factory=dict)
    rollout: str = ""


def cycle_week(week: str) -> pd.Timestamp:
    """Monday 00:00 UTC of the week containing the ISO date ``week``."""
    return monday_on_or_before(parse_as_of(week))


def cycle_key(week: str, inputs: list[Path]) -> CycleKey:
    """The key of the cycle of ``week`` over the files (or folders) ``inputs``.

    Raises:
        InputFileError: An input does not exist.
    """
    for path in inputs:
        if not path.exists():
            raise InputFileError(str(path), "no such file or folder")
    monday = cycle_week(week).strftime("%Y-%m-%d")
    return CycleKey(monday, fingerprint_files(inputs))


def read_record(folder: Path) -> CycleRecord | None:
    """The record of a completed cycle in ``folder``; None when it did not complete."""
    path = folder / RECORD_FILE
    if not path.is_file():
        return None
    try:
        return CycleRecord(**json.loads(path.read_text()))
    except (ValueError, TypeError) as err:
        raise InputFileError(str(path), f"not a cycle record ({err})") from err


def write_record(folder: Path, record: CycleRecord) -> Path:
    """Write ``cycle.json`` (last, once every step succeeded)."""
    path = folder / RECORD_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path
