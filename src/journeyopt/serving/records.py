"""The fast path of ``POST /v1/score/batch``: a batch of feature records read straight into
columns and checked a column at a time.

Validating a thousand customers object by object through pydantic costs more than scoring
them. :func:`read_record_batch` parses the body once (pydantic-core's JSON parser), gathers
each feature into one list, and checks each column with a few set and numpy operations against
the same rules as the request models of :mod:`journeyopt.serving.schemas` (exact JSON types,
ranges, lifecycle stages, lengths, unknown or missing keys). It accepts only what those models
accept unchanged; anything else (a wrong or coerced value, raw events or contacts, an
unexpected key) makes it answer None, and the endpoint validates the body with the pydantic
model instead, which either accepts it (then scores it the usual way) or names every wrong
field in a 422 (``["body", "customers", 17, "features", "recency_weeks"]``). So the fast path
changes the cost of a request, never its answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd
import pydantic_core
from pydantic import TypeAdapter, ValidationError

from journeyopt.panel.state import LIFECYCLE_STAGES
from journeyopt.serving.features import batch_from_columns, empty_record
from journeyopt.serving.schemas import MAX_COUNT, MAX_CURRENCY, Instant, feature_kind
from journeyopt.serving.scorer import CustomerBatch
from journeyopt.sim.world import WorldSpec

MAX_TEXT = 256
CUSTOMER_KEYS = frozenset({"customer_id", "segment", "features", "events", "contacts"})
BATCH_KEYS = frozenset({"as_of", "customers"})
_NUMBER = frozenset({int, float})
_NULLABLE_NUMBER = frozenset({int, float, type(None)})
_AS_OF: TypeAdapter[datetime | None] = TypeAdapter(Instant | None)


@dataclass(frozen=True)
class OverLimit:
    """The batch holds more customers than the limit (answered with 413)."""

    customers: int


class RecordReader:
    """Reads record batches of one world.

    Args:
        world: The world (feature names and customer types).
        max_batch: Most customers in one request.
    """

    def __init__(self, world: WorldSpec, max_batch: int) -> None:
        self.world = world
        self.max_batch = max_batch
        self._names = frozenset(world.features.feature_names)
        self._default = empty_record(world.features)

    def read(self, raw: bytes, now: Callable[[], datetime]) -> CustomerBatch | OverLimit | None:
        """The batch of ``raw``, :class:`OverLimit`, or None when the body needs the full
        validation (see the module docstring). ``now``: the as-of instant when none is given.
        """
        try:
            body = pydantic_core.from_json(raw, allow_inf_nan=False)
        except ValueError:
            return None
        if not isinstance(body, dict) or not body.keys() <= BATCH_KEYS:
            return None
        customers = body.get("customers")
        if not isinstance(customers, list):
            return None
        if len(customers) > self.max_batch:
            return OverLimit(len(customers))
        try:
            as_of = _AS_OF.validate_python(body.get("as_of"))
        except ValidationError:
            return None
        records = self._records(customers)
        if records is None:
            return None
        ids, segments, features, given = records
        columns = _columns(features, tuple(self._names))
        if not all(_valid_column(name, values) for name, values in columns.items()):
            return None
        when = pd.Timestamp(as_of if as_of is not None else now())
        batch = batch_from_columns(ids, columns, segments, self.world, when)
        return replace(batch, known=batch.known & given)

    def _records(
        self, customers: list[Any]
    ) -> tuple[list[str], list[str | None], list[dict[str, Any]], np.ndarray] | None:
        """Ids, types, feature records (the no-history record for customers without one)
        and which customers gave one; None if any customer is not a plain feature record."""
        if customers and (set(map(type, customers)) != {dict}):
            return None
        keys = set().union(*customers)
        if not keys <= CUSTOMER_KEYS:
            return None
        if ("events" in keys or "contacts" in keys) and any(
            c.get("events", []) != [] or c.get("contacts", []) != [] for c in customers
        ):
            return None  # raw events: the panel code through the validated models
        ids = [c.get("customer_id") for c in customers]
        segments = [c.get("segment") for c in customers]
        if not (_valid_texts(ids, 1) and _valid_texts(segments, 0, nullable=True)):
            return None
        given = [c.get("features") for c in customers]
        records = [f for f in given if f is not None]
        if not (set(map(type, records)) <= {dict} and _same_keys(records, self._names)):
            return None
        features = [self._default if f is None else f for f in given]
        known = np.fromiter((f is not None for f in given), np.bool_, len(given))
        return ids, segments, features, known


def _columns(records: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, list[Any]]:
    """Name -> (N,) values of ``records``, transposed at C level (records -> tuples ->
    columns)."""
    if len(names) < 2 or not records:
        return {name: [r[name] for r in records] for name in names}
    rows = map(itemgetter(*names), records)
    columns = zip(*rows, strict=True)  # every row has len(names) values
    return {name: list(column) for name, column in zip(names, columns, strict=True)}


def _same_keys(records: list[dict[str, Any]], names: frozenset[str]) -> bool:
    """Every record has exactly the keys ``names``: their union is ``names`` and each has
    as many keys."""
    if not records:
        return True
    return set().union(*records) == names and set(map(len, records)) == {len(names)}


def _valid_texts(values: list[Any], min_length: int, nullable: bool = False) -> bool:
    """Every value a str of ``min_length``..256 characters encodable as UTF-8 (or None)."""
    texts = [v for v in values if v is not None] if nullable else values
    if not texts:
        return True
    if set(map(type, texts)) != {str}:
        return False
    lengths = list(map(len, texts))
    if min(lengths) < min_length or max(lengths) > MAX_TEXT:
        return False
    try:
        "".join(texts).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from JSON escapes
        return False
    return True


def _valid_column(name: str, values: list[Any]) -> bool:
    """``values`` of feature ``name`` exactly as the request models accept them unchanged."""
    kind = feature_kind(name)
    types = set(map(type, values))
    if kind == "stage":
        return types <= {str} and set(values) <= set(LIFECYCLE_STAGES)
    if kind == "flag":
        return types <= {bool}
    allowed = _NUMBER if kind == "count" else _NULLABLE_NUMBER
    if not types <= allowed or (kind == "count" and float in types):
        return False
    try:
        column = np.asarray(values, np.float64)  # None -> NaN (nullable kinds only)
    except OverflowError:
        return False
    cap = MAX_CURRENCY if kind == "currency" else MAX_COUNT
    with np.errstate(invalid="ignore"):
        inside = (column >= 0.0) & (column <= cap)
    return bool((inside | np.isnan(column)).all())
