"""The CDNOW comparison counts the reference window exactly: the world is never fitted on a
hold-out day, transactions are counted by local day, and a simulated week that straddles the
split or the end of the data is attributed by day share."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir

from journeyopt.calibration.config import register_configs
from journeyopt.calibration.pipeline import split_week

from .conftest import CONFIGS

COMPARE = Path(__file__).parents[2] / "experiments" / "cdnow_calibration" / "compare.py"


def _compare() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cdnow_compare", COMPARE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["cdnow_compare"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_cdnow_split_fits_no_hold_out_day() -> None:
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            "calibrate", overrides=["data=cdnow_sample", "panel=cdnow", "calibration=cdnow"]
        )
    mondays = pd.date_range("1996-12-30", "1998-06-29", freq="7D", tz="UTC")
    panel = pd.DataFrame({"week": np.arange(len(mondays)), "week_start": mondays})
    first = split_week(panel, cfg.calibration.split, 0)
    start = panel.loc[first, "week_start"]
    # the first hold-out week starts on or before the reference split (no hold-out day fitted)
    # and holds the split (no calibration week lost)
    assert start <= pd.Timestamp("1997-10-01", tz="UTC") < start + pd.Timedelta(days=7)


def test_reference_data_counts_local_days_in_the_reference_window() -> None:
    compare = _compare()
    local = [
        ("a", "1997-01-01"),
        ("a", "1997-01-01"),  # same day: one transaction
        ("a", "1997-09-30"),  # last calibration day
        ("a", "1997-10-01"),  # first hold-out day, period 0
        ("a", "1998-06-30"),  # last hold-out day, period 38
        ("b", "1997-03-31"),
        ("b", "1997-10-08"),  # period 1
    ]
    ts = pd.to_datetime([d for _, d in local]).tz_localize("America/New_York").tz_convert("UTC")
    logs: Any = SimpleNamespace(
        events=pd.DataFrame({"customer_id": [c for c, _ in local], "ts": ts})
    )
    ref = compare.reference_data(logs, "America/New_York")
    assert list(ref.ids) == ["a", "b"]
    np.testing.assert_allclose(ref.x, [1.0, 0.0])
    np.testing.assert_allclose(ref.t_x, [272 / 7, 0.0])
    np.testing.assert_allclose(ref.age, [273 / 7, (273 - 89) / 7])
    assert ref.actual.shape == (2, 39)
    assert ref.actual[0, 0] == ref.actual[0, 38] == ref.actual[1, 1] == 1.0
    assert ref.actual.sum() == 3.0
    assert ref.calibration_repeat == 1


def test_split_and_last_weeks_are_attributed_by_day_share() -> None:
    compare = _compare()
    weekly = np.arange(1.0, 41.0)  # Monday weeks 1997-09-29 .. 1998-06-29
    periods = compare.to_periods(weekly)
    assert periods.shape == (39,)
    # 5 of the split week's 7 days and 2 of the last week's are in the hold-out
    expected = 5 / 7 * weekly[0] + weekly[1:-1].sum() + 2 / 7 * weekly[-1]
    np.testing.assert_allclose(periods.sum(), expected)
    np.testing.assert_allclose(periods[0], 5 / 7 * 1.0 + 2 / 7 * 2.0)
