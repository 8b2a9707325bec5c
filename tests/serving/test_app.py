"""The scoring API through FastAPI's TestClient: decisions, errors (422 with field paths,
413, 401), model info, decision log, reload."""

from __future__ import annotations

import gc
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

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AS_OF = "2024-03-06T10:00:00Z"


def feature_record(**changes: Any) -> dict[str, Any]:
    """A lapsed customer's features (coworking world, fatigue and engagement windows 4)."""
    record: dict[str, Any] = {
        "recency_weeks": 30.0, "frequency": 2, "monetary": 40.0, "n_conversions": 5,
        "tenure_weeks": 80, "lifecycle": "lapsed", "contacts_4w": 0, "contacts_4w_email": 0,
        "contacts_4w_phone": 0, "weeks_since_contact": None, "engagements_4w": 1,
        "weeks_since_engagement": 1.0, "n_cancellations": 0, "opted_out_email": False,
        "opted_out_phone": False,
    }  # fmt: skip
    return {**record, **changes}


@pytest.fixture
def client(
    served: ServedModel, settings: ServingConfig, world: WorldSpec, tmp_path: Path
) -> Iterator[TestClient]:
    cfg = replace(settings, decision_log=str(tmp_path / "log"), max_batch=50)
    app = create_app(cfg, lambda: served, world, token=TOKEN)
    with TestClient(app) as test_client:
        yield test_client


def test_score_one_customer_from_features(client: TestClient, served: ServedModel) -> None:
    body = {"customer_id": "c1", "segment": "startup_team", "features": feature_record(),
            "as_of": AS_OF}  # fmt: skip
    reply = client.post("/v1/score", json=body, headers=AUTH)
    assert reply.status_code == 200, reply.text
    decision = reply.json()
    assert decision["known"] and decision["group"] in ("treatment", "control")
    assert decision["model_version"] == served.version
    assert abs(sum(decision["probabilities"].values()) - 1) < 1e-5
    assert decision["probabilities"][decision["action"]] == pytest.approx(decision["propensity"])
    assert decision["masked"] == {}  # nothing forbids a contact here


def test_guards_and_unknown_customers(client: TestClient) -> None:
    opted_out = feature_record(opted_out_email=True, opted_out_phone=True, lifecycle="opted_out")
    capped = feature_record(contacts_4w=3, contacts_4w_email=2, contacts_4w_phone=1)
    customers = [
        {"customer_id": "out", "segment": "freelancer", "features": opted_out},
        {"customer_id": "capped", "segment": "corporate_team", "features": capped},
        {"customer_id": "new"},
        {"customer_id": "alien", "segment": "spaceship", "features": feature_record()},
    ]
    reply = client.post("/v1/score/batch", json={"as_of": AS_OF, "customers": customers},
                        headers=AUTH)  # fmt: skip
    assert reply.status_code == 200, reply.text
    out, capped_d, new, alien = reply.json()["decisions"]
    assert out["action"] == "none" and set(out["masked"].values()) == {"opted_out"}
    assert capped_d["action"] == "none" and set(capped_d["masked"].values()) == {"frequency_cap"}
    for unknown in (new, alien):
        assert unknown["action"] == "none" and not unknown["known"]
        assert unknown["propensity"] == 1.0 and unknown["expected_value"] == 0.0


def test_raw_events_give_the_panel_features(client: TestClient) -> None:
    events = [
        {"ts": "2023-06-05T10:00:00Z", "kind": "membership", "role": "conversion", "value": 300},
        {"ts": "2024-03-01T09:00:00+01:00", "kind": "inquiry", "role": "engagement"},
    ]
    contacts = [{"ts": "2024-02-20T08:00:00Z", "action": "newsletter"}]
    raw = {"customer_id": "r1", "segment": "startup_team", "events": events,
           "contacts": contacts}  # fmt: skip
    features = feature_record(
        recency_weeks=39.0, frequency=1, monetary=300.0, n_conversions=1, tenure_weeks=39,
        contacts_4w=1, contacts_4w_email=1, weeks_since_contact=2.0, engagements_4w=1,
        weeks_since_engagement=1.0,
    )  # fmt: skip
    given = {"customer_id": "r1", "segment": "startup_team", "features": features}
    reply = client.post("/v1/score/batch", json={"as_of": AS_OF, "customers": [raw, given]},
                        headers=AUTH)  # fmt: skip
    assert reply.status_code == 200, reply.text
    from_events, from_features = reply.json()["decisions"]
    for key in ("action", "probabilities", "expected_value", "masked", "group"):
        assert from_events[key] == from_features[key], key


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"customer_id": "c", "features": feature_record(frequency=-1)}, "frequency"),
        ({"customer_id": "c", "features": feature_record(lifecycle="gone")}, "lifecycle"),
        ({"customer_id": "c", "features": {"frequency": 1}}, "recency_weeks"),
        ({"customer_id": 5}, "customer_id"),
        ({"customer_id": "c", "contacts": [{"ts": AS_OF, "action": "fax"}]}, "action"),
        ({"customer_id": "c", "events": [{"ts": "3000-01-01", "kind": "x", "role": "conversion"}]},
         "ts"),
        ({"customer_id": "c", "features": feature_record(), "events": [
            {"ts": AS_OF, "kind": "x", "role": "engagement"}]}, "features or events"),
        ({"customer_id": "c", "surprise": 1}, "surprise"),
    ],
)  # fmt: skip
def test_bad_requests_get_422_with_the_field(client: TestClient, body: dict, path: str) -> None:
    reply = client.post("/v1/score", json=body, headers=AUTH)
    assert reply.status_code == 422
    assert path in reply.text


