"""``journeyopt-rollout`` end to end on real files and a real MLflow registry: a canary that
truly earns more is widened, one that truly loses is rolled back (the champion alias returns
to the previous version), each decision an MLflow run with its evidence; ``status`` changes
nothing; bad input exits 2 on one line."""

from __future__ import annotations

import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from mlflow.tracking import MlflowClient

import journeyopt.cli.rollout as rollout_cli
from journeyopt.loop.cycle import run_cycle
from journeyopt.serving.config import RolloutConfig, ServingConfig
from journeyopt.serving.holdout import control_group
from journeyopt.serving.rollout import ARMS, arm_codes, canary_customers
from journeyopt.sim.world import load_world
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.registry import CHAMPION, PolicyRegistry
from journeyopt.tracking.rollout import CANARY, FULL, PREVIOUS, read_rollout, start_rollout
from tests.loop.test_cycle import tiny_cycle
from tests.serving.conftest import linear_policy, register

from .conftest import SINCE, decision_log

SHARE = 0.5


def _tracking(settings: TrackingConfig) -> list[str]:
    return [
        f"tracking.tracking_uri={settings.tracking_uri}",
        f"tracking.experiment={settings.experiment}",
        f"tracking.artifact_location={settings.artifact_location}",
    ]


def _arms(ids: pd.Series) -> np.ndarray:
    serve = ServingConfig()
    control = control_group(ids, serve.holdout.salt, serve.holdout.control_share)
    canary = canary_customers(ids, serve.rollout.salt, SHARE)
    return np.asarray(ARMS, dtype=object)[arm_codes(control, canary)]


