"""The promotion gate: decisions in both directions against a real MLflow store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

import journeyopt
from journeyopt.agents.sb3 import policy_spec
from journeyopt.cli.entry import to_object
from journeyopt.cli.promote import GateConfig, PromoteConfig, PromoteOPEConfig, promote
from journeyopt.data.source import SourceConfig
from journeyopt.sim.config import GenerateConfig, SimulatorConfig
from journeyopt.sim.logs import generate_logs, write_logs
from journeyopt.sim.observation import observation_layout
from journeyopt.sim.world import load_world
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.model import LinearSoftmaxPolicy, log_policy_model
from journeyopt.tracking.promotion import (
    REFUSED_EXIT_CODE,
    Evidence,
    PromotionRefused,
    decide,
    simulation_evidence,
)
from journeyopt.tracking.registry import CHAMPION, PolicyRegistry
from journeyopt.tracking.run import tracked_run

CONFIGS = Path(journeyopt.__file__).parent / "configs"


def test_decide_names_failed_tests() -> None:
    good = simulation_evidence("world", np.array([2.0, 3.0, 4.0]), np.zeros(3), 0.95, 0.0)
    bad = Evidence("ope", "dr", 1.0, 1.0, 0.0, -0.5, 0.0, False, "lower bound -0.5 is not above 0")
    assert good.passed and decide([good]).promote
    decision = decide([good, bad])
    assert not decision.promote
    assert decision.reasons == ("ope test failed (dr): lower bound -0.5 is not above 0",)
    assert list(decision.table["test"]) == ["simulation", "ope"]
    with pytest.raises(ValueError, match="needs evidence"):
        decide([])


@pytest.fixture(scope="module")
def recent_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("logs")
    cfg = GenerateConfig(
        output_dir=str(out), n_customers=1500, weeks=8, exploration=0.3, initial_share=1.0
    )
    write_logs(
        generate_logs(load_world("coworking"), cfg, np.random.default_rng(0)), out, overwrite=True
    )
    return out


def register_fixed_action(settings: TrackingConfig, action: int, name: str) -> str:
    """A linear policy that always picks ``action`` when allowed, registered; its version."""
    world = load_world("coworking")
    spec = policy_spec(world, observation_layout(world))
    bias = np.full(len(spec.action_names), -20.0)
    bias[action] = 20.0
    policy = LinearSoftmaxPolicy(spec, np.zeros((len(spec.feature_names), len(bias))), bias)
    obs = np.zeros((2, len(spec.feature_names)), np.float32)
    masks = np.ones((2, len(bias)), bool)
    with tracked_run({}, name, tracking=settings, log_config=False) as run:
        info = log_policy_model(run, policy, obs, masks)
    assert info is not None
    return PolicyRegistry(settings).register(info).version


def gate_config(
    candidate: str, logs: Path, settings: TrackingConfig, gate: GateConfig | None = None
) -> PromoteConfig:
    source = OmegaConf.load(CONFIGS / "data" / "coworking.yaml")
    source.path = str(logs)
    return PromoteConfig(
        candidate=candidate,
        data=to_object(source, SourceConfig),
        simulator=SimulatorConfig(horizon_weeks=8),
        n_customers=600,
        gate=gate or GateConfig(),
        ope=PromoteOPEConfig(horizon_weeks=4, n_boot=100, min_ess_share=0.001),
        tracking=settings,
    )


def test_gate_in_both_directions(mlflow_sqlite: TrackingConfig, recent_logs: Path) -> None:
    registry = PolicyRegistry(mlflow_sqlite)
    # in the coworking world the newsletter pays for itself (5 cents a contact); silence loses
    calls = register_fixed_action(mlflow_sqlite, 1, "always_newsletter")
    quiet = register_fixed_action(mlflow_sqlite, 0, "no_contact")
    registry.promote(quiet, CHAMPION, reason="test set-up")

    # a fixed-action policy is far from the logged practice: OPE cannot confirm it at the
    # default thresholds (refused), so the pass direction relaxes the OPE threshold
    with pytest.raises(PromotionRefused, match="ope test failed"):
        promote(gate_config(f"models:/{registry.name}/{calls}", recent_logs, mlflow_sqlite))
    assert registry.alias(CHAMPION).version == quiet
    relaxed = GateConfig(min_ope_improvement=-1e9, require_overlap=False)
    decision = promote(
        gate_config(f"models:/{registry.name}/{calls}", recent_logs, mlflow_sqlite, relaxed)
    )
    assert decision.promote, decision.reasons
    assert registry.alias(CHAMPION).version == calls

    with pytest.raises(PromotionRefused, match="simulation test failed") as refused:
        promote(gate_config(f"models:/{registry.name}/{quiet}", recent_logs, mlflow_sqlite))
    assert refused.value.exit_code == REFUSED_EXIT_CODE
    assert registry.alias(CHAMPION).version == calls
    runs = registry.client.search_runs(
        [registry.client.get_experiment_by_name(mlflow_sqlite.experiment).experiment_id],
        "tags.`journeyopt.promotion.decision` = 'refused'",
    )
    assert len(runs) == 2
