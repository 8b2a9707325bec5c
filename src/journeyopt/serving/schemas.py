"""Request and response bodies of the scoring API (pydantic), built for one world.

The feature record's fields are the world's feature names
(:attr:`journeyopt.panel.state.FeatureSpec.feature_names`), action names are the world's
catalogue and event roles the canonical ones, so the OpenAPI schema at ``/docs`` lists exactly
what the served policy understands, and a request naming anything else is refused with 422
and the path of the field.

An event's ``role`` may be left out when the API serves with a data source config: it is then
the role the source's ``event_roles`` gives the event name, the mapping ingestion applies to
the same names in the logs. An event name the mapping does not know needs its ``role``.

Types are strict: a count is a JSON integer (not ``2.0``, not ``"2"``), an opt-out flag
``true`` or ``false`` (not ``"yes"``), a number a JSON number, text a JSON string, and an
instant an ISO 8601 text starting with the date (``2024-06-03``, ``2024-06-03T10:00:00Z``; not
a number of seconds such as ``0``). A feature record must agree with itself the way the panel
builds it: ``lifecycle`` is ``opted_out`` exactly when the customer opted out of every
contact channel, so a record whose ``lifecycle`` is ``opted_out`` while an
``opted_out_<channel>`` is false is refused at ``lifecycle`` (every flag true with another
stage is accepted: the flags forbid every contact).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from journeyopt.data.schema import ROLES
from journeyopt.data.source import SourceConfig
from journeyopt.panel.state import LIFECYCLE_STAGES
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.holdout import GROUPS
from journeyopt.sim.world import WorldSpec

MAX_COUNT = 1_000_000
MAX_TEXT = 256
MAX_CURRENCY = 1e12
MIN_YEAR, MAX_YEAR = 1900, 2200


def _utf8(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError("not valid UTF-8 text") from err
    return text


_DATE_FIRST = re.compile(r"\d{4}-\d{2}-\d{2}")


def _instant_text(value: object) -> object:
    """Only an ISO 8601 text starting with its date (or a ``datetime``) is an instant: not a
    number, nor a text of digits (which the lax parser would read as seconds since 1970)."""
    if isinstance(value, datetime) or (isinstance(value, str) and _DATE_FIRST.match(value)):
        return value
    raise ValueError("an instant is an ISO 8601 text, e.g. 2024-06-03 or 2024-06-03T10:00:00Z")


def _utc(value: datetime) -> datetime:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"year must be in {MIN_YEAR}..{MAX_YEAR}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Text = Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(_utf8)]
Id = Annotated[str, Field(min_length=1, max_length=MAX_TEXT), AfterValidator(_utf8)]
Instant = Annotated[
    datetime,
    Strict(False),  # the text is checked by _instant_text; the parser reads dates too
    BeforeValidator(_instant_text),
    AfterValidator(_utc),
    Field(description="ISO 8601 instant; naive means UTC"),
]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Weeks = Annotated[float, Field(ge=0, le=MAX_COUNT, allow_inf_nan=False)]
Currency = Annotated[float, Field(ge=0, le=MAX_CURRENCY, allow_inf_nan=False)]
_STRICT = ConfigDict(extra="forbid", strict=True)
OPTED_OUT = "opted_out"


def _role_refusal(kind: str, given: str | None, source: SourceConfig | None) -> str | None:
    """Why an event of ``kind`` with role ``given`` (None: omitted) is refused under
    ``source``'s ``event_roles``; None: accepted."""
    roles = ", ".join(ROLES)
    if source is None:
        if given is None:
            return (
                f"event {kind!r} has no role and the API serves without a data source "
                f"config: give the event's role ({roles})"
            )
        return None
    mapped = source.event_roles.get(kind)
    if given is None and mapped is None:
        return (
            f"unknown event name {kind!r}: not mapped to a role by data source "
            f"{source.name!r} ({sorted(source.event_roles)}); give the event's role ({roles}) "
            "or map the name in data.event_roles"
        )
    if given is not None and mapped is not None and given != mapped:
        return (
            f"event name {kind!r} is a {mapped} event in data source {source.name!r}, the "
            f"request says {given}: leave role out or give {mapped!r}"
        )
    return None


