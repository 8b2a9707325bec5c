"""Exploration in serving: the reported probabilities are the true ones (empirical frequencies
over many customers match them), ``share=0`` is the policy's choice with propensity 1, the draw
is reproducible per customer and week, and the API, the batch scorer and the decision log agree
with exploration on."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from journeyopt.data.source import SourceConfig
from journeyopt.errors import ConfigError
from journeyopt.serving.app import create_app
from journeyopt.serving.batch import score_logs
from journeyopt.serving.config import ExplorationConfig, ServingConfig
from journeyopt.serving.decisions import read_decision_log
from journeyopt.serving.exploration import draw, explored_probabilities
from journeyopt.serving.guards import allowed_actions
from journeyopt.serving.scorer import CustomerBatch, Scorer
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.world import WorldSpec
from journeyopt.tracking.model import most_probable
from tests.serving.conftest import AS_OF
from tests.serving.test_guards_holdout import random_batch
from tests.serving.test_server import raw_requests

COPIES = 400


def explorer(settings: ServingConfig, share: float, salt: str = "explore-test") -> ServingConfig:
    return replace(settings, exploration=ExplorationConfig(share=share, salt=salt))


def tiled(batch: CustomerBatch, copies: int) -> CustomerBatch:
    """``copies`` customers (distinct ids) with each customer's features of ``batch``."""
    ids = np.array(
        [f"{c}-copy{k}" for k in range(copies) for c in batch.customer_ids], dtype=object
    )
    features = {k: np.tile(np.asarray(v), copies) for k, v in batch.features.items()}
    segment, known = np.tile(batch.segment, copies), np.tile(batch.known, copies)
    return CustomerBatch(ids, features, segment, known, batch.as_of)


def test_draw_is_exact_inverse_cdf() -> None:
    probabilities = np.array([[0.0, 0.25, 0.0, 0.75, 0.0]] * 5)
    unit = np.array([0.0, 0.2499, 0.25, 0.9, 0.999999999])
    np.testing.assert_array_equal(draw(probabilities, unit), [1, 1, 3, 3, 3])
    allowed = np.array([[True, False, True, True], [True, False, False, False]])
    mixed = explored_probabilities(np.array([2, 0]), allowed, 0.3)
    np.testing.assert_allclose(mixed, [[0.1, 0.0, 0.8, 0.1], [1.0, 0.0, 0.0, 0.0]])


def test_propensities_are_the_empirical_frequencies(
    served: ServedModel, settings: ServingConfig, world: WorldSpec
) -> None:
    scorer = Scorer(served, explorer(settings, 0.4), world)
    base = random_batch(world, 5)
    decisions = scorer.score(tiled(base, COPIES))
    n_actions = world.actions.n_actions
    chosen = np.eye(n_actions)[decisions.actions]  # (N, A) one-hot
    p = decisions.probabilities
    # over all customers: counts per action against the sum of the probabilities
    expected, spread = p.sum(axis=0), np.sqrt((p * (1 - p)).sum(axis=0))
    assert (np.abs(chosen.sum(axis=0) - expected) <= 4.5 * spread + 1).all()
    # per feature record: the treatment copies share one distribution; frequencies match it
    treated = ~decisions.control
    row = np.tile(np.arange(base.n), COPIES)
    explored = 0
    for r in range(base.n):
        mine = treated & (row == r)
        q = p[mine][0]
        np.testing.assert_allclose(p[mine], np.broadcast_to(q, p[mine].shape))
        k = int(mine.sum())
        frequency = chosen[mine].mean(axis=0)
        assert (np.abs(frequency - q) <= 4.5 * np.sqrt(q * (1 - q) / k) + 1e-9).all(), r
        explored += int((q > 0).sum() > 1)
    assert explored > base.n // 6  # many records have several allowed actions
    # the carried-out action always has positive probability; forbidden ones have none
    assert (decisions.propensity > 0).all()
    assert (p[decisions.reasons != 0] == 0).all()


