"""The business's contact rules enter the calibration: the summary selection chooses among the
candidates that represent them, the world's exact optimum planned under them is never
corrected by them when executed, the choice without rules is the choice of before, and a rule
no candidate can represent is a loud line on the card and a reason of its verdict."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from journeyopt.calibration.config import CalibrateConfig, SummaryConfig, register_configs
from journeyopt.calibration.pipeline import CalibrationResult, calibrate
from journeyopt.calibration.policy_fidelity import policy_fidelity
from journeyopt.calibration.rules_check import dropped_contacts, with_rule_components
from journeyopt.calibration.summary import candidate_specs, summary_lines
from journeyopt.cli.entry import to_object
from journeyopt.sim.config import CapConfig, RulesConfig
from journeyopt.sim.optimum import solve_optimum
from journeyopt.sim.summary_rules import plan_rules, rule_components, unseen_rules
from journeyopt.sim.world import load_world
from tests.calibration.conftest import CONFIGS, calibration_config

WINDOW = 4
"""An all-channel cap's window, weeks: it counts the 3 weeks before a decision, which a
3-week contact pattern represents and the candidates the user listed (no pattern) do not."""

HORIZON = 12


def all_channel_rules(*windows: int) -> RulesConfig:
    return RulesConfig(caps=[CapConfig(max=2, window_weeks=w, over="all") for w in windows])


def _config(logs: Path, out: Path, rules: RulesConfig, truth: str = "") -> CalibrateConfig:
    cfg = calibration_config(
        logs,
        out,
        truth,
        summary=SummaryConfig(select=True, pattern_weeks=[0], last_action=[False]),
        workers=1,
    )
    cal = replace(cfg.calibration, ensemble_size=0, holdout_runs=1, policy_horizon_weeks=HORIZON)
    return replace(cfg, calibration=cal, rules=rules)


def _calibrate(logs: Path, out: Path, rules: RulesConfig, truth: str = "") -> CalibrationResult:
    return calibrate(_config(logs, out, rules, truth))


@pytest.fixture(scope="module")
def with_rule(
    small_logs: Path, small_world_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> CalibrationResult:
    """Calibrated under the rule, with the ground truth: the card's policy values too."""
    out = tmp_path_factory.mktemp("rule")
    return _calibrate(small_logs, out, all_channel_rules(WINDOW), str(small_world_path))


def test_the_rule_adds_the_pattern_it_needs_to_the_candidates() -> None:
    rules = all_channel_rules(WINDOW, 9).for_world(load_world("coworking"), "rules")
    assert rule_components(rules) == ((3, 8), False, False)  # 8 weeks: longer than any pattern
    listed = SummaryConfig(select=True, pattern_weeks=[0], last_action=[False])
    extended = with_rule_components(listed, rules)
    assert extended.pattern_weeks == [0, 3] and extended.last_action == [False]
    specs = candidate_specs(CAPS_SPEC, extended)
    assert [s.contact_pattern_weeks for s in specs] == [0, 3]
    assert unseen_rules(rules, specs[0]) and len(unseen_rules(rules, specs[1])) == 1
    fixed = replace(listed, select=False)  # the caps as given: nothing to choose among
    assert with_rule_components(fixed, rules) is fixed


def test_the_chosen_summary_represents_the_rule_and_its_optimum_drops_nothing(
    with_rule: CalibrationResult,
) -> None:
    world = with_rule.estimate.calibrated.world
    meta = with_rule.estimate.calibrated.meta
    assert world.discrete.contact_pattern_weeks == WINDOW - 1
    candidates = meta["summary_selection"]["candidates"]
    assert [c["contact_pattern_weeks"] for c in candidates] == [0, 3]
    assert candidates[0]["unseen_rules"] and not candidates[1]["unseen_rules"]
    rules = all_channel_rules(WINDOW).for_world(world, "rules")
    assert plan_rules(rules, world).unseen == ()
    assert meta["contact_rules"]["unseen"] == []
    assert "all contacts <= 2 in any 4 weeks" in meta["contact_rules"]["represented"]
    saved = (with_rule.output_dir / "calibration.json").read_text()
    assert '"contact_rules"' in saved and "all contacts <= 2 in any 4 weeks" in saved
    planned = solve_optimum(world, HORIZON, 0.99, rules=rules)
    total, dropped = dropped_contacts(world, planned, rules, 3000, 0.99, seed=4)
    assert total > 300 and dropped == 0
    unaware = solve_optimum(world, HORIZON, 0.99)  # the same world planned without the rule
    total, dropped = dropped_contacts(world, unaware, rules, 3000, 0.99, seed=4)
    assert dropped > 0.01 * total
    card = (with_rule.output_dir / "card.md").read_text()
    assert "UNSEEN" not in card and "every configured rule is represented" in card


def test_the_cards_policy_values_are_under_the_configured_rules(
    small_logs: Path, small_world_path: Path, with_rule: CalibrationResult
) -> None:
    """Every policy of the card's policy-value table is valued under the rules the calibration
    was given (the rules it is served under), in the truth and in the calibrated world; it was
    valued under each world's own rule (opt-outs only), which let an always-contact policy
    contact every week."""
    assert with_rule.policies is not None
    rules = all_channel_rules(WINDOW)
    cfg = _config(small_logs, Path("unused"), rules, str(small_world_path))
    truth, world = load_world(small_world_path), with_rule.estimate.calibrated.world
    served = policy_fidelity(truth, world, cfg.calibration, rules)
    pd.testing.assert_frame_equal(with_rule.policies.table, served.table)