def event_model(source: SourceConfig | None) -> type[BaseModel]:
    """The pydantic model of a request's raw event, whose ``role`` defaults to the role
    ``source.event_roles`` gives its ``kind`` (None: no mapping, every event names its role).

    Refused with 422 at ``[..., "kind"]``: an event without ``role`` whose name the mapping
    does not know, and an event whose ``role`` contradicts the mapping."""
    roles: Mapping[str, str] = {} if source is None else dict(source.event_roles)

    class EventIn(BaseModel):
        """A customer event in the canonical schema."""

        model_config = _STRICT
        ts: Instant
        role: Literal[ROLES] | None = Field(  # type: ignore[valid-type]
            None,
            description="what the event means; omitted: the role the served data source "
            "config (data.event_roles) gives the event's kind",
        )
        kind: Id = Field(description="the source's event name, e.g. day_pass")
        channel: Text = ""
        value: Currency = Field(0.0, description="conversion value, currency")
        event_id: Text = ""

        @field_validator("kind")
        @classmethod
        def _mapped(cls, kind: str, info: ValidationInfo) -> str:
            if "role" not in info.data:  # the role itself is invalid: reported on its own
                return kind
            refusal = _role_refusal(kind, info.data["role"], source)
            if refusal is not None:
                raise ValueError(refusal)
            return kind

        @model_validator(mode="after")
        def _role(self) -> EventIn:
            if self.role is None:
                self.role = roles[self.kind]
            return self

    return EventIn


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


FeatureKind = Literal["stage", "flag", "currency", "weeks", "count"]


def feature_kind(name: str) -> FeatureKind:
    """What a feature of the panel holds: the lifecycle ``stage`` name, an opt-out ``flag``,
    a ``currency`` amount or ``weeks`` since an event (both nullable: never), or a ``count``
    (or whole weeks, never null)."""
    if name == "lifecycle":
        return "stage"
    if name.startswith("opted_out_"):
        return "flag"
    if name == "monetary":
        return "currency"
    if name == "recency_weeks" or name.startswith("weeks_since_"):
        return "weeks"
    return "count"


def opt_out_refusal(lifecycle: str, flags: Mapping[str, bool]) -> str | None:
    """Why a feature record whose ``lifecycle`` says ``opted_out`` contradicts its opt-out
    ``flags`` (``opted_out_<channel>`` -> value), None when it does not: the panel's stage is
    ``opted_out`` only when the customer opted out of every contact channel. (Every flag
    true with another stage is accepted: the flags are the stricter reading, and the guards
    forbid every contact.)"""
    if lifecycle != OPTED_OUT or (flags and all(flags.values())):
        return None
    reachable = sorted(name for name, out in flags.items() if not out)
    return (
        f"lifecycle {OPTED_OUT!r} means opted out of every contact channel, but "
        f"{', '.join(reachable) or 'no opt-out flag'} false: give the customer's stage or "
        "set the flags"
    )


def opt_out_disagreements(
    lifecycle: NDArray[np.bool_], flags: Sequence[NDArray[np.generic]]
) -> NDArray[np.bool_]:
    """(N,) whether each customer's record contradicts itself (see :func:`opt_out_refusal`),
    from (N,) ``lifecycle == "opted_out"`` and one (N,) array per opt-out flag."""
    stage = np.asarray(lifecycle, np.bool_)
    if not flags:
        return stage.copy()
    everywhere = np.logical_and.reduce([np.asarray(f, np.bool_) for f in flags])
    return stage & ~everywhere


def _flag_names(world: WorldSpec) -> list[str]:
    return [n for n in world.features.feature_names if feature_kind(n) == "flag"]


def _agreeing_record(world: WorldSpec) -> Any:
    """The field validator of a feature record's ``lifecycle`` (validated after the flags)
    refusing a record that contradicts itself."""
    names = _flag_names(world)

    def agrees(cls: type[BaseModel], lifecycle: str, info: ValidationInfo) -> str:
        if all(name in info.data for name in names):  # a wrong flag is reported on its own
            refusal = opt_out_refusal(lifecycle, {name: info.data[name] for name in names})
            if refusal is not None:
                raise ValueError(refusal)
        return lifecycle

    return field_validator("lifecycle")(classmethod(agrees))


