"""``journeyopt-uplift`` and ``journeyopt-drift`` end to end on generated coworking logs and a
decision log: real files, a real MLflow SQLite store; and bad inputs -> clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from mlflow.tracking import MlflowClient

from journeyopt.cli import drift as drift_cli
from journeyopt.cli import uplift as uplift_cli
from journeyopt.errors import JourneyoptError
from journeyopt.tracking.config import TrackingConfig

from .conftest import SINCE, serving_group

EXTRA_VALUE = 30.0
EXTRA_RATE = 0.3


def _tracking(settings: TrackingConfig) -> list[str]:
    return [
        f"tracking.tracking_uri={settings.tracking_uri}",
        f"tracking.experiment={settings.experiment}",
        f"tracking.artifact_location={settings.artifact_location}",
    ]


def _compose(name: str, overrides: list[str]) -> object:
    """``name`` over the coworking demo's logs, with the demo's panel windows."""
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        return compose(name, overrides=["data=coworking", "panel=coworking", *overrides])


@pytest.fixture(scope="module")
def treated_logs(coworking_logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The logs plus a known effect: each treatment customer books an extra day pass of
    30.0 in 30 % of the weeks from :data:`SINCE` on (Wednesday noon, Berlin)."""
    out = tmp_path_factory.mktemp("treated")
    for file in coworking_logs.iterdir():
        shutil.copy(file, out / file.name)
    events = pd.read_csv(out / "events.csv", dtype=str, keep_default_na=False)
    customers = pd.read_csv(out / "customers.csv", dtype=str)["customer_ref"]
    treated = customers[customers.map(serving_group) == "treatment"].to_numpy()
    rng = np.random.default_rng(7)
    mondays = pd.date_range(SINCE, "2023-10-02", freq="7D")
    rows = [
        {
            "event_id": f"X{k}-{i}",
            "customer_ref": c,
            "timestamp": (monday + pd.Timedelta(days=2, hours=12)).strftime("%Y-%m-%d %H:%M:%S"),
            "event_type": "day_pass",
            "channel": "",
            "amount": f"{EXTRA_VALUE}",
        }
        for k, monday in enumerate(mondays)
        for i, c in enumerate(treated)
        if rng.random() < EXTRA_RATE
    ]
    pd.concat([events, pd.DataFrame(rows)]).to_csv(out / "events.csv", index=False)
    return out


def test_uplift_recovers_a_known_effect_and_logs_a_run(
    treated_logs: Path, decisions_dir: Path, tmp_path: Path, mlflow_sqlite: TrackingConfig
) -> None:
    client = MlflowClient(tracking_uri=mlflow_sqlite.tracking_uri)
    champion = client.create_experiment(
        "champion", artifact_location=mlflow_sqlite.artifact_location
    )
    predicted = client.create_run(champion).info.run_id
    client.log_metric(predicted, "eval/uplift_vs_staff", 52.0)
    client.log_param(predicted, "simulator.horizon_weeks", "52")
    client.log_param(predicted, "simulator.gamma", "1.0")
    client.set_terminated(predicted)
    cfg = _compose(
        "uplift",
        [
            f"data.path={treated_logs}",
            f"decisions={decisions_dir}",
            f"since={SINCE}",
            f"output_dir={tmp_path / 'uplift'}",
            f"prediction.run_id={predicted}",
            *_tracking(mlflow_sqlite),
        ],
    )
    result = uplift_cli.run(cfg)  # type: ignore[arg-type]
    overall = result.table[result.table["grouping"] == "all"].set_index("outcome")
    conversions = overall.loc["conversions"]
    # the extra day pass only adds where the customer did not already buy that day
    assert conversions["ci_low"] < EXTRA_RATE < conversions["ci_high"] + 0.05
    assert conversions["ci_low"] > 0.15
    revenue = overall.loc["revenue"]
    assert revenue["ci_low"] < EXTRA_RATE * EXTRA_VALUE < revenue["ci_high"]
    assert abs(overall.loc["opt_outs", "uplift"]) < 0.01
    assert {"segment", "lifecycle"} <= set(result.table["grouping"])
    for name in ("uplift.md", "uplift.png", "uplift.csv", "customers.csv"):
        assert (tmp_path / "uplift" / name).is_file()
    assert result.prediction["predicted_margin"] == pytest.approx(1.0)  # 52 over 52 weeks
    margin = overall.loc["margin", "uplift"]
    assert result.prediction["realised_minus_predicted"] == pytest.approx(margin - 1.0)
    assert "Realised vs predicted" in (tmp_path / "uplift" / "uplift.md").read_text()
    assert result.run_id is not None
    metrics = client.get_run(result.run_id).data.metrics
    assert metrics["uplift/conversions"] == pytest.approx(conversions["uplift"])
    assert metrics["uplift/treatment_customers"] > 100
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "uplift")}
    assert "uplift/uplift.md" in artifacts


