"""The weekly customer panel: one row per customer per complete week.

The panel walks the weeks in order. For week ``t`` it scatters the week's sparse aggregates into
a :class:`~journeyopt.panel.state.WeekActivity`, takes
:func:`~journeyopt.panel.state.state_features` of the state at the *start* of week ``t`` for the
customers present (first activity in a week ``<= t``), emits one row per present customer with
the week's contact decision and outcomes, then folds the week in with
:func:`~journeyopt.panel.state.advance`. Features at week ``t`` therefore depend only on activity
before week ``t`` starts (point-in-time correct by construction); outcomes are those within week
``t``. :func:`state_at` runs the same walk, so the scoring API sees the panel's numbers.

Weeks start on Monday 00:00 UTC; week 0 is the week of the earliest first activity in the logs.
Only complete weeks, those ending at or before the as-of instant, get rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from journeyopt.data.schema import CanonicalLogs
from journeyopt.errors import JourneyoptError
from journeyopt.panel.aggregate import (
    ATTRIBUTES,
    WEEK_NS,
    WeeklyAggregates,
    aggregate,
    first_activity_origin,
    last_activity,
)
from journeyopt.panel.config import PanelConfig, feature_spec, parse_as_of
from journeyopt.panel.state import (
    LIFECYCLE_STAGES,
    CustomerState,
    FeatureSpec,
    WeekActivity,
    advance,
    state_features,
)
from journeyopt.panel.suggest import resolve_lapse_weeks
from journeyopt.panel.weeks import week_of_year, week_start
from journeyopt.reuse import content_key, frame_digest, in_scope, reused

OUTCOME_COLUMNS: tuple[str, ...] = (
    "conversions",
    "revenue",
    "refunds",
    "refund_amount",
    "engagements",
    "cancellations",
    "opted_out_in_week",
)
DECISION_COLUMNS: tuple[str, ...] = ("action", "propensity", "n_contacts", "contact_cost")


@dataclass(frozen=True)
class WeekDecisions:
    """The company's logged decisions of one week for ``n`` present customers, and the
    week's outcomes that do not enter the state (opt-out flag, refunds).

    Attributes:
        action: (n,) int16 code into the action names of the week's first logged decision
            (0 = ``none``, also when nothing was logged).
        propensity: (n,) logging probability of that decision, NaN when not logged.
        n_contacts: (n,) contacts whose action is not ``none``.
        contact_cost: (n,) cost of the week's contacts, currency.
        opted_out_in_week: (n,) an opt-out event (any channel) happened in the week.
        refunds: (n,) refund events of the week.
        refund_amount: (n,) their summed amount, currency (already taken off ``revenue``).
    """

    action: NDArray[np.int16]
    propensity: NDArray[np.float64]
    n_contacts: NDArray[np.int32]
    contact_cost: NDArray[np.float64]
    opted_out_in_week: NDArray[np.bool_]
    refunds: NDArray[np.int32]
    refund_amount: NDArray[np.float64]


def resolve_as_of(logs: CanonicalLogs, cfg: PanelConfig) -> pd.Timestamp:
    """``cfg.as_of`` as a UTC timestamp; when empty, the last event or contact (or sign-up).

    Raises:
        JourneyoptError: ``cfg.as_of`` is empty and the logs hold no activity at all.
    """
    if cfg.as_of:
        return parse_as_of(cfg.as_of)
    last = last_activity(logs)
    if last is None:
        signups = logs.customers["signup_date"].dropna()
        if signups.empty:
            raise JourneyoptError("the logs hold no events, contacts or sign-up dates")
        last = pd.Timestamp(signups.max()).tz_convert("UTC")
    return last


def panel_window(logs: CanonicalLogs, cfg: PanelConfig) -> tuple[pd.Timestamp, int]:
    """The panel's origin (Monday 00:00 UTC of week 0) and its number of complete weeks.

    Raises:
        JourneyoptError: The logs hold no activity at all.
    """
    origin = first_activity_origin(logs)
    if origin is None:
        raise JourneyoptError("the logs hold no events, contacts or sign-up dates: no panel")
    as_of = resolve_as_of(logs, cfg)
    n_weeks = max(0, int((as_of.as_unit("ns").value - origin.as_unit("ns").value) // WEEK_NS))
    return origin, n_weeks


def iter_panel(
    logs: CanonicalLogs, cfg: PanelConfig, contact_channels: Sequence[str]
) -> Iterator[pd.DataFrame]:
    """The panel one week at a time, week 0 first; see :func:`build_panel` for the columns."""
    for table in _iter_tables(logs, cfg, contact_channels):
        yield table.to_pandas()


def build_panel(
    logs: CanonicalLogs, cfg: PanelConfig, contact_channels: Sequence[str]
) -> pd.DataFrame:
    """The whole panel in memory (small logs; use :func:`write_panel` for large ones).

    Returns:
        One row per customer per complete week from the customer's first activity, sorted by
        week then first activity. Columns, see ``docs/panel.md``: ``customer_id``, ``week``,
        ``week_start``, ``week_of_year``, the static attributes, every feature of
        :func:`~journeyopt.panel.state.state_features` (``lifecycle`` categorical), ``action``,
        ``propensity``, ``n_contacts``, ``contact_cost``, ``conversions``, ``revenue`` (net of
        refunds), ``refunds``, ``refund_amount``, ``engagements``, ``cancellations``,
        ``opted_out_in_week``.

    Inside a :func:`~journeyopt.reuse.reuse_scope` (a weekly cycle) a panel is built once per
    content of the logs, ``cfg`` and ``contact_channels``; every caller gets its own copy.
    """
    if not in_scope():
        return _built_panel(logs, cfg, contact_channels)
    tables = (logs.events, logs.contacts, logs.customers)
    key = content_key(repr(cfg), repr(tuple(contact_channels)), *map(frame_digest, tables))
    return reused(
        "panel",
        key,
        lambda: _built_panel(logs, cfg, contact_channels),
        lambda panel: panel.copy(),
    )


def _built_panel(
    logs: CanonicalLogs, cfg: PanelConfig, contact_channels: Sequence[str]
) -> pd.DataFrame:
    walk = PanelWalk(logs, cfg, contact_channels)
    tables = list(walk.tables())
    if not tables:
        return empty_panel(walk.spec)
    return pa.concat_tables(tables).to_pandas()


def walk_panel(
    logs: CanonicalLogs,
    cfg: PanelConfig,
    contact_channels: Sequence[str],
    *,
    through_as_of: bool = False,
) -> tuple[pd.DataFrame, PanelWalk]:
    """:func:`build_panel` and the walk that built it, from one aggregation of the logs: the
    state its walk ends in (``walk.state`` of the customers ``walk.ids()``; as
    :func:`write_panel_and_state`: every customer known at the panel's as-of instant, at the
    start of the week containing it) and the state at the start of any earlier week
    (:meth:`PanelWalk.state_at_week`, what :func:`state_at` returns there without aggregating
    the logs again).

    With ``through_as_of`` the final state also counts the week containing the as-of instant
    when the logs hold activity in it and none after the instant (the default as-of, the last
    activity, always): the state at the start of the week after it (``state.week`` the
    panel's last week + 2). That week gets no panel rows (it is not complete), but its logged
    orders, refunds, contacts and opt-outs are not lost to a state the future starts from (the
    calibrated world's starting base)."""
    walk = PanelWalk(logs, cfg, contact_channels, through_as_of=through_as_of)
    tables = list(walk.tables())
    panel = pa.concat_tables(tables).to_pandas() if tables else empty_panel(walk.spec)
    return panel, walk


def write_panel(
    logs: CanonicalLogs, cfg: PanelConfig, contact_channels: Sequence[str], path: str | Path
) -> int:
    """Stream the panel week by week into one Parquet file (one row group per week).

    A background thread encodes week ``t`` while week ``t + 1`` is computed; at most two weeks
    of rows are in memory besides the aggregates. Returns the number of rows written.
    """
    return write_panel_and_state(logs, cfg, contact_channels, path)[0]


def write_panel_and_state(
    logs: CanonicalLogs, cfg: PanelConfig, contact_channels: Sequence[str], path: str | Path
) -> tuple[int, NDArray[np.object_], CustomerState]:
    """:func:`write_panel`, and the state the walk ends in, from one aggregation of the logs.

    Returns:
        The number of rows written, and what :func:`state_at` returns at the panel's as-of
        instant (``cfg.as_of`` or the last activity): (N,) ``customer_id`` and the state at the
        start of the week containing it, of every customer known at that instant.
    """
    walk = PanelWalk(logs, cfg, contact_channels)
    tables = walk.tables()
    first = next(tables, None)
    if first is None:
        empty = empty_panel(walk.spec)
        pq.write_table(pa.Table.from_pandas(empty, preserve_index=False), str(path))
        return 0, walk.ids(), walk.state
    n_rows = 0
    with (
        pq.ParquetWriter(str(path), first.schema, **_parquet_options(first.schema)) as writer,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        pending: Future[None] | None = None
        for table in itertools.chain([first], tables):
            if pending is not None:
                pending.result()
            pending = pool.submit(writer.write_table, table)
            n_rows += table.num_rows
        if pending is not None:
            pending.result()
    return n_rows, walk.ids(), walk.state


_STATISTICS_COLUMNS: tuple[str, ...] = ("week", "week_start", "week_of_year")
"""Panel columns whose row group statistics are written (a row group is one week)."""
_UNCOMPRESSED_COLUMNS: tuple[str, ...] = ("customer_id", "monetary")
"""High-entropy panel columns that snappy shrinks little (to ~60 %) at a large cost in time."""


def _parquet_options(schema: pa.Schema) -> dict[str, object]:
    """Writer options of the panel file, chosen for encoding speed (the walk's bottleneck).

    Plain encoding writes numbers about twice as fast as dictionary encoding, so only the
    categorical columns keep their dictionaries. Min/max statistics cost ~15 % of the
    encoding and only help filters on the week columns (every row group holds one week of
    every present customer), so only those carry them. Snappy everywhere except the
    high-entropy :data:`_UNCOMPRESSED_COLUMNS`; 64 Ki-value write batches.
    """
    return {
        "compression": {
            f.name: "none" if f.name in _UNCOMPRESSED_COLUMNS else "snappy" for f in schema
        },
        "use_dictionary": [f.name for f in schema if pa.types.is_dictionary(f.type)],
        "write_statistics": [name for name in _STATISTICS_COLUMNS if name in schema.names],
        "write_batch_size": 65_536,
    }


def state_at(
    logs: CanonicalLogs,
    cfg: PanelConfig,
    contact_channels: Sequence[str],
    as_of: str | pd.Timestamp,
) -> tuple[NDArray[np.object_], CustomerState]:
    """State of every customer known at ``as_of`` at the start of the week containing it.

    Runs the panel's walk up to that week, so :func:`state_features` of the result equals the
    features of the panel rows of that week (``cfg.as_of`` is ignored). Customers are those
    whose first activity is at or before ``as_of``; activity from the week's start on does not
    enter the state.

    Returns:
        (N,) ``customer_id`` in state order and the :class:`CustomerState` (``week`` counts from
        the panel origin, the week of the earliest activity in ``logs``).
    """
    as_of_ts = parse_as_of(as_of)
    cfg, _ = resolve_lapse_weeks(cfg, logs.events, as_of_ts)  # lapse_weeks null: up to as_of
    spec = feature_spec(cfg, contact_channels)
    origin = first_activity_origin(logs)
    if origin is None:
        raise JourneyoptError("the logs hold no events, contacts or sign-up dates: no state")
    as_of_ns = int(as_of_ts.as_unit("ns").value)
    week = max(0, (as_of_ns - int(origin.as_unit("ns").value)) // WEEK_NS)
    agg = aggregate(logs, spec.contact_channels, origin, week, as_of_ns)
    return _state_before(agg, spec, week, as_of_ns)


def _state_before(
    agg: WeeklyAggregates, spec: FeatureSpec, week: int, known_until_ns: int
) -> tuple[NDArray[np.object_], CustomerState]:
    """(N,) ``customer_id`` and state at the start of ``week`` (``<= agg.n_weeks``) of the
    aggregates' customers first active at or before ``known_until_ns``: a prefix of them, as
    the customers are numbered by their first activity."""
    customers = agg.customers
    n = int(np.searchsorted(customers.first_ns, known_until_ns, side="right"))
    state = CustomerState.new(spec, 0, customers.first_week)
    for t in range(week):
        state = advance(state, _activity(agg, t, spec), inplace=True)
    ids = customers.ids.to_numpy(zero_copy_only=False)
    if n == customers.n_customers:
        return ids, state
    return ids[:n].copy(), state.take(np.arange(n))


def empty_panel(spec: FeatureSpec) -> pd.DataFrame:
    """A panel with no rows and the panel's columns."""
    columns = ["customer_id", "week", "week_start", "week_of_year", *ATTRIBUTES]
    columns += [*spec.all_feature_names, *DECISION_COLUMNS, *OUTCOME_COLUMNS]
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})


def _iter_tables(
    logs: CanonicalLogs, cfg: PanelConfig, contact_channels: Sequence[str]
) -> Iterator[pa.Table]:
    """The panel's weeks as Arrow tables with one fixed schema."""
    return PanelWalk(logs, cfg, contact_channels).tables()


class PanelWalk:
    """The panel's walk over weeks ``0 .. n_weeks - 1`` of the logs, from one aggregation.

    The aggregates cover every customer known at the as-of instant (``cfg.as_of`` or the last
    activity). Customers first active after the last complete week have ``first_week ==
    n_weeks``: they get no rows, but the final state holds them, so that after :meth:`tables`
    is exhausted ``state`` and :meth:`ids` are what :func:`state_at` returns at the as-of
    instant.
    """

    def __init__(
        self,
        logs: CanonicalLogs,
        cfg: PanelConfig,
        contact_channels: Sequence[str],
        *,
        through_as_of: bool = False,
    ) -> None:
        as_of = resolve_as_of(logs, cfg)
        # panel.lapse_weeks null: read off the logs up to the as-of instant (point in time);
        # the jobs resolve it first to print and record it, this is the same rule
        cfg, _ = resolve_lapse_weeks(cfg, logs.events, as_of)
        self.spec = feature_spec(cfg, contact_channels)
        origin, self.n_weeks = panel_window(logs, cfg)
        as_of_ns = int(as_of.as_unit("ns").value)
        # the as-of week: folded into the final state (not into rows) when it is logged up
        # to the as-of instant and no further, see walk_panel
        last = last_activity(logs)
        begins = origin + pd.Timedelta(weeks=self.n_weeks)
        self.tail = through_as_of and last is not None and begins <= last <= as_of
        weeks = self.n_weeks + int(self.tail)
        self.agg = aggregate(logs, self.spec.contact_channels, origin, weeks, as_of_ns)
        customers = self.agg.customers
        n_panel = int(np.searchsorted(customers.first_week, self.n_weeks, side="left"))
        # The rows' attribute categories are those of the customers with rows only.
        self._row_agg = replace(
            self.agg,
            customers=replace(
                customers,
                attributes={
                    name: _used_categories(codes, categories, n_panel)
                    for name, (codes, categories) in customers.attributes.items()
                },
            ),
        )
        # One state for every customer from week 0 on: a customer's state stays that of a new
        # customer until their first week, and the present customers are a prefix.
        self.state = CustomerState.new(self.spec, 0, self.agg.customers.first_week)

    def ids(self) -> NDArray[np.object_]:
        """(N,) ``customer_id`` of the state's customers, in state order."""
        return self.agg.customers.ids.to_numpy(zero_copy_only=False)

    def state_at_week(self, week: int) -> tuple[NDArray[np.object_], CustomerState]:
        """What :func:`state_at` returns at the Monday starting ``week`` (at most the weeks
        aggregated), from this walk's aggregates instead of a second aggregation of the logs:
        the customers first active at or before that instant and their state at its start.

        The features are the walk's: with ``panel.lapse_weeks`` null, lapsed as the panel
        reads it (up to its as-of), where :func:`state_at` reads it up to its own as-of.
        """
        if not 0 <= week <= self.agg.n_weeks:
            raise ValueError(f"week {week} is not within the {self.agg.n_weeks} weeks walked")
        monday = int(self.agg.origin.as_unit("ns").value) + week * WEEK_NS
        return _state_before(self.agg, self.spec, week, monday)

    def tables(self) -> Iterator[pa.Table]:
        """The weeks' rows in order (see :func:`build_panel`), advancing ``state`` (and, with
        ``tail``, by the as-of week after the last row)."""
        agg, spec = self._row_agg, self.spec
        for t in range(self.n_weeks):
            n = int(np.searchsorted(agg.customers.first_week, t, side="right"))
            activity = _activity(agg, t, spec)
            if n > 0:
                yield _week_table(
                    agg, spec, t, self.state.take(slice(0, n)), activity, _decisions(agg, t)
                )
            self.state = advance(self.state, activity, inplace=True)
        if self.tail:
            self.state = advance(self.state, _activity(agg, self.n_weeks, spec), inplace=True)


def _used_categories(
    codes: NDArray[np.int32], categories: tuple[str, ...], n: int
) -> tuple[NDArray[np.int32], tuple[str, ...]]:
    """(codes, categories) restricted to the categories of the first ``n`` customers.

    Codes of later customers become -1. Sorted categories stay sorted.
    """
    used = np.zeros(len(categories), np.bool_)
    used[codes[:n]] = True
    if used.all():
        return codes, categories
    recode = np.where(used, np.cumsum(used) - 1, -1).astype(np.int32)
    return recode[codes], tuple(c for c, u in zip(categories, used, strict=True) if u)


def _activity(agg: WeeklyAggregates, t: int, spec: FeatureSpec) -> WeekActivity:
    """Week ``t``'s activity of every customer as dense (N,) and (N, C) arrays."""
    activity = WeekActivity.quiet(
        agg.customers.n_customers, len(spec.contact_channels), len(spec.rule_actions)
    )
    ev = agg.events.week(t)
    code = ev["code"]
    activity.conversions[code] = ev["conversions"]
    activity.revenue[code] = ev["revenue"]
    activity.engagements[code] = ev["engagements"]
    activity.cancellations[code] = ev["cancellations"]
    cc = agg.channel_contacts.week(t)
    activity.contacts[cc["code"], cc["channel"]] = cc["n"]
    consent = agg.consent.week(t)
    activity.consent[consent["code"], consent["channel"]] = consent["sign"]
    if activity.action_contacts is not None:  # the contacts of the rules' actions
        counted = {a: k for k, a in enumerate(spec.rule_actions)}
        column = np.array([counted.get(a, -1) for a in agg.actions], np.int64)
        ac = agg.action_contacts.week(t)
        kept = column[ac["act"]] >= 0
        activity.action_contacts[ac["code"][kept], column[ac["act"][kept]]] = ac["n"][kept]
    return activity


def _decisions(agg: WeeklyAggregates, t: int) -> WeekDecisions:
    """Week ``t``'s logged decisions and opt-outs of every customer, (N,) arrays."""
    n = agg.customers.n_customers
    decisions = WeekDecisions(
        action=np.zeros(n, np.int16),
        propensity=np.full(n, np.nan),
        n_contacts=np.zeros(n, np.int32),
        contact_cost=np.zeros(n, np.float64),
        opted_out_in_week=np.zeros(n, np.bool_),
        refunds=np.zeros(n, np.int32),
        refund_amount=np.zeros(n, np.float64),
    )
    co = agg.contacts.week(t)
    code = co["code"]
    decisions.action[code] = co["action"]
    decisions.propensity[code] = co["propensity"]
    decisions.n_contacts[code] = co["n_contacts"]
    decisions.contact_cost[code] = co["contact_cost"]
    ev = agg.events.week(t)
    decisions.opted_out_in_week[ev["code"]] = ev["opted_out_in_week"]
    decisions.refunds[ev["code"]] = ev["refunds"]
    decisions.refund_amount[ev["code"]] = ev["refund_amount"]
    return decisions


def _dictionary(codes: NDArray[np.integer], categories: Sequence[str]) -> pa.DictionaryArray:
    index_type = pa.int8() if len(categories) < 128 else pa.int32()
    indices = pa.array(codes.astype(np.int8 if len(categories) < 128 else np.int32), index_type)
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(categories), pa.string()))


