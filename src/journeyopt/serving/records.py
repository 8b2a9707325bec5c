"""The fast path of ``POST /v1/score/batch``: a batch of feature records decoded and checked
in one pass by msgspec, then turned into columns.

Validating a thousand customers object by object through pydantic costs more than scoring
them. :class:`RecordReader` decodes the body with a msgspec decoder typed to this world's
feature record, which parses the JSON and checks every value in C against the same rules as
the request models of :mod:`journeyopt.serving.schemas` (exact JSON types, ranges, lifecycle
stages, lengths, unknown or missing keys, a lifecycle stage contradicting the opt-out
flags), and gathers each feature into one column. It
accepts only what those models accept unchanged; anything else (a wrong or coerced value such
as ``2.0`` for a count or ``"1"`` for a number, raw events or contacts, an unexpected key,
malformed JSON) makes it answer None, and the endpoint validates the body with the pydantic
model instead, which either accepts it (then scores it the usual way) or names every wrong
field in a 422 (``["body", "customers", 17, "features", "recency_weeks"]``). So the fast path
changes the cost of a request, never its answer (a hypothesis test holds it to that).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import pandas as pd
from pydantic import TypeAdapter, ValidationError

from journeyopt.panel.state import LIFECYCLE_STAGES
from journeyopt.serving.features import batch_from_columns, empty_record
from journeyopt.serving.schemas import (
    MAX_COUNT,
    MAX_CURRENCY,
    MAX_TEXT,
    OPTED_OUT,
    Instant,
    feature_kind,
    opt_out_disagreements,
)
from journeyopt.serving.scorer import CustomerBatch
from journeyopt.sim.world import WorldSpec

_OPTED_OUT_CODE = LIFECYCLE_STAGES.index(OPTED_OUT)
_AS_OF: TypeAdapter[datetime | None] = TypeAdapter(Instant | None)

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT)]
_Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
_KIND_TYPES: dict[str, Any] = {
    "stage": Literal[LIFECYCLE_STAGES],
    "flag": bool,
    "currency": Annotated[float, msgspec.Meta(ge=0, le=MAX_CURRENCY)] | None,
    "weeks": Annotated[float, msgspec.Meta(ge=0, le=MAX_COUNT)] | None,
    "count": Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)],
}
"""The msgspec type of each :func:`~journeyopt.serving.schemas.feature_kind`: the request
models' ``Literal`` stage, ``bool``, ``Currency | None``, ``Weeks | None`` and ``Count``.
msgspec is strict where pydantic coerces (``true`` or ``2.0`` for a count, ``"1"`` for a
number), so such a body goes to the model; it reads a JSON integer for a float field as that
float, as pydantic does."""


@dataclass(frozen=True)
class OverLimit:
    """The batch holds more customers than the limit (answered with 413)."""

    customers: int


def _batch_type(world: WorldSpec) -> type[msgspec.Struct]:
    """The msgspec type of a batch body of ``world``'s feature records (see the module
    docstring); raw ``events`` and ``contacts`` are read as any list (non-empty ones send the
    body to the model)."""
    record = msgspec.defstruct(
        "FeatureRecord",
        [(name, _KIND_TYPES[feature_kind(name)]) for name in world.features.all_feature_names],
        forbid_unknown_fields=True,
        gc=False,  # scalars only: no reference cycles, nothing for the collector to scan
    )
    customer = msgspec.defstruct(
        "CustomerIn",
        [
            ("customer_id", _Id),
            ("segment", _Text | None, None),
            ("features", record | None, None),
            ("events", list[Any], []),
            ("contacts", list[Any], []),
        ],
        forbid_unknown_fields=True,
    )
    return msgspec.defstruct(
        "BatchRequest",
        [("customers", list[customer]), ("as_of", str | None, None)],  # type: ignore[valid-type]
        forbid_unknown_fields=True,
    )


class RecordReader:
    """Reads record batches of one world.

    Args:
        world: The world (feature names and customer types).
        max_batch: Most customers in one request.
    """

    def __init__(self, world: WorldSpec, max_batch: int) -> None:
        self.world = world
        self.max_batch = max_batch
        self._names = tuple(world.features.all_feature_names)
        self._flags = [name for name in self._names if feature_kind(name) == "flag"]
        default = empty_record(world.features)
        self._default = tuple(default[name] for name in self._names)
        self._decoder = msgspec.json.Decoder(_batch_type(world))

    def read(self, raw: bytes, now: Callable[[], datetime]) -> CustomerBatch | OverLimit | None:
        """The batch of ``raw``, :class:`OverLimit`, or None when the body needs the full
        validation (see the module docstring). ``now``: the as-of instant when none is given.
        """
        try:
            body: Any = self._decoder.decode(raw)
        except msgspec.ValidationError:
            return self._over_limit(raw)  # too many customers answers 413 whatever else
        except (msgspec.DecodeError, RecursionError):  # deep nesting: the model's 422
            return None
        customers = body.customers
        if len(customers) > self.max_batch:
            return OverLimit(len(customers))
        if any(c.events or c.contacts for c in customers):
            return None  # raw events: the panel code through the validated models
        try:
            as_of = _AS_OF.validate_python(body.as_of)
        except ValidationError:
            return None
        n = len(customers)
        given = [c.features for c in customers]
        rows = [self._default if f is None else msgspec.structs.astuple(f) for f in given]
        columns: dict[str, Any] = (
            dict(zip(self._names, zip(*rows, strict=True), strict=True))
            if n
            else {name: [] for name in self._names}
        )
        when = pd.Timestamp(as_of if as_of is not None else now())
        ids = [c.customer_id for c in customers]
        segments = [c.segment for c in customers]
        sent = np.fromiter((f is not None for f in given), np.bool_, n)
        batch = batch_from_columns(ids, columns, segments, self.world, when, sent)
        if self._contradicts(batch):
            return None  # the model names the record that contradicts itself
        return batch

    def _contradicts(self, batch: CustomerBatch) -> bool:
        """Whether a customer's record says ``opted_out`` without every opt-out flag (see
        :func:`~journeyopt.serving.schemas.opt_out_refusal`)."""
        if "lifecycle" not in batch.features:
            return False
        stage = batch.features["lifecycle"] == _OPTED_OUT_CODE
        flags = [batch.features[name] for name in self._flags]
        return bool(opt_out_disagreements(stage, flags).any())

    def _over_limit(self, raw: bytes) -> OverLimit | None:
        """:class:`OverLimit` if ``raw`` is an object whose ``customers`` list is over the
        limit, else None."""
        try:
            body = msgspec.json.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            return None
        customers = body.get("customers") if isinstance(body, dict) else None
        if isinstance(customers, list) and len(customers) > self.max_batch:
            return OverLimit(len(customers))
        return None
