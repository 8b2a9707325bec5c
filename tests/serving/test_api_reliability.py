"""The scoring API's reliability (issue 18) against a real uvicorn server on loopback: values
JSON cannot carry get a 422 naming the field, the token is checked before the body is read and
the body limit counts the bytes actually read (chunked or not), a record that says
``opted_out`` while a channel is open is refused, health answers while a large batch is
scored, request types are strict, and the decision log is rotated and bounded."""

from __future__ import annotations

import json
import math
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from journeyopt.serving.app import create_app
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.decisions import read_decision_log
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.world import WorldSpec
from tests.serving.loopback import loopback_server
from tests.serving.test_app import feature_record

TOKEN = "reliability-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AS_OF = "2024-03-06T10:00:00Z"
LIMIT = 1_000_000


@pytest.fixture(scope="module")
def url(served: ServedModel, settings: ServingConfig, world: WorldSpec) -> Iterator[str]:
    """The API with a token and a 1 MB body limit (one server for the module)."""
    cfg = replace(settings, max_body_bytes=LIMIT, max_batch=1000)
    with loopback_server(create_app(cfg, lambda: served, world, token=TOKEN)) as base:
        yield base


def with_literal(document: Any, literal: str) -> str:
    """``document`` as JSON text with the string ``"@"`` replaced by ``literal`` (e.g.
    ``NaN``, which ``json.dumps`` would not write where it is wanted)."""
    return json.dumps(document).replace('"@"', literal)


def columns_body(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "as_of": AS_OF,
        "customer_id": [f"c{i}" for i in range(len(records))],
        "features": {name: [r[name] for r in records] for name in records[0]},
    }


def strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in a response")

    return json.loads(text, parse_constant=refuse)


NON_FINITE = [
    ("/v1/score", {"customer_id": "@"}, ["body", "customer_id"]),
    ("/v1/score", {"customer_id": "a", "features": feature_record(frequency="@")},
     ["body", "features", "frequency"]),
    ("/v1/score", {"customer_id": "a", "features": feature_record(monetary="@")},
     ["body", "features", "monetary"]),
    ("/v1/score/batch", {"customers": [{"customer_id": "a", "features":
                                        feature_record(recency_weeks="@")}]},
     ["body", "customers", 0, "features", "recency_weeks"]),
    ("/v1/score/batch", {"customers": [{"customer_id": "@"}]}, ["body", "customers", 0,
                                                               "customer_id"]),
    ("/v1/score/columns", columns_body([feature_record(monetary="@")]),
     ["body", "features", "monetary", 0]),
    ("/v1/score/columns", columns_body([feature_record(tenure_weeks="@")]),
     ["body", "features", "tenure_weeks", 0]),
]  # fmt: skip


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e309"])
@pytest.mark.parametrize(("path", "document", "loc"), NON_FINITE)
def test_non_finite_numbers_get_a_422_naming_the_field(
    url: str, path: str, document: dict[str, Any], loc: list[Any], literal: str
) -> None:
    body = with_literal(document, literal)
    reply = httpx.post(url + path, content=body, headers=AUTH, timeout=30)
    assert reply.status_code == 422, (body, reply.text)
    assert loc in [e["loc"] for e in strict_json(reply.text)["detail"]], reply.text


def chunked_post(
    base: str, path: str, headers: dict[str, str], total: int, chunk: int = 64 * 1024
) -> tuple[int, int]:
    """POST a chunked body of up to ``total`` bytes, a chunk at a time, stopping as soon as
    the server answers (or stops reading). Returns the status and the bytes sent."""
    where = urlsplit(base)
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             "Transfer-Encoding: chunked", *(f"{k}: {v}" for k, v in headers.items())]  # fmt: skip
    framed = f"{chunk:x}\r\n".encode() + b" " * chunk + b"\r\n"
    with socket.create_connection((where.hostname, where.port), timeout=5) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        sent = 0
        answered = False
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                answered = True
                break
            try:
                sock.sendall(framed)
            except (TimeoutError, BrokenPipeError, ConnectionResetError):
                answered = True  # the server stopped reading: it has answered
                break
            sent += chunk
        if not answered:
            sock.sendall(b"0\r\n\r\n")
        sock.settimeout(60)
        head = b""
        while b"\r\n" not in head:
            data = sock.recv(4096)
            assert data, "connection closed without an answer"
            head += data
    return int(head.split(b" ")[1]), sent


@pytest.mark.parametrize("path", ["/v1/score", "/v1/score/batch", "/v1/score/columns"])
def test_a_chunked_body_without_a_token_gets_401_before_it_is_read(url: str, path: str) -> None:
    status, sent = chunked_post(url, path, {}, total=40 * LIMIT)
    assert status == 401
    assert sent < 8 * LIMIT  # answered long before the body ended


@pytest.mark.parametrize("path", ["/v1/score", "/v1/score/batch", "/v1/score/columns"])
def test_a_chunked_body_over_the_limit_gets_413_without_reading_the_rest(
    url: str, path: str
) -> None:
    status, sent = chunked_post(url, path, AUTH, total=40 * LIMIT)
    assert status == 413
    assert sent < 8 * LIMIT


