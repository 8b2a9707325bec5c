"""The card's calibration by action, weekly tracking MAPE, ensemble spread and the verdict
drawn from them (issue 16, cause 4)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from journeyopt.calibration.config import CardConfig
from journeyopt.calibration.fidelity import (
    CardFidelity,
    Decisions,
    action_calibration,
    holdout_decisions,
    sd_interval,
    spread_table,
    tracking_mape,
    value_calibration,
)
from journeyopt.calibration.holdout import tracking_curves
from journeyopt.calibration.pipeline import CalibrationResult, calibrate
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.errors import ConfigError
from journeyopt.panel.build import walk_panel
from journeyopt.sim.world import WorldSpec
from tests.calibration.conftest import calibration_config, source_config
from tests.panel.windows import panel_config

SETTINGS = CardConfig(n_boot=400, confidence=0.99, value_weeks=2)
AMOUNTS = source_config("coworking", []).amounts


@pytest.fixture(scope="module")
def truth_hold(small_logs: Path) -> pd.DataFrame:
    """The last 30 weeks of the small world's own simulated logs (panel rows; logged
    propensities: 30 % exploration)."""
    source = source_config("coworking", [f"data.path={small_logs}"])
    logs, _ = ingest_to_logs(source)
    channels = tuple(source.contact_channels)
    panel, _ = walk_panel(logs, panel_config(), channels)
    return panel[panel["week"] >= int(panel["week"].max()) - 29]


@pytest.fixture(scope="module")
def truth_decisions(small_world: WorldSpec, truth_hold: pd.DataFrame) -> Decisions:
    """The logged decisions of :func:`truth_hold` in the small world's terms."""
    divisors = small_world.actions.list_divisors(AMOUNTS)
    return holdout_decisions(small_world, truth_hold, divisors)


def test_the_true_world_is_calibrated_on_its_own_logs(
    small_world: WorldSpec, truth_decisions: Decisions
) -> None:
    assert truth_decisions.propensity_source == "logged"
    table = action_calibration(small_world, truth_decisions, SETTINGS)
    assert set(table["action"]) == set(small_world.actions.names)
    assert set(table["response"]) == {"conversions", "revenue", "optouts"}
    assert not table["flagged"].any()
    measured = table[np.isfinite(table["gap_low"])]
    assert len(measured) == len(table)
    # every interval covers agreement (0 gap)
    assert ((measured["gap_low"] <= 0) & (measured["gap_high"] >= 0)).all(), measured


def _wrong_action_effect(world: WorldSpec, action: str, lift: float) -> WorldSpec:
    segments = tuple(
        replace(s, action_logit={**s.action_logit, action: s.action_logit[action] + lift})
        for s in world.segments
    )
    return replace(world, segments=segments)


def test_a_wrong_action_effect_is_flagged_naming_the_action(
    small_world: WorldSpec, truth_decisions: Decisions
) -> None:
    wrong = _wrong_action_effect(small_world, "discount_offer", 1.0)
    table = action_calibration(wrong, truth_decisions, SETTINGS)
    flagged = table[table["flagged"]]
    assert set(flagged["action"]) == {"discount_offer"}
    assert "conversions" in set(flagged["response"])
    row = flagged[flagged["response"] == "conversions"].iloc[0]
    assert row["gap_low"] > SETTINGS.action_tolerance  # over-predicted beyond the tolerance
    fidelity = CardFidelity(table, pd.DataFrame(), _mape(0.1, 0.2), None, "logged", SETTINGS)
    reasons = fidelity.reasons()
    assert any("over-predicts the conversions of 'discount_offer'" in r for r in reasons)
    # switched off: the action's effect removed from the world is flagged as under-predicted
    off = _wrong_action_effect(small_world, "discount_offer", -3.0)
    table_off = action_calibration(off, truth_decisions, SETTINGS)
    row_off = table_off[
        (table_off["action"] == "discount_offer") & (table_off["response"] == "conversions")
    ].iloc[0]
    assert row_off["flagged"] and row_off["gap_high"] < -SETTINGS.action_tolerance


def _mape(world: float, reference: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "predictor": ["this world", "own past rate"],
            "conversions_mape": [world, reference],
            "revenue_mape": [world, reference],
        }
    )


