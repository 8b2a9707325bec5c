"""``panel.lapse_weeks: null`` (the generic panel config's default): the lapse threshold read
off the logs by the rule ``journeyopt-ingest`` prints (:func:`suggest_lapse_weeks`), from the
events up to the panel's as-of instant only; a configured value wins. On the vendored CDNOW
sample (real purchases) and through ``journeyopt-calibrate``, which records the derived value
in ``calibration.json`` and prints it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_module

from journeyopt.calibration.config import register_configs
from journeyopt.cli.calibrate import run as calibrate_cli
from journeyopt.data.schema import CanonicalLogs
from journeyopt.errors import ConfigError
from journeyopt.panel.build import build_panel
from journeyopt.panel.config import PanelConfig
from journeyopt.panel.suggest import resolve_lapse_weeks, suggest_lapse_weeks
from tests.panel.conftest import make_logs
from tests.panel.windows import panel_config

CHANNELS: tuple[str, ...] = ()
AS_OF = "1997-06-30T00:00:00Z"  # half-way through the sample's 78 weeks


def _derived() -> PanelConfig:
    return panel_config(lapse_weeks=None)


def test_null_is_the_suggestion_of_the_logs_and_builds_the_same_panel(
    cdnow_logs: CanonicalLogs,
) -> None:
    resolved, found = resolve_lapse_weeks(_derived(), cdnow_logs.events)
    suggested = suggest_lapse_weeks(cdnow_logs.events)
    assert found == suggested and suggested.lapse_weeks is not None
    assert resolved == replace(_derived(), lapse_weeks=suggested.lapse_weeks)
    pd.testing.assert_frame_equal(
        build_panel(cdnow_logs, _derived(), CHANNELS),
        build_panel(cdnow_logs, resolved, CHANNELS),
    )


def _with_late_purchases(logs: CanonicalLogs) -> CanonicalLogs:
    """``logs`` plus one purchase per customer in the log's last week, long after ``AS_OF``:
    gaps that move the rule's suggestion, none of them before ``AS_OF``."""
    late = logs.events.drop_duplicates("customer_id").copy()
    late["ts"] = pd.Timestamp("1998-06-24", tz="UTC").as_unit("ns")
    events = pd.concat([logs.events, late], ignore_index=True)
    return replace(logs, events=events)


def test_a_later_event_cannot_change_an_earlier_panel(cdnow_logs: CanonicalLogs) -> None:
    at = replace(_derived(), as_of=AS_OF)
    later = _with_late_purchases(cdnow_logs)
    whole = suggest_lapse_weeks(later.events).lapse_weeks
    until = resolve_lapse_weeks(at, later.events)[0].lapse_weeks
    assert whole is not None and until is not None and whole != until  # the test can fail
    assert until == resolve_lapse_weeks(at, cdnow_logs.events)[0].lapse_weeks
    before = build_panel(cdnow_logs, at, CHANNELS)
    pd.testing.assert_frame_equal(build_panel(later, at, CHANNELS), before)
    # had the later purchases' suggestion been used, the earlier panel would differ
    leaked = build_panel(cdnow_logs, replace(at, lapse_weeks=whole), CHANNELS)
    assert not leaked["lifecycle"].equals(before["lifecycle"])


def test_a_configured_value_wins(cdnow_logs: CanonicalLogs) -> None:
    given = panel_config(lapse_weeks=3)
    resolved, found = resolve_lapse_weeks(given, cdnow_logs.events)
    assert resolved is given and found is None
    derived = build_panel(cdnow_logs, _derived(), CHANNELS)
    configured = build_panel(cdnow_logs, given, CHANNELS)
    assert not configured["lifecycle"].equals(derived["lifecycle"])  # 3 is not the suggestion


def test_too_few_repeat_purchases_is_one_line_naming_the_setting() -> None:
    bought = [("a", "2024-01-02", "conversion", 10.0), ("a", "2024-02-06", "conversion", 5.0)]
    logs = make_logs(bought)
    with pytest.raises(ConfigError, match=r"^panel\.lapse_weeks is null .* 1 gaps") as err:
        build_panel(logs, _derived(), CHANNELS)
    assert "panel.lapse_weeks=<weeks" in str(err.value) and "\n" not in str(err.value)


def test_calibrate_records_and_prints_the_derived_value(
    cdnow_logs: CanonicalLogs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``panel.lapse_weeks=null`` over the CDNOW sample: the world's features, the recorded
    config (``calibration.json``, the MLflow params) and the printed line say the value the
    rule reads off the logs."""
    register_configs()
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = compose(
            "calibrate",
            overrides=[
                "data=cdnow_sample",
                "panel=cdnow",
                "calibration=cdnow",
                "panel.lapse_weeks=null",
                "calibration.ensemble_size=0",
                "calibration.holdout_weeks=0",
                "tracking=off",
                f"output_dir={tmp_path / 'world'}",
            ],
        )
    result = calibrate_cli(cfg)
    meta = json.loads((tmp_path / "world" / "calibration.json").read_text())
    expected = suggest_lapse_weeks(cdnow_logs.events).lapse_weeks
    assert meta["lapse_weeks"]["weeks"] == expected
    assert meta["config"]["panel"]["lapse_weeks"] == expected
    assert meta["lapse_weeks"]["from_logs"] is True
    assert result.estimate.calibrated.world.features.lapse_weeks == expected
    assert f"panel.lapse_weeks {expected}, derived from the logs" in capsys.readouterr().out
