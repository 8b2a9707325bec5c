"""``journeyopt-calibrate`` end to end on the vendored CDNOW sample (purchases only): an MLflow
run with the fidelity metrics and artifacts, a world whose contact effects are not identified,
and the refusal to search for a contact policy on it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient

from journeyopt.agents.baselines import MyopicPolicy
from journeyopt.agents.policy import Observation
from journeyopt.calibration.config import register_configs
from journeyopt.calibration.pipeline import CalibrationResult
from journeyopt.cli.calibrate import run
from journeyopt.errors import JourneyoptError, OutputExistsError
from journeyopt.panel.state import state_features
from journeyopt.sim.dynamics import sample_outcome_at
from journeyopt.sim.env import InitialPool
from journeyopt.sim.optimum import solve_optimum
from journeyopt.sim.vec_env import PopulationVecEnv
from journeyopt.sim.world import load_world
from journeyopt.tracking.config import TrackingConfig
from tests.fixtures_mlflow import mlflow_isolated, sqlite_store

from .conftest import CONFIGS


@pytest.fixture(scope="module")
def cdnow_run(
    tmp_path_factory: pytest.TempPathFactory, mlflow_migrated_db: Path
) -> tuple[CalibrationResult, TrackingConfig]:
    """One tracked calibration of the sample for the module (its tests only read it)."""
    folder = tmp_path_factory.mktemp("cdnow_run")
    tracking = sqlite_store(folder, mlflow_migrated_db)
    register_configs()
    overrides = [
        "data=cdnow_sample",
        "panel=cdnow",
        "calibration=cdnow",
        "calibration.ensemble_size=1",
        "calibration.holdout_runs=2",
        f"output_dir={folder / 'cdnow'}",
        f"tracking.tracking_uri={tracking.tracking_uri}",
        f"tracking.experiment={tracking.experiment}",
        f"tracking.artifact_location={tracking.artifact_location}",
    ]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("calibrate", overrides=overrides)
    with mlflow_isolated():
        return run(cfg), tracking


def test_cli_logs_a_run_with_metrics_and_artifacts(
    cdnow_run: tuple[CalibrationResult, TrackingConfig],
) -> None:
    result, tracking = cdnow_run
    assert result.run_id is not None
    client = MlflowClient(tracking_uri=tracking.tracking_uri)
    data = client.get_run(result.run_id).data
    error = data.metrics["sim/holdout_conversions_rel_error"]
    assert error == pytest.approx(result.metrics["sim/holdout_conversions_rel_error"])
    assert len(data.params["data.fingerprint"]) == 64
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "world")}
    assert {
        "world/world.yaml",
        "world/card.md",
        "world/card.png",
        "world/responses.npz",
        "world/base.parquet",  # the starting population travels with the world
    } <= artifacts
    card = (result.output_dir / "card.md").read_text()
    assert "NOT identified" in card and "Hold-out" in card


def test_purchase_only_world_refuses_policy_search(
    cdnow_run: tuple[CalibrationResult, TrackingConfig],
) -> None:
    result, _ = cdnow_run
    world = load_world(result.output_dir)
    assert world.responses is not None and not world.responses.actions_identified
    with pytest.raises(JourneyoptError, match="effects of contacts are not identified"):
        solve_optimum(world, 4, 0.99)  # the first thing training does
    pool = InitialPool.draw(world, 20, 0, 52)
    features = state_features(pool.state, world.features)
    observation = Observation(features, pool.segment, 1, 0)
    with pytest.raises(JourneyoptError, match="cannot be used to search for"):
        MyopicPolicy(world).act(observation, np.ones((20, 1), bool), np.random.default_rng(0))
    # the organic dynamics still simulate
    env = PopulationVecEnv(world, n_customers=20, horizon_weeks=2, pool=pool, seed=0)
    env.reset()
    _, rewards, _, _ = env.step(np.zeros(20, np.int64))
    assert np.isfinite(rewards).all()


def test_existing_output_is_refused(cdnow_run: tuple[CalibrationResult, TrackingConfig]) -> None:
    result, _ = cdnow_run
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            "calibrate",
            overrides=[
                "data=cdnow_sample",
                "panel=cdnow",
                "calibration=cdnow",
                "tracking=off",
                f"output_dir={result.output_dir}",
            ],
        )
    with pytest.raises(OutputExistsError):
        run(cfg)


def test_contacts_refused_in_a_world_without_identified_contacts(
    small_calibration: CalibrationResult,
) -> None:
    world = small_calibration.estimate.calibrated.world
    assert world.responses is not None
    blind = replace(world, responses=replace(world.responses, actions_identified=False))
    states = np.zeros(5, np.int64)
    quiet = sample_outcome_at(blind, states, np.zeros(5, np.int64), 10, np.random.default_rng(0))
    assert quiet.actions.sum() == 0
    with pytest.raises(JourneyoptError, match="simulate contacts"):
        sample_outcome_at(blind, states, np.full(5, 2), 10, np.random.default_rng(0))
