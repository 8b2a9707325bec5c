"""Shared fixtures of the serving tests: a linear policy of the coworking world registered in
a SQLite MLflow store (alias ``champion``), its downloaded model folder, and small demo logs
of the coworking world in the source's raw format."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytest
from hydra import compose, initialize_config_module

from journeyopt.agents.sb3 import policy_spec
from journeyopt.cli.entry import to_object
from journeyopt.cli.ingest import IngestConfig
from journeyopt.data.source import SourceConfig
from journeyopt.serving.config import HoldoutConfig, ServingConfig
from journeyopt.serving.served_model import ServedModel, load_served_model
from journeyopt.sim.config import GenerateConfig, shipped_practice, shipped_rules
from journeyopt.sim.logs import generate_logs, write_logs
from journeyopt.sim.observation import observation_layout
from journeyopt.sim.world import WorldSpec, load_world
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.model import LinearSoftmaxPolicy, log_policy_model
from journeyopt.tracking.registry import CHAMPION, PolicyRegistry
from journeyopt.tracking.run import tracked_run

AS_OF = "2024-03-06"


@dataclass(frozen=True)
class Registered:
    """A registered policy: the store, the version and the downloaded model folder."""

    tracking: TrackingConfig
    version: str
    folder: Path
    policy: LinearSoftmaxPolicy


@pytest.fixture(scope="session")
def world() -> WorldSpec:
    return load_world("coworking")


def linear_policy(world: WorldSpec, seed: int, scale: float = 3.0) -> LinearSoftmaxPolicy:
    """A linear softmax policy of the coworking world with random weights (varied actions)."""
    layout = observation_layout(world)
    spec = policy_spec(world, layout)
    rng = np.random.default_rng(seed)
    weights = rng.normal(scale=scale, size=(layout.size, world.actions.n_actions))
    return LinearSoftmaxPolicy(spec, weights, rng.normal(size=world.actions.n_actions))


def register(tracking: TrackingConfig, policy: LinearSoftmaxPolicy, alias: str = CHAMPION) -> str:
    """Log ``policy`` as a pyfunc model, register it and point ``alias`` at it."""
    d, a = len(policy.spec.feature_names), len(policy.spec.action_names)
    with tracked_run({}, "serving-test", tracking=tracking, log_config=False) as run:
        info = log_policy_model(run, policy, np.zeros((2, d), np.float32), np.ones((2, a), bool))
    assert info is not None
    registry = PolicyRegistry(tracking)
    version = registry.register(info).version
    registry.set_alias(alias, version)
    return version


@pytest.fixture(scope="session")
def registered(
    tmp_path_factory: pytest.TempPathFactory, mlflow_migrated_db: Path, world: WorldSpec
) -> Iterator[Registered]:
    """One champion for the whole session (the store is never modified by the tests)."""
    root = tmp_path_factory.mktemp("registry")
    shutil.copyfile(mlflow_migrated_db, root / "mlflow.db")
    tracking = TrackingConfig(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        experiment="serving-tests",
        artifact_location=(root / "mlruns").as_uri(),
        flush_every_seconds=3600.0,
    )
    policy = linear_policy(world, seed=3)
    version = register(tracking, policy)
    folder = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/journey-policy/{version}",
            dst_path=str(root / "local"),
            tracking_uri=tracking.tracking_uri,
            registry_uri=tracking.tracking_uri,
        )
    )
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    yield Registered(tracking, version, folder, policy)


@pytest.fixture(scope="session")
def served(registered: Registered) -> ServedModel:
    return load_served_model("models:/journey-policy@champion", registered.tracking)


@pytest.fixture(scope="session")
def settings() -> ServingConfig:
    """Serving settings with a large control group, so both groups show in small tests."""
    cfg = ServingConfig(
        world="coworking",
        rules=shipped_rules("coworking"),
        holdout=HoldoutConfig(staff=shipped_practice("coworking")),
    )
    cfg.holdout.control_share = 0.3
    return cfg


@pytest.fixture(scope="session")
def demo_logs(tmp_path_factory: pytest.TempPathFactory, world: WorldSpec) -> Path:
    """Raw coworking logs: 400 customers over 12 weeks from 2024-01-01."""
    cfg = GenerateConfig(
        staff=shipped_practice("coworking"),
        output_dir="unused",
        seed=4,
        n_customers=400,
        weeks=12,
        start_date="2024-01-01",
    )
    folder = tmp_path_factory.mktemp("logs") / "raw"
    write_logs(generate_logs(world, cfg, np.random.default_rng(4)), folder)
    return folder


@pytest.fixture(scope="session")
def demo_source(demo_logs: Path) -> SourceConfig:
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = compose(
            "ingest", overrides=["data=coworking", f"data.path={demo_logs}", "output_dir=x"]
        )
    return to_object(cfg, IngestConfig).data