def _week_table(
    agg: WeeklyAggregates,
    spec: FeatureSpec,
    t: int,
    state: CustomerState,
    activity: WeekActivity,
    decisions: WeekDecisions,
) -> pa.Table:
    """The rows of week ``t``: one per customer of ``state`` (the present ones), in order.

    ``activity`` and ``decisions`` cover every customer; their first rows are used.
    """
    n = state.n_customers
    columns: dict[str, pa.Array] = {
        "customer_id": agg.customers.ids.slice(0, n),
        "week": pa.array(np.full(n, t, np.int32)),
        "week_start": pa.array(
            np.full(n, week_start(agg.origin, t)[0].value, np.int64), pa.timestamp("ns", "UTC")
        ),
        "week_of_year": pa.array(np.full(n, week_of_year(agg.origin, t)[0], np.int16)),
    }
    for name in ATTRIBUTES:
        codes, categories = agg.customers.attributes[name]
        columns[name] = _dictionary(codes[:n], categories)
    for name, values in state_features(state, spec).items():
        if name == "lifecycle":
            columns[name] = _dictionary(values.astype(np.int8), LIFECYCLE_STAGES)
        else:
            columns[name] = pa.array(values)
    columns["action"] = _dictionary(decisions.action[:n], agg.actions)
    columns["propensity"] = pa.array(decisions.propensity[:n])
    columns["n_contacts"] = pa.array(decisions.n_contacts[:n])
    columns["contact_cost"] = pa.array(decisions.contact_cost[:n])
    columns["conversions"] = pa.array(activity.conversions[:n])
    columns["revenue"] = pa.array(activity.revenue[:n])
    columns["refunds"] = pa.array(decisions.refunds[:n])
    columns["refund_amount"] = pa.array(decisions.refund_amount[:n])
    columns["engagements"] = pa.array(activity.engagements[:n])
    columns["cancellations"] = pa.array(activity.cancellations[:n])
    columns["opted_out_in_week"] = pa.array(decisions.opted_out_in_week[:n])
    return pa.table(columns)
