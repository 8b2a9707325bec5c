"""The model check: the logging policy replayed in a model world against what the logs
realised — passes with the true world as the model, fails with a deliberately wrong one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

import journeyopt
from journeyopt.cli.entry import to_object
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.source import SourceConfig
from journeyopt.evaluation.ope.bootstrap import Interval
from journeyopt.evaluation.ope.logged import LoggedTrajectories, logged_trajectories
from journeyopt.evaluation.ope.model_check import (
    ModelCheckSettings,
    behaviour_values,
    check_model,
    logged_actions_one_hot,
    passes,
    widen,
)
from journeyopt.evaluation.ope.model_value import ValueModel
from journeyopt.panel.build import build_panel
from journeyopt.panel.config import PanelConfig
from journeyopt.sim.behaviour import contact_rules
from journeyopt.sim.config import GenerateConfig, shipped_practice
from journeyopt.sim.logs import generate_logs, write_logs
from journeyopt.sim.world import load_world
from tests.evaluation.ope.wrong_world import booking_odds_scaled

CONFIGS = Path(journeyopt.__file__).parent / "configs"
WEEKS = 10
GAMMA = 0.995


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> LoggedTrajectories:
    """3,000 customers of the coworking world over 10 weeks under the staff rules with 10 %
    exploration, through the user's path (raw logs, ingestion, panel)."""
    out = tmp_path_factory.mktemp("logs")
    world = load_world("coworking")
    cfg = GenerateConfig(
        staff=shipped_practice("coworking"),
        output_dir=str(out),
        n_customers=3000,
        weeks=WEEKS + 1,
        exploration=0.1,
        initial_share=1.0,
    )
    write_logs(generate_logs(world, cfg, np.random.default_rng(7)), out, overwrite=True)
    raw = OmegaConf.load(CONFIGS / "data" / "coworking.yaml")
    raw.path = str(out)
    source = to_object(raw, SourceConfig)
    panel = build_panel(ingest_to_logs(source)[0], PanelConfig(), tuple(source.contact_channels))
    return logged_trajectories(panel, world, contact_rules(world), WEEKS)


def test_the_true_world_passes_and_a_wrong_world_fails(logged: LoggedTrajectories) -> None:
    world = load_world("coworking")
    settings = ModelCheckSettings(tolerance=0.1, n_boot=200)
    truth = check_model(logged, ValueModel(world), GAMMA, settings)
    assert truth.passed, truth.reason
    assert truth.gap_low < truth.gap < truth.gap_high
    assert truth.gap_low <= 0.1 and truth.gap_high >= -0.1
    assert truth.reason == "" and truth.weeks == WEEKS
    assert truth.metrics()["ope/model_check_passed"] == 1.0

    doubled = check_model(logged, booking_odds_scaled(world, 2.0), GAMMA, settings)
    assert not doubled.passed
    assert doubled.gap_low > 0.1  # overvalues what the logging policy earned
    assert "tolerance 10 %" in doubled.reason
    halved = check_model(logged, booking_odds_scaled(world, 0.5), GAMMA, settings)
    assert not halved.passed and halved.gap_high < -0.1
    # the gap is measured on the same customers by segment, ``all`` first
    assert list(doubled.table["segment"]) == ["all", *world.segment_names]
    assert doubled.table["customers"].iloc[0] == logged.n_customers
    assert (doubled.table["gap"] > 0).all()


def test_realised_value_is_the_discounted_logged_reward(logged: LoggedTrajectories) -> None:
    realised, predicted = behaviour_values(logged, load_world("coworking"), GAMMA)
    expected = (logged.reward * GAMMA ** np.arange(WEEKS)).sum(axis=1)
    np.testing.assert_allclose(realised, expected)
    assert predicted.shape == (logged.n_customers,) and np.isfinite(predicted).all()
    one_hot = logged_actions_one_hot(logged)
    assert (one_hot.sum(axis=2) == 1).all()
    np.testing.assert_array_equal(one_hot.argmax(axis=2), logged.action)


def test_strict_checks_need_evidence_of_accuracy() -> None:
    """Default: fail only when the gap is shown beyond the tolerance; strict: pass only when
    it is shown within."""
    assert passes(-0.15, 0.05, 0.1, strict=False)  # inconclusive: not shown wrong
    assert not passes(-0.15, 0.05, 0.1, strict=True)  # nor shown right
    assert passes(-0.04, 0.06, 0.1, strict=True)
    assert not passes(0.12, 0.3, 0.1, strict=False) and not passes(-0.3, -0.11, 0.1, False)


def test_widen_adds_the_model_error_in_quadrature() -> None:
    iv = Interval(100.0, 94.0, 108.0, 95.0, 0.95, 100)
    assert widen(iv, 0.0) == iv
    wider = widen(iv, 0.08)  # 8 EUR of model error
    assert wider.ci_low == pytest.approx(100 - 10.0)  # hypot(6, 8)
    assert wider.ci_high == pytest.approx(100 + np.hypot(8, 8))
    assert wider.lower_bound < iv.lower_bound and wider.value == iv.value
    with pytest.raises(ValueError, match="relative_error must be >= 0"):
        widen(iv, -0.1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tolerance": 0.0}, "tolerance must be in"),
        ({"tolerance": 1.5}, "tolerance must be in"),
        ({"n_boot": 5}, "n_boot must be >= 10"),
        ({"confidence": 1.0}, "confidence must be in"),
    ],
)
def test_settings_are_validated(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelCheckSettings(**kwargs)  # type: ignore[arg-type]