def test_weekly_mape_is_the_hand_computed_one() -> None:
    weeks = np.array([40, 41, 42])
    weekly = pd.DataFrame(
        {
            "week": np.repeat(weeks, 2),
            "grouping": "all",
            "group": "all",
            "metric": ["conversions", "revenue"] * 3,
            "actual": [10.0, 100.0, 20.0, 300.0, 0.0, 50.0],
            "simulated": [12.0, 90.0, 15.0, 330.0, 5.0, 40.0],
            "simulated_sd": 1.0,
        }
    )
    reference = np.array([[11.0, np.nan], [11.0, np.nan], [11.0, np.nan]])
    tracking = tracking_curves(weekly, weeks, {"BG/NBD": reference})
    mape = tracking_mape(tracking).set_index("predictor")
    # conversions: week 42's actual is 0 and is left out: (2/10 + 5/20) / 2
    assert mape.loc["this world", "conversions_mape"] == pytest.approx((0.2 + 0.25) / 2)
    # revenue: (10/100 + 30/300 + 10/50) / 3
    assert mape.loc["this world", "revenue_mape"] == pytest.approx((0.1 + 0.1 + 0.2) / 3)
    assert mape.loc["BG/NBD", "conversions_mape"] == pytest.approx((0.1 + 9 / 20) / 2)
    assert np.isnan(mape.loc["BG/NBD", "revenue_mape"])  # no revenue forecast


def test_the_verdict_names_each_failed_check() -> None:
    by_action = pd.DataFrame(
        {
            "action": ["none"],
            "response": ["conversions"],
            "gap": [0.01],
            "gap_low": [-0.05],
            "gap_high": [0.07],
            "flagged": [False],
        }
    )
    good = CardFidelity(by_action, pd.DataFrame(), _mape(0.05, 0.06), None, "logged", SETTINGS)
    assert good.reasons() == []
    worse = replace(good, mape=_mape(0.09, 0.06))
    assert worse.reasons() == [
        "its weekly conversions tracking MAPE 9.0 % is above own past rate's 6.0 %",
        "its weekly revenue tracking MAPE 9.0 % is above own past rate's 6.0 %",
    ]
    assert replace(worse, settings=replace(SETTINGS, mape_slack=0.05)).reasons() == []
    point = {"hold-out conversions total, rel. error": 0.02}
    wide = spread_table(point, [{k: v - 0.05 for k, v in point.items()}, point])
    assert wide["members_sd"].iloc[0] == pytest.approx(np.std([-0.03, 0.02], ddof=1))
    # SD 3.5 points of 2 members: its interval reaches below 3 points, nothing is shown
    assert replace(good, spread=wide).reasons() == []
    reasons = replace(good, spread=wide, settings=replace(SETTINGS, max_ensemble_sd=0.01))
    assert reasons.reasons() == [
        "its ensemble members' hold-out conversions totals spread by SD 3.5 points (95 % "
        "interval 1.6 to 112.8 from 2 members; at most 1)"
    ]