def test_a_declared_length_is_checked_after_the_token(url: str) -> None:
    big = b" " * (LIMIT + 1)
    assert httpx.post(f"{url}/v1/score/columns", content=big, timeout=30).status_code == 401
    reply = httpx.post(f"{url}/v1/score/columns", content=big, headers=AUTH, timeout=30)
    assert reply.status_code == 413
    assert "serve.max_body_bytes" in reply.json()["detail"]


OPTED_OUT_OPEN = feature_record(lifecycle="opted_out", opted_out_email=False, opted_out_phone=True)


@pytest.mark.parametrize(
    ("path", "document", "loc"),
    [
        ("/v1/score", {"customer_id": "a", "segment": "freelancer", "features": OPTED_OUT_OPEN},
         ["body", "features", "lifecycle"]),
        ("/v1/score/batch", {"customers": [
            {"customer_id": f"c{i}", "segment": "freelancer",
             "features": OPTED_OUT_OPEN if i == 17 else feature_record()} for i in range(200)]},
         ["body", "customers", 17, "features", "lifecycle"]),
        ("/v1/score/columns", columns_body([feature_record(), OPTED_OUT_OPEN]),
         ["body", "features", "lifecycle"]),
    ],
)  # fmt: skip
def test_opted_out_with_an_open_channel_gets_a_422(
    url: str, path: str, document: dict[str, Any], loc: list[Any]
) -> None:
    reply = httpx.post(url + path, json={"as_of": AS_OF, **document}, headers=AUTH, timeout=30)
    assert reply.status_code == 422, reply.text
    errors = [e for e in reply.json()["detail"] if e["loc"] == loc]
    assert errors and "opted_out_email" in errors[0]["msg"], reply.text


def test_no_opted_out_customer_is_contacted(url: str) -> None:
    """Every combination of stage and flags: refused, or no contact when opted out."""
    customers: list[dict[str, Any]] = [
        {"customer_id": f"c{i}", "segment": "freelancer",
         "features": feature_record(lifecycle=stage, opted_out_email=email, opted_out_phone=phone)}
        for i, (stage, email, phone) in enumerate(
            (s, e, p) for s in ("active", "lapsed", "opted_out") for e in (False, True)
            for p in (False, True))
    ]  # fmt: skip
    for customer in customers:
        reply = httpx.post(f"{url}/v1/score", json={"as_of": AS_OF, **customer}, headers=AUTH)
        record = customer["features"]
        out_everywhere = record["opted_out_email"] and record["opted_out_phone"]
        if record["lifecycle"] == "opted_out" and not out_everywhere:
            assert reply.status_code == 422
            continue
        assert reply.status_code == 200, reply.text
        if out_everywhere:
            assert reply.json()["action"] == "none"


@pytest.mark.parametrize(
    ("path", "document", "loc"),
    [
        ("/v1/score", {"customer_id": "a", "as_of": 0}, ["body", "as_of"]),
        ("/v1/score", {"customer_id": "a", "as_of": "1700000000"}, ["body", "as_of"]),
        ("/v1/score", {"customer_id": "a", "features": feature_record(frequency="2")},
         ["body", "features", "frequency"]),
        ("/v1/score", {"customer_id": "a", "features": feature_record(frequency=2.0)},
         ["body", "features", "frequency"]),
        ("/v1/score", {"customer_id": "a", "features": feature_record(opted_out_email="yes")},
         ["body", "features", "opted_out_email"]),
        ("/v1/score/batch", {"as_of": 0, "customers": []}, ["body", "as_of"]),
        ("/v1/score/columns", {**columns_body([feature_record()]), "as_of": 0},
         ["body", "as_of"]),
        ("/v1/score/columns", columns_body([feature_record(opted_out_email="yes")]),
         ["body", "features", "opted_out_email", 0]),
        ("/v1/score/columns", columns_body([feature_record(frequency="2")]),
         ["body", "features", "frequency", 0]),
    ],
)  # fmt: skip
def test_types_are_strict(url: str, path: str, document: dict[str, Any], loc: list[Any]) -> None:
    reply = httpx.post(url + path, json=document, headers=AUTH, timeout=30)
    assert reply.status_code == 422, reply.text
    assert loc in [e["loc"] for e in reply.json()["detail"]], reply.text


@pytest.mark.parametrize("path", ["/v1/score", "/v1/score/batch", "/v1/score/columns"])
@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"\xff\xfe", "application/json"), (b"{", "application/json"),
     (b"customer_id=a", "application/x-www-form-urlencoded"), (b"", "text/plain")],
)  # fmt: skip
def test_unreadable_bodies_get_the_same_422_on_every_route(
    url: str, path: str, body: bytes, content_type: str
) -> None:
    headers = {**AUTH, "Content-Type": content_type}
    reply = httpx.post(url + path, content=body, headers=headers, timeout=30)
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"][0]["loc"] == ["body"]


