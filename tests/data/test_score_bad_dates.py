"""``journeyopt-score`` reads raw logs through the ingestion readers: a placeholder date
(9999-12-31, 0001-01-01) or a sentinel (1900-01-01) in the logs is a rejected row with its
reason, never a crash of the scoring run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from journeyopt.data.source import SourceConfig
from journeyopt.serving.batch import score_logs
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.served_model import ServedModel
from tests.commands import DEMO_SERVING
from tests.data.conftest import compose_source
from tests.serving import conftest as serving

AS_OF = serving.AS_OF
# The serving tests' session fixtures: a registered champion and small coworking logs.
world = serving.world
registered = serving.registered
served = serving.served
settings = serving.settings
demo_logs = serving.demo_logs

_BAD_DATES = ("9999-12-31 00:00:00", "0001-01-01", "1900-01-01 00:00:00")


@pytest.fixture
def bad_logs(demo_logs: Path, tmp_path: Path) -> Path:
    """The demo logs with three copies of an event row carrying placeholder dates."""
    folder = tmp_path / "logs"
    shutil.copytree(demo_logs, folder)
    events = pd.read_csv(folder / "events.csv", dtype=str, keep_default_na=False)
    bad = pd.concat([events.iloc[[0]]] * len(_BAD_DATES), ignore_index=True)
    bad["timestamp"] = list(_BAD_DATES)
    bad["event_id"] = [f"bad-{i}" for i in range(len(bad))]
    bad.to_csv(folder / "events.csv", mode="a", header=False, index=False)
    return folder


def _source(path: Path) -> SourceConfig:
    return compose_source("coworking", f"data.path={path}")


def test_score_logs_rejects_placeholder_dates(
    bad_logs: Path, served: ServedModel, settings: ServingConfig, tmp_path: Path
) -> None:
    out = tmp_path / "week" / "actions.csv"
    result = score_logs(_source(bad_logs), AS_OF, served, settings, out)
    assert result.customers > 100
    rejects = pd.read_csv(out.with_name("rejects.csv"), dtype=str, keep_default_na=False)
    bad = rejects.loc[rejects["raw"].str.contains(",bad-|^bad-", regex=True)]
    assert sorted(bad["reason"].str.split(":").str[0]) == ["implausible timestamp"] * 3
    assert result.rows_rejected >= 3


def test_score_command_survives_a_9999_row(
    registered: serving.Registered, bad_logs: Path, tmp_path: Path
) -> None:
    command = [
        str(Path(sys.executable).with_name("journeyopt-score")),
        *DEMO_SERVING,
        f"data.path={bad_logs}",
        f"as_of={AS_OF}",
        f"model={registered.folder}",
        "out=week/actions.csv",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    ]
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    rejects = pd.read_csv(tmp_path / "week" / "rejects.csv", dtype=str, keep_default_na=False)
    assert rejects["reason"].str.startswith("implausible timestamp").sum() >= 3
