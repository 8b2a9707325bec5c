"""Source configs: how a source's raw files map onto the canonical schema.

One YAML file per source in ``configs/data/`` (or in the user's own config folder, added with
Hydra's ``--config-dir``). The YAML is validated against :class:`SourceConfig`, a typed dataclass
registered in Hydra's ConfigStore as the schema of the ``data`` group.

Example (the coworking demo, abridged)::

    name: coworking
    path: ???
    timezone: Europe/Berlin
    events:
      file: events.csv
      columns: {customer_id: customer_ref, ts: timestamp, kind: event_type, value: amount}
    event_roles: {day_pass: conversion, visit: engagement, unsubscribe: opt_out}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from journeyopt.data.schema import ROLES
from journeyopt.errors import ConfigError

FORMATS = ("csv", "parquet", "auto")
WHITESPACE = "whitespace"  # delimiter value for runs of spaces/tabs (CDNOW)
DECIMALS = (".", ",")
NEGATIVE_CONVERSIONS = ("reject", "refund")
"""Values of ``data.negative_conversions``."""


@dataclass
class TableMapping:
    """Where one canonical table comes from in the source.

    Attributes:
        file: File name, folder of parts, or glob, relative to the source ``path``.
        columns: Canonical column name -> raw column name. Canonical columns that are not
            mapped take their default (empty string, 0.0 or NaN) where the schema allows it.
        defaults: Canonical column name -> constant value used when the column is not mapped
            (e.g. ``kind: purchase`` for CDNOW, which has no event-type column).
        required: Whether the table must exist. Optional tables (identities, customers) are
            skipped when their file is absent.
        timestamp_format: ``strftime`` format of this table's timestamps (``ts``,
            ``signup_date``) when it differs from the source's ``timestamp_format`` (e.g.
            sign-up dates ``%d.%m.%Y`` beside activity times ``%d.%m.%Y %H:%M``); empty = the
            source's.
    """

    file: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    required: bool = True
    timestamp_format: str = ""


@dataclass
class ActionSpec:
    """One action of the company's catalogue.

    Attributes:
        channel: Contact channel the action uses (must be in ``contact_channels``), or ``""``
            for ``none``.
        cost: Cost of one contact in currency units, used when the log carries no cost.
        discount: Fraction of the list price the action gives away on every conversion of
            the contacted customer in the week of the contact (a voucher: ``0.2`` for 20 %
            off), in [0, 1); 0 for an action that gives nothing away. Whether the export's
            amounts are before or after it is ``data.amounts``.
    """

    channel: str = ""
    cost: float = 0.0
    discount: float = 0.0


@dataclass
class DedupConfig:
    """De-duplication rules (exact duplicates and duplicate ``event_id`` always apply).

    Attributes:
        exact: Drop rows identical in every mapped column (a re-exported batch). Off for logs
            where identical lines are genuine repeat purchases (CDNOW).
        near_duplicate_seconds: Two events of the same customer, kind, role and value within
            this many seconds are one event (double submits, retried webhooks). ``0``
            disables.
        merge_same_day_conversions: Count several conversions of one customer on one calendar
            day (in ``timezone``) as one conversion whose value is their sum, the usual
            treatment of transaction logs such as CDNOW (Fader, Hardie & Lee 2005). Refunds
            are never merged (each stays its own event).
    """

    exact: bool = True
    near_duplicate_seconds: int = 60
    merge_same_day_conversions: bool = False


@dataclass
class IdentityConfig:
    """Identity-resolution rules.

    Attributes:
        strip_plus_addressing: Treat ``anna+promo@x.com`` as ``anna@x.com``.
        lowercase_email: Compare e-mail addresses case-insensitively.
        phone_default_country_code: Country code prefixed to national phone numbers
            (``030 1234`` -> ``+49301234`` with ``49``) before comparing; empty (no default:
            the business's country): national numbers are compared as written.
        max_records_per_identifier: An identifier shared by more raw records than this (a
            shared front-desk e-mail, a placeholder phone) links nothing and is reported.
    """

    strip_plus_addressing: bool = True
    lowercase_email: bool = True
    phone_default_country_code: str = ""
    max_records_per_identifier: int = 50


@dataclass
class EconomicsConfig:
    """What a sale is worth to the business: the parameters the logs cannot tell. They enter
    every reward (calibrated worlds, off-policy evaluation, the measured uplift's margin), not
    the fit, and they scale every policy value, so they are part of the business's own
    description, never a default.

    Attributes:
        currency: Currency of amounts and costs (for reports).
        margin_rate: Fraction of a conversion's list value that is margin (after the cost of
            delivering what was sold, before contact costs and discounts), in [0, 1]: 1.0 when
            revenue itself is what you optimise, 0.3 for a retailer reselling goods. The
            discounts are the actions' own (``data.actions.<name>.discount``); whether logged
            amounts are before or after them is ``data.amounts``. Unset (null): commands that
            value policies stop and ask for it.
    """

    currency: str = ""
    margin_rate: float | None = None

    def __post_init__(self) -> None:
        if self.margin_rate is not None and not 0.0 <= self.margin_rate <= 1.0:
            raise ConfigError(
                f"data.economics.margin_rate must be in [0, 1], got {self.margin_rate}"
            )

    def margin(self) -> float:
        """The margin rate; raises :class:`ConfigError` when the source does not declare it."""
        if self.margin_rate is None:
            raise ConfigError(
                "data.economics.margin_rate is not set: the share of a sale's list value that "
                "is margin (1.0 when revenue is what you optimise, 0.35 for a shop reselling "
                "goods) scales every policy value and cannot be read from the logs; set it in "
                "your source config (economics: {currency: EUR, margin_rate: 0.35})"
            )
        return self.margin_rate


@dataclass
class SourceConfig:
    """A data source: file layout, parsing options and the mapping onto canonical roles.

    Attributes:
        name: Source name (the YAML file's stem by convention).
        path: File or folder holding the source's files; set on the command line
            (``data.path=...``).
        format: ``csv``, ``parquet`` or ``auto`` (by file extension).
        delimiter: CSV field delimiter, or ``whitespace`` for runs of blanks.
        encoding: Text encoding of CSV files.
        has_header: Whether CSV files start with a header row.
        column_names: Column names for header-less files.
        timezone: IANA zone for timestamps that carry no offset.
        timestamp_format: ``strftime`` format of timestamps, or empty for ISO 8601; a table
            may set its own (``customers.timestamp_format``).
        decimal: Decimal separator of amounts (``value``, ``cost``, ``propensity``): ``.`` or
            ``,``. With ``,`` (European exports), ``.`` groups thousands: ``1.234,50`` is
            1234.5; a value in any other shape (``49.90``) is rejected as not a number.
        as_of: Rows after this instant (ISO 8601, UTC if naive) are rejected as from the
            future; empty means "now".
        min_date: Rows before this instant (ISO 8601, UTC if naive) are rejected as
            implausible: placeholder dates such as ``1900-01-01`` or ``1970-01-01`` (the Unix
            epoch) that CRM exports write for "unknown". Applies to ``ts`` and
            ``signup_date``; empty disables the check (timestamps must still lie in the years
            1677-2262). Set it earlier for a history that really starts before 1990.
        max_value: Largest plausible ``value`` or ``cost`` of one row, in currency units; rows
            above it are rejected as absurd (a mis-parsed id or a test transaction); a
            refund's absolute amount is checked against it too.
        negative_conversions: What a negative ``value`` on a row whose kind is a conversion
            means: ``reject`` (the default: the row is rejected as ``negative``) or ``refund``
            (the row is a refund of the absolute amount; for exports that book refunds as
            negative order lines under the order's own event name). Rows of a kind mapped to
            the role ``refund`` are refunds whatever the sign of their amount.
        events, contacts, identities, customers: Table mappings.
        event_roles: Raw event kind -> canonical role (see :class:`~journeyopt.data.schema.Role`):
            ``conversion``, ``engagement``, ``cancellation``, ``opt_out``, ``opt_in`` or
            ``refund`` (money paid back, negative or positive amount: the absolute amount
            reverses revenue).
        contact_channels: Channels the company contacts customers through.
        actions: The action catalogue; must contain ``none``. Any names: each action declares
            its channel, cost and discount (:class:`ActionSpec`); no code looks at the names.
        economics: Currency and margin rate of the business (:class:`EconomicsConfig`).
        amounts: What the ``value`` of a conversion is under a discounting action: ``paid``
            (the amount charged, after the discount; the usual export) or ``list`` (the list
            price, before it). Revenue, margins and the calibrated world's value model use
            the list value, so a wrong setting inflates or deflates discount weeks.
        contact_actions: Raw action name in the contacts table -> catalogue action (e.g.
            ``Rabattaktion: voucher``); catalogue names map to themselves. When the
            events and the contacts are one file (one activity export), a row whose contacts'
            ``action`` column holds a catalogue action or one of these raw names is a contact,
            every other row an event.
        dedup, identity: Rules for de-duplication and identity resolution.
    """

    name: str = "source"
    path: str = ""
    format: str = "auto"
    delimiter: str = ","
    encoding: str = "utf-8"
    has_header: bool = True
    column_names: list[str] = field(default_factory=list)
    timezone: str = "UTC"
    timestamp_format: str = ""
    decimal: str = "."
    as_of: str = ""
    min_date: str = "1990-01-01"
    max_value: float = 1e7
    negative_conversions: str = "reject"
    events: TableMapping = field(default_factory=TableMapping)
    contacts: TableMapping = field(default_factory=lambda: TableMapping(required=False))
    identities: TableMapping = field(default_factory=lambda: TableMapping(required=False))
    customers: TableMapping = field(default_factory=lambda: TableMapping(required=False))
    event_roles: dict[str, str] = field(default_factory=dict)
    contact_channels: list[str] = field(default_factory=list)
    actions: dict[str, ActionSpec] = field(default_factory=lambda: {"none": ActionSpec()})
    contact_actions: dict[str, str] = field(default_factory=dict)
    amounts: str = "paid"
    economics: EconomicsConfig = field(default_factory=EconomicsConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"data.format must be one of {FORMATS}, got {self.format!r}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ConfigError(f"data.timezone: unknown time zone {self.timezone!r}") from err
        bad_roles = {k: r for k, r in self.event_roles.items() if r not in ROLES}
        if bad_roles:
            raise ConfigError(
                f"data.event_roles: unknown role(s) {bad_roles}; expected one of {ROLES}"
            )
        if "none" not in self.actions:
            raise ConfigError("data.actions must contain the action 'none'")
        for name, spec in self.actions.items():
            if name != "none" and spec.channel not in self.contact_channels:
                raise ConfigError(
                    f"data.actions.{name}.channel={spec.channel!r} is not one of "
                    f"data.contact_channels={self.contact_channels}"
                )
            if spec.cost < 0:
                raise ConfigError(f"data.actions.{name}.cost must be >= 0, got {spec.cost}")
            if not 0.0 <= spec.discount < 1.0 or (name == "none" and spec.discount != 0.0):
                raise ConfigError(
                    f"data.actions.{name}.discount must be in [0, 1) (0 for 'none'), "
                    f"got {spec.discount}"
                )
        if self.amounts not in ("paid", "list"):
            raise ConfigError(f"data.amounts must be 'paid' or 'list', got {self.amounts!r}")
        unknown = {raw: a for raw, a in self.contact_actions.items() if a not in self.actions}
        if unknown:
            raise ConfigError(
                f"data.contact_actions: {unknown} map onto no action of data.actions "
                f"({list(self.actions)})"
            )
        if self.decimal not in DECIMALS:
            raise ConfigError(f"data.decimal must be one of {DECIMALS}, got {self.decimal!r}")
        if self.min_date:
            try:
                pd.Timestamp(self.min_date)
            except ValueError as err:
                raise ConfigError(
                    f"data.min_date={self.min_date!r} is not an ISO 8601 date or time "
                    "(or empty to disable the check)"
                ) from err
        if self.negative_conversions not in NEGATIVE_CONVERSIONS:
            raise ConfigError(
                f"data.negative_conversions must be one of {NEGATIVE_CONVERSIONS}, "
                f"got {self.negative_conversions!r}"
            )
        if not 0 < self.max_value < float("inf"):
            raise ConfigError(f"data.max_value must be > 0 and finite, got {self.max_value}")
        if self.dedup.near_duplicate_seconds < 0:
            raise ConfigError("data.dedup.near_duplicate_seconds must be >= 0")
        if not self.has_header and not self.column_names:
            raise ConfigError("data.column_names is required when data.has_header is false")

    @property
    def action_names(self) -> tuple[str, ...]:
        """Action names, ``none`` first, then the catalogue's order."""
        return ("none", *(a for a in self.actions if a != "none"))
