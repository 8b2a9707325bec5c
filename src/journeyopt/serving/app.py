"""The scoring API: a FastAPI application over one :class:`~journeyopt.serving.scorer.Scorer`.

Endpoints: ``POST /v1/score`` (one customer), ``POST /v1/score/batch`` (up to
``serve.max_batch``), ``POST /v1/score/columns`` (the same, feature records as columns),
``GET /v1/model``, ``POST /admin/reload``, ``GET /healthz`` (live),
``GET /readyz`` (model loaded and a warm-up prediction done), OpenAPI docs at ``/docs``.

The model is loaded once at start-up (the application's lifespan) and held in one reference;
a reload builds a new scorer beside it and swaps the reference, so requests in flight finish
on the scorer they started with. Scoring endpoints are ``async def`` and do their numpy work
directly on the event loop: a batch of one costs well under a millisecond, less than a thread
hand-off.
"""

import hmac
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydantic_core
import torch
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send
from threadpoolctl import threadpool_limits

from journeyopt.errors import JourneyoptError
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.decisions import (
    DecisionColumns,
    DecisionLog,
    decision_table,
    response_columns,
)
from journeyopt.serving.features import (
    batch_from_columns,
    batch_from_logs,
    batch_from_records,
    concat_batches,
    logs_from_rows,
)
from journeyopt.serving.guards import UNKNOWN_CUSTOMER
from journeyopt.serving.schemas import api_models
from journeyopt.serving.scorer import CustomerBatch, Decisions, Scorer
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.rules import REASONS
from journeyopt.sim.world import WorldSpec, load_world

ModelLoader = Callable[[], ServedModel]


