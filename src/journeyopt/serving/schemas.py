"""Request and response bodies of the scoring API (pydantic), built for one world.

The feature record's fields are the world's feature names
(:attr:`journeyopt.panel.state.FeatureSpec.feature_names`), action names are the world's
catalogue and event roles the canonical ones, so the OpenAPI schema at ``/docs`` lists exactly
what the served policy understands, and a request naming anything else is refused with 422
and the path of the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model, model_validator

from journeyopt.data.schema import ROLES
from journeyopt.panel.state import LIFECYCLE_STAGES
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.holdout import GROUPS
from journeyopt.sim.world import WorldSpec

MAX_COUNT = 1_000_000
MAX_CURRENCY = 1e12
MIN_YEAR, MAX_YEAR = 1900, 2200


def _utf8(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError("not valid UTF-8 text") from err
    return text


def _utc(value: datetime) -> datetime:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"year must be in {MIN_YEAR}..{MAX_YEAR}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Text = Annotated[str, Field(max_length=256), AfterValidator(_utf8)]
Id = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_utf8)]
Instant = Annotated[
    datetime,
    AfterValidator(_utc),
    Field(description="ISO 8601 instant; naive means UTC"),
]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Weeks = Annotated[float, Field(ge=0, le=MAX_COUNT, allow_inf_nan=False)]
Currency = Annotated[float, Field(ge=0, le=MAX_CURRENCY, allow_inf_nan=False)]
_STRICT = ConfigDict(extra="forbid")


class EventIn(BaseModel):
    """A customer event in the canonical schema."""

    model_config = _STRICT
    ts: Instant
    kind: Id = Field(description="the source's event name, e.g. day_pass")
    role: Literal[ROLES] = Field(description="what the event means")  # type: ignore[valid-type]
    channel: Text = ""
    value: Currency = Field(0.0, description="conversion value, currency")
    event_id: Text = ""


@dataclass(frozen=True)
class ApiModels:
    """The request and response models of one world's API."""

    score_request: type[BaseModel]
    batch_request: type[BaseModel]
    score_response: type[BaseModel]
    batch_response: type[BaseModel]
    feature_record: type[BaseModel]
    columns_request: type[BaseModel]
    columns_response: type[BaseModel]


def _feature_fields(world: WorldSpec) -> dict[str, Any]:
    """Pydantic fields of a feature record: one per feature of the world's spec."""
    fields: dict[str, Any] = {}
    for name in world.features.feature_names:
        if name == "lifecycle":
            fields[name] = (Literal[LIFECYCLE_STAGES], Field(description="lifecycle stage"))
        elif name.startswith("opted_out_"):
            fields[name] = (bool, Field(description="opted out of the channel"))
        elif name == "monetary":
            fields[name] = (
                Currency | None,
                Field(description="mean conversion value; null: never"),
            )
        elif name == "recency_weeks" or name.startswith("weeks_since_"):
            fields[name] = (Weeks | None, Field(description="weeks; null: never"))
        else:
            fields[name] = (Count, Field(description="count or weeks"))
    return fields


def _feature_columns(world: WorldSpec, max_rows: int) -> dict[str, Any]:
    """Pydantic fields of the columnar body: one list per feature, of the feature's type."""
    fields: dict[str, Any] = {}
    for name, (kind, info) in _feature_fields(world).items():
        fields[name] = (
            list[kind],  # type: ignore[valid-type]
            Field(max_length=max_rows, description=f"{info.description}, one per customer"),
        )
    return fields