@pytest.fixture(scope="module")
def rollout_decisions(coworking_logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The logs' decisions from :data:`SINCE` on as a canary's decision log: arms by the
    serving hashes, the canary decided by version 2, the rest of treatment by version 1."""
    contacts = pd.read_csv(coworking_logs / "contacts.csv", dtype=str, keep_default_na=False)
    rows = decision_log(contacts, SINCE)
    arm = _arms(rows["customer_id"])
    rows["arm"] = arm
    rows["group"] = np.where(arm == "control", "control", "treatment")
    rows["model_version"] = np.where(arm == "previous", "1", "2")
    out = tmp_path_factory.mktemp("rollout-decisions")
    rows.to_csv(out / "decisions-2023-08-07.csv", index=False)
    return out


def _changed_logs(coworking_logs: Path, out: Path, effect: str) -> Path:
    """The logs with a known effect on the canary's customers from :data:`SINCE` on:
    ``good``: an extra booking of 100.0 in half of their weeks; ``bad``: none of their
    bookings."""
    shutil.copytree(coworking_logs, out)
    events = pd.read_csv(out / "events.csv", dtype=str, keep_default_na=False)
    customers = pd.read_csv(out / "customers.csv", dtype=str)["customer_ref"]
    canary = customers[_arms(customers) == "canary"].to_numpy()
    if effect == "bad":
        late = pd.to_datetime(events["timestamp"]) >= pd.Timestamp(SINCE)
        drop = late & events["customer_ref"].isin(canary) & (events["amount"] != "")
        events = events[~drop]
    else:
        rng = np.random.default_rng(7)
        mondays = pd.date_range(SINCE, "2023-10-02", freq="7D")
        extra = [
            {"event_id": f"X{k}-{i}", "customer_ref": c, "event_type": "day_pass",
             "timestamp": (m + pd.Timedelta(days=2, hours=12)).strftime("%Y-%m-%d %H:%M:%S"),
             "channel": "", "amount": "100.0"}
            for k, m in enumerate(mondays) for i, c in enumerate(canary) if rng.random() < 0.5
        ]  # fmt: skip
        events = pd.concat([events, pd.DataFrame(extra)])
    events.to_csv(out / "events.csv", index=False)
    return out


def _canary(tracking: TrackingConfig) -> PolicyRegistry:
    """Version 1 the champion, version 2 promoted on a canary of half of treatment that
    started in the week of :data:`SINCE`."""
    world = load_world("coworking")
    first = register(tracking, linear_policy(world, seed=1))
    second = register(tracking, linear_policy(world, seed=2), alias="challenger")
    assert (first, second) == ("1", "2")
    registry = PolicyRegistry(tracking)
    registry.promote(second, CHAMPION, reason="test")
    start_rollout(registry, second, first, SHARE)
    registry.client.set_model_version_tag(
        registry.name, second, "journeyopt.rollout.started", f"{SINCE}T09:00:00+00:00"
    )
    return registry


def _compose(overrides: list[str]) -> object:
    """``journeyopt-rollout`` over the coworking demo's logs, with the demo's panel windows."""
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        return compose("rollout", overrides=["data=coworking", "panel=coworking", *overrides])


@pytest.mark.parametrize(("effect", "decision"), [("good", "widen"), ("bad", "rollback")])
def test_advance_widens_a_winner_and_rolls_back_a_loser(
    coworking_logs: Path, rollout_decisions: Path, tmp_path: Path,
    mlflow_sqlite: TrackingConfig, effect: str, decision: str,
) -> None:  # fmt: skip
    logs = _changed_logs(coworking_logs, tmp_path / "logs", effect)
    registry = _canary(mlflow_sqlite)
    common = [
        f"data.path={logs}",
        f"decisions={rollout_decisions}",
        *_tracking(mlflow_sqlite),
        "serve.rollout.min_exposure_weeks=500",
    ]  # the 10 % control: ~800 in 9 weeks

    status = rollout_cli.run(_compose(["command=status", *common]))  # type: ignore[arg-type]
    assert status.verdict is not None and status.verdict.decision == decision
    assert status.run_id is None and read_rollout(registry) == status.before  # nothing moved
    previous = status.verdict.vs_previous
    assert previous is not None and previous.canary_customers > 300
    assert (previous.low > 0) if effect == "good" else (previous.high < 0)

    out = tmp_path / "evidence"
    advanced = rollout_cli.run(
        _compose(["command=advance", f"output_dir={out}", *common])  # type: ignore[arg-type]
    )
    assert advanced.acted == decision
    state = read_rollout(registry)
    assert state is not None
    if decision == "widen":
        assert (state.champion, state.stage, state.previous) == ("2", FULL, None)
    else:
        assert (state.champion, state.stage) == ("1", FULL)
        assert registry.alias(CHAMPION).version == "1"
    with pytest.raises(Exception, match=r"not found|does not exist|alias"):
        registry.alias(PREVIOUS)
    for name in ("rollout.md", "arms.csv", "comparisons.csv", "verdict.json"):
        assert (out / name).is_file()
    evidence = (out / "rollout.md").read_text()  # which exposure applies (500 caps both)
    assert "rollback on the bound from 500, widening from 500" in evidence
    assert "**exposure against previous**:" in evidence
    printed = rollout_cli.describe(status, RolloutConfig(min_exposure_weeks=500))
    assert any("its bound may roll back or widen" in line for line in printed), printed
    client = MlflowClient(tracking_uri=mlflow_sqlite.tracking_uri)
    assert advanced.run_id is not None
    run = client.get_run(advanced.run_id)
    assert run.data.tags["journeyopt.rollout.acted"] == decision
    assert run.data.metrics["rollout/vs_previous"] == pytest.approx(previous.estimate)
    assert run.data.metrics["rollout/acted"] == (1.0 if decision == "widen" else -1.0)
    artifacts = {a.path for a in client.list_artifacts(advanced.run_id, "rollout")}
    assert {"rollout/comparisons.csv", "rollout/verdict.json"} <= artifacts


def test_manual_rollback_and_bad_input(
    mlflow_sqlite: TrackingConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    registry = _canary(mlflow_sqlite)
    assert read_rollout(registry).stage == CANARY  # type: ignore[union-attr]
    with pytest.raises(SystemExit) as refused:
        rollout_cli.hydra_main.__wrapped__(  # type: ignore[attr-defined]
            _compose(["command=rollback", *_tracking(mlflow_sqlite)])
        )
    assert refused.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after MLflow's own INFO lines
    assert last.startswith("error: a rollback needs a reason")
    report = rollout_cli.run(
        _compose(["command=rollback", "reason=complaints", *_tracking(mlflow_sqlite)])  # type: ignore[arg-type]
    )
    assert report.acted == "rollback" and registry.alias(CHAMPION).version == "1"
    tags = registry.client.get_model_version(registry.name, "2").tags
    assert tags["journeyopt.rollout.reason"] == "manual: complaints"
    # the first word is the command; a second rollback has no canary left
    monkeypatch.setattr(
        sys, "argv",
        ["journeyopt-rollout", "rollback", "reason=again", f"hydra.run.dir={tmp_path}",
         *_tracking(mlflow_sqlite)],  # a rollback reads no logs: no data=, no panel=
    )  # fmt: skip
    with pytest.raises(SystemExit) as again:
        rollout_cli.main()
    assert again.value.code == 2
    assert "no canary to roll back" in capsys.readouterr().err


def test_the_weekly_cycle_rolls_back_a_losing_canary(
    coworking_logs: Path, rollout_decisions: Path, tmp_path: Path, mlflow_sqlite: TrackingConfig
) -> None:
    """``journeyopt-cycle`` runs the same rollout step every week: a canary that loses is
    rolled back before the cycle measures uplift and drift; the decision is a child run of the
    week's parent run and in ``cycle.json``."""
    logs = _changed_logs(coworking_logs, tmp_path / "logs", "bad")
    registry = _canary(mlflow_sqlite)
    cfg = tiny_cycle(mlflow_sqlite, tmp_path / "cycles")
    quiet = replace(cfg.drift.thresholds, psi=1e9, action_psi=1e9, response_ratio=1e9)
    serve = replace(cfg.serve, rollout=replace(cfg.serve.rollout, min_exposure_weeks=500))
    cfg = replace(
        cfg,
        week="2023-10-09",
        data=replace(cfg.data, path=str(logs)),
        decisions=str(rollout_decisions),
        drift=replace(cfg.drift, thresholds=quiet),
        serve=serve,
    )
    result = run_cycle(cfg)
    record = result.record
    assert record.rollout == "rollback" and record.champion == "1"
    assert registry.alias(CHAMPION).version == "1"
    assert not record.retrained and record.uplift["rollout/vs_previous"] < 0
    client = MlflowClient(tracking_uri=mlflow_sqlite.tracking_uri)
    child = client.get_run(record.child_runs["rollout"])
    assert child.data.tags["mlflow.parentRunId"] == record.run_id
    assert child.data.tags["journeyopt.rollout.acted"] == "rollback"
    assert client.get_run(record.run_id).data.tags["journeyopt.cycle.rollout"] == "rollback"
    assert (result.folder / "rollout" / "verdict.json").is_file()