def test_every_answered_status_is_declared_in_the_openapi_schema(url: str) -> None:
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    for path in ("/v1/score", "/v1/score/batch", "/v1/score/columns"):
        assert {"200", "401", "413", "422", "503"} <= set(paths[path]["post"]["responses"])
    assert {"200", "401", "503"} <= set(paths["/v1/model"]["get"]["responses"])
    assert {"200", "401", "403", "409"} <= set(paths["/admin/reload"]["post"]["responses"])
    assert "requestBody" in paths["/v1/score/columns"]["post"]


def raw_customers(n: int, events: int) -> list[dict[str, Any]]:
    """``n`` customers given as ``events`` raw events each (the panel code scores them)."""
    return [
        {"customer_id": f"r{i}", "segment": "freelancer",
         "events": [{"ts": f"2024-02-{1 + k % 28:02d}T10:00:00Z", "kind": "visit",
                     "role": "engagement" if k % 3 else "conversion", "value": 5.0}
                    for k in range(events)]}
        for i in range(n)
    ]  # fmt: skip


@pytest.mark.slow
def test_health_answers_while_a_large_batch_is_scored(
    served: ServedModel, settings: ServingConfig, world: WorldSpec
) -> None:
    cfg = replace(settings, max_batch=10_000, max_body_bytes=200_000_000)
    body = json.dumps({"as_of": AS_OF, "customers": raw_customers(10_000, 12)}).encode()
    with loopback_server(create_app(cfg, lambda: served, world, token=TOKEN)) as base:
        outcome: dict[str, Any] = {}

        def send() -> None:
            started = time.monotonic()
            reply = httpx.post(f"{base}/v1/score/batch", content=body, headers=AUTH, timeout=300)
            outcome.update(status=reply.status_code, seconds=time.monotonic() - started,
                           n=len(reply.json().get("decisions", [])))  # fmt: skip

        sender = threading.Thread(target=send)
        sender.start()
        waits: list[float] = []
        with httpx.Client(base_url=base, timeout=60) as health:
            while sender.is_alive():
                started = time.monotonic()
                assert health.get("/healthz").status_code == 200
                waits.append(time.monotonic() - started)
                time.sleep(0.02)
        sender.join()
    assert outcome["status"] == 200 and outcome["n"] == 10_000
    assert outcome["seconds"] > 0.5, outcome  # long enough for a stall to show
    print(f"batch {outcome['seconds']:.2f} s, {len(waits)} health checks, "
          f"slowest {max(waits) * 1000:.0f} ms")  # fmt: skip
    assert max(waits) < 0.25 * outcome["seconds"], (max(waits), outcome)
    assert len(waits) >= 10


def test_the_decision_log_is_rotated_and_bounded(
    served: ServedModel, settings: ServingConfig, world: WorldSpec, tmp_path: Path
) -> None:
    folder = tmp_path / "log"
    cfg = replace(settings, decision_log=str(folder), decision_log_file_bytes=20_000,
                  decision_log_max_bytes=60_000)  # fmt: skip
    with loopback_server(create_app(cfg, lambda: served, world, token=TOKEN)) as base:
        answered = []
        with httpx.Client(base_url=base, headers=AUTH, timeout=60) as http:
            for i in range(40):
                customers = [{"customer_id": f"c{i}-{k}"} for k in range(20)]
                reply = http.post("/v1/score/batch", json={"customers": customers})
                assert reply.status_code == 200
                answered += [d["decision_id"] for d in reply.json()["decisions"]]
    files = sorted(folder.glob("decisions-*.csv"))
    sizes = [f.stat().st_size for f in files]
    assert len(files) >= 3, files  # rotated
    assert all(size <= 20_000 for size in sizes), sizes
    assert sum(sizes) <= 60_000, sizes  # bounded: the oldest were deleted
    kept = read_decision_log(folder)
    assert answered[-20:] == kept["decision_id"].tolist()[-20:]  # the newest are kept
    assert not math.isnan(kept["propensity"].sum())


def test_a_large_single_request_is_scored_off_the_loop_with_the_same_answer(url: str) -> None:
    """A customer with many raw events (a body over 64 KiB) is scored in the scoring thread,
    and decided exactly as the same customer in a small batch."""
    (customer,) = raw_customers(1, 1500)
    body = {"as_of": AS_OF, **customer}
    assert len(json.dumps(body)) > 64 * 1024
    alone = httpx.post(f"{url}/v1/score", json=body, headers=AUTH, timeout=60)
    assert alone.status_code == 200, alone.text
    batch = httpx.post(f"{url}/v1/score/batch", json={"as_of": AS_OF, "customers": [customer]},
                       headers=AUTH, timeout=60)  # fmt: skip
    (decided,) = batch.json()["decisions"]
    kept = ("action", "group", "propensity", "expected_value", "probabilities", "known")
    assert {k: alone.json()[k] for k in kept} == {k: decided[k] for k in kept}
    assert alone.json()["known"]
