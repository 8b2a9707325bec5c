"""The staged rollout in serving: stable salted canary assignment, the scorer and the API
honouring the arms (the canary on the new champion, the rest of treatment on the previous
version, control on today's practice), the arm and deciding version in the decision log, and
a rollback on a real MLflow registry that a running ``journeyopt-serve`` follows."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyopt.agents.sb3 import layout_version
from journeyopt.data.source import SourceConfig
from journeyopt.errors import ConfigError
from journeyopt.serving.app import create_app
from journeyopt.serving.batch import score_logs
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.decisions import decision_table, read_decision_log
from journeyopt.serving.guards import allowed_actions
from journeyopt.serving.holdout import control_group
from journeyopt.serving.rollout import (
    ARMS,
    CANARY_ARM,
    CONTROL_ARM,
    FULL_ARM,
    PREVIOUS_ARM,
    arm_codes,
    canary_customers,
)
from journeyopt.serving.scorer import Scorer
from journeyopt.serving.served_model import ServedModel, alias_watcher, load_served_model
from journeyopt.sim.observation import encode, observation_layout
from journeyopt.sim.world import WorldSpec, load_world, world_path
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.registry import CHAMPION, PolicyRegistry
from journeyopt.tracking.rollout import (
    CANARY,
    FULL,
    PREVIOUS,
    read_rollout,
    roll_back,
    start_rollout,
)
from tests.serving.conftest import AS_OF, linear_policy, register
from tests.serving.loopback import loopback_server
from tests.serving.test_guards_holdout import random_batch
from tests.serving.test_server import TOKEN, running_server

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@settings(max_examples=50, deadline=None)
@given(
    ids=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=60, unique=True),
    share=st.floats(0.01, 0.99),
    salt=st.text(min_size=1, max_size=8),
)
def test_canary_assignment_is_stable_per_customer(ids: list[str], share: float, salt: str) -> None:
    """A customer's canary membership depends on the salt and its id only: the same in any
    batch, any order, any call."""
    whole = canary_customers(ids, salt, share)
    for k, cid in enumerate(ids):
        assert canary_customers([cid], salt, share)[0] == whole[k]
    order = np.random.default_rng(len(ids)).permutation(len(ids))
    shuffled = canary_customers([ids[i] for i in order], salt, share)
    np.testing.assert_array_equal(shuffled, whole[order])
    control = control_group(ids, "holdout", 0.3)
    codes = arm_codes(control, whole)
    assert (codes[control] == ARMS.index(CONTROL_ARM)).all()
    expected = np.where(whole, ARMS.index(CANARY_ARM), ARMS.index(PREVIOUS_ARM))
    np.testing.assert_array_equal(codes[~control], expected[~control])
    assert (arm_codes(control, None)[~control] == ARMS.index(FULL_ARM)).all()


@given(share=st.floats(0.05, 0.95))
@settings(max_examples=10, deadline=None)
def test_canary_share_is_met_within_treatment_and_independent_of_the_holdout(share: float) -> None:
    ids = [f"customer-{i}" for i in range(20_000)]
    canary = canary_customers(ids, "journeyopt-canary-1", share)
    control = control_group(ids, "journeyopt-holdout-1", 0.1)
    # binomial standard error at 18,000 treatment customers is at most 0.0037
    assert abs(canary[~control].mean() - share) < 0.015
    assert abs(canary[control].mean() - share) < 0.045  # the holdout's 2,000: independent


def _with_previous(champion: ServedModel, previous: ServedModel, share: float) -> ServedModel:
    return replace(champion, previous=previous, canary_share=share)


def _model(world: WorldSpec, seed: int, version: str) -> ServedModel:
    return ServedModel(linear_policy(world, seed, 10.0), "t", "journey-policy", version, "t",
                       "", "")  # type: ignore[arg-type]  # fmt: skip


def test_scorer_serves_each_arm_its_policy(world: WorldSpec, settings: ServingConfig) -> None:
    new, old = _model(world, 1, "7"), _model(world, 2, "6")
    rollout = Scorer(_with_previous(new, old, 0.5), settings, world)
    batch = random_batch(world, 11)
    decided = rollout.score(batch)
    alone_new = Scorer(new, settings, world).score(batch)
    alone_old = Scorer(old, settings, world).score(batch)
    assert decided.arm is not None
    arm = np.asarray(ARMS, dtype=object)[decided.arm]
    assert {CONTROL_ARM, CANARY_ARM, PREVIOUS_ARM} <= set(arm)
    canary, previous, control = arm == CANARY_ARM, arm == PREVIOUS_ARM, arm == CONTROL_ARM
    np.testing.assert_array_equal(decided.actions[canary], alone_new.actions[canary])
    np.testing.assert_array_equal(decided.actions[previous], alone_old.actions[previous])
    np.testing.assert_array_equal(decided.actions[control], alone_new.actions[control])
    np.testing.assert_allclose(decided.scores[previous], alone_old.scores[previous])
    np.testing.assert_array_equal(control, decided.control)
    # the two policies disagree somewhere, so the test can tell them apart
    assert (alone_new.actions[previous] != alone_old.actions[previous]).any()
    table = decision_table(decided, rollout.action_names, rollout.channels, "journey-policy", "7")
    frame = table.to_pandas()
    assert (frame["arm"].to_numpy() == arm).all()
    assert set(frame.loc[previous, "model_version"]) == {"6"}
    assert set(frame.loc[~previous, "model_version"]) == {"7"}
    plain = decision_table(alone_new, rollout.action_names, rollout.channels, "journey-policy", "7")
    assert set(plain.column("arm").to_pylist()) == {CONTROL_ARM, FULL_ARM}


def _records(n: int) -> dict[str, object]:
    return {"customers": [{"customer_id": f"api-{i}"} for i in range(n)]}


def test_api_logs_and_honours_the_arms(
    world: WorldSpec, settings: ServingConfig, tmp_path: Path
) -> None:
    """A real uvicorn server on loopback: every decision's arm in the decision log, the
    previous arm decided (and logged) by the previous version."""
    new, old = _model(world, 1, "7"), _model(world, 2, "6")
    cfg = replace(settings, decision_log=str(tmp_path / "log"))
    app = create_app(cfg, lambda: _with_previous(new, old, 0.3), world, token=TOKEN)
    with loopback_server(app) as url:
        reply = httpx.post(f"{url}/v1/score/batch", json=_records(300), headers=AUTH, timeout=30)
        assert reply.status_code == 200
        few = httpx.post(f"{url}/v1/score/batch", json=_records(20), headers=AUTH, timeout=30)
    log = read_decision_log(tmp_path / "log")
    # each response names the version that decided, as the log does (many and few customers)
    answered = {d["decision_id"]: d["model_version"] for d in reply.json()["decisions"]}
    answered |= {d["decision_id"]: d["model_version"] for d in few.json()["decisions"]}
    assert answered == dict(zip(log["decision_id"], log["model_version"], strict=True))
    log = log.iloc[:300]  # the first request's rows (appended first)
    assert len(log) == 300
    ids = log["customer_id"].tolist()
    control = control_group(ids, cfg.holdout.salt, cfg.holdout.control_share)
    canary = canary_customers(ids, cfg.rollout.salt, 0.3)
    expected = np.asarray(ARMS, dtype=object)[arm_codes(control, canary)]
    assert (log["arm"].to_numpy() == expected).all()
    assert set(log.loc[log["arm"] == PREVIOUS_ARM, "model_version"]) == {"6"}
    assert set(log.loc[log["arm"] != PREVIOUS_ARM, "model_version"]) == {"7"}
    counts = log["arm"].value_counts()
    assert counts[CANARY_ARM] > 30 and counts[PREVIOUS_ARM] > 100 and counts[CONTROL_ARM] > 50


def test_rollback_on_the_registry_is_followed_by_a_running_server(
    mlflow_sqlite: TrackingConfig, world: WorldSpec, tmp_path: Path
) -> None:
    first = register(mlflow_sqlite, linear_policy(world, seed=1))
    registry = PolicyRegistry(mlflow_sqlite)
    assert start_rollout(registry, first, None, 0.2).stage == FULL  # a first champion
    second = register(mlflow_sqlite, linear_policy(world, seed=2), alias="challenger")
    registry.promote(second, CHAMPION, reason="test promotion")
    state = start_rollout(registry, second, first, 0.25)
    assert state == read_rollout(registry)
    assert (state.stage, state.previous, state.canary_share) == (CANARY, first, 0.25)
    assert registry.alias(PREVIOUS).version == first
    served = load_served_model("models:/journey-policy@champion", mlflow_sqlite)
    assert served.previous is not None and served.previous.version == first
    watch = alias_watcher("models:/journey-policy@champion", mlflow_sqlite)
    assert watch is not None and watch() == served.key == f"{second}+{first}@0.25"

    log = tmp_path / "decisions"
    overrides = ("serve.reload.poll_seconds=0.5", f"serve.decision_log={log}",
                 "serve.holdout.control_share=0.2")  # fmt: skip
    with running_server(tmp_path, mlflow_sqlite.tracking_uri, *overrides) as (url, _):
        body = {"customers": [{"customer_id": f"c{i}"} for i in range(200)]}
        assert httpx.post(f"{url}/v1/score/batch", json=body, headers=AUTH, timeout=30).is_success
        info = httpx.get(f"{url}/v1/model", headers=AUTH, timeout=10).json()
        assert info["version"] == second
        assert info["rollout"] == {"stage": "canary", "canary_share": 0.25,
                                   "previous_version": first}  # fmt: skip
        during = read_decision_log(log)
        assert set(during["arm"]) == {CONTROL_ARM, CANARY_ARM, PREVIOUS_ARM}
        assert set(during.loc[during["arm"] == CANARY_ARM, "model_version"]) == {second}
        assert set(during.loc[during["arm"] == PREVIOUS_ARM, "model_version"]) == {first}

        after = roll_back(registry, "test: the canary lost")
        assert (after.champion, after.stage) == (first, FULL)
        assert registry.alias(CHAMPION).version == first
        tags = registry.client.get_model_version(registry.name, second).tags
        assert tags["journeyopt.rollout.stage"] == "rolled_back"
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/v1/model", headers=AUTH, timeout=10).json()["version"] != first:
            assert time.monotonic() < deadline, "the server did not follow the rollback"
            time.sleep(0.5)
        assert httpx.post(f"{url}/v1/score/batch", json=body, headers=AUTH, timeout=30).is_success
        info = httpx.get(f"{url}/v1/model", headers=AUTH, timeout=10).json()
        assert info["rollout"]["stage"] == "full" and info["rollout"]["previous_version"] is None
        later = read_decision_log(log).iloc[len(during) :]
    assert set(later["arm"]) == {CONTROL_ARM, FULL_ARM}
    assert set(later.loc[later["arm"] == FULL_ARM, "model_version"]) == {first}
    assert pd.Index(later["customer_id"]).is_unique


def test_batch_scorer_honours_the_arms(
    world: WorldSpec, settings: ServingConfig, demo_source: SourceConfig, tmp_path: Path
) -> None:
    """``journeyopt-score``'s function: the contact list and ``decisions.csv`` of a canary
    carry each customer's arm, the previous arm decided by the previous version."""
    new, old = _model(world, 1, "7"), _model(world, 2, "6")
    out = tmp_path / "actions.csv"
    result = score_logs(demo_source, AS_OF, _with_previous(new, old, 0.4), settings, out)
    log = read_decision_log(out.with_name("decisions.csv"))
    ids = log["customer_id"].tolist()
    control = control_group(ids, settings.holdout.salt, settings.holdout.control_share)
    canary = canary_customers(ids, settings.rollout.salt, 0.4)
    expected = np.asarray(ARMS, dtype=object)[arm_codes(control, canary)]
    assert (log["arm"].to_numpy() == expected).all()
    assert set(log.loc[log["arm"] == PREVIOUS_ARM, "model_version"]) == {"6"}
    assert result.by_arm == log["arm"].value_counts().to_dict()
    assert set(result.by_arm) == {CONTROL_ARM, CANARY_ARM, PREVIOUS_ARM}
    previous = log["arm"] == PREVIOUS_ARM
    alone = score_logs(demo_source, AS_OF, old, settings, tmp_path / "old" / "actions.csv")
    old_log = read_decision_log(tmp_path / "old" / "decisions.csv").set_index("customer_id")
    same = old_log.loc[log.loc[previous, "customer_id"], "action"].to_numpy()
    np.testing.assert_array_equal(log.loc[previous, "action"].to_numpy(), same)
    assert alone.by_arm == {
        k: v
        for k, v in {CONTROL_ARM: int(control.sum()), FULL_ARM: int((~control).sum())}.items()
        if v
    }