def test_the_spread_of_few_members_comes_with_the_interval_of_its_sd() -> None:
    """An SD of 5 members estimates the spread within a factor of 0.6 to 2.9 (95 %, chi-square
    with 4 degrees of freedom): the spread table gives each SD's interval and its number of
    members; the verdict refuses a spread only when the whole interval lies above the limit,
    and its reason quotes both."""
    assert sd_interval(1.0, 5) == pytest.approx((0.5991, 2.8735), abs=1e-4)
    assert sd_interval(2.0, 30) == pytest.approx((1.5928, 2.6886), abs=1e-4)
    assert all(np.isnan(sd_interval(1.0, 1))) and all(np.isnan(sd_interval(np.nan, 5)))
    name = "hold-out revenue total, rel. error"
    members = [{name: v} for v in (-0.02, 0.01, 0.03, -0.01, 0.05)]
    table = spread_table({name: 0.01, "other": 1.0}, members)
    row = table.iloc[0]
    sd = np.std([-0.02, 0.01, 0.03, -0.01, 0.05], ddof=1)
    assert row["members"] == 5 and row["members_sd"] == pytest.approx(sd)
    assert (row["members_sd_low"], row["members_sd_high"]) == sd_interval(sd, 5)
    assert table.iloc[1]["members"] == 0 and np.isnan(table.iloc[1]["members_sd_high"])
    by_action = pd.DataFrame(columns=["action", "response", "gap", "gap_low", "gap_high"])
    fidelity = CardFidelity(
        by_action.assign(flagged=pd.Series(dtype=bool)),
        pd.DataFrame(),
        _mape(0.05, 0.06),
        table,
        "logged",
        replace(SETTINGS, max_ensemble_sd=0.01),
    )
    lo, hi = sd_interval(sd, 5)
    assert 0.01 < lo < 0.02 < sd  # shown above 1 point; above 2 points only by the SD itself
    assert fidelity.reasons() == [
        f"its ensemble members' hold-out revenue totals spread by SD {100 * sd:.1f} points "
        f"(95 % interval {100 * lo:.1f} to {100 * hi:.1f} from 5 members; at most 1)"
    ]
    assert replace(fidelity, settings=replace(SETTINGS, max_ensemble_sd=0.02)).reasons() == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("action_tolerance", 0.0, "action_tolerance must be in"),
        ("min_action_share", 1.5, "min_action_share must be in"),
        ("n_boot", 5, "n_boot must be >= 10"),
        ("mape_slack", -0.1, "mape_slack must be >= 0"),
        ("max_ensemble_sd", 0.0, "max_ensemble_sd must be > 0"),
    ],
)
def test_card_config_refuses_bad_thresholds(field: str, value: float, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CardConfig(**{field: value})  # type: ignore[arg-type]


def test_the_card_shows_by_action_tracking_and_spread(
    small_calibration: CalibrationResult,
) -> None:
    fidelity = small_calibration.fidelity
    assert fidelity is not None and fidelity.spread is not None
    out = small_calibration.output_dir
    card = (out / "card.md").read_text()
    for heading in (
        "## Calibration by action on the hold-out's logged decisions",
        "## Weekly tracking of the hold-out",
        "## Spread across the ensemble members",
    ):
        assert heading in card
    for name in (
        "holdout_by_action.csv",
        "holdout_tracking.csv",
        "holdout_tracking.png",
        "holdout_tracking_mape.csv",
        "ensemble_spread.csv",
    ):
        assert (out / name).is_file(), name
    assert "| rel_error | members_sd | members_min | members_max |" in card
    assert "| this world: members' SD |" in card
    tracking = pd.read_csv(out / "holdout_tracking.csv")
    assert {"this world", "own past rate", "member 0", "member 1"} <= set(tracking["predictor"])
    assert "sim/holdout_weekly_conversions_mape" in small_calibration.metrics
    assert "sim/ensemble_sd_holdout_revenue_rel_error" in small_calibration.metrics
    # with enough customers, the ensemble agrees within the accepted spread
    assert not any("ensemble members" in r for r in fidelity.reasons())


def test_too_few_customers_flip_the_verdict(small_logs: Path, tmp_path: Path) -> None:
    """The small calibration (3,000 customers) has no spread reason (above); 120 do."""
    cfg = calibration_config(small_logs, tmp_path / "few", max_customers=120)
    few = calibrate(replace(cfg, calibration=replace(cfg.calibration, ensemble_size=3)))
    assert few.fidelity is not None
    reasons = few.fidelity.reasons()
    assert any("ensemble members' hold-out" in r for r in reasons), reasons
    card = (tmp_path / "few" / "card.md").read_text()
    assert "ensemble members' hold-out" in card.splitlines()[2]


def test_the_value_by_action_over_two_weeks_is_the_gates_check(
    small_world: WorldSpec, truth_hold: pd.DataFrame
) -> None:
    truth = value_calibration(small_world, truth_hold, SETTINGS, 0.995, AMOUNTS)
    assert set(truth["response"]) == {"value (2 weeks)"}
    assert set(truth["action"]) == set(small_world.actions.names)  # each >= 2 % of decisions
    assert not truth["flagged"].any()
    assert ((truth["gap_low"] <= 0) & (truth["gap_high"] >= 0)).all(), truth
    off = _wrong_action_effect(small_world, "discount_offer", -3.0)
    table = value_calibration(off, truth_hold, SETTINGS, 0.995, AMOUNTS)
    assert list(table.loc[table["flagged"], "action"]) == ["discount_offer"]
    off_settings = replace(SETTINGS, value_weeks=0)
    assert value_calibration(off, truth_hold, off_settings, 0.995, AMOUNTS).empty
