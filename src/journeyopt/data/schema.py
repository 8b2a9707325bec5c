"""The canonical, source-independent log schema.

Every source (the coworking demo, CDNOW, a user's CRM export) is mapped onto these tables by a
source config (``configs/data/<source>.yaml``); everything downstream reads only these.

events
    What customers did. ``customer_id`` (str, resolved), ``ts`` (UTC timestamp), ``kind`` (the
    source's own event name, e.g. ``day_pass``), ``role`` (one of :class:`Role`), ``channel``
    (str, may be empty), ``value`` (currency, >= 0; carried by conversions, and by refunds as
    the absolute amount paid back), ``event_id``
    (str, may be empty), ``source_file`` and ``source_row`` (where the row came from; the row
    number is 1-based over data rows, the header not counted).
contacts
    What the company did. ``customer_id``, ``ts``, ``action`` (from the source's action
    catalogue), ``channel``, ``cost`` (currency, >= 0), ``propensity`` (probability that the
    logging policy chose this action, in (0, 1], NaN when not logged), ``campaign`` (str, may be
    empty), ``source_file``, ``source_row``.
identities (optional)
    Links a raw customer reference to identifiers: ``raw_id``, ``email``, ``phone``,
    ``external_id`` (each may be empty).
customers (optional)
    Static attributes known at sign-up: ``customer_id``, ``segment``, ``company_size``,
    ``signup_date`` (UTC timestamp), ``acquisition_channel``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pandas as pd
import pandera.pandas as pa


class Role(StrEnum):
    """What an event means for the customer's state."""

    CONVERSION = "conversion"  # a purchase/booking; carries value
    ENGAGEMENT = "engagement"  # a visit, click, inquiry: interest without revenue
    CANCELLATION = "cancellation"  # a booking or membership cancelled
    OPT_OUT = "opt_out"  # unsubscribed from a channel (empty channel: from all channels)
    OPT_IN = "opt_in"  # subscribed again
    REFUND = "refund"  # money paid back; ``value`` (>= 0) is the amount, it reverses revenue


ROLES: tuple[str, ...] = tuple(r.value for r in Role)

EVENT_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "ts",
    "kind",
    "role",
    "channel",
    "value",
    "event_id",
    "source_file",
    "source_row",
)
CONTACT_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "ts",
    "action",
    "channel",
    "cost",
    "propensity",
    "campaign",
    "source_file",
    "source_row",
)
IDENTITY_COLUMNS: tuple[str, ...] = ("raw_id", "email", "phone", "external_id")
CUSTOMER_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "segment",
    "company_size",
    "signup_date",
    "acquisition_channel",
)

UTC_TS = pd.DatetimeTZDtype(unit="ns", tz="UTC")

EVENTS_SCHEMA = pa.DataFrameSchema(
    {
        "customer_id": pa.Column(str, pa.Check.str_length(min_value=1)),
        "ts": pa.Column(UTC_TS),
        "kind": pa.Column(str, pa.Check.str_length(min_value=1)),
        "role": pa.Column(str, pa.Check.isin(ROLES)),
        "channel": pa.Column(str),
        "value": pa.Column(float, [pa.Check.ge(0.0), pa.Check(lambda s: s.abs() < float("inf"))]),
        "event_id": pa.Column(str),
        "source_file": pa.Column(str),
        "source_row": pa.Column("int64", pa.Check.ge(1)),
    },
    strict=True,
    ordered=True,
    name="events",
)

CONTACTS_SCHEMA = pa.DataFrameSchema(
    {
        "customer_id": pa.Column(str, pa.Check.str_length(min_value=1)),
        "ts": pa.Column(UTC_TS),
        "action": pa.Column(str, pa.Check.str_length(min_value=1)),
        "channel": pa.Column(str),
        "cost": pa.Column(float, pa.Check.ge(0.0)),
        "propensity": pa.Column(
            float, pa.Check.in_range(0.0, 1.0, include_min=False), nullable=True
        ),
        "campaign": pa.Column(str),
        "source_file": pa.Column(str),
        "source_row": pa.Column("int64", pa.Check.ge(1)),
    },
    strict=True,
    ordered=True,
    name="contacts",
)


def empty_events() -> pd.DataFrame:
    """An events table with no rows and the canonical dtypes."""
    return _empty(EVENT_COLUMNS, {"ts": UTC_TS, "value": "float64", "source_row": "int64"})


def empty_contacts() -> pd.DataFrame:
    """A contacts table with no rows and the canonical dtypes."""
    return _empty(
        CONTACT_COLUMNS,
        {"ts": UTC_TS, "cost": "float64", "propensity": "float64", "source_row": "int64"},
    )


def _empty(columns: tuple[str, ...], dtypes: dict[str, object]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=dtypes.get(c, str)) for c in columns})  # type: ignore[call-overload]


CUSTOMERS_SCHEMA = pa.DataFrameSchema(
    {
        "customer_id": pa.Column(str, pa.Check.str_length(min_value=1), unique=True),
        "segment": pa.Column(str),
        "company_size": pa.Column(str),
        "signup_date": pa.Column(UTC_TS, nullable=True),
        "acquisition_channel": pa.Column(str),
    },
    strict=True,
    ordered=True,
    name="customers",
)


def empty_customers() -> pd.DataFrame:
    """A customers table with no rows and the canonical dtypes."""
    return _empty(CUSTOMER_COLUMNS, {"signup_date": UTC_TS})


@dataclass(frozen=True)
class CanonicalLogs:
    """The canonical tables of one source after ingestion (see the module docstring).

    ``customers`` may have no rows (sources without customer attributes, such as CDNOW).
    """

    events: pd.DataFrame
    contacts: pd.DataFrame
    customers: pd.DataFrame
