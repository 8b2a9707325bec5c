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
from tests.serving.test_app import feature_record


def test_the_api_refuses_an_unsupported_action_with_its_reason(
    world: WorldSpec, served: ServedModel
) -> None:
    action = world.actions.names[-1]
    bare = replace(world, unsupported_actions=(action,))
    record = feature_record()
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