def _agreeing_columns(world: WorldSpec) -> Any:
    """The field validator of the columns' ``lifecycle`` list (validated after the flags)
    refusing the body when a customer's record contradicts itself, naming the first."""
    names = _flag_names(world)

    def agrees(cls: type[BaseModel], lifecycle: list[str], info: ValidationInfo) -> list[str]:
        if not all(name in info.data for name in names):
            return lifecycle
        n = min([len(lifecycle), *(len(info.data[name]) for name in names)])
        stage = np.fromiter((s == OPTED_OUT for s in lifecycle[:n]), np.bool_, n)
        flags = [np.asarray(info.data[name][:n], np.bool_) for name in names]
        wrong = np.flatnonzero(opt_out_disagreements(stage, flags))
        if wrong.size:
            i = int(wrong[0])
            refusal = opt_out_refusal(lifecycle[i], {k: info.data[k][i] for k in names})
            more = f" ({wrong.size - 1} more customers like it)" if wrong.size > 1 else ""
            raise ValueError(f"customer {i}: {refusal}{more}")
        return lifecycle

    return field_validator("lifecycle")(classmethod(agrees))


def _feature_fields(world: WorldSpec) -> dict[str, Any]:
    """Pydantic fields of a feature record: one per feature of the world's spec, the
    ``lifecycle`` stage last (its check reads the opt-out flags)."""
    fields: dict[str, Any] = {}
    for name in world.features.all_feature_names:
        kind = feature_kind(name)
        if kind == "stage":
            fields[name] = (Literal[LIFECYCLE_STAGES], Field(description="lifecycle stage"))
        elif kind == "flag":
            fields[name] = (bool, Field(description="opted out of the channel"))
        elif kind == "currency":
            fields[name] = (
                Currency | None,
                Field(description="mean conversion value; null: never"),
            )
        elif kind == "weeks":
            fields[name] = (Weeks | None, Field(description="weeks; null: never"))
        else:
            fields[name] = (Count, Field(description="count or weeks"))
    if "lifecycle" in fields:
        fields["lifecycle"] = fields.pop("lifecycle")
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


def _lifecycle_check(world: WorldSpec, check: Any) -> dict[str, Any]:
    """``__validators__`` of a feature model: ``check(world)`` when the world's features
    have a lifecycle stage."""
    return {"_agrees": check(world)} if "lifecycle" in world.features.feature_names else {}


def api_models(
    world: WorldSpec, settings: ServingConfig, source: SourceConfig | None = None
) -> ApiModels:
    """The API's pydantic models for ``world`` and the limits of ``settings``; ``source``:
    the data source config whose ``event_roles`` give omitted event roles (see
    :func:`event_model`)."""
    actions = tuple(world.actions.names)
    EventIn = event_model(source)
    feature_record = create_model(
        "FeatureRecord",
        __config__=_STRICT,
        __doc__="A customer's features at the start of the as-of week (the panel's columns); "
        "lifecycle opted_out needs every opted_out_<channel> true.",
        __validators__=_lifecycle_check(world, _agreeing_record),
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
        events: list[EventIn] = Field(  # type: ignore[valid-type]
            default_factory=list, max_length=settings.max_events
        )
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
        probabilities: dict[str, float] = Field(
            description="action -> probability under the policy applied to the customer "
            "(exploration mixture for treatment, staff rules for control) after the guards"
        )
        scores: dict[str, float] = Field(
            description="action -> the model's own probability (its masked softmax)"
        )
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
        __validators__=_lifecycle_check(world, _agreeing_columns),
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
        probabilities: dict[str, list[float]] = Field(
            description="action -> probabilities under the policy applied after the guards"
        )
        scores: dict[str, list[float]] = Field(
            description="action -> the model's own probabilities (its masked softmax)"
        )
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
