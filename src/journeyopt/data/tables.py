"""Raw tables -> canonical tables: map columns, parse and check values, quarantine bad rows.

Each ``parse_*`` function takes a :class:`~journeyopt.data.read.RawTable` and returns the
canonical frame of the rows that passed every check plus a rejects frame (one row per failed
source row, first problem only). The checks, in order, are listed in each function's docstring;
all are vectorised over the ``n`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from journeyopt.data.normalise import (
    OK,
    Check,
    amount_checks,
    is_blank,
    normalise_text,
    propensity_checks,
    timestamp_checks,
)
from journeyopt.data.read import RawTable
from journeyopt.data.rejects import FILE_COL, ROW_COL, make_rejects, raw_text
from journeyopt.data.schema import (
    CONTACT_COLUMNS,
    CUSTOMER_COLUMNS,
    EVENT_COLUMNS,
    IDENTITY_COLUMNS,
    Role,
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


def resolve_min_date(min_date: str) -> pd.Timestamp | None:
    """The earliest plausible instant (UTC): ``min_date`` in ISO 8601 (naive = UTC), or
    ``None`` when empty (no check)."""
    if not min_date:
        return None
    try:
        ts = pd.Timestamp(min_date)
    except ValueError as err:
        raise ConfigError(f"data.min_date={min_date!r} is not an ISO 8601 date or time") from err
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _before_min_date(ts: pd.Series, source: SourceConfig) -> tuple[np.ndarray, str]:
    """Rows of ``ts`` (UTC) before ``data.min_date`` and the reason. Shape ``(n,)``, bool."""
    first = resolve_min_date(source.min_date)
    if first is None:
        return np.zeros(len(ts), dtype=bool), OK
    reason = (
        f"implausible timestamp: before data.min_date={source.min_date} "
        "(a placeholder date such as 1900-01-01 or 1970-01-01?)"
    )
    return (ts < first).to_numpy(), reason


class _Problems:
    """The first problem found per row: reason and canonical column, over ``n`` rows.

    Only the rows with a problem carry a reason (kept per check, assembled by
    :meth:`reasons`), so the clean majority of a long table costs one boolean per row.
    """

    def __init__(self, n: int) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self._found: list[tuple[np.ndarray, str | pd.Series, str]] = []

    def flag(self, mask: np.ndarray, reason: str | pd.Series, column: str) -> None:
        """Rows of ``mask`` (shape ``(n,)``, bool) without an earlier problem get ``reason``:
        one string, or a Series with one reason per masked row (shape ``(mask.sum(),)``)."""
        new = mask & ~self.bad
        if new.any():
            rows = np.flatnonzero(new)
            why = reason if isinstance(reason, str) else reason.iloc[np.flatnonzero(new[mask])]
            self._found.append((rows, why, column))
            self.bad |= new

    def checks(self, checks: list[Check], column: str) -> None:
        """Flag every :data:`~journeyopt.data.normalise.Check`, highest priority first."""
        for mask, reason in checks:
            self.flag(mask, reason, column)

    def reasons(self) -> tuple[pd.Series, pd.Series]:
        """``(column, reason)`` of the bad rows, in row order. Shape ``(k,)`` each, str."""
        reason = np.full(len(self.bad), OK, dtype=object)
        column = np.full(len(self.bad), OK, dtype=object)
        for rows, why, col in self._found:
            reason[rows] = why if isinstance(why, str) else why.to_numpy(dtype=object)
            column[rows] = col
        return pd.Series(column[self.bad], dtype="str"), pd.Series(reason[self.bad], dtype="str")


def _text(raw: RawTable, mapping: TableMapping, canonical: str) -> pd.Series:
    """The mapped column as trimmed text; blanks take ``mapping.defaults[canonical]``."""
    frame = raw.frame
    default = str(mapping.defaults.get(canonical, ""))
    if canonical not in mapping.columns:
        return pd.Series(default, index=frame.index, dtype="str")
    text = normalise_text(frame[mapping.columns[canonical]])
    return text.mask(text == "", default) if default else text


def _category(raw: RawTable, mapping: TableMapping, canonical: str) -> pd.Series:
    """:func:`_text` as a categorical: the values are trimmed (and defaulted) once per distinct
    raw value, and later grouping, mapping and filtering work on integer codes."""
    if canonical not in mapping.columns:
        return _text(raw, mapping, canonical).astype("category")
    values = raw.frame[mapping.columns[canonical]]
    if not (values.dtype == "str" or isinstance(values.dtype, pd.CategoricalDtype)):
        return _text(raw, mapping, canonical).astype("category")
    codes, uniques = dictionary_codes(values)
    default = str(mapping.defaults.get(canonical, ""))
    text = normalise_text(pd.Series(uniques, dtype="str"))
    return categorical(codes, text.mask(text == "", default) if default else text, raw.frame.index)


def dictionary_codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Arrow's hash encoding of string values: int codes (``-1`` for missing), shape ``(n,)``,
    and the distinct values."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy(), values.cat.categories
    encoded = pc.dictionary_encode(pa.chunked_array(pa.array(values, type=pa.large_string())))
    codes = [np.asarray(c.indices.fill_null(-1).to_numpy(), dtype=np.int64) for c in encoded.chunks]
    dictionary = (
        encoded.chunks[-1].dictionary if encoded.num_chunks else pa.array([], pa.large_string())
    )
    return (
        np.concatenate(codes) if codes else np.zeros(0, dtype=np.int64),
        pd.Index(dictionary.to_pandas(), dtype="str"),
    )


def categorical(codes: np.ndarray, labels: pd.Series, index: pd.Index) -> pd.Series:
    """A categorical of ``labels[codes]`` (``-1`` codes read as ``""``); equal labels merge."""
    merged, categories = pd.factorize(pd.concat([labels, pd.Series([""], dtype="str")]))
    remap = merged[np.where(codes < 0, len(labels), codes)]
    dtype = pd.CategoricalDtype(pd.Index(categories, dtype="str"))
    return pd.Series(pd.Categorical.from_codes(remap, dtype=dtype), index=index)


def _values(raw: RawTable, mapping: TableMapping, canonical: str) -> pd.Series:
    """The mapped column as read (strings or typed), or its default / blanks when unmapped."""
    if canonical in mapping.columns:
        values = raw.frame[mapping.columns[canonical]]
        default = mapping.defaults.get(canonical)
        return values if default is None else values.mask(is_blank(values), str(default))
    default = str(mapping.defaults.get(canonical, ""))
    return pd.Series(default, index=raw.frame.index, dtype="str")


def _unknown(
    values: pd.Series,
    allowed: list[str],
    what: str,
    problems: _Problems,
    col: str,
    expected: str = "",
) -> None:
    """Flag values not in ``allowed`` (empty values are checked elsewhere); ``expected`` says
    what was expected in the reason (default: one of ``allowed``)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        cats = pd.Series(values.cat.categories)
        bad_cat = (~cats.isin(allowed) & (cats != "")).to_numpy()
        if not bad_cat.any():
            return
        mask = bad_cat[values.cat.codes.to_numpy()]
    else:
        mask = (~values.isin(allowed) & (values != "")).to_numpy()
    if mask.any():
        text = values[mask].astype("str")
        expected = expected or f"one of {allowed}"
        problems.flag(mask, f"unknown {what} '" + text + f"' (expected {expected})", col)


