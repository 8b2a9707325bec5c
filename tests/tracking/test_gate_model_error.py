"""The gate's value intervals count the calibrated world's own error: the ensemble members'
disagreement and the model check's bias bound (tracking.promotion.simulation_evidence,
model_error_interval, bias_bound, value_verdict)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from journeyopt.agents.baselines import StaffPolicy
from journeyopt.cli.promote import (
    GateConfig,
    components_table,
    load_served,
    resolve_candidate,
    run_gate,
)
from journeyopt.evaluation.ope.model_check import ModelCheckSettings, gap_interval
from journeyopt.sim.config import shipped_practice
from journeyopt.sim.world import load_world
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.promotion import (
    bias_bound,
    decide,
    model_error_interval,
    simulation_evidence,
    value_verdict,
)
from journeyopt.tracking.registry import PolicyRegistry
from tests.evaluation.ope.wrong_world import booking_odds_scaled
from tests.tracking.test_promotion import cloned_myopic, gate_config, recent_logs, register

__all__ = ["recent_logs"]  # the module's logs fixture


def member_values(
    rng: np.random.Generator, n: int, shifts: list[float]
) -> tuple[np.ndarray, np.ndarray]:
    """(M, N) candidate and champion values per member: the same customers' noise in every
    member (common random numbers), the candidate's mean shifted per member."""
    noise = rng.normal(0.0, 5.0, n)
    champion = 100.0 + rng.normal(0.0, 20.0, n)
    candidate = champion + 2.0 + noise
    return np.stack([candidate + s for s in shifts]), np.stack([champion] * len(shifts))


def test_identical_members_give_the_sampling_interval_and_disagreeing_ones_widen_it() -> None:
    rng = np.random.default_rng(0)
    cand, champ = member_values(rng, 500, [0.0, 0.0, 0.0])
    one = simulation_evidence("world", cand[0], champ[0], 0.95, 0.0)
    same = simulation_evidence("ensemble", cand, champ, 0.95, 0.0)
    assert same.improvement == pytest.approx(one.improvement)
    assert same.lower_bound == pytest.approx(one.lower_bound)
    assert same.ci_high == pytest.approx(one.ci_high)
    assert one.lower_bound == pytest.approx(one.sampling_low)
    assert same.members_sd == pytest.approx(0.0, abs=1e-12)

    spread = simulation_evidence("ensemble", *member_values(rng, 500, [-3.0, 0.0, 3.0]), 0.95, 0.0)
    assert spread.members_sd == pytest.approx(3.0, rel=1e-9)
    sampling_half = spread.improvement - spread.sampling_low
    z = 1.6448536269514722
    assert spread.improvement - spread.lower_bound == pytest.approx(
        np.hypot(sampling_half, z * 3.0)
    )
    assert spread.lower_bound < spread.sampling_low and spread.ci_high > spread.sampling_high
    # sampling alone shows the gain; the members' disagreement does not: inconclusive
    assert spread.sampling_low > 0 and spread.lower_bound < 0
    assert not spread.passed and spread.inconclusive
    assert "members disagree (SD 3.00)" in spread.more_data
    assert decide([spread]).verdict == "inconclusive"
    assert "members SD 3.00" in spread.components


def test_the_bias_bound_adds_to_the_interval_and_never_turns_evidence_against_around() -> None:
    assert bias_bound(0.1, 200.0, -100.0) == pytest.approx(30.0)
    assert np.isnan(bias_bound(float("nan"), 1.0, 1.0))
    with pytest.raises(ValueError, match=">= 0"):
        bias_bound(-0.1, 1.0, 1.0)
    low, high = model_error_interval(10.0, 8.0, 13.0, float("nan"), 5.0, 0.95)
    assert (low, high) == pytest.approx((3.0, 18.0))
    assert model_error_interval(10.0, 8.0, 13.0, float("nan"), float("nan"), 0.95) == (8.0, 13.0)
    assert value_verdict(1.0, 2.0, 0.0) == (True, False, "")
    passed, inconclusive, note = value_verdict(-1.0, 2.0, 0.0)
    assert not passed and inconclusive and "once the world's own error" in note
    passed, inconclusive, note = value_verdict(-3.0, -1.0, 0.0)
    assert not passed and not inconclusive and note == "lower bound -3.000 is not above 0"


