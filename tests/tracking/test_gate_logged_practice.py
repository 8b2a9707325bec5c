"""The gate against today's practice as estimated from the logs (``practice=logged``): without
a champion the candidate is judged against it; with one, against the champion, and the numbers
against the logs' practice are shown beside (rows that do not block)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.exceptions import MlflowException

from journeyopt.agents.baselines import StaffPolicy
from journeyopt.calibration.design import Design
from journeyopt.calibration.propensity import logged_practice, practice_matrix, propensities
from journeyopt.calibration.weeks import customer_weeks
from journeyopt.cli.promote import PromoteConfig, champion_policy, promote
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.errors import ConfigError
from journeyopt.evaluation.config import EvaluationConfig
from journeyopt.panel.build import build_panel
from journeyopt.sim.config import StaffRulesConfig
from journeyopt.sim.discrete import DiscreteLayout
from journeyopt.sim.practice import PRACTICE_FILE, LoggedPractice
from journeyopt.sim.world import WorldSpec, load_world, world_path
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.promotion import PromotionRefused
from journeyopt.tracking.registry import CHAMPION, PolicyRegistry
from tests.panel.windows import panel_config
from tests.tracking.test_promotion import (
    cloned_myopic,
    coworking_source,
    fixed_action,
    gate_config,
    recent_logs,  # noqa: F401 -- the module-scoped logs fixture
    register,
    without_model_tests,
)

CYCLES = (2, 4, 13)


def estimated_practice(logs: Path, world: WorldSpec) -> LoggedPractice:
    """Today's practice estimated from ``logs`` in ``world``'s state layout, by the
    calibration's own behaviour cloning (:mod:`journeyopt.calibration.propensity`)."""
    source = coworking_source(logs)
    channels = tuple(source.contact_channels)
    panel = build_panel(ingest_to_logs(source)[0], panel_config(), channels)
    layout = DiscreteLayout.of(world)
    weeks = customer_weeks(panel, layout, channels, world.actions.names, world.segment_names)
    design = Design(layout, world.actions.n_actions, seasonal=False)
    validation = (np.arange(weeks.customer_ids.shape[0]) % 5 == 0)[weeks.customer]
    origin = int(weeks.week.min())
    props = propensities(weeks, practice_matrix(design, weeks, CYCLES, origin), validation)
    assert props.cloning is not None
    return logged_practice(
        props.cloning, design, CYCLES, world.actions.names, world.segment_names, channels
    )


def coworking_with_practice(logs: Path, folder: Path) -> Path:
    """``folder`` holding the coworking world with a practice estimated from ``logs``
    (``practice: practice.npz`` in its ``world.yaml``, as a calibrated world carries it)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(world_path("coworking"), folder / "world.yaml")
    raw = yaml.safe_load((folder / "world.yaml").read_text())
    raw["practice"] = PRACTICE_FILE
    (folder / "world.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    estimated_practice(logs, load_world("coworking")).save(folder / PRACTICE_FILE)
    return folder


@pytest.fixture(scope="module")
def world_with_practice(
    recent_logs: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The coworking world's folder with a practice estimated from the recent logs."""
    return coworking_with_practice(recent_logs, tmp_path_factory.mktemp("coworking_logged"))


def test_without_a_champion_the_baseline_is_the_logs_practice(
    mlflow_sqlite: TrackingConfig, world_with_practice: Path
) -> None:
    world = load_world(world_with_practice)
    assert world.logged_practice is not None
    registry = PolicyRegistry(mlflow_sqlite)
    policy, ref = champion_policy(
        registry, mlflow_sqlite, world, staff=StaffRulesConfig(source="logged")
    )
    assert ref == "staff_rules" and isinstance(policy, StaffPolicy)
    assert isinstance(policy.practice, LoggedPractice)
    with pytest.raises(ConfigError, match="carries no practice estimated from logs"):
        champion_policy(
            registry, mlflow_sqlite, load_world("coworking"), staff=StaffRulesConfig("logged")
        )


def test_the_gate_judges_against_the_logs_practice_and_shows_both_numbers(
    mlflow_sqlite: TrackingConfig,
    recent_logs: Path,  # noqa: F811
    world_with_practice: Path,
) -> None:
    registry = PolicyRegistry(mlflow_sqlite)
    better = register(mlflow_sqlite, cloned_myopic(recent_logs), "myopic_clone")
    quiet = register(mlflow_sqlite, fixed_action(0), "no_contact")

    def config(version: str) -> PromoteConfig:
        cfg = without_model_tests(
            gate_config(f"models:/{registry.name}/{version}", recent_logs, mlflow_sqlite)
        )
        cfg.simulator.world = str(world_with_practice)
        cfg.evaluation = EvaluationConfig(staff=StaffRulesConfig(source="logged"))
        cfg.ope.min_action_support = 5  # one logged week of 1,500 customers (see test_promotion)
        return cfg

    with pytest.raises(MlflowException):
        registry.alias(CHAMPION)
    decision = promote(config(better))
    assert decision.promote, decision.reasons
    rows = decision.table.set_index("test")
    assert rows.loc["simulation", "baseline"] == "today's practice"
    assert rows.loc["ope", "baseline"] == "today's practice" and rows.loc["ope", "blocking"]
    assert registry.alias(CHAMPION).version == better

    with pytest.raises(PromotionRefused) as refused:
        promote(config(quiet))
    assert "not promoted over models:/" in str(refused.value)
    client = registry.client
    experiment = client.get_experiment_by_name(mlflow_sqlite.experiment)
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id], "tags.`journeyopt.promotion.decision` = 'refused'"
    )
    last = max(runs, key=lambda r: r.info.start_time)
    metrics = last.data.metrics
    # both numbers: against the champion (blocking) and against the logs' practice (shown)
    assert "gate/simulation_ci_low" in metrics and "gate/simulation_vs_practice_ci_low" in metrics
    assert "gate/ope_estimate" in metrics and "gate/ope_vs_practice_estimate" in metrics
    # the silent candidate loses against the estimated practice too: it contacts nobody
    assert metrics["gate/ope_vs_practice_estimate"] < 0
