"""Raw events in API requests without ``role``: the served data source config's
``event_roles`` give it (a CRM sends its own event names), unknown names get 422 at the
event's ``kind``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hydra import compose, initialize_config_module

from journeyopt.cli.entry import to_object
from journeyopt.data.source import SourceConfig
from journeyopt.serving.app import create_app
from journeyopt.serving.config import ServeJobConfig, ServingConfig, register_configs
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.world import WorldSpec

AS_OF = "2024-03-06T10:00:00Z"


def serve_source(*overrides: str) -> SourceConfig:
    """The ``data`` of ``journeyopt-serve`` composed with ``overrides``."""
    register_configs()
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        node = compose("serve", overrides=["serve.world=coworking", *overrides])
        return to_object(node, ServeJobConfig).data


@pytest.fixture(scope="module")
def crm_client(
    served: ServedModel, settings: ServingConfig, world: WorldSpec
) -> Iterator[TestClient]:
    """The API with the example CRM export's source config (German event names)."""
    app = create_app(
        settings, lambda: served, world, token="", source=serve_source("data=coworking_crm")
    )
    with TestClient(app) as client:
        yield client


def crm_events(with_roles: bool) -> list[dict[str, Any]]:
    """A member who booked a year ago, visited and asked last week, in the CRM's names."""
    events = [
        ("2023-03-06T10:00:00+01:00", "Mitgliedschaft", "conversion", 300.0),
        ("2023-09-12T09:00:00+02:00", "Tagespass", "conversion", 25.0),
        ("2024-02-27T09:00:00+01:00", "Website-Besuch", "engagement", 0.0),
        ("2024-02-28T09:00:00+01:00", "Anfrage", "engagement", 0.0),
    ]
    return [
        {"ts": ts, "kind": kind, "value": value, **({"role": role} if with_roles else {})}
        for ts, kind, role, value in events
    ]


def test_data_picks_the_serve_source() -> None:
    assert serve_source("data=coworking").event_roles["day_pass"] == "conversion"
    crm = serve_source("data=coworking_crm")
    assert crm.name == "coworking_crm" and crm.event_roles["Abmeldung"] == "opt_out"


def test_roles_come_from_the_source_mapping(crm_client: TestClient) -> None:
    customer = {"customer_id": "K-1", "segment": "startup_team",
                "contacts": [{"ts": "2024-02-20T08:00:00Z", "action": "newsletter"}]}  # fmt: skip
    customers = [
        {**customer, "events": crm_events(with_roles=False)},
        {**customer, "events": crm_events(with_roles=True)},
    ]
    reply = crm_client.post("/v1/score/batch", json={"as_of": AS_OF, "customers": customers})
    assert reply.status_code == 200, reply.text
    derived, given = reply.json()["decisions"]
    assert derived["known"]
    for key in ("action", "probabilities", "expected_value", "masked", "group"):
        assert derived[key] == given[key], key
    # the mapping matters: the same events read as engagements give other features
    engaged = [{**e, "kind": "Sonstiges", "role": "engagement"} for e in crm_events(False)]
    reply = crm_client.post("/v1/score", json={**customer, "events": engaged, "as_of": AS_OF})
    assert reply.status_code == 200, reply.text
    assert reply.json()["expected_value"] != derived["expected_value"]


def test_an_opt_out_by_its_crm_name_is_honoured(crm_client: TestClient) -> None:
    events = [*crm_events(with_roles=False), {"ts": "2024-03-01T12:00:00Z", "kind": "Abmeldung"}]
    body = {"customer_id": "K-2", "segment": "freelancer", "events": events, "as_of": AS_OF}
    reply = crm_client.post("/v1/score", json=body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["action"] == "none"
    assert set(reply.json()["masked"].values()) == {"opted_out"}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"kind": "Kaffee"}, "unknown event name 'Kaffee': not mapped to a role by data source "
                             "'coworking_crm'"),
        ({"kind": "day_pass"}, "unknown event name 'day_pass'"),  # the demo's name, not the CRM's
        ({"kind": "Tagespass", "role": "engagement"}, "'Tagespass' is a conversion event"),
    ],
)  # fmt: skip
def test_unknown_or_contradicting_event_names_get_422_at_the_kind(
    crm_client: TestClient, event: dict[str, str], message: str
) -> None:
    events = [*crm_events(with_roles=False), {"ts": "2024-03-01T12:00:00Z", **event}]
    body = {"customer_id": "K-3", "segment": "freelancer", "events": events}
    reply = crm_client.post("/v1/score", json=body)
    assert reply.status_code == 422, reply.text
    (error,) = reply.json()["detail"]
    assert error["loc"] == ["body", "events", 4, "kind"]
    assert message in error["msg"]
    batch = {"customers": [{"customer_id": "ok"}, body]}
    reply = crm_client.post("/v1/score/batch", json=batch)
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"][0]["loc"] == ["body", "customers", 1, "events", 4, "kind"]


def test_an_unmapped_name_with_its_role_is_accepted(crm_client: TestClient) -> None:
    events = [{"ts": "2024-03-01T12:00:00Z", "kind": "Kaffee", "role": "engagement"}]
    body = {"customer_id": "K-4", "segment": "freelancer", "events": events, "as_of": AS_OF}
    assert crm_client.post("/v1/score", json=body).status_code == 200


def test_without_a_source_every_event_names_its_role(
    served: ServedModel, settings: ServingConfig, world: WorldSpec
) -> None:
    with TestClient(create_app(settings, lambda: served, world, token="")) as client:
        body = {"customer_id": "c", "events": [{"ts": AS_OF, "kind": "day_pass"}]}
        reply = client.post("/v1/score", json=body)
        assert reply.status_code == 422
        assert "serves without a data source config: give the event's role" in reply.text
        body["events"][0]["role"] = "conversion"  # type: ignore[index]
        assert client.post("/v1/score", json=body).status_code == 200