def biased_world_case(x: float, seed: int) -> tuple[float, float, float, float, float]:
    """A world that over-predicts the logging policy's value by ``x`` (relative) and errs on
    the two compared policies by ``x`` in opposite directions (the worst case the bound
    allows): the truth, the model check's bound from the logs, and the gate's sampling and
    model-error intervals. Values per customer: logging policy 50, candidate 60, champion 55
    (true uplift +5); the world says 60 (1 + x), 55 (1 - x)."""
    rng = np.random.default_rng(seed)
    n_logged, n_sim = 2000, 1000
    realised = rng.gamma(2.0, 25.0, n_logged)  # the logging policy's realised value, mean 50
    predicted = 50.0 * (1 + x) + rng.normal(0.0, 5.0, n_logged)  # the world's prediction
    _, gap_low, gap_high = gap_interval(
        realised, predicted, ModelCheckSettings(n_boot=200, confidence=0.9, seed=seed)
    )
    relative_error = max(abs(gap_low), abs(gap_high))
    customers = rng.normal(0.0, 10.0, n_sim)  # common random numbers
    candidate = 60.0 * (1 + x) + customers + rng.normal(0.0, 3.0, n_sim)
    champion = 55.0 * (1 - x) + customers + rng.normal(0.0, 3.0, n_sim)
    old = simulation_evidence("world", candidate, champion, 0.95, 0.0)
    new = simulation_evidence(
        "world", candidate, champion, 0.95, 0.0, relative_error=relative_error
    )
    return 5.0, old.lower_bound, old.ci_high, new.lower_bound, new.ci_high


def test_a_world_biased_on_the_logging_policy_gets_an_interval_that_covers_the_truth() -> None:
    """Closed form: biased by 8 % the world predicts an uplift of 60 * 1.08 - 55 * 0.92 =
    14.2 instead of 5; the sampling interval (about +-0.3) misses it every time, the interval
    with the model check's bias bound (about 0.08 * 115 = 9.2 and more) covers it."""
    old_covered = new_covered = 0
    for seed in range(20):
        truth, old_low, old_high, new_low, new_high = biased_world_case(0.08, seed)
        old_covered += old_low <= truth <= old_high
        new_covered += new_low <= truth <= new_high
    assert old_covered == 0
    assert new_covered == 20
    # an unbiased world keeps a narrow interval around the truth: the bound is the check's
    # own sampling error only
    truth, _, _, low, high = biased_world_case(0.0, 0)
    assert low <= truth <= high and high - low < 10.0


def test_the_gate_widens_both_value_tests_for_an_ensemble_that_disagrees(
    mlflow_sqlite: TrackingConfig, recent_logs: Path
) -> None:
    """The real gate with two members, the coworking world and one with booking odds 1.3
    times as high: one simulation row and one OPE row against the baseline, each with the
    members' SD of the improvement, the model check's bias bound, and an interval wider than
    its sampling part; with ``gate.model_error=false`` the old, sampling-only intervals."""
    registry = PolicyRegistry(mlflow_sqlite)
    better = register(mlflow_sqlite, cloned_myopic(recent_logs), "myopic_clone")
    cfg = gate_config(f"models:/{registry.name}/{better}", recent_logs, mlflow_sqlite)
    world = load_world("coworking")
    members = (world, booking_odds_scaled(world, 1.3))
    version = resolve_candidate(registry, cfg.candidate)
    candidate = load_served(version, mlflow_sqlite, world, "candidate")
    staff = StaffPolicy(world, shipped_practice("coworking").to_practice())

    decision = run_gate(cfg, world, members, version, candidate, staff, "staff_rules")
    rows = {e.test: e for e in decision.evidence if e.blocking}
    check = next(e for e in decision.evidence if e.key == "model_check")
    bound = max(abs(check.lower_bound), abs(check.ci_high))
    for test in ("simulation", "ope"):
        e = rows[test]
        assert e.members_sd > 0 and e.relative_error == pytest.approx(bound)
        assert e.bias > 0
        assert e.lower_bound < e.sampling_low and e.ci_high > e.sampling_high
        assert e.improvement - e.lower_bound >= e.bias
    simulation = rows["simulation"]
    assert simulation.source.startswith("mean of 2 members (uplifts ")
    assert simulation.bias_logging == pytest.approx(
        bound * (abs(simulation.candidate) + abs(simulation.champion))
    )
    # the per-action part (tests/tracking/test_gate_action_error.py): the larger one counts
    assert simulation.bias_actions > 0 and np.isfinite(simulation.candidate_error)
    assert simulation.bias == max(simulation.bias_logging, simulation.bias_actions)
    metrics = decision.metrics()
    for part in ("sampling_ci_low", "members_sd", "bias", "model_check_bound"):
        assert f"gate/simulation_{part}" in metrics and f"gate/ope_{part}" in metrics
    assert components_table(decision) is not None

    cfg.gate = GateConfig(model_error=False)
    old = run_gate(cfg, world, members, version, candidate, staff, "staff_rules")
    before = {e.test: e for e in old.evidence if e.blocking}
    assert before["simulation"].lower_bound == pytest.approx(simulation.sampling_low)
    assert before["ope"].lower_bound == pytest.approx(rows["ope"].sampling_low)
    assert np.isnan(before["ope"].members_sd) and np.isnan(before["simulation"].bias)
    assert components_table(old) is None
