"""The stage stopwatch: laps split the elapsed time, repeated names add up, and the logged
lines read back as the same numbers."""

from __future__ import annotations

import logging
import time

import pytest

from journeyopt.timing import StageTime, Stopwatch, parse_stages


def busy(seconds: float) -> None:
    """Spend ``seconds`` of CPU time in this process."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_laps_split_wall_and_cpu_time_between_stages(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="journeyopt")
    clock = Stopwatch()
    busy(0.05)
    first = clock.lap("fit")
    time.sleep(0.05)
    second = clock.lap("sleep")
    busy(0.02)
    third = clock.lap("fit")
    assert list(clock.stages) == ["fit", "sleep"]
    assert first.cpu >= 0.045 and first.wall >= first.cpu * 0.5
    assert second.wall >= 0.045 and second.cpu < 0.03  # sleeping costs no CPU
    fit = clock.stages["fit"]
    assert fit.cpu == pytest.approx(first.cpu + third.cpu)  # the two laps named "fit" add up
    assert fit.wall == pytest.approx(first.wall + third.wall)
    parsed = parse_stages(caplog.text)
    assert set(parsed) == {"fit", "sleep"}
    for name, logged in parsed.items():  # two decimals in the log
        assert logged.wall == pytest.approx(clock.stages[name].wall, abs=0.011)
        assert logged.cpu == pytest.approx(clock.stages[name].cpu, abs=0.011)


def test_parse_ignores_other_lines() -> None:
    text = (
        "[2026-12-06][journeyopt][INFO] - stage ingest: 12.50 s wall, 11.00 s CPU\n"
        "[2026-12-06][journeyopt][INFO] - wrote 3 files\n"
        "stage point_fit: 1.25 s wall, 2.50 s CPU\n"
        "stage ingest: 0.50 s wall, 0.25 s CPU\n"
    )
    assert parse_stages(text) == {
        "ingest": StageTime(13.0, 11.25),
        "point_fit": StageTime(1.25, 2.5),
    }
