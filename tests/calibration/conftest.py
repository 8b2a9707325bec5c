"""Shared fixtures: a small parametric ground-truth world, logs generated from it under the
staff rules with exploration, and one calibration of those logs (module-scoped: the tests read
it, none modifies it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_dir

import journeyopt
from journeyopt.calibration.calibrated import CalibratedWorld
from journeyopt.calibration.config import (
    CalibrateConfig,
    CalibrationConfig,
    register_configs,
)
from journeyopt.calibration.pipeline import CalibrationResult, calibrate
from journeyopt.calibration.summary import SummarySelection, summary_lines
from journeyopt.cli.entry import to_object
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.source import SourceConfig
from journeyopt.panel.build import build_panel
from journeyopt.panel.config import PanelConfig
from journeyopt.sim.config import GenerateConfig, StaffRulesConfig, shipped_practice
from journeyopt.sim.logs import generate_logs, write_logs
from journeyopt.sim.world import WorldSpec, load_world, world_path
from journeyopt.tracking.config import TrackingConfig
from tests.built_once import built_once
from tests.panel.windows import panel_config
from tests.sim.caps import PRACTICE_CYCLES, caps_config

CONFIGS = Path(journeyopt.__file__).parent / "configs"
CAPS = caps_config(
    recency_cap_weeks=10, conversions_cap=2, contact_cap_weeks=3, engagement_cap_weeks=4
)


def source_config(name: str, overrides: list[str]) -> SourceConfig:
    """The ``data`` group ``name`` composed with ``overrides`` (as the CLI would)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("calibrate", overrides=[f"data={name}", "output_dir=x", *overrides])
    return to_object(cfg.data, SourceConfig)


PURCHASE_START = pd.Timestamp("2021-01-04")  # a Monday
PURCHASE_WEEKS = 60

PurchaseLogit = Callable[[int, np.ndarray, np.ndarray], np.ndarray]
"""(week t, purchases so far (n,), week of the last purchase (n,)) -> this week's logit (n,)."""


