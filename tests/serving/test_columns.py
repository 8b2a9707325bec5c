"""``POST /v1/score/columns``: the same decisions as ``/v1/score/batch`` for the same customers,
and the same error behaviour (422 with field paths, 413, 401)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from journeyopt.serving.app import create_app
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.decisions import read_decision_log
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.world import WorldSpec
from tests.serving.test_app import AS_OF, AUTH, TOKEN, feature_record

MAX_BATCH = 50


@pytest.fixture
def client(
    served: ServedModel, settings: ServingConfig, world: WorldSpec, tmp_path: Path
) -> Iterator[TestClient]:
    cfg = replace(settings, decision_log=str(tmp_path / "log"), max_batch=MAX_BATCH)
    app = create_app(cfg, lambda: served, world, token=TOKEN)
    with TestClient(app) as test_client:
        yield test_client


def customers() -> list[dict[str, Any]]:
    """Varied customers: guards, unknown and missing types, "never" features."""
    segments = ["freelancer", "startup_team", "corporate_team", "spaceship", None]
    found = []
    for i in range(23):
        record = feature_record(
            recency_weeks=None if i % 4 == 0 else float(i),
            monetary=None if i % 4 == 0 else 10.0 + i,
            frequency=i % 5,
            lifecycle=("prospect", "active", "lapsed", "opted_out")[i % 4],
            contacts_4w=i % 4,
            contacts_4w_email=i % 3,
            weeks_since_contact=None if i % 3 else float(i % 6),
            opted_out_email=i % 7 == 0 or i % 4 == 3,  # opted_out: out of every channel
            opted_out_phone=i % 5 == 0 or i % 4 == 3,
        )
        found.append({"customer_id": f"c{i}", "segment": segments[i % 5], "features": record})
    return found


def as_columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    names = list(rows[0]["features"])
    return {
        "as_of": AS_OF,
        "customer_id": [r["customer_id"] for r in rows],
        "segment": [r["segment"] for r in rows],
        "features": {n: [r["features"][n] for r in rows] for n in names},
    }


def test_columns_give_the_batch_decisions(client: TestClient, world: WorldSpec) -> None:
    rows = customers()
    by_row = client.post("/v1/score/batch", json={"as_of": AS_OF, "customers": rows}, headers=AUTH)
    by_column = client.post("/v1/score/columns", json=as_columns(rows), headers=AUTH)
    assert by_row.status_code == 200 and by_column.status_code == 200, by_column.text
    expected = by_row.json()["decisions"]
    got = by_column.json()
    assert got["customer_id"] == [d["customer_id"] for d in expected]
    for field in ("group", "action", "channel", "propensity", "expected_value", "known"):
        assert got[field] == [d[field] for d in expected], field
    for a in world.actions.names:
        assert got["probabilities"][a] == [d["probabilities"][a] for d in expected]
        assert got["masked"][a] == [d["masked"].get(a) for d in expected]
    assert (
        got["as_of"] == expected[0]["as_of"]
        and got["model_version"] == expected[0]["model_version"]
    )
    assert len(set(got["decision_id"])) == len(rows)
    assert {"none", "newsletter"} & set(got["action"]) and not all(got["known"])
    assert "opted_out" in got["masked"]["newsletter"]
    # an omitted segment column is every customer without a type (unknown in this world)
    body = as_columns(rows)
    del body["segment"]
    reply = client.post("/v1/score/columns", json=body, headers=AUTH)
    assert reply.status_code == 200 and not any(reply.json()["known"])


def test_columnar_decisions_are_logged(client: TestClient, tmp_path: Path) -> None:
    rows = customers()
    reply = client.post("/v1/score/columns", json=as_columns(rows), headers=AUTH)
    assert reply.status_code == 200
    log = read_decision_log(tmp_path / "log")
    assert log["decision_id"].tolist() == reply.json()["decision_id"]
    assert log["action"].tolist() == reply.json()["action"]


@pytest.mark.parametrize(
    ("change", "status", "text"),
    [
        (lambda b: b["customer_id"].pop(), 422, "one value per customer_id"),
        (lambda b: b["segment"].append("freelancer"), 422, "segment"),
        (lambda b: b["features"]["frequency"].__setitem__(3, -1), 422, '"frequency",3'),
        (lambda b: b["features"]["lifecycle"].__setitem__(0, "gone"), 422, "lifecycle"),
        (lambda b: b["features"].pop("monetary"), 422, "monetary"),
        (lambda b: b["features"].__setitem__("surprise", [1]), 422, "surprise"),
        (lambda b: b.__setitem__("customer_id", ["c"] * (MAX_BATCH + 1)), 413, "50 customers"),
    ],
)
def test_bad_columns(client: TestClient, change: Any, status: int, text: str) -> None:
    body = as_columns(customers())
    change(body)
    reply = client.post("/v1/score/columns", json=body, headers=AUTH)
    assert reply.status_code == status, reply.text
    assert text.replace(" ", "") in reply.text.replace(" ", "")


def test_empty_columns_and_token(client: TestClient, world: WorldSpec) -> None:
    body = {"customer_id": [], "features": {n: [] for n in world.features.feature_names}}
    reply = client.post("/v1/score/columns", json=body, headers=AUTH)
    assert reply.status_code == 200, reply.text
    assert reply.json()["action"] == [] and reply.json()["masked"]["none"] == []
    assert client.post("/v1/score/columns", json=body).status_code == 401
    assert "/v1/score/columns" in client.get("/openapi.json").json()["paths"]
