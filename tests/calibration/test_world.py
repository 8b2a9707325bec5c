"""A calibrated world loads like a world spec and runs through the simulator's interfaces
unchanged; its ensemble is sampled per episode."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from journeyopt.agents.baselines import NoContact, StaffPolicy, UniformRandom
from journeyopt.calibration.calibrated import CalibratedWorld, align_segments
from journeyopt.calibration.pipeline import CalibrationResult
from journeyopt.calibration.policy_fidelity import check_truth
from journeyopt.calibration.weeks import panel_summary
from journeyopt.errors import ConfigError
from journeyopt.evaluation.simulate import evaluate_policies
from journeyopt.sim.discrete import DiscreteLayout, summarise
from journeyopt.sim.dynamics import ResponseTable, response_probabilities
from journeyopt.sim.env import CustomerJourneyEnv
from journeyopt.sim.optimum import solve_optimum
from journeyopt.sim.vec_env import PopulationVecEnv
from journeyopt.sim.world import load_world
from tests.calibration.conftest import SMALL_PRACTICE


def test_folder_round_trip(small_calibration: CalibrationResult) -> None:
    out = small_calibration.output_dir
    for name in ("world.yaml", "responses.npz", "calibration.json", "card.md", "card.png"):
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.pkl"))
    loaded = CalibratedWorld.load(out)
    original = small_calibration.estimate.calibrated
    assert loaded.world.responses is not None and original.world.responses is not None
    np.testing.assert_array_equal(
        loaded.world.responses.convert_logit, original.world.responses.convert_logit
    )
    assert len(loaded.members) == len(original.members) == 2
    assert loaded.meta["data_fingerprint"] == original.meta["data_fingerprint"]
    assert loaded.world.segment_names == original.world.segment_names


def test_steps_through_env_vec_env_evaluation_and_optimum(
    small_calibration: CalibrationResult,
) -> None:
    world = load_world(small_calibration.output_dir)
    check_env(CustomerJourneyEnv(world, horizon_weeks=4, pool_size=50), skip_render_check=True)
    env = PopulationVecEnv(world, n_customers=64, horizon_weeks=3, pool_size=200, seed=0)
    obs = env.reset()
    for _ in range(3):
        obs, rewards, dones, _ = env.step(np.ones(64, np.int64))
    assert dones.all() and np.isfinite(rewards).all() and obs.shape[0] == 64
    optimum = solve_optimum(world, 6, 0.99)
    result = evaluate_policies(
        world,
        [
            NoContact(),
            UniformRandom(),
            StaffPolicy(world, SMALL_PRACTICE.practice_for(world, "staff")),
        ],
        n_customers=300,
        horizon_weeks=6,
        gamma=0.99,
        optimum=optimum,
    )
    rows = result.table[result.table["segment"] == "all"].set_index("policy")
    assert (rows["pct_of_optimum"] <= 100.0 + 5.0).all()
    assert rows.loc["no_contact", "contacts_per_customer_week"] == 0.0


def test_tables_equal_the_response_model(small_calibration: CalibrationResult) -> None:
    world = small_calibration.estimate.calibrated.world
    table = ResponseTable.of(world)
    layout = DiscreteLayout.of(world)
    states = layout.all_states()
    for woy in (1, 30):
        r = response_probabilities(world, states, np.full(layout.n_states, 2), woy)
        np.testing.assert_array_equal(
            table.convert(woy).reshape(layout.n_states, -1)[:, 2], r.convert
        )


def test_ensemble_members_differ_and_are_sampled(small_calibration: CalibrationResult) -> None:
    cal = small_calibration.estimate.calibrated
    a, b = (m.responses for m in cal.members)
    assert a is not None and b is not None
    assert not np.array_equal(a.convert_logit, b.convert_logit)
    drawn = {id(cal.sample(np.random.default_rng(s))) for s in range(20)}
    assert drawn == {id(m) for m in cal.members}


def test_panel_summary_agrees_with_the_world(small_calibration: CalibrationResult) -> None:
    world = small_calibration.estimate.calibrated.world
    rng = np.random.default_rng(0)
    n = 500
    import pandas as pd

    panel = pd.DataFrame(
        {
            "n_conversions": rng.integers(0, 5, n),
            "recency_weeks": np.where(rng.random(n) < 0.2, np.nan, rng.integers(1, 40, n)),
            "weeks_since_contact": np.where(rng.random(n) < 0.3, np.nan, rng.integers(1, 9, n)),
            "weeks_since_engagement": np.where(rng.random(n) < 0.3, np.nan, rng.integers(1, 12, n)),
            "opted_out_email": rng.random(n) < 0.2,
            "opted_out_phone": rng.random(n) < 0.2,
        }
    )
    segment = np.zeros(n, np.int64)
    ours = panel_summary(panel, segment, world.discrete, world.channels)
    theirs = summarise({c: panel[c].to_numpy() for c in panel}, segment, world)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_align_segments_rejects_other_names(small_calibration: CalibrationResult) -> None:
    world = small_calibration.estimate.calibrated.world
    assert align_segments(world, world.segment_names).segment_names == world.segment_names
    with pytest.raises(ValueError, match="permutation"):
        align_segments(world, ["someone_else"])


def test_ensemble_env_draws_a_member_per_episode(small_calibration: CalibrationResult) -> None:
    from journeyopt.calibration.ensemble import EnsembleVecEnv

    cal = small_calibration.estimate.calibrated
    env = EnsembleVecEnv(cal, n_customers=16, horizon_weeks=1, pool_size=50, seed=3)
    env.reset()
    worlds = set()
    for _ in range(12):
        worlds.add(id(env.world))
        _, rewards, dones, _ = env.step(np.zeros(16, np.int64))  # horizon 1: a reset per step
        assert dones.all() and np.isfinite(rewards).all()
    assert worlds == {id(m) for m in cal.members}
    assert env.episodes_per_member.sum() == 13


def test_a_truth_under_other_names_is_refused_before_fitting() -> None:
    """``calibration.truth_world`` with other segment (or action) names than the logs, e.g.
    the coworking world beside its renamed CRM export: one clear line, not a traceback
    after the fit."""
    truth = load_world("coworking")
    check_truth(truth, sorted(truth.segment_names), truth.actions.names)  # same names: fine
    with pytest.raises(ConfigError, match=r"its segments .* are not the logs' segments"):
        check_truth(truth, ["Firma", "Freelancer", "Startup"], truth.actions.names)
    with pytest.raises(ConfigError, match="are not the source's actions"):
        check_truth(truth, truth.segment_names, ("none", "newsletter"))
