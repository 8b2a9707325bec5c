"""The calibration window of a re-training: the shorter window after drift, the rolling
window otherwise, and clear refusals of bad settings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from journeyopt.cli.entry import to_object
from journeyopt.errors import ConfigError
from journeyopt.loop.config import CycleConfig, register_configs
from journeyopt.loop.cycle import calibration_window, training_simulator

CONFIGS = Path(__file__).resolve().parents[2] / "src" / "journeyopt" / "configs"
DEMO = ["data=coworking", "panel=coworking", "calibration=coworking"]  # the demo's settings


def cycle(*overrides: str) -> CycleConfig:
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("cycle", overrides=["week=2024-03-11", "work_dir=w", *DEMO, *overrides])
    return to_object(cfg, CycleConfig)


def test_drift_shortens_the_window_and_drops_seasonality() -> None:
    cfg = cycle("drift.calibration.recent_weeks=13", "drift.calibration.seasonal=false")
    after_drift = calibration_window(cfg, on_drift=True)
    assert after_drift.recent_weeks == 13 and not after_drift.seasonal
    assert after_drift.c_grid == cfg.calibration.c_grid  # everything else as configured
    scheduled = calibration_window(cfg, on_drift=False)
    assert scheduled == cfg.calibration and scheduled.recent_weeks == 52


def test_without_a_drift_window_every_retraining_uses_the_rolling_window() -> None:
    cfg = cycle()
    assert cfg.drift.calibration.recent_weeks == 0
    assert calibration_window(cfg, on_drift=True) == cfg.calibration


def test_a_negative_drift_window_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"drift.calibration.recent_weeks must be >= 0"):
        cycle("drift.calibration.recent_weeks=-1")


def test_a_retraining_is_held_to_the_rules_it_will_be_served_under() -> None:
    # the demo's simulator settings carry the coworking rules, the served rules are none
    cfg = cycle("simulator=coworking", "rules@serve.rules=none")
    assert cfg.simulator.rules != cfg.serve.rules
    trained_under = training_simulator(cfg)
    assert trained_under.rules == cfg.serve.rules
    assert replace(trained_under, rules=cfg.simulator.rules) == cfg.simulator
