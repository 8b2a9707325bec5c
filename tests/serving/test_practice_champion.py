"""Today's practice as a registered, served policy (``journeyopt-register-practice``): the API
on a real uvicorn server, the batch scorer and the scorer decide for its customers exactly
as the control group (and ``StaffPolicy`` in simulation) does, for a hand-written practice and
one estimated from the logs; as the previous arm of a rollout it serves the rest of
treatment; and the gate judges a candidate against its value."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from journeyopt.agents.baselines import StaffPolicy
from journeyopt.agents.policy import Observation
from journeyopt.agents.practice_model import PRACTICE_NAME, ServedPractice
from journeyopt.data.source import SourceConfig
from journeyopt.errors import ConfigError
from journeyopt.loop.twin import control_actions
from journeyopt.serving.app import create_app
from journeyopt.serving.batch import score_logs
from journeyopt.serving.config import HoldoutConfig, ServingConfig
from journeyopt.serving.decisions import read_decision_log
from journeyopt.serving.features import batch_from_logs
from journeyopt.serving.guards import allowed_actions, apply_guards
from journeyopt.serving.practice import register_practice
from journeyopt.serving.rollout import ARMS, CANARY_ARM, CONTROL_ARM, PREVIOUS_ARM
from journeyopt.serving.scorer import CustomerBatch, Scorer
from journeyopt.serving.served_model import ServedModel, load_served_model
from journeyopt.sim.config import StaffRulesConfig, shipped_practice
from journeyopt.sim.practice import LoggedPractice, Practice
from journeyopt.sim.world import WorldSpec
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.registry import CHAMPION, RULES_TAG, PolicyRegistry
from journeyopt.tracking.rollout import start_rollout
from journeyopt.tracking.tags import AGENT_TAG, SIMULATOR_TAG
from tests.serving.conftest import AS_OF, linear_policy, register
from tests.serving.loopback import loopback_server
from tests.serving.test_app import feature_record
from tests.serving.test_guards_holdout import random_batch
from tests.tracking.test_gate_logged_practice import coworking_with_practice

TOKEN = "practice-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHAMPION_URI = "models:/journey-policy@champion"


def _practice_champion(tracking: TrackingConfig, serve: ServingConfig) -> ServedModel:
    done = register_practice(serve, tracking, champion=True)
    assert done.champion and isinstance(done.practice, ServedPractice)
    return load_served_model(CHAMPION_URI, tracking)


def _treatment(decided_control: np.ndarray) -> np.ndarray:
    treated = ~decided_control
    assert treated.sum() >= 20 and decided_control.sum() >= 5  # both groups in the batch
    return treated


def test_practice_rules_round_trip_through_json() -> None:
    practice = shipped_practice("coworking").to_practice()
    assert len(practice.rules) >= 3
    again = Practice.from_json(json.loads(json.dumps(practice.to_json())))
    assert again == practice


def test_registered_practice_decides_as_the_control_group_and_staff_policy(
    mlflow_sqlite: TrackingConfig, world: WorldSpec, settings: ServingConfig
) -> None:
    """The hand-written practice registered as the champion: every treatment customer gets
    the control path's decision (one-hot, not explored), and ``StaffPolicy`` in simulation
    takes the same action on the same features, type, week and masks."""
    serve = replace(settings, exploration=replace(settings.exploration, share=0.3))
    model = _practice_champion(mlflow_sqlite, serve)
    tags = PolicyRegistry(mlflow_sqlite).version_tags(model.version)
    assert tags[AGENT_TAG] == PRACTICE_NAME and tags[SIMULATOR_TAG] == "coworking"
    assert tags[RULES_TAG] == serve.rules.fingerprint()
    scorer = Scorer(model, serve)
    assert scorer.champion_arm is not None and scorer.previous_arm is None
    served: list[np.ndarray] = []
    for seed in range(6):  # weeks spread over two years: the calendar's rules all fire
        batch = random_batch(world, 100 + seed)
        decided = scorer.score(batch)
        treated = _treatment(decided.control)
        served.append(decided.actions[treated])
        expected = control_actions(scorer, batch)
        np.testing.assert_array_equal(decided.actions[treated], expected[treated])
        assert (decided.propensity[treated] == 1.0).all()  # deterministic, not explored
        # StaffPolicy as simulation runs it: the same object on the same calendar week
        monday = batch.as_of.normalize() - pd.Timedelta(days=batch.as_of.weekday())
        week = int((monday - serve.holdout.origin) // pd.Timedelta(weeks=1))
        woy = int(monday.isocalendar().week)
        reasons = scorer.rules.reasons(batch.features, segment=batch.segment, week_of_year=woy)
        masks = allowed_actions(reasons, batch.known)
        segment = np.where(batch.segment >= 0, batch.segment, 0)
        staff = StaffPolicy(scorer.world, settings.holdout.staff.to_practice())
        sim, probs = staff.act(
            Observation(batch.features, segment, woy, max(week, 0)), masks, np.random.default_rng(0)
        )
        guarded = apply_guards(sim, probs, reasons, batch.known).actions
        np.testing.assert_array_equal(decided.actions[treated], guarded[treated])
    # the test can tell policies apart: the practice contacts some, not everyone
    assert 0.05 < (np.concatenate(served) != 0).mean() < 0.95


def test_logged_practice_champion_draws_the_control_groups_decision(
    tmp_path: Path,
    demo_logs: Path,
    demo_source: SourceConfig,
    mlflow_sqlite: TrackingConfig,
    settings: ServingConfig,
) -> None:
    """The practice estimated from the logs, registered: each treatment customer's hashed
    draw is the one the control path takes for that customer and week (same probabilities,
    same calendar origin), in the scorer and in the batch scorer's decision log."""
    folder = coworking_with_practice(demo_logs, tmp_path / "world")
    serve = replace(
        settings,
        world=str(folder),
        holdout=HoldoutConfig(staff=StaffRulesConfig(source="logged"), control_share=0.3),
    )
    model = _practice_champion(mlflow_sqlite, serve)
    served = model.policy
    assert isinstance(served, ServedPractice) and isinstance(served.practice, LoggedPractice)
    scorer = Scorer(model, serve)
    assert scorer.champion_arm is not None
    assert scorer.champion_arm.origin == scorer.control_arm.origin  # the one calendar
    source = replace(demo_source)
    batch = _logs_batch(scorer, source)
    decided = scorer.score(batch)
    treated = _treatment(decided.control)
    np.testing.assert_array_equal(decided.actions, control_actions(scorer, batch))
    assert (decided.propensity[treated] < 0.999).mean() > 0.3  # stochastic, as the logs'
    assert len(set(decided.actions[treated].tolist())) > 1

    out = tmp_path / "batch" / "actions.csv"
    score_logs(source, AS_OF, model, serve, out)
    log = read_decision_log(out.with_name("decisions.csv")).set_index("customer_id")
    names = np.asarray(scorer.action_names, dtype=object)
    ids = batch.customer_ids
    np.testing.assert_array_equal(log.loc[ids, "action"].to_numpy(), names[decided.actions])
    np.testing.assert_allclose(log.loc[ids, "propensity"].to_numpy(), decided.propensity)


