"""MLflow as a user meets it: journeyopt's experiments open on their runs (not on the GenAI
traces page), and final numbers chart as one bar per run in the compare view — on a real
SQLite store."""

from __future__ import annotations

import pandas as pd
from mlflow.tracking import MlflowClient

from journeyopt.evaluation.compare import CompareConfig, _log_children
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.logger import FINAL_STEP, RunLogger
from journeyopt.tracking.promotion import Evidence, decide, metric_slug
from journeyopt.tracking.run import (
    EXPERIMENT_KIND_TAG,
    MODEL_TRAINING_KIND,
    experiment_id,
    open_client,
    tracked_run,
)


def ui_chart_type(client: MlflowClient, run_ids: list[str], key: str) -> str:
    """The chart the MLflow UI's compare view (3.x, ``getBaseChartAndSectionConfigs``)
    creates for metric ``key`` of these runs: ``LINE`` when any run's latest value of it
    (highest step, then newest) is at a step >= 1, else ``BAR``."""
    for run_id in run_ids:
        history = client.get_metric_history(run_id, key)
        if history and max(history, key=lambda m: (m.step, m.timestamp)).step >= 1:
            return "LINE"
    return "BAR"


def test_experiments_are_created_as_model_training_experiments(
    mlflow_sqlite: TrackingConfig,
) -> None:
    with tracked_run({}, "first", tracking=mlflow_sqlite, log_config=False):
        pass
    client = open_client(mlflow_sqlite)
    found = client.get_experiment_by_name(mlflow_sqlite.experiment)
    assert found is not None
    assert found.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND == "custom_model_development"


def test_an_older_experiment_without_a_kind_gets_it_and_a_chosen_kind_stays(
    mlflow_sqlite: TrackingConfig,
) -> None:
    client = open_client(mlflow_sqlite)
    old = client.create_experiment("made-before", artifact_location=mlflow_sqlite.artifact_location)
    chosen = client.create_experiment(
        "genai", tags={EXPERIMENT_KIND_TAG: "genai_development"}
    )  # a user's own choice
    for name, expected_id in (("made-before", old), ("genai", chosen)):
        settings = TrackingConfig(
            tracking_uri=mlflow_sqlite.tracking_uri,
            experiment=name,
            artifact_location=mlflow_sqlite.artifact_location,
        )
        assert experiment_id(client, settings) == expected_id
    assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND
    assert client.get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == "genai_development"


def test_final_metrics_are_one_value_per_run_and_chart_as_bars(
    mlflow_sqlite: TrackingConfig,
) -> None:
    runs = []
    for value in (812.5, 799.0):
        with tracked_run({}, "final", tracking=mlflow_sqlite, log_config=False) as run:
            run.log_final_metrics({"eval/value_mean": value})
            runs.append(run.run_id)
    with tracked_run({}, "training", tracking=mlflow_sqlite, log_config=False) as run:
        run.log_metrics({"eval/value_mean": 700.0}, step=100_000)  # a training run's last eval
        training = run.run_id
    client = open_client(mlflow_sqlite)
    ids = [r for r in runs if r is not None]
    for run_id in ids:
        history = client.get_metric_history(run_id, "eval/value_mean")
        assert [(m.step, m.value) for m in history] in ([(FINAL_STEP, 812.5)], [(0, 799.0)])
    assert ui_chart_type(client, ids, "eval/value_mean") == "BAR"
    assert training is not None
    assert ui_chart_type(client, [*ids, training], "eval/value_mean") == "LINE"
    RunLogger.disabled().log_final_metrics({"gate/promoted": 1.0})  # names checked, no run


def test_compare_logs_each_policy_as_one_bar(mlflow_sqlite: TrackingConfig) -> None:
    cfg = CompareConfig(tracking=mlflow_sqlite)
    table = pd.DataFrame.from_records(
        [
            {"policy": "staff_rules", "kind": "baseline", "source_run_id": "", "model_uri": ""},
            {"policy": "random", "kind": "baseline", "source_run_id": "", "model_uri": ""},
        ]
    )
    metrics = {
        "staff_rules": {"eval/value_mean": 927.0, "eval/pct_of_optimum": 40.1},
        "random": {"eval/value_mean": 1444.0, "eval/pct_of_optimum": 62.5},
    }
    with tracked_run({}, "compare", tracking=mlflow_sqlite, log_config=False) as parent:
        children = _log_children(cfg, parent, table, [], metrics)
    client = open_client(mlflow_sqlite)
    for key in ("eval/value_mean", "eval/pct_of_optimum"):
        assert ui_chart_type(client, list(children.values()), key) == "BAR"
        for name, run_id in children.items():
            history = client.get_metric_history(run_id, key)
            assert [(m.step, m.value) for m in history] == [(0, metrics[name][key])]


def test_gate_metrics_per_test() -> None:
    rows = [
        Evidence("simulation", "member 0", 10.0, 8.0, 2.0, 1.0, 0.0, True, ci_high=3.0,
                 key="simulation_member0"),
        Evidence("model_check", "outcome of 'voucher'", 1.2, 1.0, 0.2, 0.09, 0.1, False,
                 "over-predicts", ci_high=0.27, relative=True, key="model_check_voucher 10%"),
        Evidence("model_free", "wpdis", float("nan"), float("nan"), float("nan"),
                 float("nan"), float("nan"), False, "no window", key="model_free"),
    ]  # fmt: skip
    metrics = decide(rows).metrics()
    assert metrics["gate/promoted"] == 0.0
    assert metrics["gate/simulation_member0_ci_low"] == 1.0
    assert metrics["gate/simulation_member0_ci_high"] == 3.0
    assert metrics["gate/model_check_voucher_10_estimate"] == 0.2
    assert metrics["gate/model_check_voucher_10_passed"] == 0.0
    assert metrics["gate/model_free_passed"] == 0.0
    assert "gate/model_free_estimate" not in metrics  # not measured: left out
    assert metric_slug("Gutschein (10 %)") == "Gutschein_10"
