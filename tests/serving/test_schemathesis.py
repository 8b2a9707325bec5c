"""Property-based API testing: schemathesis generates requests from the OpenAPI schema, valid
and invalid (wrong types, missing fields, out-of-range values), against the ASGI app; no
request may end in a server error."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from journeyopt.serving.app import create_app
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.world import WorldSpec

EXAMPLES = {"POST /v1/score": 130, "POST /v1/score/batch": 90, "POST /v1/score/columns": 50}
"""Generated cases per scoring operation and mode (valid and invalid); others get 25."""


@pytest.mark.slow
def test_generated_requests_never_get_a_server_error(
    served: ServedModel, world: WorldSpec, settings: ServingConfig
) -> None:
    small = replace(settings, max_batch=4, max_events=3)  # small bodies: faster generation
    app = create_app(small, lambda: served, world, token="")
    with TestClient(app):  # runs the lifespan: model loaded and warmed up
        pass
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            n = EXAMPLES.get(operation.label, 25)

            @hypothesis_settings(max_examples=n, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: schemathesis.Case) -> None:
                response = case.call()
                statuses[response.status_code] += 1
                assert response.status_code < 500, (case.as_curl_command(), response.text)

            try:
                check()
            except Unsatisfiable:  # nothing can be invalid in a request without inputs
                assert mode is GenerationMode.NEGATIVE and operation.method.upper() == "GET"
    print(dict(statuses))
    assert sum(statuses.values()) >= 500, statuses
    assert statuses[200] > 50 and statuses[422] > 50, statuses
