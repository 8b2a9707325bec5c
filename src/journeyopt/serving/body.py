"""Request bodies read by the endpoints themselves instead of FastAPI's body parameters: one
pydantic-core pass from the raw bytes (no intermediate ``json.loads``, no dependency solving),
errors in FastAPI's own 422 format, and the body still documented in the OpenAPI schema.

The body is read by :func:`read_body` after the request is authenticated, a chunk at a time,
and refused with 413 as soon as more than ``serve.max_body_bytes`` arrived (declared or not:
a chunked body is counted as it is read, and the rest is never read).

FastAPI documents a request body only for a body parameter; an endpoint that reads its body
declares it with :func:`documented_body` (``openapi_extra``), and :func:`install_schemas` adds
the referenced pydantic models to the schema's components.

Error details echo the offending value; a value JSON cannot carry (``NaN``, ``Infinity``, a
number such as ``1e309`` read as infinity) is echoed as its text by :func:`json_safe`, so the
422 itself never fails.
"""

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

Body = TypeVar("Body", bound=BaseModel)
REF = "#/components/schemas/{model}"


class BodyTooLarge(HTTPException):
    """413: the body is over ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes (serve.max_body_bytes)")


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, read chunk by chunk.

    Raises:
        BodyTooLarge: When the declared ``Content-Length`` is over ``limit`` (nothing is
            read), or as soon as the bytes read pass ``limit`` (the rest is not read).
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def json_safe(value: Any) -> Any:
    """``value`` with every float JSON cannot carry (NaN, infinities) replaced by its text
    (``"NaN"``, ``"Infinity"``, ``"-Infinity"``), in nested lists, tuples and dicts."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def parse_body(model: type[Body], raw: bytes) -> Body:
    """``raw`` JSON validated as ``model``.

    Raises:
        RequestValidationError: As FastAPI raises it for a body parameter (each error's
            ``loc`` starts with ``"body"``), so the app's 422/413 handler treats both alike.
    """
    try:
        return model.model_validate_json(raw)
    except ValidationError as err:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in err.errors(include_url=False)]
        for error in errors:
            if isinstance(error.get("input"), bytes):  # invalid JSON: the body, not echoed
                error["input"] = {}
        raise RequestValidationError(errors, body=raw) from None


def documented_body(model: type[BaseModel], description: str = "") -> dict[str, Any]:
    """``openapi_extra`` of an endpoint reading ``model`` from its raw body (a required JSON
    body), with the bearer token it accepts."""
    body: dict[str, Any] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}},
    }
    if description:
        body["description"] = description
    return {"requestBody": body, "security": [{"HTTPBearer": []}]}


def install_schemas(app: FastAPI, models: Sequence[type[BaseModel]]) -> None:
    """Make ``app.openapi()`` include the JSON schemas of ``models`` (and the models they
    refer to) as components, for :func:`documented_body`'s references."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            found = model.model_json_schema(ref_template=REF, mode="validation")
            for name, definition in found.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components.setdefault(model.__name__, found)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