def test_invalid_json_and_oversize_batches(client: TestClient) -> None:
    reply = client.post(
        "/v1/score", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert reply.status_code == 422
    customers = [{"customer_id": f"c{i}"} for i in range(51)]
    reply = client.post("/v1/score/batch", json={"customers": customers}, headers=AUTH)
    assert reply.status_code == 413 and "50 customers" in reply.text
    big = {"customer_id": "x" * 200, "segment": "y" * 60_000_000}
    reply = client.post("/v1/score", json=big, headers=AUTH)
    assert reply.status_code == 413


def test_bearer_token_is_required(client: TestClient) -> None:
    body = {"customer_id": "c1"}
    assert client.post("/v1/score", json=body).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/v1/score", json=body, headers=wrong).status_code == 401
    assert client.get("/v1/model").status_code == 401
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200


def test_model_info(client: TestClient, served: ServedModel) -> None:
    info = client.get("/v1/model", headers=AUTH).json()
    assert info["version"] == served.version and info["content_sha256"] == served.content_sha256
    assert info["run_id"] == served.run_id and info["lineage"]["world"] == "coworking"
    assert info["actions"][0]["name"] == "none"
    assert info["contact_rules"]["frequency_caps"] == {"email": 2, "phone": 1}
    assert client.get("/readyz").json() == {"status": "ready", "model_version": served.version}


def test_every_decision_is_logged(client: TestClient, tmp_path: Path) -> None:
    customers = [{"customer_id": f"c{i}", "segment": "freelancer", "features": feature_record()}
                 for i in range(20)] + [{"customer_id": "unknown"}]  # fmt: skip
    client.post("/v1/score/batch", json={"as_of": AS_OF, "customers": customers}, headers=AUTH)
    client.post("/v1/score", json={"customer_id": "one", "as_of": AS_OF}, headers=AUTH)
    log = read_decision_log(tmp_path / "log")
    assert len(log) == 22 and log["decision_id"].is_unique
    assert (log["as_of"] == "2024-03-06T10:00:00Z").all() and (log["week"] == "2024-03-04").all()
    assert set(log["group"]) == {"treatment", "control"}


def test_a_large_batch_answers_with_the_logged_decision_ids(
    client: TestClient, tmp_path: Path
) -> None:
    customers = [  # more than SMALL_BATCH: the answer is built column-wise
        {"customer_id": f"c{i}", "segment": "freelancer", "features": feature_record()}
        for i in range(45)
    ]
    reply = client.post("/v1/score/batch", json={"as_of": AS_OF, "customers": customers},
                        headers=AUTH)  # fmt: skip
    decisions = reply.json()["decisions"]
    log = read_decision_log(tmp_path / "log")
    assert [d["decision_id"] for d in decisions] == log["decision_id"].tolist()
    assert [d["action"] for d in decisions] == log["action"].tolist()
    assert [d["propensity"] for d in decisions] == log["propensity"].tolist()


def test_the_heap_alive_after_loading_is_frozen(
    served: ServedModel, settings: ServingConfig, world: WorldSpec
) -> None:
    gc.unfreeze()
    app = create_app(settings, lambda: served, world, token=TOKEN)
    with TestClient(app) as test_client:
        assert gc.get_freeze_count() > 0  # start-up froze it
        gc.unfreeze()
        assert test_client.post("/admin/reload", headers=AUTH).status_code == 200
        assert gc.get_freeze_count() > 0  # and a reload again


def test_reload_swaps_the_model(
    served: ServedModel, settings: ServingConfig, world: WorldSpec
) -> None:
    versions = iter(["1", "2"])
    app = create_app(settings, lambda: replace(served, version=next(versions)), world, token=TOKEN)
    with TestClient(app) as test_client:
        assert test_client.get("/readyz").json()["model_version"] == "1"
        assert test_client.post("/admin/reload").status_code == 401
        reply = test_client.post("/admin/reload", headers=AUTH)
        assert reply.status_code == 200 and reply.json()["version"] == "2"
        decision = test_client.post("/v1/score", json={"customer_id": "c"}, headers=AUTH).json()
        assert decision["model_version"] == "2"
    open_app = create_app(settings, lambda: served, world, token="")
    with TestClient(open_app) as test_client:
        assert test_client.post("/v1/score", json={"customer_id": "c"}).status_code == 200
        assert test_client.post("/admin/reload").status_code == 403
