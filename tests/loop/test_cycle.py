"""The weekly cycle in closed loop on a real MLflow store: nested runs, idempotence, and a
failed step that leaves the champion where it was."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient

from journeyopt.cli.cycle import describe
from journeyopt.cli.entry import to_object
from journeyopt.loop.closed_loop import ClosedLoop, run_closed_loop
from journeyopt.loop.config import CycleConfig, register_configs
from journeyopt.loop.cycle import FAILED_STEP_TAG, CycleFailed, run_cycle
from journeyopt.loop.state import RECORD_FILE
from journeyopt.loop.truth import CoworkingTruth
from journeyopt.serving.config import HoldoutConfig, ServingConfig
from journeyopt.serving.decisions import read_decision_log
from journeyopt.sim.config import GenerateConfig, shipped_practice, shipped_rules
from journeyopt.sim.regime import RegimeChange
from journeyopt.sim.world import load_world
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.registry import CHAMPION, PolicyRegistry

CONFIGS = Path(__file__).resolve().parents[2] / "src" / "journeyopt" / "configs"
# the demo's business settings, and the contact rules it is trained (simulator=coworking) and
# served under (the generic serve default has none beyond opt-outs)
DEMO_SETTINGS = [
    "data=coworking",
    "panel=coworking",
    "calibration=coworking",
    "rules@serve.rules=coworking",
    "practice@serve.holdout.staff=coworking",
]
TINY = [
    "train.total_timesteps=1024",
    "train.n_customers=32",
    "train.pool_size=200",
    "train.warm_start.n_customers=200",
    "train.checkpoint_every_steps=1024",
    "train.eval_customers=100",
    "evaluation.n_customers=200",
    "calibration.ensemble_size=0",
    "calibration.holdout_weeks=0",
    "calibration.c_grid=[0.3]",
    "calibration.alpha_grid=[0.001]",
    "promotion.n_customers=200",
    "promotion.ope.n_boot=100",
    "promotion.gate.require_overlap=false",
    "simulator.horizon_weeks=8",
    "promotion.ope.horizon_weeks=2",
    "uplift.estimator.min_customers=5",
    "drift.thresholds.min_rows=50",
]


def tiny_cycle(tracking: TrackingConfig, root: Path) -> CycleConfig:
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            "cycle",
            overrides=["week=2000-01-03", f"work_dir={root}", *TINY, *DEMO_SETTINGS],
        )
    return replace(to_object(cfg, CycleConfig), tracking=tracking)


def permissive(cfg: CycleConfig) -> CycleConfig:
    """The first deployment: any trained policy replaces the staff rules (on 300 customers the
    equivalence-test model check cannot show the model right: reported as a warning)."""
    gate = replace(
        cfg.promotion.gate,
        min_sim_improvement=-1e9,
        min_ope_improvement=-1e9,
        require_model_check=False,
        require_model_free=False,
    )
    return replace(cfg, promotion=replace(cfg.promotion, gate=gate))


@pytest.mark.slow
def test_closed_loop_cycles_idempotence_and_failure(
    mlflow_sqlite: TrackingConfig, tmp_path: Path
) -> None:
    cfg = tiny_cycle(mlflow_sqlite, tmp_path / "cycles")
    history = GenerateConfig(
        staff=shipped_practice("coworking"), output_dir="unused", n_customers=300, weeks=30
    )
    truth = CoworkingTruth(load_world("coworking"), RegimeChange("freelancer", 1), history)
    loop = ClosedLoop(truth, seed=0)
    loop.write(str(tmp_path / "logs"), str(tmp_path / "decisions"))
    first = run_cycle(
        replace(
            permissive(cfg),
            week=loop.monday.strftime("%Y-%m-%d"),
            data=replace(cfg.data, path=str(tmp_path / "logs")),
        )
    )
    assert first.record.retrained and "no champion yet" in first.record.reasons
    assert first.record.promoted and first.record.champion == first.record.candidate
    # the re-calibrated world chose its summary under the rules it is served under
    (calibration,) = (tmp_path / "cycles").rglob("world/calibration.json")
    recorded = json.loads(calibration.read_text())["contact_rules"]
    assert "cool-down" in recorded["rules"] and recorded["rules"] != "opt-outs only"
    registry = PolicyRegistry(mlflow_sqlite)
    client = MlflowClient(mlflow_sqlite.tracking_uri)

    # two served weeks in closed loop, a cycle after each (drift thresholds out of reach: the
    # cycles measure and keep the champion; re-training is exercised by the first cycle)
    quiet = replace(cfg.drift.thresholds, psi=1e9, action_psi=1e9, response_ratio=1e9)
    cfg = replace(cfg, drift=replace(cfg.drift, thresholds=quiet))
    weeks = run_closed_loop(
        loop,
        cfg,
        ServingConfig(
            rules=shipped_rules("coworking"),
            holdout=HoldoutConfig(staff=shipped_practice("coworking")),
        ),
        2,
        tmp_path,
    )
    assert [w.truth.regime for w in weeks] == ["before", "after"]
    decisions = read_decision_log(tmp_path / "decisions")
    assert set(decisions["group"]) == {"treatment", "control"}
    assert decisions["week"].nunique() == 2 and len(decisions) == 2 * 300
    last = weeks[-1].cycle
    assert last is not None and not last.already_done
    parent = last.record.run_id
    assert client.get_run(parent).info.status == "FINISHED"
    children = client.search_runs(
        [client.get_run(parent).info.experiment_id],
        f"tags.mlflow.parentRunId = '{parent}'",
    )
    assert {"drift", "uplift"} <= {r.info.run_name.split("-")[0] for r in children}
    assert set(last.record.child_runs.values()) <= {r.info.run_id for r in children}
    assert "uplift/margin" in last.record.uplift
    assert not last.record.retrained and last.record.champion == first.record.champion

    # idempotence: the same week on the same data changes nothing and says so
    champion = registry.alias(CHAMPION).version
    n_runs = len(client.search_runs([client.get_run(parent).info.experiment_id]))
    same = replace(
        cfg,
        data=replace(cfg.data, path=str(tmp_path / "logs")),
        decisions=str(tmp_path / "decisions"),
        week=last.record.week,
    )
    again = run_cycle(same)
    assert again.already_done and again.record == last.record
    assert "already done" in describe(again)
    assert len(client.search_runs([client.get_run(parent).info.experiment_id])) == n_runs
    assert registry.alias(CHAMPION).version == champion

    # a failing step (calibration on a split before the data) leaves the champion alone
    next_week = (pd.Timestamp(last.record.week) + pd.Timedelta(weeks=1)).strftime("%Y-%m-%d")
    broken = replace(
        cfg,
        week=next_week,
        data=replace(cfg.data, path=str(tmp_path / "logs")),
        decisions=str(tmp_path / "decisions"),
        schedule=replace(cfg.schedule, every_weeks=1),
        calibration=replace(cfg.calibration, split="2000-01-03"),
    )
    with pytest.raises(CycleFailed, match="step calibrate failed, champion unchanged"):
        run_cycle(broken)
    assert registry.alias(CHAMPION).version == champion
    failed = client.search_runs(
        [client.get_run(parent).info.experiment_id],
        f"tags.`journeyopt.cycle.week` = '{next_week}'",
    )
    assert len(failed) == 1 and failed[0].info.status == "FAILED"
    assert failed[0].data.tags[FAILED_STEP_TAG] == "calibrate"
    assert "no weeks before the split" in failed[0].data.tags["journeyopt.error"]
    assert not list((tmp_path / "cycles").glob(f"{next_week}-*/{RECORD_FILE}"))