class BodyLimit:
    """ASGI middleware: 413 for a request whose declared body exceeds ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for key, value in scope["headers"]:
                if key == b"content-length" and value.isdigit() and int(value) > self.limit:
                    response = JSONResponse(
                        {"detail": f"request body over {self.limit} bytes (serve.max_body_bytes)"},
                        status_code=413,
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


@dataclass
class _Served:
    """The scorer in use (swapped whole on reload) and the decision log."""

    scorer: Scorer | None = None
    log: DecisionLog | None = None


def single_threaded_numerics() -> None:
    """One core per API worker process: BLAS (numpy's matrix products) and torch run on one
    thread. A policy's forward pass for 1,000 customers takes about 1 ms on one thread and ten
    times longer when BLAS threads compete with the event loop and the other workers on a busy
    machine; throughput scales with ``workers`` instead."""
    threadpool_limits(limits=1, user_api="blas")
    torch.set_num_threads(1)


def json_response(content: Any) -> Response:
    """A JSON response serialised by pydantic-core (about twice as fast as ``json.dumps`` on
    a batch's decisions); the dicts are built to the documented response models."""
    return Response(pydantic_core.to_json(content), media_type="application/json")


def model_info(scorer: Scorer) -> dict[str, Any]:
    """What ``GET /v1/model`` answers."""
    model, world, rules = scorer.model, scorer.world, scorer.rules
    return {
        "name": model.name,
        "version": model.version,
        "uri": model.uri,
        "requested": model.requested,
        "run_id": model.run_id,
        "content_sha256": model.content_sha256,
        "lineage": {"world": world.name, **model.lineage},
        "actions": [
            {"name": n, "channel": c, "cost": cost}
            for n, c, cost in zip(
                world.actions.names, world.actions.channels, world.actions.costs, strict=True
            )
        ],
        "contact_rules": {
            "frequency_caps": dict(rules.frequency_caps),
            "fatigue_weeks": rules.spec.fatigue_weeks,
            "cooldown_weeks": rules.cooldown_weeks,
            "opted_out": "no contact on an opted-out channel",
            "unknown_customers": "none",
        },
        "holdout": {
            "control_share": scorer.settings.holdout.control_share,
            "control_policy": scorer.staff.name,
        },
        "features": list(world.features.feature_names),
        "segments": list(world.segment_names),
    }


def _masked(reasons: np.ndarray, known: bool, actions: Sequence[str]) -> dict[str, str]:
    if not known:
        return {a: UNKNOWN_CUSTOMER for a in actions[1:]}
    return {actions[a]: REASONS[int(r)] for a, r in enumerate(reasons) if r != 0}


def responses(decisions: Decisions, rows: DecisionColumns, scorer: Scorer) -> list[dict[str, Any]]:
    """Response bodies of the decisions (``rows``: their decision log rows), in order."""
    names = scorer.action_names
    probabilities = np.round(decisions.probabilities, 6).tolist()
    known = decisions.batch.known.tolist()
    forbidden = np.flatnonzero((decisions.reasons != 0).any(axis=1) | ~decisions.batch.known)
    masked: list[dict[str, str]] = [{} for _ in range(decisions.batch.n)]
    for i in forbidden.tolist():  # only customers with a masked action
        masked[i] = _masked(decisions.reasons[i], known[i], names)
    fields = ("customer_id", "decision_id", "as_of", "group", "action", "channel",
              "propensity", "expected_value", "model_name", "model_version")  # fmt: skip
    return [
        {
            **dict(zip(fields, values, strict=True)),
            "probabilities": dict(zip(names, probabilities[i], strict=True)),
            "masked": masked[i],
            "known": known[i],
        }
        for i, values in enumerate(zip(*(rows[f] for f in fields), strict=True))
    ]


COLUMN_FIELDS = ("customer_id", "decision_id", "group", "action", "channel", "propensity",
                 "expected_value")  # fmt: skip
"""Decision log columns a columnar response repeats as they are."""


def masked_columns(decisions: Decisions, action_names: Sequence[str]) -> dict[str, list[Any]]:
    """Action -> (N,) why the contact rules forbid it for each customer (None: allowed)."""
    codes = np.asarray([None, *REASONS[1:], UNKNOWN_CUSTOMER], dtype=object)
    reasons = decisions.reasons.astype(np.int64)
    reasons[~decisions.batch.known, 1:] = len(REASONS)  # every contact, for unknown customers
    named = codes[reasons]
    return {a: named[:, i].tolist() for i, a in enumerate(action_names)}


def column_responses(decisions: Decisions, rows: DecisionColumns, scorer: Scorer) -> dict[str, Any]:
    """The columnar response body of the decisions (``rows``: their decision log columns)."""
    probabilities = np.round(decisions.probabilities, 6)
    return {
        "as_of": decisions.batch.as_of.isoformat(),
        "model_name": scorer.model.name,
        "model_version": scorer.model.version,
        **{c: rows[c] for c in COLUMN_FIELDS},
        "known": decisions.batch.known.tolist(),
        "probabilities": {
            a: probabilities[:, i].tolist() for i, a in enumerate(scorer.action_names)
        },
        "masked": masked_columns(decisions, scorer.action_names),
    }


def customers_batch(
    customers: Sequence[Any], as_of: datetime | None, world: WorldSpec
) -> CustomerBatch:
    """The scorer's batch for request customers: feature records as given, raw events and
    contacts through the panel code, neither: unknown."""
    when = pd.Timestamp(as_of if as_of is not None else datetime.now(UTC))
    from_logs = [i for i, c in enumerate(customers) if c.events or c.contacts]
    from_records = [i for i, c in enumerate(customers) if not (c.events or c.contacts)]
    parts: list[tuple[np.ndarray, CustomerBatch]] = []
    if from_records:
        chosen = [customers[i] for i in from_records]
        parts.append(
            (
                np.asarray(from_records, np.int64),
                batch_from_records(
                    [c.customer_id for c in chosen],
                    [None if c.features is None else c.features.__dict__ for c in chosen],
                    [c.segment for c in chosen],
                    world,
                    when,
                ),
            )
        )
    if from_logs:
        chosen = [customers[i] for i in from_logs]
        channels = dict(zip(world.actions.names, world.actions.channels, strict=True))
        logs = logs_from_rows(
            [{"customer_id": c.customer_id, **e.__dict__} for c in chosen for e in c.events],
            [{"customer_id": c.customer_id, **k.__dict__} for c in chosen for k in c.contacts],
            channels,
        )
        parts.append(
            (
                np.asarray(from_logs, np.int64),
                batch_from_logs(
                    logs,
                    world,
                    when,
                    [c.customer_id for c in chosen],
                    [c.segment or "" for c in chosen],
                ),
            )
        )
    return parts[0][1] if len(parts) == 1 else concat_batches(parts, len(customers))


def create_app(
    settings: ServingConfig,
    loader: ModelLoader,
    world: WorldSpec | None = None,
    token: str | None = None,
) -> FastAPI:
    """The scoring API.

    Args:
        settings: The ``serve`` config.
        loader: Loads the served model (called at start-up and on every reload).
        world: The world (loaded from ``settings.world`` when omitted).
        token: The bearer token; default: the environment variable ``settings.token_env``
            (empty or unset: no authentication).
    """
    world = world if world is not None else load_world(settings.world)
    models = api_models(world, settings)
    secret = (token if token is not None else os.environ.get(settings.token_env, "")).encode()
    served = _Served(
        log=DecisionLog(Path(settings.decision_log)) if settings.decision_log else None
    )
    bearer = HTTPBearer(auto_error=False)

    def build_scorer() -> Scorer:
        scorer = Scorer(loader(), settings, world)
        warm = batch_from_records(["warm-up"], [None], [None], world, pd.Timestamp.now(tz="UTC"))
        scorer.score(warm)
        return scorer

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        single_threaded_numerics()
        served.scorer = await run_in_threadpool(build_scorer)
        yield

    async def authorised(  # async: a plain def would cost a thread hand-off per request
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> None:
        if not secret:
            return
        given = (credentials.credentials if credentials is not None else "").encode()
        if not hmac.compare_digest(given, secret):
            raise HTTPException(
                401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"}
            )

    def current() -> Scorer:
        if served.scorer is None:
            raise HTTPException(503, "the model is not loaded yet")
        return served.scorer

    app = FastAPI(
        title="journeyopt scoring API",
        description="Contact decisions of the served policy, behind hard contact-rule guards and "
        "an A/B holdout.",
        version="1",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(
            e.get("type") == "too_long"
            and tuple(e.get("loc", ()))[-1:] in (("customers",), ("customer_id",))
            for e in errors
        ):
            return JSONResponse(
                {"detail": f"at most {settings.max_batch} customers per batch (serve.max_batch)"},
                status_code=413,
            )
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    def decide_batch(scorer: Scorer, batch: CustomerBatch) -> tuple[Decisions, DecisionColumns]:
        """Score ``batch``, log the decisions; returns them with their decision log columns."""
        decisions = scorer.score(batch)
        model = scorer.model
        names, channels = scorer.action_names, scorer.channels
        if served.log is None:
            rows = response_columns(decisions, names, channels, model.name, model.version)
            return decisions, rows
        table = decision_table(decisions, names, channels, model.name, model.version)
        served.log.append(table)
        return decisions, table.to_pydict()

    def decide(
        scorer: Scorer, customers: Sequence[Any], as_of: datetime | None
    ) -> list[dict[str, Any]]:
        if not customers:
            return []
        try:
            batch = customers_batch(customers, as_of, world)
        except JourneyoptError as err:
            raise HTTPException(422, str(err)) from err
        decisions, rows = decide_batch(scorer, batch)
        return responses(decisions, rows, scorer)

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: model loaded and warmed up", responses={503: {}})
    async def readyz() -> JSONResponse:
        if served.scorer is None:
            return JSONResponse({"status": "loading"}, status_code=503)
        return JSONResponse({"status": "ready", "model_version": served.scorer.model.version})

    @app.get(
        "/v1/model",
        summary="The served model",
        dependencies=[Depends(authorised)],
        responses={401: {}},
    )
    async def model() -> dict[str, Any]:
        return model_info(current())

    @app.post(
        "/v1/score",
        response_model=models.score_response,
        summary="Decide for one customer",
        dependencies=[Depends(authorised)],
        responses={401: {}, 413: {}},
    )
    async def score(request: models.score_request) -> Any:  # type: ignore[name-defined]
        return json_response(decide(current(), [request], request.as_of)[0])

    @app.post(
        "/v1/score/batch",
        response_model=models.batch_response,
        summary="Decide for many customers",
        dependencies=[Depends(authorised)],
        responses={401: {}, 413: {}},
    )
    async def score_batch(request: models.batch_request) -> Any:  # type: ignore[name-defined]
        return json_response({"decisions": decide(current(), request.customers, request.as_of)})

    @app.post(
        "/v1/score/columns",
        response_model=models.columns_response,
        summary="Decide for many customers given as columns (fastest for large batches)",
        dependencies=[Depends(authorised)],
        responses={401: {}, 413: {}},
    )
    async def score_columns(request: models.columns_request) -> Any:  # type: ignore[name-defined]
        scorer = current()
        when = pd.Timestamp(request.as_of if request.as_of is not None else datetime.now(UTC))
        features = request.features.__dict__
        batch = batch_from_columns(request.customer_id, features, request.segment, world, when)
        decisions, rows = decide_batch(scorer, batch)
        return json_response(column_responses(decisions, rows, scorer))

    @app.post(
        "/admin/reload",
        summary="Load the model again (an alias may point elsewhere now) and swap it in",
        dependencies=[Depends(authorised)],
        responses={401: {}, 403: {}, 409: {}},
    )
    async def reload() -> dict[str, Any]:
        if not secret:
            raise HTTPException(403, f"reload needs a bearer token: set {settings.token_env}")
        try:
            scorer = await run_in_threadpool(build_scorer)
        except JourneyoptError as err:
            raise HTTPException(409, f"reload failed, the previous model stays: {err}") from err
        served.scorer = scorer
        return model_info(scorer)

    return app
