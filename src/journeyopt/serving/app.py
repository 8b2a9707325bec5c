"""The scoring API: a FastAPI application over one :class:`~journeyopt.serving.scorer.Scorer`.

Endpoints: ``POST /v1/score`` (one customer), ``POST /v1/score/batch`` (up to
``serve.max_batch``), ``POST /v1/score/columns`` (the same, feature records as columns),
``GET /v1/model``, ``POST /admin/reload``, ``GET /healthz`` (live),
``GET /readyz`` (model loaded and a warm-up prediction done), OpenAPI docs at ``/docs``.

The model is loaded once at start-up (the application's lifespan) and held in one reference;
a reload (``POST /admin/reload``, or the alias poller when ``serve.reload.poll_seconds`` > 0)
builds a new scorer beside it and swaps the reference, so requests in flight finish on the
scorer they started with. Scoring endpoints are ``async def``; a small request (a body of up
to :data:`OFFLOAD_BYTES`) is scored directly on the event loop, where a batch of one costs well
under a millisecond, less than a thread hand-off, and concurrent ``/v1/score`` requests are
scored together (:mod:`journeyopt.serving.coalesce`). A larger body is parsed and scored in the
worker's scoring thread, so ``/healthz``, ``/readyz`` and small requests are answered meanwhile;
one thread, so that large requests are scored one after the other as on the loop instead of
competing for the interpreter (a worker process scores on one core either way).

Every scoring endpoint checks the bearer token first, then reads its own body
(:mod:`journeyopt.serving.body`, :mod:`journeyopt.serving.records`) counting the bytes as they
arrive (413 past ``serve.max_body_bytes``, chunked or not). Every status an endpoint can answer
is declared in the OpenAPI schema (:data:`STATUSES`).
"""

import asyncio
import contextlib
import functools
import gc
import hmac
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.types import DecoratedCallable
from pydantic import BaseModel
from threadpoolctl import threadpool_limits

from journeyopt.data.source import SourceConfig
from journeyopt.errors import JourneyoptError
from journeyopt.serving.body import (
    documented_body,
    install_schemas,
    json_safe,
    parse_body,
    read_body,
)
from journeyopt.serving.coalesce import Coalescer
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.decisions import DecisionLog, decision_ids, decision_table
from journeyopt.serving.features import (
    batch_from_columns,
    batch_from_logs,
    batch_from_records,
    concat_batches,
    logs_from_rows,
)
from journeyopt.serving.records import OverLimit, RecordReader
from journeyopt.serving.responses import (
    batch_body,
    column_responses,
    decision_texts,
    json_response,
    model_info,
)
from journeyopt.serving.schemas import api_models
from journeyopt.serving.scorer import CustomerBatch, Decisions, Scorer
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.world import WorldSpec, load_world

ModelLoader = Callable[[], ServedModel]
AliasWatcher = Callable[[], str]
"""Answers the registry version the served alias points to now (see
:func:`journeyopt.serving.served_model.alias_watcher`)."""

LOG = logging.getLogger(__name__)

OFFLOAD_BYTES = 64 * 1024
"""Bodies larger than this (about 150 feature records) are parsed and scored in a worker
thread instead of on the event loop; smaller ones cost less than the hand-off."""

STATUSES: dict[int, str] = {
    200: "the answer",
    401: "missing or wrong bearer token (when a token is set)",
    403: "refused: no bearer token is set",
    409: "the model could not be loaded; the previous one keeps serving",
    413: "body over serve.max_body_bytes, or more customers than serve.max_batch",
    422: "invalid request: each error gives the field's path and what is wrong",
    503: "the model is not loaded yet",
}
"""Every status the API answers, with what it means in the OpenAPI schema."""