def test_no_exploration_is_the_argmax_with_propensity_one(
    served: ServedModel, settings: ServingConfig, world: WorldSpec
) -> None:
    batch = random_batch(world, 8)
    decisions = Scorer(served, explorer(settings, 0.0), world).score(batch)
    masks = allowed_actions(decisions.reasons, batch.known)
    treated = ~decisions.control
    assert treated.sum() > 20
    greedy = most_probable(decisions.scores, masks)
    np.testing.assert_array_equal(decisions.actions[treated], greedy[treated])
    assert (decisions.propensity == 1.0).all()
    np.testing.assert_allclose(decisions.scores.sum(axis=1), 1.0)
    assert len(np.unique(decisions.scores.round(6), axis=0)) > 10  # the model's own softmax


def test_the_draw_is_per_customer_and_week(
    served: ServedModel, settings: ServingConfig, world: WorldSpec
) -> None:
    scorer = Scorer(served, explorer(settings, 1.0), world)
    batch = tiled(random_batch(world, 9), 10)
    first = scorer.score(batch)
    # the same customers in another order and composition: the same decisions
    order = np.random.default_rng(0).permutation(batch.n)[: batch.n // 2]
    part = CustomerBatch(
        batch.customer_ids[order],
        {k: np.asarray(v)[order] for k, v in batch.features.items()},
        batch.segment[order],
        batch.known[order],
        batch.as_of + pd.Timedelta(hours=30 if batch.as_of.weekday() < 4 else 0),  # same week
    )
    np.testing.assert_array_equal(scorer.score(part).actions, first.actions[order])
    # next week and another salt draw afresh
    next_week = replace(batch, as_of=batch.as_of + pd.Timedelta(weeks=1))
    resalted = Scorer(served, explorer(settings, 1.0, "other-salt"), world).score(batch)
    several = (first.probabilities > 0).sum(axis=1) > 1
    assert several.sum() > 100
    for other in (scorer.score(next_week), resalted):
        assert 0.2 < (other.actions != first.actions)[several].mean() < 0.95


def test_api_and_batch_scorer_agree_with_exploration_on(
    served: ServedModel, settings: ServingConfig, world: WorldSpec, demo_source: SourceConfig,
    tmp_path: Path,
) -> None:  # fmt: skip
    cfg = explorer(settings, 0.5)
    out = tmp_path / "batch" / "actions.csv"
    score_logs(demo_source, AS_OF, served, cfg, out)
    logged = read_decision_log(out.with_name("decisions.csv")).set_index("customer_id")
    ids = list(logged.index[:60])
    app = create_app(cfg, lambda: served, world, token="", source=demo_source)
    with TestClient(app) as client:  # half of the events without role: the source gives it
        body = {"as_of": AS_OF, "customers": raw_requests(demo_source, ids)}
        reply = client.post("/v1/score/batch", json=body)
    assert reply.status_code == 200, reply.text
    api = pd.DataFrame(reply.json()["decisions"]).set_index("customer_id")
    batch = logged.loc[ids]
    for column in ("action", "group"):
        assert (api[column] == batch[column]).all(), column
    np.testing.assert_allclose(api["propensity"], batch["propensity"], atol=1e-6)
    for i, cid in enumerate(ids):
        assert api.loc[cid, "probabilities"] == pytest.approx(
            json.loads(batch["probabilities"].iloc[i]), abs=1e-6
        )
    # the decision log's propensity is the mixture's: 1 - eps + eps / n_allowed on the model's
    # choice, eps / n_allowed on any other allowed action, 1 for the control group
    treated = (batch["group"] == "treatment").to_numpy()
    n_allowed = np.array([sum(v > 0 for v in p.values()) for p in api["probabilities"]])
    greedy = np.array([max(s, key=s.__getitem__) for s in api["scores"]])
    on_greedy = api["action"].to_numpy() == greedy
    expected = np.where(on_greedy, 0.5 + 0.5 / n_allowed, 0.5 / n_allowed)
    np.testing.assert_allclose(batch["propensity"][treated], expected[treated], atol=1e-6)
    assert (batch["propensity"][~treated] == 1.0).all()
    assert (batch["propensity"][treated] < 1.0).any() and (~on_greedy & treated).any()


@pytest.mark.parametrize(
    ("change", "message"),
    [({"share": 1.5}, r"share must be in \[0, 1\]"), ({"salt": ""}, "salt must not be empty")],
)
def test_bad_exploration_settings(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=f"serve.exploration.{message}"):
        ExplorationConfig(**change)