def test_without_rules_the_choice_is_the_one_of_before(
    small_logs: Path, tmp_path: Path, with_rule: CalibrationResult
) -> None:
    before = _calibrate(small_logs, tmp_path / "none", RulesConfig())
    meta = before.estimate.calibrated.meta
    assert before.estimate.calibrated.world.discrete.contact_pattern_weeks == 0
    assert [c["label"] for c in meta["summary_selection"]["candidates"]] == ["base"]
    assert meta["contact_rules"] == {
        "rules": "opt-outs only",
        "represented": "opt-outs only",
        "unseen": [],
        "planned_contacts": 0,
        "dropped": 0,
    }
    base = meta["summary_selection"]["candidates"][0]
    scored = with_rule.estimate.calibrated.meta["summary_selection"]["candidates"][0]
    assert base["loglik"] == scored["loglik"]  # the same candidate, scored the same way
    assert "contact rule" not in (before.output_dir / "card.md").read_text().split("\n")[2]


def test_a_rule_no_candidate_represents_is_on_the_card_and_in_the_verdict(
    small_logs: Path, tmp_path: Path
) -> None:
    result = _calibrate(small_logs, tmp_path / "unseen", all_channel_rules(9))
    world = result.estimate.calibrated.world
    assert world.discrete.contact_pattern_weeks == 0  # the choice is kept
    record = result.estimate.calibrated.meta["contact_rules"]
    assert len(record["unseen"]) == 1 and record["unseen"][0].startswith(
        "all contacts <= 2 in any 9 weeks"
    )
    assert record["planned_contacts"] > 0 and 0 < record["dropped"] < record["planned_contacts"]
    assert result.estimate.calibrated.meta["summary_selection"]["dp_seconds"] > 0  # one solve
    card = (result.output_dir / "card.md").read_text()
    verdict = card.split("\n")[2]
    assert "NOT good enough" in verdict
    assert "do not see the contact rule(s) all contacts <= 2 in any 9 weeks" in verdict
    assert "% of the contacts its optimum plans" in verdict
    assert "**WARNING: the state summary does not represent 1 contact rule(s)**" in card
    assert "- UNSEEN: all contacts <= 2 in any 9 weeks" in card
    assert result.metrics["sim/rules_unseen"] == 1.0
    assert result.metrics["sim/rules_dropped_share"] > 0


def test_a_two_week_cap_of_one_channel_asks_for_the_last_action() -> None:
    world = load_world("coworking")
    channel = world.channels[0]
    rules = RulesConfig(caps=[CapConfig(max=1, window_weeks=2, channels=[channel])]).for_world(
        world, "rules"
    )
    assert rule_components(rules) == ((), True, False)
    listed = SummaryConfig(select=True, pattern_weeks=[0], last_action=[False])
    assert with_rule_components(listed, rules).last_action == [False, True]
    assert unseen_rules(rules, CAPS_SPEC) and not unseen_rules(
        rules, replace(CAPS_SPEC, last_action=True)
    )


def test_the_card_names_each_candidates_unseen_rules_and_the_price_of_the_rules() -> None:
    record = {
        "n_validation_weeks": 100,
        "tolerance_se": 1.0,
        "rules": "all contacts <= 2 in any 5 weeks",
        "rules_cost": [0.0002, 0.0001],
        "candidates": [
            {
                "label": "base",
                "n_states": 10,
                "loglik": -0.3,
                "se": 0.0001,
                "chosen": False,
                "unseen_rules": ["all contacts <= 2 in any 5 weeks: it counts contacts"],
            },
            {
                "label": "pattern 4w",
                "n_states": 40,
                "loglik": -0.3002,
                "se": 0.0,
                "chosen": True,
                "unseen_rules": [],
            },
        ],
        "n_states": 40,
        "n_actions": 5,
        "dp_horizon_weeks": 52,
        "dp_seconds": 1.0,
    }
    lines = summary_lines({"summary_selection": record})
    text = "\n".join(lines)
    assert "among the candidates that miss the fewest contact rules" in text
    assert any(
        line.startswith("| base ") and line.endswith("| all contacts <= 2 in any 5 weeks |")
        for line in lines
    )
    assert any(line.startswith("| pattern 4w ") and line.endswith("| none |") for line in lines)
    assert "trails it by 0.00020 nats per customer-week (SE 0.00010)" in text
    record.update(rules="opt-outs only", rules_cost=None)
    text = "\n".join(summary_lines({"summary_selection": record}))
    assert "contact rules" not in text and "trails" not in text


def test_calibrate_takes_the_rules_group() -> None:
    """``journeyopt-calibrate`` composes ``rules`` like train and serve, opt-outs only by
    default."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        default = compose("calibrate", overrides=["data=roastery", "output_dir=x"])
        roastery = compose(
            "calibrate", overrides=["data=roastery", "output_dir=x", "rules=roastery"]
        )
    assert to_object(default.rules, RulesConfig) == RulesConfig()
    assert to_object(roastery.rules, RulesConfig).total_cap == 2


CAPS_SPEC = load_world("coworking").discrete