def api_models(world: WorldSpec, settings: ServingConfig) -> ApiModels:
    """The API's pydantic models for ``world`` and the limits of ``settings``."""
    actions = tuple(world.actions.names)
    feature_record = create_model(
        "FeatureRecord",
        __config__=_STRICT,
        __doc__="A customer's features at the start of the as-of week (the panel's columns).",
        **_feature_fields(world),
    )

    class ContactIn(BaseModel):
        """A company contact in the canonical schema."""

        model_config = _STRICT
        ts: Instant
        action: Literal[actions] = Field(description="an action of the catalogue")  # type: ignore[valid-type]
        channel: Text = Field("", description="empty: the action's channel")
        cost: Currency = 0.0
        propensity: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = None
        campaign: Text = ""

    class CustomerIn(BaseModel):
        """One customer: a feature record, or recent raw events and contacts (neither: an
        unknown customer, who gets the safe default ``none``)."""

        model_config = _STRICT
        customer_id: Id
        segment: Text | None = Field(None, description="customer type; unknown: no contact")
        features: feature_record | None = None  # type: ignore[valid-type]
        events: list[EventIn] = Field(default_factory=list, max_length=settings.max_events)
        contacts: list[ContactIn] = Field(default_factory=list, max_length=settings.max_events)

        @model_validator(mode="after")
        def _one_source(self) -> CustomerIn:
            if self.features is not None and (self.events or self.contacts):
                raise ValueError("give either features or events/contacts, not both")
            return self

    class ScoreRequest(CustomerIn):
        """``POST /v1/score``: one customer at ``as_of`` (default: now)."""

        as_of: Instant | None = None

    class BatchRequest(BaseModel):
        """``POST /v1/score/batch``: customers at one ``as_of`` (default: now)."""

        model_config = _STRICT
        as_of: Instant | None = None
        customers: list[CustomerIn] = Field(max_length=settings.max_batch)

    class ScoreResponse(BaseModel):
        """One decision."""

        customer_id: str
        decision_id: str
        as_of: datetime
        group: Literal[GROUPS]  # type: ignore[valid-type]
        action: str
        channel: str
        probabilities: dict[str, float] = Field(description="action -> probability")
        propensity: float = Field(description="probability of the action carried out")
        expected_value: float = Field(description="this week's expected value, currency")
        masked: dict[str, str] = Field(description="action -> why the contact rules forbid it")
        known: bool = Field(description="false: unknown customer, safe default")
        model_name: str
        model_version: str

    class BatchResponse(BaseModel):
        """Decisions in request order."""

        decisions: list[ScoreResponse]

    feature_columns = create_model(
        "FeatureColumns",
        __config__=_STRICT,
        __doc__="Every feature of the panel as one list, in the customers' order.",
        **_feature_columns(world, settings.max_batch),
    )

    class ColumnsRequest(BaseModel):
        """``POST /v1/score/columns``: many customers as columns (one list per field, all of
        the same length) at one ``as_of`` (default: now). Every customer has a feature
        record; a ``null`` or unknown ``segment`` makes the customer unknown."""

        model_config = _STRICT
        as_of: Instant | None = None
        customer_id: list[Id] = Field(max_length=settings.max_batch)
        segment: list[Text | None] | None = Field(
            None, max_length=settings.max_batch, description="customer types; omitted: none"
        )
        features: feature_columns  # type: ignore[valid-type]

        @model_validator(mode="after")
        def _same_length(self) -> ColumnsRequest:
            n = len(self.customer_id)
            columns = dict(self.features.__dict__)  # type: ignore[attr-defined]
            if self.segment is not None:
                columns["segment"] = self.segment
            wrong = {k: len(v) for k, v in columns.items() if len(v) != n}
            if wrong:
                raise ValueError(
                    f"every column needs one value per customer_id ({n}); lengths {wrong}"
                )
            return self

    class ColumnsResponse(BaseModel):
        """Decisions as columns, in request order (one value per customer)."""

        as_of: datetime
        model_name: str
        model_version: str
        customer_id: list[str]
        decision_id: list[str]
        group: list[Literal[GROUPS]]  # type: ignore[valid-type]
        action: list[str]
        channel: list[str]
        propensity: list[float] = Field(description="probability of the action carried out")
        expected_value: list[float] = Field(description="this week's expected value, currency")
        known: list[bool] = Field(description="false: unknown customer, safe default")
        probabilities: dict[str, list[float]] = Field(description="action -> probabilities")
        masked: dict[str, list[str | None]] = Field(
            description="action -> why the contact rules forbid it (null: allowed)"
        )

    return ApiModels(
        ScoreRequest,
        BatchRequest,
        ScoreResponse,
        BatchResponse,
        feature_record,
        ColumnsRequest,
        ColumnsResponse,
    )