def test_a_previous_champion_of_another_world_reads_its_own_layout(
    world: WorldSpec, settings: ServingConfig, tmp_path: Path
) -> None:
    """A re-calibration changes the feature caps (here the largest booking value): the
    previous champion, trained in its own world, is fed observations scaled over that world's
    layout, not the served one's."""
    text = world_path("coworking").read_text()
    assert text.count("membership: [0.25, 1200.0]") == 1  # the largest booking value
    own = tmp_path / "world.yaml"
    own.write_text(text.replace("membership: [0.25, 1200.0]", "membership: [0.25, 1800.0]"))
    other = load_world(own)
    layout = observation_layout(other)
    assert layout_version(layout) != layout_version(observation_layout(world))
    old_policy = linear_policy(other, seed=2, scale=10.0)
    old = replace(_model(world, 2, "6"), policy=old_policy)
    new = _model(world, 1, "7")
    with pytest.raises(ConfigError, match="observation layout"):
        Scorer(_with_previous(new, old, 0.5), settings, world)  # without its world
    old = replace(old, trained_world=str(own))
    batch = random_batch(world, 12)
    decided = Scorer(_with_previous(new, old, 0.5), settings, world).score(batch)
    assert decided.arm is not None
    rows = np.flatnonzero(decided.arm == ARMS.index(PREVIOUS_ARM))
    segment = np.where(batch.segment >= 0, batch.segment, 0)
    week = int(batch.as_of.isocalendar().week)
    observations = encode(layout, batch.features, segment, week)[rows]
    masks = allowed_actions(decided.reasons[rows], batch.known[rows])
    _, expected = old_policy.act(observations.astype(np.float32), masks)
    np.testing.assert_allclose(decided.scores[rows], expected)
