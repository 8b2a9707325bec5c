"""Raw tables -> canonical tables: map columns, parse and check values, quarantine bad rows.

Each ``parse_*`` function takes a :class:`~journeyopt.data.read.RawTable` and returns the
canonical frame of the rows that passed every check plus a rejects frame (one row per failed
source row, first problem only). The checks, in order, are listed in each function's docstring;
all are vectorised over the ``n`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from journeyopt.data.normalise import (
    OK,
    is_blank,
    normalise_text,
    parse_amounts,
    parse_propensities,
    parse_timestamps,
)
from journeyopt.data.read import RawTable
from journeyopt.data.rejects import FILE_COL, ROW_COL, make_rejects, raw_text
from journeyopt.data.schema import (
    CONTACT_COLUMNS,
    CUSTOMER_COLUMNS,
    EVENT_COLUMNS,
    IDENTITY_COLUMNS,
)
from journeyopt.data.source import SourceConfig, TableMapping
from journeyopt.errors import ConfigError


@dataclass(frozen=True)
class Parsed:
    """Canonical rows that passed the checks, and the rejected rows."""

    frame: pd.DataFrame
    rejects: pd.DataFrame


def resolve_as_of(as_of: str) -> pd.Timestamp:
    """The as-of instant (UTC): ``as_of`` in ISO 8601 (naive = UTC), or now when empty."""
    if not as_of:
        return pd.Timestamp.now(tz="UTC")
    try:
        ts = pd.Timestamp(as_of)
    except ValueError as err:
        raise ConfigError(f"data.as_of={as_of!r} is not an ISO 8601 date or time") from err
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


class _Problems:
    """The first problem found per row: reason and canonical column, shape ``(n,)`` each."""

    def __init__(self, index: pd.Index) -> None:
        self.reason = pd.Series(OK, index=index, dtype="object")
        self.column = pd.Series(OK, index=index, dtype="object")

    def add(self, reason: pd.Series, column: str) -> None:
        new = (reason != OK) & (self.reason == OK)
        if new.any():
            self.reason[new] = reason[new]
            self.column[new] = column

    def flag(self, mask: pd.Series, reason: str | pd.Series, column: str) -> None:
        new = mask & (self.reason == OK)
        if new.any():
            self.reason[new] = reason if isinstance(reason, str) else reason[new]
            self.column[new] = column

    @property
    def bad(self) -> pd.Series:
        return self.reason != OK


def _text(raw: RawTable, mapping: TableMapping, canonical: str) -> pd.Series:
    """The mapped column as trimmed text; blanks take ``mapping.defaults[canonical]``."""
    frame = raw.frame
    default = str(mapping.defaults.get(canonical, ""))
    if canonical not in mapping.columns:
        return pd.Series(default, index=frame.index, dtype="str")
    text = normalise_text(frame[mapping.columns[canonical]])
    return text.mask(text == "", default) if default else text


def _values(raw: RawTable, mapping: TableMapping, canonical: str) -> pd.Series:
    """The mapped column as read (strings or typed), or its default / blanks when unmapped."""
    if canonical in mapping.columns:
        values = raw.frame[mapping.columns[canonical]]
        default = mapping.defaults.get(canonical)
        return values if default is None else values.mask(is_blank(values), str(default))
    default = str(mapping.defaults.get(canonical, ""))
    return pd.Series(default, index=raw.frame.index, dtype="str")


def _unknown(
    values: pd.Series, allowed: list[str], what: str, problems: _Problems, col: str
) -> None:
    mask = ~values.isin(allowed) & (values != "")
    if mask.any():
        problems.flag(
            mask, f"unknown {what} '" + values[mask] + f"' (expected one of {allowed})", col
        )


def _finish(
    raw: RawTable,
    source: SourceConfig,
    columns: dict[str, pd.Series],
    problems: _Problems,
    order: tuple[str, ...],
) -> Parsed:
    bad = problems.bad.to_numpy()
    good = ~bad
    keep_all = not bad.any()  # the usual case: skip copying every column

    def kept(series: pd.Series) -> pd.Series:
        return series if keep_all else series[good]

    frame = pd.DataFrame({c: kept(columns[c]) for c in order if c in columns})
    if "source_file" in order:
        frame["source_file"] = kept(raw.frame[FILE_COL])
        frame["source_row"] = kept(raw.frame[ROW_COL]).astype("int64")
    frame = frame.loc[:, [c for c in order if c in frame.columns]].reset_index(drop=True)
    bad_raw = raw.frame.loc[bad]
    rejects = make_rejects(
        raw.name,
        bad_raw[FILE_COL],
        bad_raw[ROW_COL],
        problems.column[bad],
        problems.reason[bad],
        raw_text(bad_raw, source.delimiter),
    )
    return Parsed(frame, rejects)


def _customer_and_time(
    raw: RawTable,
    mapping: TableMapping,
    source: SourceConfig,
    as_of: pd.Timestamp,
    problems: _Problems,
) -> tuple[pd.Series, pd.Series]:
    customer_id = _text(raw, mapping, "customer_id")
    problems.flag(customer_id == "", "empty customer id", "customer_id")
    ts, ts_reason = parse_timestamps(
        _values(raw, mapping, "ts"), source.timezone, source.timestamp_format
    )
    problems.add(ts_reason, "ts")
    problems.flag(ts > as_of, f"timestamp after the as-of date {as_of.isoformat()}", "ts")
    return customer_id, ts


def parse_events(raw: RawTable, source: SourceConfig, as_of: pd.Timestamp) -> Parsed:
    """Events. Checks: customer id not empty; timestamp parses and is not after ``as_of``;
    kind not empty and in ``event_roles``; value a finite number in ``[0, max_value]`` (blank
    = 0)."""
    mapping = source.events
    problems = _Problems(raw.frame.index)
    customer_id, ts = _customer_and_time(raw, mapping, source, as_of, problems)
    kind = _text(raw, mapping, "kind")
    problems.flag(kind == "", "empty kind", "kind")
    _unknown(kind, list(source.event_roles), "kind", problems, "kind")
    value, value_reason = parse_amounts(_values(raw, mapping, "value"), source.max_value)
    problems.add(value_reason, "value")
    columns = {
        "customer_id": customer_id,
        "ts": ts,
        "kind": kind,
        "role": kind.map(source.event_roles).fillna("").astype("str"),
        "channel": _text(raw, mapping, "channel"),
        "value": value,
        "event_id": _text(raw, mapping, "event_id"),
    }
    return _finish(raw, source, columns, problems, EVENT_COLUMNS)


def parse_contacts(raw: RawTable, source: SourceConfig, as_of: pd.Timestamp) -> Parsed:
    """Contacts. Checks: customer id; timestamp; action in the catalogue; channel (blank = the
    action's channel) in ``contact_channels``; cost a finite number in ``[0, max_value]``
    (blank = the action's catalogue cost); propensity in ``(0, 1]`` or blank."""
    mapping = source.contacts
    problems = _Problems(raw.frame.index)
    customer_id, ts = _customer_and_time(raw, mapping, source, as_of, problems)
    action = _text(raw, mapping, "action")
    problems.flag(action == "", "empty action", "action")
    _unknown(action, list(source.action_names), "action", problems, "action")
    action_channel = action.map({a: s.channel for a, s in source.actions.items()})
    channel = _text(raw, mapping, "channel")
    channel = channel.mask(channel == "", action_channel.fillna("")).astype("str")
    _unknown(channel, list(source.contact_channels), "channel", problems, "channel")
    cost, cost_reason = parse_amounts(
        _values(raw, mapping, "cost"), source.max_value, blank_default=None
    )
    problems.add(cost_reason, "cost")
    catalogue_cost = action.map({a: s.cost for a, s in source.actions.items()}).astype("float64")
    cost = cost.fillna(catalogue_cost)
    propensity, propensity_reason = parse_propensities(_values(raw, mapping, "propensity"))
    problems.add(propensity_reason, "propensity")
    columns = {
        "customer_id": customer_id,
        "ts": ts,
        "action": action,
        "channel": channel,
        "cost": cost,
        "propensity": propensity,
        "campaign": _text(raw, mapping, "campaign"),
    }
    return _finish(raw, source, columns, problems, CONTACT_COLUMNS)


def parse_identities(raw: RawTable, source: SourceConfig) -> Parsed:
    """Identity records. Checks: raw id not empty (identifiers are normalised later)."""
    mapping = source.identities
    problems = _Problems(raw.frame.index)
    columns = {c: _text(raw, mapping, c) for c in IDENTITY_COLUMNS}
    problems.flag(columns["raw_id"] == "", "empty raw id", "raw_id")
    return _finish(raw, source, columns, problems, (*IDENTITY_COLUMNS, "source_file", "source_row"))


def parse_customers(raw: RawTable, source: SourceConfig) -> Parsed:
    """Customer attributes. Checks: customer id not empty; sign-up date blank or parseable."""
    mapping = source.customers
    problems = _Problems(raw.frame.index)
    columns = {c: _text(raw, mapping, c) for c in CUSTOMER_COLUMNS if c != "signup_date"}
    problems.flag(columns["customer_id"] == "", "empty customer id", "customer_id")
    signup, signup_reason = parse_timestamps(
        _values(raw, mapping, "signup_date"), source.timezone, source.timestamp_format
    )
    problems.add(signup_reason.mask(signup_reason == "empty timestamp", OK), "signup_date")
    columns["signup_date"] = signup
    return _finish(raw, source, columns, problems, (*CUSTOMER_COLUMNS, "source_file", "source_row"))
