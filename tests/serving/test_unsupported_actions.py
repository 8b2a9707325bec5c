"""An action the calibrated world cannot value (no logged support) is never served: the
serving guard refuses it with the reason ``unsupported``, through the world's contact rules."""

from __future__ import annotations

from dataclasses import replace

from fastapi.testclient import TestClient

from journeyopt.serving.app import create_app
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.config import RulesConfig
from journeyopt.sim.world import WorldSpec
from tests.serving.conftest import AS_OF


def test_the_api_refuses_an_unsupported_action_with_its_reason(
    world: WorldSpec, served: ServedModel
) -> None:
    action = world.actions.names[-1]
    bare = replace(world, unsupported_actions=(action,))
    record = {
        "recency_weeks": 30.0, "frequency": 2, "monetary": 40.0, "n_conversions": 5,
        "tenure_weeks": 80, "lifecycle": "lapsed", "contacts_4w": 0, "contacts_4w_email": 0,
        "contacts_4w_phone": 0, "weeks_since_contact": None, "engagements_4w": 1,
        "weeks_since_engagement": 1.0, "n_cancellations": 0, "opted_out_email": False,
        "opted_out_phone": False,
    }  # fmt: skip
    body = {"customer_id": "c1", "segment": "s", "features": record, "as_of": AS_OF}
    headers = {"Authorization": "Bearer t"}
    for w, masked in ((world, {}), (bare, {action: "unsupported"})):
        body["segment"] = w.segment_names[0]
        app = create_app(ServingConfig(rules=RulesConfig()), lambda: served, w, token="t")
        with TestClient(app) as client:
            reply = client.post("/v1/score", json=body, headers=headers)
            assert reply.status_code == 200, reply.text
            assert reply.json()["masked"] == masked
            assert reply.json()["action"] != action or w is world
