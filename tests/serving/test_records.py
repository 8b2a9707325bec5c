"""``POST /v1/score/batch``'s fast path: feature records read column-wise accept only what the
pydantic request model accepts, with the same values; bodies it refuses get the model's own
answer (the same decisions, or a 422 naming the field); both response builders give the same
JSON values."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeyopt.serving.app import create_app, customers_batch
from journeyopt.serving.config import HoldoutConfig, ServingConfig
from journeyopt.serving.decisions import decision_ids
from journeyopt.serving.records import OverLimit, RecordReader
from journeyopt.serving.responses import (
    SMALL_BATCH,
    batch_body,
    decision_objects,
    decision_texts,
)
from journeyopt.serving.schemas import ApiModels, api_models
from journeyopt.serving.scorer import CustomerBatch, Scorer
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.config import shipped_practice, shipped_rules
from journeyopt.sim.world import WorldSpec
from tests.serving.test_app import AS_OF
from tests.serving.test_columns import customers

NOW = datetime(2024, 3, 6, 10, tzinfo=UTC)
STRANGE: list[Any] = [None, True, False, -1, 0, 3, 2.0, 2.5, 1e7, 1e13, "1", "active", [], {}]


@pytest.fixture
def client(served: ServedModel, settings: ServingConfig, world: WorldSpec) -> Iterator[TestClient]:
    with TestClient(create_app(settings, lambda: served, world, token="")) as test_client:
        yield test_client


def kept(decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in d.items() if k != "decision_id"} for d in decisions]


def same_batch(fast: CustomerBatch, slow: CustomerBatch) -> None:
    assert fast.customer_ids.tolist() == slow.customer_ids.tolist()
    np.testing.assert_array_equal(fast.segment, slow.segment)
    np.testing.assert_array_equal(fast.known, slow.known)
    assert fast.as_of == slow.as_of
    for name, values in slow.features.items():
        np.testing.assert_array_equal(fast.features[name], values, err_msg=name)


def many(n: int) -> list[dict[str, Any]]:
    rows = customers()
    return [{**rows[i % len(rows)], "customer_id": f"m{i}"} for i in range(n)]


def test_fast_and_validated_paths_give_the_same_decisions(client: TestClient) -> None:
    rows = [*many(80), {"customer_id": "new"}, {"customer_id": "e", "events": [], "contacts": []}]
    fast = client.post("/v1/score/batch", json={"as_of": AS_OF, "customers": rows})
    raw = {"customer_id": "raw", "events": [{"ts": AS_OF, "kind": "x", "role": "engagement"}]}
    slow = client.post("/v1/score/batch", json={"as_of": AS_OF, "customers": [*rows, raw]})
    assert fast.status_code == slow.status_code == 200, slow.text  # raw events: the model
    assert kept(fast.json()["decisions"]) == kept(slow.json()["decisions"][: len(rows)])
    assert len(fast.json()["decisions"]) == len(rows)
    assert client.post("/v1/score/batch", json={"customers": []}).json() == {"decisions": []}


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"recency_weeks": -1.0}, ["body", "customers", 17, "features", "recency_weeks"]),
        ({"frequency": True}, ["body", "customers", 17, "features", "frequency"]),
        ({"frequency": 2.0}, ["body", "customers", 17, "features", "frequency"]),
        ({"frequency": "2"}, ["body", "customers", 17, "features", "frequency"]),
        ({"monetary": "12.5"}, ["body", "customers", 17, "features", "monetary"]),
        ({"recency_weeks": 3}, None),  # a JSON integer is a number
        ({"opted_out_email": "yes"}, ["body", "customers", 17, "features", "opted_out_email"]),
        (
            {"lifecycle": "opted_out", "opted_out_email": True, "opted_out_phone": False},
            ["body", "customers", 17, "features", "lifecycle"],
        ),
        ({"lifecycle": "opted_out", "opted_out_email": True, "opted_out_phone": True}, None),
        ({"lifecycle": "active", "opted_out_email": True, "opted_out_phone": True}, None),
        ({"lifecycle": "gone"}, ["body", "customers", 17, "features", "lifecycle"]),
        ({"surprise": 1}, ["body", "customers", 17, "features", "surprise"]),
    ],
)
def test_a_wrong_record_in_a_large_batch_gets_its_path(
    client: TestClient, change: dict[str, Any], loc: list[Any] | None
) -> None:
    rows = many(60)
    rows[17]["features"] = {**rows[17]["features"], **change}
    reply = client.post("/v1/score/batch", json={"as_of": AS_OF, "customers": rows})
    if loc is None:
        assert reply.status_code == 200, reply.text
        return
    assert reply.status_code == 422
    assert loc in [e["loc"] for e in reply.json()["detail"]], reply.text


def test_plain_feature_records_take_the_fast_path(world: WorldSpec) -> None:
    rows = many(40)
    rows[0]["features"] = {**rows[0]["features"], "recency_weeks": 3}  # an int for a float
    body = json.dumps({"as_of": AS_OF, "customers": rows}).encode()
    read = RecordReader(world, 100).read(body, lambda: NOW)
    assert isinstance(read, CustomerBatch) and read.n == 40
    assert read.features["recency_weeks"][0] == 3.0


@pytest.mark.parametrize(
    "change",
    [
        {"customer_id": "\ud800"},  # a lone surrogate: not UTF-8
        {"features": {"frequency": 2.0}},  # refused: the model names the field
        {"features": {"lifecycle": "opted_out", "opted_out_email": False}},
        {"features": {"monetary": "12.5"}},
        {"events": [{"ts": AS_OF, "kind": "visit", "role": "visit"}]},
        {"surprise": 1},
    ],
)
def test_what_the_fast_path_leaves_to_the_model(world: WorldSpec, change: dict[str, Any]) -> None:
    rows = many(3)
    change = dict(change)
    features = change.pop("features", {})
    rows[1] = {**rows[1], **change, "features": {**rows[1]["features"], **features}}
    if "events" in change:
        rows[1].pop("features")
    text = json.dumps({"as_of": AS_OF, "customers": rows})
    assert RecordReader(world, 100).read(text.encode(), lambda: NOW) is None


def test_a_lone_surrogate_is_invalid_json_for_both_paths(client: TestClient) -> None:
    rows = json.dumps({"as_of": AS_OF, "customers": many(3)}).replace('"m1"', '"\\ud800"')
    reply = client.post("/v1/score/batch", content=rows.encode())
    assert reply.status_code == 422
    assert [(e["loc"], e["type"]) for e in reply.json()["detail"]] == [(["body"], "json_invalid")]


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deeply_nested_bodies_are_a_422(client: TestClient, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    for body in (
        '{"customers": [{"customer_id": "a", "events": [' + nested + "]}]}",
        '{"customers": [{"customer_id": "a", "features": ' + nested + "}]}",
        '{"as_of": ' + nested + ', "customers": []}',
    ):
        reply = client.post("/v1/score/batch", content=body.encode())
        assert reply.status_code == 422, (depth, body[:80], reply.text[:200])


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
BATCH_KEYS = st.sampled_from(["customers", "as_of", "customer_id", "features", "events", "x"])


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    document=st.one_of(
        JSON,
        st.dictionaries(BATCH_KEYS, JSON, max_size=3),
        st.builds(
            lambda rows: {"customers": rows},
            st.lists(st.dictionaries(BATCH_KEYS, JSON, max_size=4), max_size=4),
        ),
    ),
    garbage=st.binary(max_size=64),
)
def test_the_reader_never_raises(world: WorldSpec, document: Any, garbage: bytes) -> None:
    reader = RecordReader(world, 3)
    for raw in (json.dumps(document).encode(), garbage):
        read = reader.read(raw, lambda: NOW)
        assert read is None or isinstance(read, CustomerBatch | OverLimit)


def test_over_the_limit_is_413_without_validation(world: WorldSpec) -> None:
    reader = RecordReader(world, max_batch=5)
    body = json.dumps({"customers": [{"customer_id": "x"}] * 6}).encode()
    assert reader.read(body, lambda: NOW) == OverLimit(6)


def test_both_response_builders_give_the_same_values(
    served: ServedModel, settings: ServingConfig, world: WorldSpec
) -> None:
    models = api_models(world, settings)
    scorer = Scorer(served, settings, world)
    request: Any = models.batch_request.model_validate({"as_of": AS_OF, "customers": many(70)})
    request.customers[5].customer_id = 'quote " back\\slash \u00e9\n'
    decisions = scorer.score(customers_batch(request.customers, request.as_of, world))
    ids = decision_ids(decisions.batch.n)
    assert decisions.batch.n > SMALL_BATCH  # column-wise
    texts = decision_texts(decisions, ids, scorer)
    assert [json.loads(t) for t in texts] == decision_objects(decisions, ids, scorer)
    body = batch_body(texts).body
    assert json.loads(body) == {"decisions": [json.loads(t) for t in texts]}
    for text in texts:
        models.score_response.model_validate_json(text)  # the documented response model
    assert json.loads(texts[5])["customer_id"] == 'quote " back\\slash \u00e9\n'


def mutated(rng: np.random.Generator, mutations: int) -> dict[str, Any]:
    """A batch body of valid records with a few values replaced by strange ones."""
    rows = [*copy.deepcopy(many(6)), {"customer_id": "u"}, {"customer_id": "s", "segment": None}]
    for _ in range(mutations):
        row = rows[int(rng.integers(len(rows)))]
        record = row.get("features")
        value = STRANGE[int(rng.integers(len(STRANGE)))]
        where = int(rng.integers(4))
        if where == 0 and isinstance(record, dict) and record:
            record[str(rng.choice(sorted(record)))] = value
        elif where == 1:
            row["customer_id" if rng.random() < 0.5 else "segment"] = value
        elif where == 2 and isinstance(record, dict) and record:
            record.pop(str(rng.choice(sorted(record))))
        else:
            row["features" if rng.random() < 0.5 else "extra"] = value
    return {"as_of": AS_OF, "customers": rows}


@pytest.fixture(scope="module")
def models(world: WorldSpec) -> ApiModels:
    return api_models(
        world,
        ServingConfig(
            rules=shipped_rules("coworking"),
            holdout=HoldoutConfig(staff=shipped_practice("coworking")),
        ),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32 - 1), mutations=st.integers(0, 3))
def test_the_fast_path_accepts_only_what_the_model_accepts(
    world: WorldSpec, models: ApiModels, seed: int, mutations: int
) -> None:
    body = json.dumps(mutated(np.random.default_rng(seed), mutations)).encode()
    fast = RecordReader(world, 100).read(body, lambda: NOW)
    if fast is None:
        return  # the endpoint validates it with the model
    assert isinstance(fast, CustomerBatch)
    request: Any = models.batch_request.model_validate_json(body)  # must not raise
    same_batch(fast, customers_batch(request.customers, request.as_of, world))
    assert fast.as_of == pd.Timestamp(AS_OF)