def write_purchase_log(
    path: Path, rng: np.random.Generator, first: np.ndarray, logit: PurchaseLogit
) -> Path:
    """A CDNOW-format purchase log of ``PURCHASE_WEEKS`` weeks from ``PURCHASE_START``: each
    customer's first purchase in week ``first``, then each week a purchase with probability
    ``1 / (1 + exp(-logit(t, bought, last)))`` (at most one a week, on a random day)."""
    customers = first.shape[0]
    bought = np.zeros(customers, np.int64)
    last = first.copy()
    customer, week = [], []
    for t in range(PURCHASE_WEEKS):
        p = 1 / (1 + np.exp(-logit(t, bought, last)))
        buys = np.where(t == first, True, (t > first) & (rng.random(customers) < p))
        customer.append(np.flatnonzero(buys))
        week.append(np.full(int(buys.sum()), t))
        bought = bought + buys
        last = np.where(buys, t, last)
    ids = np.concatenate(customer)
    weeks = np.concatenate(week)
    days = PURCHASE_START + pd.to_timedelta(weeks * 7 + rng.integers(0, 7, ids.shape[0]), unit="D")
    lines = [" customer_id  date number_of_cds  dollar_value"] + [
        f" {i + 1:05d} {d:%Y%m%d}  1   {10 + (i % 7):.2f}" for i, d in zip(ids, days, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def purchase_panel(path: Path, panel: PanelConfig) -> pd.DataFrame:
    """The weekly panel of a purchase log of :func:`write_purchase_log`, ingested as the
    ``cdnow`` source does, through its last week."""
    end = PURCHASE_START + pd.Timedelta(weeks=PURCHASE_WEEKS)
    source = source_config("cdnow", [f"data.path={path}", f"data.as_of={end:%Y-%m-%d}"])
    logs, _ = ingest_to_logs(source)
    weekly = build_panel(logs, panel, ())
    return weekly[weekly["week_start"] < end.tz_localize(source.timezone)]


def selection_card(selection: SummarySelection, n_actions: int, dp_seconds: float) -> list[str]:
    """The card's lines of a summary selection (its chosen state count, a DP solve time)."""
    meta: dict[str, Any] = {
        **selection.as_meta(),
        "n_states": selection.chosen.n_states,
        "n_actions": n_actions,
        "dp_horizon_weeks": 52,
        "dp_seconds": dp_seconds,
    }
    return summary_lines({"summary_selection": meta})


def assert_same_fit(mine: CalibratedWorld, theirs: CalibratedWorld) -> None:
    """The same summary, and bit-identical response tables of the world and every member."""
    assert mine.world.discrete == theirs.world.discrete
    for a, b in zip((mine.world, *mine.members), (theirs.world, *theirs.members), strict=True):
        assert a.responses is not None and b.responses is not None
        for name in ("convert_logit", "engage_logit", "optout", "value"):
            np.testing.assert_array_equal(getattr(a.responses, name), getattr(b.responses, name))


def _one_type_practice() -> StaffRulesConfig:
    """The demo's practice without its rule for team types the one-type world does not have."""
    demo = shipped_practice("coworking")
    return replace(demo, rules=[r for r in demo.rules if not r.segments])


SMALL_PRACTICE = _one_type_practice()


@pytest.fixture(scope="session")
def small_world_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-segment version of the coworking world with small caps (~1,000 states), one
    file for the whole run (:func:`tests.built_once.built_once`, as the two fixtures below)."""
    return built_once(tmp_path_factory, "small_world", _write_small_world)


def _write_small_world(folder: Path) -> Path:
    raw = yaml.safe_load(world_path("coworking").read_text())
    freelancer = {**raw["segments"]["freelancer"], "share": 1.0}
    raw.update(
        name="small",
        segments={"freelancer": freelancer},
        discrete={
            "recency_cap_weeks": CAPS.recency_cap_weeks,
            "conversions_cap": CAPS.conversions_cap,
            "contact_cap_weeks": CAPS.contact_cap_weeks,
            "engagement_cap_weeks": CAPS.engagement_cap_weeks,
        },
    )
    path = folder / "world.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def small_world(small_world_path: Path) -> WorldSpec:
    return load_world(small_world_path)


@pytest.fixture(scope="session")
def small_logs(small_world: WorldSpec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Raw coworking-format logs of 3,000 customers over 80 weeks, 30 % exploration."""
    return built_once(tmp_path_factory, "small_logs", partial(_write_small_logs, small_world))


def _write_small_logs(world: WorldSpec, out: Path) -> Path:
    cfg = GenerateConfig(
        staff=SMALL_PRACTICE,
        output_dir=str(out),
        n_customers=3000,
        weeks=80,
        exploration=0.3,
    )
    write_logs(generate_logs(world, cfg, np.random.default_rng(0)), out, overwrite=True)
    return out


def calibration_config(
    logs: Path, out: Path, truth: str = "", **settings: object
) -> CalibrateConfig:
    """A calibration of coworking-format ``logs`` into ``out`` with tracking off (the demo's
    campaign cycles unless ``settings`` say otherwise)."""
    settings = {"practice_cycles_weeks": PRACTICE_CYCLES, **settings}
    calibration = CalibrationConfig(
        name="small_calibrated",
        caps=CAPS,
        holdout_weeks=8,
        ensemble_size=2,
        holdout_runs=2,
        truth_world=truth,
        staff=SMALL_PRACTICE,
        policy_customers=1500,
        policy_horizon_weeks=20,
        c_grid=[0.03, 3.0],
        alpha_grid=[1e-4, 1e-2],
        **settings,  # type: ignore[arg-type]
    )
    return CalibrateConfig(
        data=source_config("coworking", [f"data.path={logs}"]),
        panel=panel_config(),
        calibration=calibration,
        tracking=TrackingConfig(enabled=False),
        output_dir=str(out),
    )


@pytest.fixture(scope="session")
def small_calibration(
    small_logs: Path, small_world_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> CalibrationResult:
    """The small logs calibrated against their truth on two worker processes (test_workers
    compares it with the same calibration in one process); once for the whole run."""

    def build(out: Path) -> CalibrationResult:
        return calibrate(
            calibration_config(small_logs, out, truth=str(small_world_path), workers=2)
        )

    return built_once(tmp_path_factory, "small_calibration", build)
