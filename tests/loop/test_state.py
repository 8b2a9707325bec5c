"""Cycle keys, records, and the decision to re-train: pure functions, no MLflow."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from journeyopt.errors import ConfigError, InputFileError
from journeyopt.loop.config import CycleConfig, DriftStepConfig, ScheduleConfig
from journeyopt.loop.cycle import Champion, retrain_reasons, schedule_due
from journeyopt.loop.state import CycleRecord, cycle_key, read_record, write_record
from journeyopt.tracking.registry import ResolvedVersion

VERSION = ResolvedVersion("journey-policy", "3", "models:/journey-policy/3", None, "")


def test_key_is_the_monday_and_the_data(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "events.csv").write_text("a,b\n1,2\n")
    key = cycle_key("2024-03-13", [logs])
    assert key.week == "2024-03-11"  # the Monday of that week
    assert cycle_key("2024-03-11", [logs]) == key
    (logs / "events.csv").write_text("a,b\n1,3\n")
    assert cycle_key("2024-03-11", [logs]).fingerprint != key.fingerprint
    with pytest.raises(InputFileError, match="no such file or folder"):
        cycle_key("2024-03-11", [tmp_path / "missing"])


def test_record_round_trip_and_absent(tmp_path: Path) -> None:
    assert read_record(tmp_path) is None
    record = CycleRecord("2024-03-11", "ab" * 32, "run", True, ["no champion yet"], False,
                         "1", True, "1", uplift={"uplift/margin": 0.5})  # fmt: skip
    write_record(tmp_path, record)
    assert read_record(tmp_path) == record
    (tmp_path / "cycle.json").write_text("[1, 2]")
    with pytest.raises(InputFileError, match="not a cycle record"):
        read_record(tmp_path)


def test_only_the_configured_drift_checks_retrain() -> None:
    reasons = ["population: recency ...", "action mix (all all): ...", "response: convert ..."]
    champion = Champion(VERSION, "world", "MaskablePPO")
    assert retrain_reasons(champion, reasons, ["response"], False) == [
        "drift: response: convert ..."
    ]
    assert len(retrain_reasons(champion, reasons, ["population", "action_mix"], False)) == 2
    assert retrain_reasons(champion, [], ["response"], False) == []
    assert retrain_reasons(Champion(None, "", ""), [], ["response"], False) == ["no champion yet"]
    assert retrain_reasons(champion, [], ["response"], True) == ["scheduled re-training"]
    with pytest.raises(ConfigError, match="unknown checks"):
        DriftStepConfig(retrain_on=["weather"])


def test_schedule_counts_weeks_from_its_origin() -> None:
    cfg = CycleConfig(week="2024-03-11", work_dir="w", agent={},
                      schedule=ScheduleConfig(every_weeks=4, origin="2024-03-04"))  # fmt: skip
    due = [schedule_due(cfg, pd.Timestamp("2024-03-04", tz="UTC") + pd.Timedelta(weeks=k))
           for k in range(9)]  # fmt: skip
    assert due == [True, False, False, False, True, False, False, False, True]
    never = CycleConfig(week="2024-03-11", work_dir="w", agent={})
    assert not schedule_due(never, pd.Timestamp("2024-03-04", tz="UTC"))
    with pytest.raises(ConfigError, match="week: not an ISO 8601 date"):
        CycleConfig(week="someday", work_dir="w", agent={})
