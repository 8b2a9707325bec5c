"""Property-based API testing: schemathesis generates requests from the OpenAPI schema, valid
and invalid (wrong types, missing fields, out-of-range values), against a real uvicorn server
on loopback. No request may end in a server error, every status answered must be one the
schema declares for the operation (``status_code_conformance``), and a request the schema
does not allow must be refused (``negative_data_rejection``: no lax coercion of ``"2"`` into a
count): the contract and the server cannot drift apart. About 400 cases, well under a
minute."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    status_code_conformance,
)

from journeyopt.serving.app import create_app
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.world import WorldSpec
from tests.serving.loopback import loopback_server

TOKEN = "schemathesis-token"
EXAMPLES = {"POST /v1/score": 80, "POST /v1/score/batch": 60, "POST /v1/score/columns": 50}
"""Generated cases per scoring operation and mode (valid and invalid); others get 10."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    negative_data_rejection,
]


@pytest.mark.slow
def test_generated_requests_get_only_documented_statuses(
    served: ServedModel, world: WorldSpec, settings: ServingConfig
) -> None:
    small = replace(settings, max_batch=4, max_events=3)  # small bodies: faster generation
    app = create_app(small, lambda: served, world, token=TOKEN)
    statuses: Counter[int] = Counter()
    with loopback_server(app) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()  # type: ignore[union-attr]  # an Err raises here
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                n = EXAMPLES.get(operation.label, 10)

                @hypothesis_settings(max_examples=n, deadline=None, database=None,
                                     suppress_health_check=list(HealthCheck))  # fmt: skip
                @given(case=operation.as_strategy(generation_mode=mode))
                def check(case: schemathesis.Case) -> None:
                    with_token = sum(statuses.values()) % 7 != 0  # every 7th: no token
                    headers = {"Authorization": f"Bearer {TOKEN}"} if with_token else {}
                    response = case.call_and_validate(headers=headers, checks=CHECKS)
                    statuses[response.status_code] += 1

                try:
                    check()
                except Unsatisfiable:  # nothing can be invalid in a request without inputs
                    assert mode is GenerationMode.NEGATIVE and operation.method.upper() == "GET"
    print(dict(statuses))
    assert sum(statuses.values()) >= 300, statuses
    assert statuses[200] > 50 and statuses[422] > 50 and statuses[401] > 0, statuses