def _logs_batch(scorer: Scorer, source: SourceConfig) -> CustomerBatch:
    from journeyopt.data.ingest import ingest_to_logs

    logs = ingest_to_logs(source)[0]
    return batch_from_logs(logs, scorer.world, pd.Timestamp(AS_OF, tz="UTC"))


def test_api_on_loopback_serves_the_practice_as_the_control_group(
    mlflow_sqlite: TrackingConfig, world: WorldSpec, settings: ServingConfig, tmp_path: Path
) -> None:
    """A real uvicorn server: customers with the same features get the same decision in
    treatment (the registered practice) as in control, and the decision log names the
    practice's version for both groups' rows as the scorer does in process."""
    serve = replace(settings, decision_log=str(tmp_path / "log"))
    model = _practice_champion(mlflow_sqlite, serve)
    profiles = [
        ("startup_team", feature_record(weeks_since_engagement=1.0)),  # a call
        ("freelancer", feature_record(weeks_since_engagement=10.0)),  # win-back discount
        ("corporate_team", feature_record(weeks_since_engagement=10.0, recency_weeks=3.0)),
    ]
    customers = [
        {"customer_id": f"p{k}-{i}", "segment": segment, "features": features}
        for k, (segment, features) in enumerate(profiles)
        for i in range(40)
    ]
    as_of = "2024-04-01T10:00:00Z"  # week 13 of the calendar from 2024-01-01
    app = create_app(serve, lambda: model, world, token=TOKEN)
    with loopback_server(app) as url:
        reply = httpx.post(f"{url}/v1/score/batch", json={"as_of": as_of, "customers": customers},
                           headers=AUTH, timeout=60)  # fmt: skip
    assert reply.status_code == 200, reply.text
    log = read_decision_log(tmp_path / "log")
    assert len(log) == len(customers)
    log["profile"] = log["customer_id"].str.split("-").str[0]
    by_profile = log.groupby("profile")
    assert (by_profile["group"].nunique() == 2).all()  # both groups in every profile
    assert (by_profile["action"].nunique() == 1).all()  # treatment decides as control
    assert log["action"].nunique() == 3  # the profiles get different actions
    assert set(log["model_version"]) == {model.version}
    assert (log["propensity"] == 1.0).all()


