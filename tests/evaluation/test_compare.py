"""``journeyopt-compare`` against real MLflow stores: a trained run and its registered version
read back without unpickling, evaluated with the baselines on common random numbers; the
parent/child run structure, tags, metric names shared with training runs, and values equal to
a direct evaluation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from mlflow.tracking import MlflowClient

import journeyopt.cli.compare as cli_compare
from journeyopt.agents.config import register_configs as register_train
from journeyopt.agents.config import train_config
from journeyopt.agents.report import final_metrics
from journeyopt.agents.sb3 import LearnedPolicy
from journeyopt.agents.train import TrainResult, train
from journeyopt.cli.entry import report_errors, to_object
from journeyopt.errors import ConfigError
from journeyopt.evaluation.compare import (
    CompareConfig,
    compare,
    register_configs,
    unique_names,
)
from journeyopt.evaluation.simulate import evaluate_policies
from journeyopt.sim.observation import observation_layout
from journeyopt.sim.world import load_world
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.run import tracked_run
from tests.commands import DEMO_WORLD

SETTINGS = [*DEMO_WORLD, "simulator.horizon_weeks=8", "evaluation.n_customers=100"]
TRAIN = [
    "agent=maskable_ppo",
    "agent.batch_size=256",
    "train=smoke",
    "train.total_timesteps=512",
    "train.n_customers=16",
    "train.eval_every_steps=0",
    "train.eval_customers=50",
    "train.checkpoint_every_steps=0",
    *SETTINGS,
]

register_train()
register_configs()


def _trained(tmp_path: Path, tracking: TrackingConfig) -> TrainResult:
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = train_config(compose("train", overrides=[*TRAIN, f"output_dir={tmp_path}"]))
    cfg.tracking = tracking
    return train(cfg)


def _compare_config(tracking: TrackingConfig, *overrides: str) -> CompareConfig:
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = to_object(compose("compare", overrides=[*SETTINGS, *overrides]), CompareConfig)
    cfg.tracking = tracking
    return cfg


def _artifacts(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path or None):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_comparison_runs_line_up_with_training_runs(
    tmp_path: Path, mlflow_backend: TrackingConfig
) -> None:
    trained = _trained(tmp_path / "train", mlflow_backend)
    assert trained.run_id is not None and trained.model_version is not None
    registered = f"models:/{mlflow_backend.registered_model}/{trained.model_version}"
    cfg = _compare_config(
        mlflow_backend,
        f"runs=[{trained.run_id}]",
        f"models=[{registered}]",
        f"output_dir={tmp_path / 'compare'}",
    )
    result = compare(cfg)
    run_name = "MaskablePPO-coworking-seed0"
    version_name = f"{mlflow_backend.registered_model}/v{trained.model_version}"
    baselines = ["no_contact", "random", "staff_rules", "myopic", "optimum"]
    assert result.table["policy"].tolist() == [run_name, version_name, *baselines]
    assert result.table["kind"].tolist() == ["learned"] * 2 + ["baseline"] * 5

    # the parent run: finished, tagged, with the table and chart
    client = MlflowClient(mlflow_backend.resolved_tracking_uri())
    assert result.parent_run_id is not None
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.info.run_name == "compare"
    assert parent.data.tags["journeyopt.kind"] == "comparison"
    assert trained.run_id in parent.data.params["runs"]
    artifacts = _artifacts(client, result.parent_run_id)
    for name in ("comparison.csv", "comparison.md", "comparison.png", "evaluation.csv"):
        assert f"comparison/{name}" in artifacts
    written = pd.read_csv(result.output_dir / "comparison.csv")
    assert written["policy"].tolist() == result.table["policy"].tolist()

    # one child per policy, with the training run's metric names
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'",
    )
    by_name = {c.info.run_name: c for c in children}
    assert set(by_name) == set(result.table["policy"]) == set(result.child_run_ids)
    training = client.get_run(trained.run_id).data.metrics
    final = {k for k in trained.metrics if k.startswith("eval/")}  # the final evaluation
    learned = by_name[run_name]
    assert learned.info.status == "FINISHED"
    assert learned.data.tags["journeyopt.policy_kind"] == "learned"
    assert learned.data.tags["journeyopt.source_run_id"] == trained.run_id
    assert learned.data.tags["journeyopt.agent"] == "MaskablePPO"
    assert set(learned.data.metrics) == final and final <= set(training)
    assert by_name["staff_rules"].data.tags["journeyopt.policy_kind"] == "baseline"
    assert "eval/uplift_vs_staff" not in by_name["staff_rules"].data.metrics

    # same evaluation settings: the loaded policy scores what training scored
    assert learned.data.metrics["eval/value_mean"] == pytest.approx(training["eval/value_mean"])
    assert by_name[version_name].data.metrics == learned.data.metrics

    # values equal a direct evaluation of the in-memory agent and the baselines
    world = load_world("coworking")
    agent = LearnedPolicy.of(trained.model, world, observation_layout(world))
    direct = evaluate_policies(
        world, [agent], n_customers=100, horizon_weeks=8, gamma=0.995, seed=0, reference=None
    )
    assert result.metrics[run_name]["eval/value_mean"] == pytest.approx(
        final_metrics(direct, agent.name)["eval/value_mean"]
    )
    for child in children:
        assert child.data.metrics == pytest.approx(result.metrics[child.info.run_name])


def test_unknown_run_and_run_without_policy_are_refused(
    tmp_path: Path, mlflow_sqlite: TrackingConfig
) -> None:
    out = f"output_dir={tmp_path / 'out'}"
    with pytest.raises(ConfigError, match="no MLflow run 'nope'"):
        compare(_compare_config(mlflow_sqlite, "runs=[nope]", out))
    with tracked_run({}, "no-policy", tracking=mlflow_sqlite) as empty:
        assert empty.run_id is not None
    with pytest.raises(ConfigError, match="has no logged policy"):
        compare(_compare_config(mlflow_sqlite, f"runs=[{empty.run_id}]", out))
    with pytest.raises(ConfigError, match="not a registered version"):
        compare(_compare_config(mlflow_sqlite, "models=[models:/nothing/7]", out))
    assert not (tmp_path / "out").exists()


def test_baselines_only_with_tracking_off(tmp_path: Path) -> None:
    cfg = _compare_config(TrackingConfig(enabled=False), f"output_dir={tmp_path}")
    result = compare(cfg)
    assert result.parent_run_id is None and not result.child_run_ids
    assert result.table["kind"].eq("baseline").all()
    assert (tmp_path / "comparison.md").read_text().count("| baseline |") == 5
    with pytest.raises(ConfigError, match="need tracking enabled"):
        CompareConfig(runs=["x"], tracking=TrackingConfig(enabled=False))


def test_policy_names_are_made_unique() -> None:
    assert unique_names(["a", "a", "random", "b"], ["random"]) == ["a", "a#2", "random#2", "b"]


def test_command_reports_a_bad_run_in_one_line(
    tmp_path: Path, mlflow_sqlite: TrackingConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = compose(
            "compare",
            overrides=[
                *DEMO_WORLD,
                "runs=[does-not-exist]",
                f"tracking.tracking_uri={mlflow_sqlite.tracking_uri}",
                f"output_dir={tmp_path / 'out'}",
            ],
        )
    with pytest.raises(SystemExit) as stopped:
        report_errors(lambda: cli_compare.run(cfg))
    assert stopped.value.code == 2
    assert capsys.readouterr().err == (
        "error: runs: no MLflow run 'does-not-exist' in the tracking store\n"
    )