CONTROL_CHARACTER = "control character in id (a NUL byte, tab or line break: a broken export?)"
_CONTROL_RE = r"[\x00-\x1f\x7f]"


def _control_characters(values: pd.Series) -> np.ndarray:
    """Where an id (str or categorical) holds an ASCII control character: a NUL byte, a tab,
    a line break. Shape ``(n,)``, bool. The bytes are scanned at once first (no control byte
    in the table, the usual case: no per-value regex)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        per_category = _control_characters(pd.Series(values.cat.categories, dtype="str"))
        codes = values.cat.codes.to_numpy()
        return np.where(codes >= 0, per_category[np.maximum(codes, 0)], False)
    arr = pa.array(values.astype("str").array)  # Arrow-backed strings: no copy
    arr = arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr])
    if not any(_control_bytes(chunk) for chunk in arr.chunks):
        return np.zeros(len(values), dtype=bool)
    found = pc.fill_null(pc.match_substring_regex(arr, _CONTROL_RE), False)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)


def _control_bytes(chunk: pa.Array) -> bool:
    """Whether the character data of a string array holds a byte below 0x20 or 0x7f."""
    data = chunk.buffers()[2]
    if data is None:
        return False
    raw = np.frombuffer(data, dtype=np.uint8)
    return bool(((raw < 0x20) | (raw == 0x7F)).any())


def _empty(values: pd.Series) -> np.ndarray:
    """Where ``values`` (str or categorical) is ``""``. Shape ``(n,)``, bool."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return (pd.Series(values.cat.categories) == "").to_numpy()[values.cat.codes.to_numpy()]
    return (values == "").to_numpy()