def declared(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of an endpoint answering ``codes`` besides 200."""
    return {code: {"description": STATUSES[code]} for code in codes}


def scoring_route(
    app: FastAPI,
    path: str,
    summary: str,
    request: type[BaseModel],
    response: type[BaseModel],
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """The POST route of a scoring endpoint reading ``request`` from its raw body and answering
    ``response``; it answers 401, 413, 422 and 503 besides 200."""
    return app.post(
        path,
        response_model=response,
        summary=summary,
        openapi_extra=documented_body(request),
        responses=declared(401, 413, 422, 503),
    )


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


def settle_heap() -> None:
    """Put every object alive now (the libraries, the model) out of the garbage collector's
    reach, after freeing what a previous model left in reference cycles.

    The cyclic collector's full pass walks every tracked object: with torch, MLflow and pandas
    loaded that is about 0.2 s, and a 1,000-customer batch allocates enough objects to start
    one every few hundred requests (p99 latency 200 ms instead of 14, and about a fifth of the
    throughput). Frozen objects are still freed by reference counting; only requests' own
    objects are scanned from then on."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


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
    watch: AliasWatcher | None = None,
    source: SourceConfig | None = None,
) -> FastAPI:
    """The scoring API.

    Args:
        settings: The ``serve`` config.
        loader: Loads the served model (called at start-up and on every reload).
        world: The world (loaded from ``settings.world`` when omitted).
        token: The bearer token; default: the environment variable ``settings.token_env``
            (empty or unset: no authentication).
        watch: Answers the version the served alias points to; with
            ``settings.reload.poll_seconds`` > 0 it is asked that often and the model is
            reloaded when the version changed. None: the model never moves by itself.
        source: The data source config whose ``event_roles`` map the event names of raw
            events to their roles (an event may then leave out its ``role``); None: every
            raw event names its role.
    """
    world = world if world is not None else load_world(settings.world)
    world = settings.rules.world_for(world, "serve.rules")  # counts what the rules read
    models = api_models(world, settings, source)
    secret = (token if token is not None else os.environ.get(settings.token_env, "")).encode()
    served = _Served(
        log=DecisionLog(
            Path(settings.decision_log),
            settings.decision_log_file_bytes,
            settings.decision_log_max_bytes,
        )
        if settings.decision_log
        else None
    )
    bearer = HTTPBearer(auto_error=False)

    def serve_scorer(scorer: Scorer) -> None:
        """Swap ``scorer`` in (requests in flight finish on the one they started with) and
        freeze the heap it settled in (:func:`settle_heap`)."""
        served.scorer = scorer
        settle_heap()

    def build_scorer() -> Scorer:
        scorer = Scorer(loader(), settings, world)
        warm = batch_from_records(["warm-up"], [None], [None], world, pd.Timestamp.now(tz="UTC"))
        scorer.score(warm)
        return scorer

    async def follow_alias(watched: AliasWatcher, every: float) -> None:
        """Reload whenever the alias points to another version than the one served."""
        while True:
            await asyncio.sleep(every)
            try:
                version = await run_in_threadpool(watched)
                scorer = served.scorer
                if scorer is not None and version != scorer.model.key:  # rollout included
                    serve_scorer(await run_in_threadpool(build_scorer))
                    LOG.info("model %s reloaded: version %s", scorer.model.requested, version)
            except Exception as err:  # the poller must outlive a registry hiccup
                LOG.warning("alias check failed, model kept: %s", err)

    # one thread (started on first use, kept across restarts of the lifespan)
    scoring = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journeyopt-scoring")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        single_threaded_numerics()
        serve_scorer(await run_in_threadpool(build_scorer))
        every = settings.reload.poll_seconds
        poller = asyncio.create_task(follow_alias(watch, every)) if watch and every else None
        yield
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller

    def check_token(given: str) -> None:
        if secret and not hmac.compare_digest(given.encode(), secret):
            raise HTTPException(
                401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"}
            )

    async def authorised(  # async: a plain def would cost a thread hand-off per request
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> None:
        check_token(credentials.credentials if credentials is not None else "")

    def authorise(request: Request) -> None:
        """:func:`authorised` for endpoints that read their own body (no dependency)."""
        if secret:
            scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
            check_token(credentials if scheme.lower() == "bearer" else "")

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

    def too_many() -> JSONResponse:
        return JSONResponse(
            {"detail": f"at most {settings.max_batch} customers per batch (serve.max_batch)"},
            status_code=413,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(
            e.get("type") == "too_long"
            and tuple(e.get("loc", ()))[-1:] in (("customers",), ("customer_id",))
            for e in errors
        ):
            return too_many()
        return JSONResponse({"detail": jsonable_encoder(json_safe(errors))}, status_code=422)

    def decide_batch(
        scorer: Scorer, batch: CustomerBatch, capacity: bool = True
    ) -> tuple[Decisions, pa.Array]:
        """Score ``batch``, log the decisions; returns them with their (N,) decision ids
        (``capacity``: see :meth:`Scorer.score`)."""
        decisions = scorer.score(batch, capacity=capacity)
        ids = decision_ids(batch.n)
        if served.log is not None:
            model = scorer.model
            served.log.append(
                decision_table(
                    decisions, scorer.action_names, scorer.channels, model.name,
                    model.version, ids,
                )
            )  # fmt: skip
        return decisions, ids

    def decide(
        scorer: Scorer, customers: Sequence[Any], as_of: datetime | None, capacity: bool = True
    ) -> list[str]:
        """The response bodies (JSON text) of validated request customers, in order."""
        if not customers:
            return []
        try:
            batch = customers_batch(customers, as_of, world)
        except JourneyoptError as err:
            raise HTTPException(422, str(err)) from err
        decisions, ids = decide_batch(scorer, batch, capacity)
        return decision_texts(decisions, ids, scorer)

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: model loaded and warmed up", responses=declared(503))
    async def readyz() -> JSONResponse:
        if served.scorer is None:
            return JSONResponse({"status": "loading"}, status_code=503)
        return JSONResponse({"status": "ready", "model_version": served.scorer.model.version})

    @app.get(
        "/v1/model",
        summary="The served model",
        dependencies=[Depends(authorised)],
        responses=declared(401, 503),
    )
    async def model() -> dict[str, Any]:
        return model_info(current())

    coalescer: Coalescer[Any, str] = Coalescer(
        # single requests: no weekly capacity across requests that merely coincide
        lambda as_of, customers: decide(current(), customers, as_of, False)  # type: ignore[arg-type]
    )

    async def body_of(request: Request) -> bytes:
        """The request's body, read after its token is checked (401 before any byte is
        read, 413 as soon as the body passes ``serve.max_body_bytes``)."""
        authorise(request)
        return await read_body(request, settings.max_body_bytes)

    async def answer(raw: bytes, respond: Callable[[Scorer, bytes], Response]) -> Response:
        """``respond(scorer, raw)``: on the event loop for a small body, in the scoring
        thread for a large one (the loop keeps answering other requests meanwhile)."""
        scorer = current()
        if len(raw) > OFFLOAD_BYTES:
            call = functools.partial(respond, scorer, raw)
            return await asyncio.get_running_loop().run_in_executor(scoring, call)
        return respond(scorer, raw)

    def one(scorer: Scorer, raw: bytes) -> Response:
        customer: Any = parse_body(models.score_request, raw)
        texts = decide(scorer, [customer], customer.as_of, False)  # a single request
        return Response(texts[0], media_type="application/json")

    @scoring_route(
        app, "/v1/score", "Decide for one customer", models.score_request, models.score_response
    )
    async def score(request: Request) -> Response:
        raw = await body_of(request)
        if len(raw) > OFFLOAD_BYTES:  # many raw events: alone, in a worker thread
            return await answer(raw, one)
        customer: Any = parse_body(models.score_request, raw)
        # concurrent single requests are scored together (see serving.coalesce)
        text = await coalescer.submit(customer.as_of, customer)
        return Response(text, media_type="application/json")

    reader = RecordReader(world, settings.max_batch)

    def many(scorer: Scorer, raw: bytes) -> Response:
        read = reader.read(raw, lambda: datetime.now(UTC))  # feature records: column-wise
        if isinstance(read, OverLimit):
            return too_many()
        if read is not None:
            if read.n == 0:
                return batch_body([])
            decisions, ids = decide_batch(scorer, read)
            return batch_body(decision_texts(decisions, ids, scorer))
        body: Any = parse_body(models.batch_request, raw)  # anything else, or the 422
        return batch_body(decide(scorer, body.customers, body.as_of))

    @scoring_route(
        app,
        "/v1/score/batch",
        "Decide for many customers",
        models.batch_request,
        models.batch_response,
    )
    async def score_batch(request: Request) -> Response:
        return await answer(await body_of(request), many)

    def columns(scorer: Scorer, raw: bytes) -> Response:
        body: Any = parse_body(models.columns_request, raw)
        when = pd.Timestamp(body.as_of if body.as_of is not None else datetime.now(UTC))
        features = body.features.__dict__
        batch = batch_from_columns(body.customer_id, features, body.segment, world, when)
        decisions, ids = decide_batch(scorer, batch)
        return json_response(column_responses(decisions, ids, scorer))

    @scoring_route(
        app,
        "/v1/score/columns",
        "Decide for many customers given as columns (fastest for large batches)",
        models.columns_request,
        models.columns_response,
    )
    async def score_columns(request: Request) -> Response:
        return await answer(await body_of(request), columns)

    @app.post(
        "/admin/reload",
        summary="Load the model again (an alias may point elsewhere now) and swap it in",
        dependencies=[Depends(authorised)],
        responses=declared(401, 403, 409),
    )
    async def reload() -> dict[str, Any]:
        if not secret:
            raise HTTPException(403, f"reload needs a bearer token: set {settings.token_env}")
        try:
            scorer = await run_in_threadpool(build_scorer)
        except JourneyoptError as err:
            raise HTTPException(409, f"reload failed, the previous model stays: {err}") from err
        serve_scorer(scorer)
        return model_info(scorer)

    install_schemas(app, [models.score_request, models.batch_request, models.columns_request])
    return app
