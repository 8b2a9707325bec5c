"""Canonical logs -> sparse per-(customer, week) aggregates, computed with DuckDB.

Customers are numbered by first activity (first event, contact or sign-up date; ties by
``customer_id``), so the customers present in any week form a prefix ``0 .. n - 1`` of that
numbering. Every aggregate table is sorted by (week, customer number) and carries the row
offsets of each week, so the panel walks the weeks without searching.

Timestamps are handled as int64 nanoseconds since the epoch (UTC) throughout: week boundaries
are exact to the nanosecond.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import NDArray

from journeyopt.data.schema import CanonicalLogs
from journeyopt.panel.weeks import WEEK, monday_on_or_before

WEEK_NS = WEEK.value
ATTRIBUTES: tuple[str, ...] = ("segment", "company_size", "acquisition_channel")
"""Static customer attributes copied onto every panel row (empty string when absent)."""


@dataclass(frozen=True)
class SparseWeeks:
    """A table of per-(customer, week) rows sorted by week, then customer number.

    Attributes:
        columns: Column name -> (M,) array; always holds ``code`` (customer number) and ``week``.
        offsets: (n_weeks + 1,) rows of week ``t`` are ``offsets[t]:offsets[t + 1]``.
    """

    columns: dict[str, NDArray[np.generic]]
    offsets: NDArray[np.int64]

    def week(self, t: int) -> dict[str, NDArray[np.generic]]:
        """The rows of week ``t`` (views)."""
        lo, hi = int(self.offsets[t]), int(self.offsets[t + 1])
        return {name: col[lo:hi] for name, col in self.columns.items()}


@dataclass(frozen=True)
class PanelCustomers:
    """The customers of a panel, numbered by first activity.

    Attributes:
        ids: (N,) ``customer_id`` in numbering order.
        first_ns: (N,) first activity, ns since the epoch (UTC), non-decreasing.
        first_week: (N,) week index of the first activity, non-decreasing.
        attributes: Attribute name -> (codes (N,) int32, categories); ``""`` means absent.
    """

    ids: pa.Array
    first_ns: NDArray[np.int64]
    first_week: NDArray[np.int32]
    attributes: dict[str, tuple[NDArray[np.int32], tuple[str, ...]]]

    @property
    def n_customers(self) -> int:
        return int(self.first_week.shape[0])


@dataclass(frozen=True)
class WeeklyAggregates:
    """Everything the panel needs from the logs, as sparse weekly tables.

    Attributes:
        origin: Monday 00:00 UTC starting week 0 (the week of the earliest first activity).
        n_weeks: Number of weeks ``0 .. n_weeks - 1`` aggregated (activity before
            ``origin + n_weeks`` weeks only).
        customers: The customers, see :class:`PanelCustomers`.
        events: Columns ``conversions``, ``revenue`` (currency, net: conversion values minus
            refund amounts), ``refunds`` (refund events), ``refund_amount`` (currency),
            ``engagements``, ``cancellations``, ``opted_out_in_week`` (bool).
        contacts: Columns ``n_contacts`` (rows whose action is not ``none``), ``contact_cost``
            (currency, all rows), ``action`` (int16 code into ``actions`` of the week's first
            decision), ``propensity`` (of that decision, NaN when not logged).
        channel_contacts: Columns ``channel`` (index into the contact channels) and
            ``n`` (contacts through it whose action is not ``none``).
        action_contacts: Columns ``act`` (index into ``actions``, never ``none``) and ``n``
            (contacts of that action).
        consent: Columns ``channel`` and ``sign`` (-1 the week's last consent event for that
            channel is an opt-out, +1 an opt-in).
        actions: Action names, ``none`` first then sorted.
    """

    origin: pd.Timestamp
    n_weeks: int
    customers: PanelCustomers
    events: SparseWeeks
    contacts: SparseWeeks
    channel_contacts: SparseWeeks
    action_contacts: SparseWeeks
    consent: SparseWeeks
    actions: tuple[str, ...]


def to_ns(ts: pd.Series) -> NDArray[np.int64]:
    """(M,) UTC timestamps as int64 ns since the epoch (NaT becomes int64 min)."""
    return pd.DatetimeIndex(ts).tz_convert("UTC").as_unit("ns").asi8


def first_activity_origin(logs: CanonicalLogs) -> pd.Timestamp | None:
    """Monday 00:00 UTC of the week of the earliest activity in ``logs``; None if empty."""
    firsts = [
        to_ns(frame[col].dropna()).min(initial=np.iinfo(np.int64).max)
        for frame, col in (
            (logs.events, "ts"),
            (logs.contacts, "ts"),
            (logs.customers, "signup_date"),
        )
    ]
    first = min(firsts)
    if first == np.iinfo(np.int64).max:
        return None
    return monday_on_or_before(pd.Timestamp(first, tz="UTC"))


def last_activity(logs: CanonicalLogs) -> pd.Timestamp | None:
    """The latest event or contact timestamp (UTC); None if there are none."""
    lasts = [
        to_ns(frame["ts"]).max(initial=np.iinfo(np.int64).min)
        for frame in (logs.events, logs.contacts)
    ]
    last = max(lasts)
    return None if last == np.iinfo(np.int64).min else pd.Timestamp(last, tz="UTC")


def aggregate(
    logs: CanonicalLogs,
    contact_channels: Sequence[str],
    origin: pd.Timestamp,
    n_weeks: int,
    known_until_ns: int,
) -> WeeklyAggregates:
    """Aggregate ``logs`` per (customer, week) for weeks ``0 .. n_weeks - 1`` from ``origin``.

    Args:
        logs: Canonical tables.
        contact_channels: The source's contact channels, in feature order.
        origin: Monday 00:00 UTC of week 0; no activity may precede it.
        n_weeks: Weeks to aggregate; activity at or after ``origin + n_weeks`` weeks is ignored.
        known_until_ns: Customers whose first activity is after this instant (ns since the
            epoch, UTC) are left out.
    """
    origin_ns = int(origin.as_unit("ns").value)
    end_ns = origin_ns + n_weeks * WEEK_NS
    actions = _action_names(logs.contacts)
    con = duckdb.connect()
    try:
        con.register("ev", _events_frame(logs.events))
        con.register("co", _contacts_frame(logs.contacts))
        con.register("cu", _customers_frame(logs.customers))
        con.register("ch", _names_frame(contact_channels))
        con.register("acts", _names_frame(actions))
        customers = _number_customers(con, origin_ns, known_until_ns)
        # Each log is joined to the customer numbers once, then aggregated.
        for coded, raw in (("evc", "ev"), ("coc", "co")):
            con.execute(f"""
                CREATE TEMP TABLE {coded} AS
                SELECT ids.code, (({raw}.t - {origin_ns}) // {WEEK_NS})::INTEGER AS week, {raw}.*
                FROM {raw} JOIN ids USING (customer_id)
                WHERE {raw}.t >= {origin_ns} AND {raw}.t < {end_ns}""")
        events = _sparse(con, _EVENTS_SQL, n_weeks)
        contacts = _sparse(con, _CONTACTS_SQL.format(origin_ns=origin_ns), n_weeks)
        channel_contacts = _sparse(con, _CHANNEL_CONTACTS_SQL, n_weeks)
        action_contacts = _sparse(con, _ACTION_CONTACTS_SQL, n_weeks)
        consent = _sparse(con, _CONSENT_SQL, n_weeks)
    finally:
        con.close()
    propensity = contacts.columns["propensity"].astype(np.float64)
    contacts.columns["propensity"] = np.where(propensity < 0, np.nan, propensity)
    return WeeklyAggregates(
        origin=origin,
        n_weeks=n_weeks,
        customers=customers,
        events=events,
        contacts=contacts,
        channel_contacts=channel_contacts,
        action_contacts=action_contacts,
        consent=consent,
        actions=actions,
    )


# Currency is summed as whole micro-units (BIGINT): integer sums are exact, so the result does
# not depend on the order DuckDB's threads add rows in (a DOUBLE sum does), and the same logs
# always give the same panel. 1e-6 of a currency unit is far below any price's precision.
# ``revenue`` is net: the week's conversion values minus the week's refund amounts.
_EVENTS_SQL = """
    SELECT code, week,
      (count(*) FILTER (WHERE role = 'conversion'))::INTEGER AS conversions,
      coalesce(sum(CASE role WHEN 'conversion' THEN round(value * 1e6)::BIGINT
        WHEN 'refund' THEN -round(value * 1e6)::BIGINT END), 0)::DOUBLE / 1e6 AS revenue,
      (count(*) FILTER (WHERE role = 'refund'))::INTEGER AS refunds,
      coalesce(sum(round(value * 1e6)::BIGINT) FILTER (WHERE role = 'refund'), 0)::DOUBLE
        / 1e6 AS refund_amount,
      (count(*) FILTER (WHERE role = 'engagement'))::INTEGER AS engagements,
      (count(*) FILTER (WHERE role = 'cancellation'))::INTEGER AS cancellations,
      bool_or(role = 'opt_out') AS opted_out_in_week
    FROM evc GROUP BY ALL ORDER BY week, code"""

# The week's first decision: earliest timestamp, then the earlier row of the log, as one
# HUGEINT key ``first`` (ns since the origin, never negative in ``coc``, times 2^40, plus the
# row: the order of ``(t, pos)`` for logs of fewer than 2^40 rows) that ``arg_min`` compares
# much faster than the pair. ``arg_min`` skips NULL values, so a missing propensity travels
# as -1.
_CONTACTS_SQL = """
    SELECT code, week,
      (count(*) FILTER (WHERE action <> 'none'))::INTEGER AS n_contacts,
      coalesce(sum(round(cost * 1e6)::BIGINT), 0)::DOUBLE / 1e6 AS contact_cost,
      arg_min(acts.idx, first)::SMALLINT AS action,
      arg_min(coalesce(propensity, -1.0), first)::DOUBLE AS propensity
    FROM (SELECT *, (t - {origin_ns})::HUGEINT * 1099511627776 + pos AS first FROM coc) AS k
    JOIN acts ON k.action = acts.name
    GROUP BY ALL ORDER BY week, code"""

_CHANNEL_CONTACTS_SQL = """
    SELECT code, week, ch.idx AS channel, count(*)::INTEGER AS n
    FROM coc JOIN ch ON coc.channel = ch.name
    WHERE action <> 'none'
    GROUP BY ALL ORDER BY week, code"""

_ACTION_CONTACTS_SQL = """
    SELECT code, week, acts.idx::SMALLINT AS act, count(*)::INTEGER AS n
    FROM coc JOIN acts ON coc.action = acts.name
    WHERE coc.action <> 'none'
    GROUP BY ALL ORDER BY week, code"""

# Per channel the week's last consent event wins; at equal instants an opt-out wins. A consent
# event naming no contact channel (empty or unknown) applies to every contact channel.
_CONSENT_SQL = """
    WITH ce AS (
      SELECT code, week, t, CASE role WHEN 'opt_out' THEN -1 ELSE 1 END AS sign,
        channel, channel NOT IN (SELECT name FROM ch) AS everywhere
      FROM evc WHERE role IN ('opt_out', 'opt_in'))
    SELECT code, week, ch.idx AS channel, arg_max(sign, (t, -sign))::TINYINT AS sign
    FROM ce JOIN ch ON ce.everywhere OR ce.channel = ch.name
    GROUP BY ALL ORDER BY week, code"""


def _names_frame(names: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"idx": np.arange(len(names), dtype=np.int32), "name": pd.Series(list(names), dtype=str)}
    )


def _events_frame(events: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": events["customer_id"],
            "t": to_ns(events["ts"]),
            "role": events["role"],
            "channel": events["channel"],
            "value": events["value"],
        }
    )


def _contacts_frame(contacts: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": contacts["customer_id"],
            "t": to_ns(contacts["ts"]),
            "pos": np.arange(len(contacts), dtype=np.int64),  # ties: the earlier logged row
            "action": contacts["action"],
            "channel": contacts["channel"],
            "cost": contacts["cost"],
            "propensity": contacts["propensity"],
        }
    )


def _customers_frame(customers: pd.DataFrame) -> pd.DataFrame:
    signup = customers["signup_date"]
    return pd.DataFrame(
        {
            "customer_id": customers["customer_id"],
            "t": np.where(signup.isna().to_numpy(), np.iinfo(np.int64).max, to_ns(signup)),
            **{name: customers[name] for name in ATTRIBUTES},
        }
    )


def _number_customers(
    con: duckdb.DuckDBPyConnection, origin_ns: int, known_until_ns: int
) -> PanelCustomers:
    """Create the table ``ids`` (customer_id, code) and return the customers in code order."""
    max_ns = np.iinfo(np.int64).max
    con.execute(f"""
        CREATE TEMP TABLE ids AS
        WITH firsts AS (
          SELECT customer_id, min(t) AS first_t FROM (
            SELECT customer_id, t FROM ev UNION ALL SELECT customer_id, t FROM co
            UNION ALL SELECT customer_id, t FROM cu WHERE t < {max_ns})
          GROUP BY customer_id)
        SELECT customer_id, first_t,
          (row_number() OVER (ORDER BY first_t, customer_id) - 1)::INTEGER AS code
        FROM firsts WHERE first_t <= {known_until_ns}""")
    table = con.sql(f"""
        SELECT ids.customer_id, ids.first_t,
          {", ".join(f"coalesce(cu.{a}, '') AS {a}" for a in ATTRIBUTES)}
        FROM ids LEFT JOIN cu USING (customer_id) ORDER BY ids.code""").to_arrow_table()
    first_ns = table.column("first_t").to_numpy().astype(np.int64)
    attributes = {}
    for name in ATTRIBUTES:
        codes, categories = pd.factorize(table.column(name).to_numpy(), sort=True)
        attributes[name] = (codes.astype(np.int32), tuple(str(c) for c in categories))
    return PanelCustomers(
        ids=table.column("customer_id").combine_chunks(),
        first_ns=first_ns,
        first_week=((first_ns - origin_ns) // WEEK_NS).astype(np.int32),
        attributes=attributes,
    )


def _sparse(con: duckdb.DuckDBPyConnection, sql: str, n_weeks: int) -> SparseWeeks:
    result = con.execute(sql).fetchnumpy()
    columns = {name: np.asarray(col) for name, col in result.items()}
    offsets = np.searchsorted(columns["week"], np.arange(n_weeks + 1)).astype(np.int64)
    return SparseWeeks(columns=columns, offsets=offsets)


def _action_names(contacts: pd.DataFrame) -> tuple[str, ...]:
    names = sorted({str(a) for a in contacts["action"].unique()} - {"none"})
    return ("none", *names)