def test_drift_quiet_on_the_same_world_and_fires_when_bookings_halve(
    coworking_logs: Path, tmp_path: Path, mlflow_sqlite: TrackingConfig
) -> None:
    base = ["world=coworking", "current_weeks=6", "reference_weeks=20", "thresholds.min_rows=150"]
    quiet = drift_cli.run(
        _compose(
            "drift",
            [
                f"data.path={coworking_logs}",
                f"output_dir={tmp_path / 'quiet'}",
                *base,
                *_tracking(mlflow_sqlite),
            ],
        )  # type: ignore[arg-type]
    )
    # the world that generated the logs predicts them: no response drift (the population of
    # these young logs still ages, which the population check may report)
    assert not any(r.startswith("response") for r in quiet.reasons), quiet.reasons
    verdict = json.loads((tmp_path / "quiet" / "drift.json").read_text())
    assert verdict["drift_detected"] is quiet.drift_detected
    # regime change: from week 34 on, half of the bookings no longer happen
    changed = tmp_path / "changed_logs"
    shutil.copytree(coworking_logs, changed)
    events = pd.read_csv(changed / "events.csv", dtype=str, keep_default_na=False)
    late = pd.to_datetime(events["timestamp"]) >= pd.Timestamp("2023-08-21")
    booking = events["event_type"].isin(["day_pass", "meeting_room", "membership"])
    drop = late & booking & (np.random.default_rng(0).random(len(events)) < 0.5)
    events[~drop].to_csv(changed / "events.csv", index=False)
    fired = drift_cli.run(
        _compose(
            "drift",
            [
                f"data.path={changed}",
                f"output_dir={tmp_path / 'fired'}",
                *base,
                *_tracking(mlflow_sqlite),
            ],
        )  # type: ignore[arg-type]
    )
    assert fired.drift_detected
    assert any(r.startswith("response: conversion") for r in fired.reasons)
    client = MlflowClient(tracking_uri=mlflow_sqlite.tracking_uri)
    runs = client.search_runs(
        [client.get_experiment_by_name(mlflow_sqlite.experiment).experiment_id],
        order_by=["attributes.start_time ASC"],
    )
    assert [r.data.metrics["drift/responses_drifted"] > 0 for r in runs] == [False, True]
    assert runs[1].data.metrics["drift/detected"] == 1.0
    assert runs[1].data.tags["journeyopt.drift_detected"] == "true"
    for name in ("drift.md", "drift.png", "population.csv", "actions.csv", "responses.csv"):
        assert (tmp_path / "fired" / name).is_file()


def _run_uplift(logs: Path, decisions: Path, out: Path, since: str = SINCE) -> None:
    cfg = _compose(
        "uplift",
        [
            f"data.path={logs}",
            f"decisions={decisions}",
            f"since={since}",
            f"output_dir={out}",
            "tracking=off",
        ],
    )
    uplift_cli.run(cfg)  # type: ignore[arg-type]


def test_since_after_the_data_is_refused(
    coworking_logs: Path, decisions_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(JourneyoptError, match="since=2024-06-03 is after"):
        _run_uplift(coworking_logs, decisions_dir, tmp_path / "out", since="2024-06-03")
    assert not (tmp_path / "out").exists()


def test_uplift_cli_reports_bad_input_on_one_line(
    coworking_logs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    cfg = _compose(
        "uplift",
        [f"data.path={coworking_logs}", f"decisions={missing}", f"since={SINCE}",
         f"output_dir={tmp_path / 'out'}", "tracking=off"],
    )  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        uplift_cli.main.__wrapped__(cfg)  # type: ignore[attr-defined]
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr().err.strip() == f"error: {missing}: no such decision-log file or folder"
    )