def test_practice_as_the_previous_arm_of_a_rollout(
    mlflow_sqlite: TrackingConfig,
    world: WorldSpec,
    settings: ServingConfig,
    demo_source: SourceConfig,
    tmp_path: Path,
) -> None:
    """Today's practice as the first champion, then a new version on a canary: the previous
    arm gets the control path's decisions, the canary the new policy's, every row its arm
    and deciding version in the batch scorer's decision log."""
    practice = _practice_champion(mlflow_sqlite, settings).version
    registry = PolicyRegistry(mlflow_sqlite)
    new = register(mlflow_sqlite, linear_policy(world, seed=5, scale=10.0), alias="challenger")
    registry.promote(new, CHAMPION, reason="test: a candidate over today's practice")
    start_rollout(registry, new, practice, 0.4)
    model = load_served_model(CHAMPION_URI, mlflow_sqlite)
    assert model.previous is not None and model.previous.version == practice
    scorer = Scorer(model, settings)
    assert scorer.previous_arm is not None and scorer.champion_arm is None
    batch = _logs_batch(scorer, demo_source)
    decided = scorer.score(batch)
    assert decided.arm is not None
    arm = np.asarray(ARMS, dtype=object)[decided.arm]
    assert {CONTROL_ARM, CANARY_ARM, PREVIOUS_ARM} <= set(arm)
    previous, canary = arm == PREVIOUS_ARM, arm == CANARY_ARM
    control_path = control_actions(scorer, batch)
    np.testing.assert_array_equal(decided.actions[previous], control_path[previous])
    alone = Scorer(replace(model, previous=None, canary_share=1.0), settings).score(batch)
    np.testing.assert_array_equal(decided.actions[canary], alone.actions[canary])
    assert (alone.actions[previous] != control_path[previous]).any()  # the arms differ

    out = tmp_path / "actions.csv"
    result = score_logs(demo_source, AS_OF, model, settings, out)
    log = read_decision_log(out.with_name("decisions.csv"))
    assert set(result.by_arm) == {CONTROL_ARM, CANARY_ARM, PREVIOUS_ARM}
    assert set(log.loc[log["arm"] == PREVIOUS_ARM, "model_version"]) == {practice}
    assert set(log.loc[log["arm"] == CANARY_ARM, "model_version"]) == {new}


def test_register_practice_refuses_a_second_first_champion(
    mlflow_sqlite: TrackingConfig, settings: ServingConfig
) -> None:
    _practice_champion(mlflow_sqlite, settings)
    with pytest.raises(ConfigError, match="champion already"):
        register_practice(settings, mlflow_sqlite, champion=True)
    again = register_practice(settings, mlflow_sqlite)  # a plain version, to be gated
    assert not again.champion
    assert PolicyRegistry(mlflow_sqlite).alias(CHAMPION).version != again.version.version


def test_the_served_practice_refuses_observation_vectors(
    mlflow_sqlite: TrackingConfig, settings: ServingConfig
) -> None:
    model = _practice_champion(mlflow_sqlite, settings)
    d, a = len(model.policy.spec.feature_names), len(model.policy.spec.action_names)
    with pytest.raises(ValueError, match="campaign calendar"):
        model.policy.act(np.zeros((1, d), np.float32), np.ones((1, a), bool))