def _finish(
    raw: RawTable,
    source: SourceConfig,
    columns: dict[str, pd.Series],
    problems: _Problems,
    order: tuple[str, ...],
) -> Parsed:
    bad = problems.bad
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
    column, reason = problems.reasons()
    rejects = make_rejects(
        raw.name,
        bad_raw[FILE_COL],
        bad_raw[ROW_COL],
        column,
        reason,
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
    customer_id = _category(raw, mapping, "customer_id")
    problems.flag(_empty(customer_id), "empty customer id", "customer_id")
    problems.flag(_control_characters(customer_id), CONTROL_CHARACTER, "customer_id")
    ts, ts_checks = timestamp_checks(
        _values(raw, mapping, "ts"), source.timezone, timestamp_format(source, mapping)
    )
    problems.checks(ts_checks, "ts")
    problems.flag(*_before_min_date(ts, source), "ts")
    problems.flag(
        (ts > as_of).to_numpy(), f"timestamp after the as-of date {as_of.isoformat()}", "ts"
    )
    return customer_id, ts


def timestamp_format(source: SourceConfig, mapping: TableMapping) -> str:
    """The ``strftime`` format of a table's timestamps: its own, else the source's."""
    return mapping.timestamp_format or source.timestamp_format


def _map_category(values: pd.Series, lookup: dict[str, str], missing: str) -> pd.Series:
    """``lookup`` applied to a categorical's categories (``missing`` where absent)."""
    labels = pd.Series(values.cat.categories).map(lookup).fillna(missing).astype("str")
    return categorical(values.cat.codes.to_numpy(), labels, values.index)


def _fill_empty(values: pd.Series, fallback: pd.Series) -> pd.Series:
    """Categorical ``values`` with ``""`` replaced by ``fallback`` (a categorical, same rows).
    Done on the codes: each row's label is one of the two columns' categories (equal labels
    merge), no text per row."""
    empty = _empty(values)
    if not empty.any():
        return values
    n = len(values.cat.categories)
    backup = fallback.cat.codes.to_numpy().astype(np.int64)
    codes = np.where(empty, np.where(backup < 0, -1, n + backup), values.cat.codes.to_numpy())
    labels = [pd.Series(c.cat.categories, dtype="str") for c in (values, fallback)]
    return categorical(codes, pd.concat(labels, ignore_index=True), values.index)


def parse_events(
    raw: RawTable, source: SourceConfig, as_of: pd.Timestamp, *, shared: bool = False
) -> Parsed:
    """Events. Checks: customer id not empty and free of control characters; timestamp
    parses, lies in the years 1677-2262, is not before ``min_date`` and not after ``as_of``;
    kind not empty and in ``event_roles``; value a finite number in ``[0, max_value]`` (blank
    = 0), except on refunds (see :func:`_refunds`); event id free of control characters.
    ``shared``: the rows come from a file that also holds the contacts, so an unknown kind is
    reported as neither an event kind nor an action."""
    mapping = source.events
    problems = _Problems(len(raw.frame))
    customer_id, ts = _customer_and_time(raw, mapping, source, as_of, problems)
    kind = _category(raw, mapping, "kind")
    problems.flag(_empty(kind), "empty kind", "kind")
    expected = ""
    if shared:
        actions = [*source.action_names, *source.contact_actions]
        expected = f"an event kind {list(source.event_roles)} or an action {actions}"
    _unknown(kind, list(source.event_roles), "kind", problems, "kind", expected)
    value, value_checks = amount_checks(
        _values(raw, mapping, "value"), source.max_value, decimal=source.decimal, signed=True
    )
    problems.checks(value_checks, "value")
    role, value, negative = _refunds(
        _map_category(kind, source.event_roles, ""), value, source.negative_conversions
    )
    problems.flag(negative, NEGATIVE_AMOUNT, "value")
    event_id = _text(raw, mapping, "event_id")
    problems.flag(_control_characters(event_id), CONTROL_CHARACTER, "event_id")
    columns = {
        "customer_id": customer_id,
        "ts": ts,
        "kind": kind,
        "role": role,
        "channel": _category(raw, mapping, "channel"),
        "value": value,
        "event_id": event_id,
    }
    return _finish(raw, source, columns, problems, EVENT_COLUMNS)


NEGATIVE_AMOUNT = (
    "negative (a refund? map its kind to the role refund in data.event_roles, or set "
    "data.negative_conversions=refund)"
)
"""Reason of a negative amount on an event that is not a refund."""


def _refunds(
    role: pd.Series, value: pd.Series, negative_conversions: str
) -> tuple[pd.Series, pd.Series, np.ndarray]:
    """Signed event amounts -> ``(role, value, rejected)``, shapes ``(n,)``.

    A refund's amount is kept whatever its sign: exports book a refund either as a negative
    amount or as a positive one under a refund event name; its ``value`` is the absolute
    amount, which reverses revenue. A negative amount on a conversion is a refund when
    ``negative_conversions == "refund"``, else rejected, as on every other role
    (``rejected``, the reason :data:`NEGATIVE_AMOUNT`).
    """
    negative = (value < 0).to_numpy()
    if not negative.any():
        return role, value, negative
    text = role.astype("str")
    if negative_conversions == "refund":
        as_refund = negative & (text == Role.CONVERSION.value).to_numpy()
        if as_refund.any():
            codes, uniques = dictionary_codes(text.mask(as_refund, Role.REFUND.value))
            role = categorical(codes, pd.Series(uniques, dtype="str"), role.index)
            text = role.astype("str")
    rejected = negative & (text != Role.REFUND.value).to_numpy()
    return role, value.abs(), rejected


def catalogue_actions(action: pd.Series, contact_actions: dict[str, str]) -> pd.Series:
    """Categorical raw action names with ``contact_actions`` (raw -> catalogue) applied; names
    not in it stay as they are. Shape ``(n,)``."""
    if not contact_actions:
        return action
    labels = pd.Series(action.cat.categories, dtype="str")
    labels = labels.map(lambda name: contact_actions.get(name, name)).astype("str")
    return categorical(action.cat.codes.to_numpy(), labels, action.index)


def parse_contacts(raw: RawTable, source: SourceConfig, as_of: pd.Timestamp) -> Parsed:
    """Contacts. Checks: customer id and timestamp (as for events); action (raw names translated by
    ``contact_actions``) in the catalogue; channel (blank = the action's channel) in
    ``contact_channels``; cost a finite number in ``[0, max_value]`` (blank = the action's
    catalogue cost); propensity in ``(0, 1]`` or blank."""
    mapping = source.contacts
    problems = _Problems(len(raw.frame))
    customer_id, ts = _customer_and_time(raw, mapping, source, as_of, problems)
    action = catalogue_actions(_category(raw, mapping, "action"), source.contact_actions)
    problems.flag(_empty(action), "empty action", "action")
    known = [*source.action_names, *source.contact_actions]
    _unknown(action, list(source.action_names), "action", problems, "action", f"one of {known}")
    action_channel = _map_category(action, {a: s.channel for a, s in source.actions.items()}, "")
    channel = _category(raw, mapping, "channel")
    channel = _fill_empty(channel, action_channel)
    _unknown(channel, list(source.contact_channels), "channel", problems, "channel")
    cost, cost_checks = amount_checks(
        _values(raw, mapping, "cost"), source.max_value, blank_default=None, decimal=source.decimal
    )
    problems.checks(cost_checks, "cost")
    catalogue = pd.Series({a: s.cost for a, s in source.actions.items()}, dtype="float64")
    catalogue_cost = catalogue.reindex(action.cat.categories).to_numpy()[action.cat.codes]
    cost = cost.fillna(pd.Series(catalogue_cost, index=cost.index))
    propensity, propensity_checks_ = propensity_checks(
        _values(raw, mapping, "propensity"), source.decimal
    )
    problems.checks(propensity_checks_, "propensity")
    columns = {
        "customer_id": customer_id,
        "ts": ts,
        "action": action,
        "channel": channel,
        "cost": cost,
        "propensity": propensity,
        "campaign": _category(raw, mapping, "campaign"),
    }
    return _finish(raw, source, columns, problems, CONTACT_COLUMNS)


def parse_identities(raw: RawTable, source: SourceConfig) -> Parsed:
    """Identity records. Checks: raw id not empty; raw id and external id free of control
    characters (identifiers are normalised later)."""
    mapping = source.identities
    problems = _Problems(len(raw.frame))
    columns = {c: _text(raw, mapping, c) for c in IDENTITY_COLUMNS}
    problems.flag(_empty(columns["raw_id"]), "empty raw id", "raw_id")
    for column in ("raw_id", "external_id"):
        problems.flag(_control_characters(columns[column]), CONTROL_CHARACTER, column)
    return _finish(raw, source, columns, problems, (*IDENTITY_COLUMNS, "source_file", "source_row"))


def parse_customers(raw: RawTable, source: SourceConfig) -> Parsed:
    """Customer attributes. Checks: customer id not empty and free of control characters;
    sign-up date blank, or parseable, in the years 1677-2262 and not before
    ``data.min_date``."""
    mapping = source.customers
    problems = _Problems(len(raw.frame))
    columns = {c: _text(raw, mapping, c) for c in CUSTOMER_COLUMNS if c != "signup_date"}
    problems.flag(_empty(columns["customer_id"]), "empty customer id", "customer_id")
    problems.flag(_control_characters(columns["customer_id"]), CONTROL_CHARACTER, "customer_id")
    signup, signup_checks = timestamp_checks(
        _values(raw, mapping, "signup_date"), source.timezone, timestamp_format(source, mapping)
    )
    blank = signup_checks[0][0]  # a blank sign-up date is allowed
    for mask, why in signup_checks[1:]:
        problems.flag(mask & ~blank, why, "signup_date")
    problems.flag(*_before_min_date(signup, source), "signup_date")
    columns["signup_date"] = signup
    return _finish(raw, source, columns, problems, (*CUSTOMER_COLUMNS, "source_file", "source_row"))
