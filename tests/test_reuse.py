"""The weekly cycle's reuse of the ingested logs and the panel: one computation per content,
equal to a fresh one, never stale after a change, a private copy for every caller."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_module

from journeyopt.cli.entry import to_object
from journeyopt.cli.ingest import IngestConfig
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.schema import CanonicalLogs
from journeyopt.data.source import SourceConfig
from journeyopt.monitoring.decisions_contacts import read_decisions
from journeyopt.panel.build import build_panel
from journeyopt.panel.weeks import week_of_year, week_start
from journeyopt.reuse import frame_digest, reuse_scope
from tests.monitoring.test_decisions import ROW, write
from tests.panel.conftest import CDNOW_TXT
from tests.panel.windows import panel_config


@pytest.fixture
def source(tmp_path: Path) -> SourceConfig:
    """The CDNOW sample's source config reading a copy of the file in ``tmp_path``."""
    path = tmp_path / "cdnow.txt"
    shutil.copy(CDNOW_TXT, path)
    with initialize_config_module(version_base="1.3", config_module="journeyopt.configs"):
        cfg = compose("ingest", overrides=["data=cdnow_sample", "output_dir=unused"])
    data = to_object(cfg, IngestConfig).data
    return replace(data, path=str(path))


def _equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Same columns, dtypes and values (``DataFrame.equals``: NaN equals NaN; much faster
    than ``assert_frame_equal`` on a panel)."""
    assert list(a.columns) == list(b.columns)
    assert a.dtypes.equals(b.dtypes)
    assert a.equals(b)


def _equal_logs(a: CanonicalLogs, b: CanonicalLogs) -> None:
    for name in ("events", "contacts", "customers"):
        _equal(getattr(a, name), getattr(b, name))


def test_ingest_is_reused_within_a_scope_and_redone_after_a_file_change(
    source: SourceConfig,
) -> None:
    fresh, _ = ingest_to_logs(source)
    with reuse_scope() as hits:
        first, _ = ingest_to_logs(source)
        first.events.loc[:, "value"] = -1.0  # a caller's change stays its own
        second, _ = ingest_to_logs(source)
        assert hits == {"ingest": 1}
        _equal_logs(second, fresh)
        path = Path(source.path)
        lines = path.read_text().splitlines()
        path.write_text("\n".join(lines[:-50]) + "\n")  # the last 50 lines gone
        changed, _ = ingest_to_logs(source)
        assert hits == {"ingest": 1}  # a new content: ingested again
    assert len(changed.events) < len(fresh.events)
    _equal_logs(changed, ingest_to_logs(source)[0])


def test_panel_is_reused_within_a_scope_equal_to_a_fresh_build(source: SourceConfig) -> None:
    logs, _ = ingest_to_logs(source)
    cfg = panel_config()
    fresh = build_panel(logs, cfg, ())
    with reuse_scope() as hits:
        first = build_panel(logs, cfg, ())
        first["revenue"] = 0.0  # a caller's change stays its own
        second = build_panel(logs, cfg, ())
        assert hits == {"panel": 1}
        _equal(second, fresh)
        assert not first.equals(fresh)
        # one changed value in the logs: a new key, a new panel
        events = logs.events.copy()
        events.loc[events.index[-1], "value"] += 1.0
        changed = build_panel(replace(logs, events=events), cfg, ())
        later = build_panel(logs, replace(cfg, as_of="1997-06-30"), ())  # another config
        assert hits == {"panel": 1}
    assert changed["revenue"].sum() == pytest.approx(fresh["revenue"].sum() + 1.0)
    assert later["week"].max() < fresh["week"].max()
    with reuse_scope() as hits:  # a new scope starts empty
        build_panel(logs, cfg, ())
        assert hits == {}


def test_frame_digest_sees_values_order_and_dtypes() -> None:
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    digest = frame_digest(frame)
    assert frame_digest(frame.copy()) == digest
    assert frame_digest(frame.set_axis([7, 8, 9])) == digest  # the index does not count
    assert frame_digest(frame.iloc[::-1]) != digest
    assert frame_digest(frame.assign(a=[1, 2, 4])) != digest
    assert frame_digest(frame.astype({"a": np.float64})) != digest
    assert frame_digest(frame.rename(columns={"b": "c"})) != digest


@pytest.mark.parametrize(
    "origin",
    [
        pd.Timestamp("1998-12-28", tz="UTC"),
        pd.Timestamp("2003-01-01 13:00", tz="UTC"),
        pd.Timestamp("2020-06-02"),
        pd.Timestamp("2015-12-31", tz="Europe/Berlin"),
    ],
)
def test_week_of_year_is_the_iso_week(origin: pd.Timestamp) -> None:
    weeks = np.arange(-600, 2000)  # 1987 .. 2058: years of 52 and 53 ISO weeks
    expected = week_start(origin, weeks).isocalendar().week.to_numpy(np.int16)
    np.testing.assert_array_equal(week_of_year(origin, weeks), expected)
    assert week_of_year(origin, 3)[0] == expected[603]


def test_decision_log_is_reused_within_a_scope_and_reread_after_a_new_file(
    tmp_path: Path,
) -> None:
    write(tmp_path, [ROW], "decisions-2024-03-04.csv")
    fresh = read_decisions(tmp_path)
    with reuse_scope() as hits:
        first = read_decisions(tmp_path)
        first["action"] = "none"  # a caller's change stays its own
        _equal(read_decisions(tmp_path), fresh)
        assert hits == {"decisions": 1}
        week2 = {**ROW, "decision_id": "d2", "week": "2024-03-11", "as_of": "2024-03-11T00:00:00Z"}
        write(tmp_path, [week2], "decisions-2024-03-11.csv")  # the next week's file
        assert len(read_decisions(tmp_path)) == 2
        assert hits == {"decisions": 1}
