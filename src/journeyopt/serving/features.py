"""Customers' features for the scorer, from the same code that built the training data.

Three ways in, one way out (a :class:`~journeyopt.serving.scorer.CustomerBatch`):

- canonical logs (the batch scorer, or the raw events and contacts of an API request): the
  panel's own :func:`journeyopt.panel.build.state_at` walks the logs up to the as-of week and
  :func:`journeyopt.panel.state.state_features` names the features, exactly as for the panel
  the policy was trained on;
- feature records (an API request that already holds the panel's feature values).

A customer the logs do not know, or whose customer type is not one of the world's, is marked
unknown: the scorer gives them the safe default ``none``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.calibration.weeks import UNKNOWN_SEGMENT
from journeyopt.data.schema import CanonicalLogs, empty_contacts, empty_customers, empty_events
from journeyopt.panel.build import state_at
from journeyopt.panel.config import PanelConfig
from journeyopt.panel.state import LIFECYCLE_STAGES, FeatureSpec, state_features
from journeyopt.serving.schemas import feature_kind
from journeyopt.serving.scorer import CustomerBatch
from journeyopt.sim.world import WorldSpec


def panel_config(spec: FeatureSpec) -> PanelConfig:
    """The panel settings whose features are ``spec``'s (the world's feature windows)."""
    return PanelConfig(
        lapse_weeks=spec.lapse_weeks,
        frequency_weeks=spec.frequency_weeks,
        fatigue_weeks=spec.fatigue_weeks,
        engagement_weeks=spec.engagement_weeks,
        rule_windows=list(spec.rule_windows),
        rule_actions=list(spec.rule_actions),
        recent_contacts=spec.recent_contacts,
        conversion_gap=spec.conversion_gap,
        action_recency=spec.action_recency,
        lifetime_counts=spec.lifetime_counts,
    )


def segment_codes(
    labels: Sequence[str] | NDArray[np.object_], world: WorldSpec
) -> NDArray[np.int64]:
    """(N,) index of each customer type label in the world's segment names; -1 if unknown.

    An empty label is the world's ``all`` type when it has one (calibrated from logs without
    customer types, such as CDNOW). One dict look-up per customer: a few microseconds for an
    API request, about a tenth of a second for a million customers.
    """
    index = {name: k for k, name in enumerate(world.segment_names)}
    if UNKNOWN_SEGMENT in index:
        index[""] = index[UNKNOWN_SEGMENT]
    values = labels.tolist() if isinstance(labels, np.ndarray) else labels
    return np.fromiter((index.get(str(v), -1) for v in values), np.int64, len(values))


def empty_features(spec: FeatureSpec, n: int) -> dict[str, NDArray[np.generic]]:
    """Features of ``n`` customers with no history (what an unknown customer is shown as):
    the first lifecycle stage, no opt-out, zero counts, "never" (NaN) for amounts and weeks
    since an event."""
    features: dict[str, NDArray[np.generic]] = {}
    for name in spec.all_feature_names:
        kind = feature_kind(name)
        if kind == "stage":
            features[name] = np.zeros(n, np.int8)
        elif kind == "flag":
            features[name] = np.zeros(n, np.bool_)
        elif kind == "count":
            features[name] = np.zeros(n, np.float64)
        else:  # currency, weeks: never
            features[name] = np.full(n, np.nan)
    return features


def empty_record(spec: FeatureSpec) -> dict[str, object]:
    """:func:`empty_features` of one customer as a request's feature record would carry it
    (stage name, ``None`` for never, whole counts)."""
    record: dict[str, object] = {}
    for name, column in empty_features(spec, 1).items():
        kind, value = feature_kind(name), column[0]
        if kind == "stage":
            record[name] = LIFECYCLE_STAGES[int(value)]
        elif kind == "flag":
            record[name] = bool(value)
        elif kind == "count":
            record[name] = int(value)
        else:
            record[name] = None if np.isnan(value) else float(value)
    return record


def batch_from_logs(
    logs: CanonicalLogs,
    world: WorldSpec,
    as_of: pd.Timestamp,
    customer_ids: Sequence[str] | None = None,
    segments: Sequence[str] | None = None,
) -> CustomerBatch:
    """Features of customers at ``as_of`` from canonical logs (the panel's walk).

    Args:
        logs: Canonical logs; activity at or after the start of ``as_of``'s week is ignored.
        world: The world (feature windows and customer types).
        as_of: The instant (UTC).
        customer_ids: Customers to score, in this order; default: every customer known at
            ``as_of``: those with activity before it, then those of the customers table without
            any (a new sign-up, a prospect from a fair), signed up at or before ``as_of`` or
            without a sign-up date, scored as customers without history. Given ids absent from
            the logs are unknown.
        segments: Customer type label per ``customer_ids`` entry; default: the logs'
            ``customers.segment``, or for a world whose segments are value tiers or behaviour
            types (:meth:`WorldSpec.segment_labels`) each customer's tier or type read from
            their state.
    """
    spec = world.features
    has_activity = not (logs.events.empty and logs.contacts.empty and logs.customers.empty)
    if has_activity:
        ids, state = state_at(logs, panel_config(spec), spec.contact_channels, as_of)
        found = state_features(state, spec)
    else:
        ids, found = np.array([], dtype=object), empty_features(spec, 0)
    listed = np.zeros(0, dtype=object)
    if customer_ids is None:
        listed = listed_without_activity(logs.customers, ids, as_of)
        wanted = np.concatenate([ids.astype(object), listed])
        rows = np.concatenate([np.arange(ids.shape[0]), np.full(listed.shape[0], -1)])
    else:
        wanted = np.asarray(list(customer_ids), dtype=object)
        rows = (
            pd.Index(ids).get_indexer(pd.Index(wanted))
            if ids.shape[0]
            else np.full(len(wanted), -1)
        )
    present = rows >= 0
    features = empty_features(spec, wanted.shape[0])
    if present.any():
        for name, values in found.items():
            column = features[name].astype(np.asarray(values).dtype, copy=False)
            column[present] = np.asarray(values)[rows[present]]
            features[name] = column
    read = world.segment_labels(features) if segments is None else None
    if read is not None:  # the world's segments are value tiers or behaviour types
        labels = read.astype(object)
    elif segments is None:
        attributes = logs.customers.set_index("customer_id")["segment"]
        labels = attributes.reindex(pd.Index(wanted)).fillna("").to_numpy(dtype=object)
    else:
        labels = np.asarray(list(segments), dtype=object)
    segment = segment_codes(labels, world)
    without_history = np.zeros(wanted.shape[0], bool)
    without_history[wanted.shape[0] - listed.shape[0] :] = True
    return CustomerBatch(
        customer_ids=wanted.astype(object),
        features=features,
        segment=segment,
        known=(present | without_history) & (segment >= 0),
        as_of=as_of,
    )


def listed_without_activity(
    customers: pd.DataFrame, active: NDArray[np.object_], as_of: pd.Timestamp
) -> NDArray[np.object_]:
    """(M,) ids of the customers table with no activity among ``active``, signed up at or
    before ``as_of`` or without a sign-up date, in the table's order: customers the business
    knows who have not done anything yet (a new sign-up, a prospect from a trade fair)."""
    if customers.empty:
        return np.zeros(0, dtype=object)
    signup = pd.to_datetime(customers["signup_date"], utc=True)
    known = (signup.isna() | (signup <= as_of)).to_numpy()
    fresh = ~customers["customer_id"].isin(pd.Index(active)).to_numpy()
    ids = customers["customer_id"].astype(str).to_numpy(dtype=object)[known & fresh]
    return np.asarray(pd.unique(ids), dtype=object)


def batch_from_records(
    customer_ids: Sequence[str],
    records: Sequence[Mapping[str, object] | None],
    segments: Sequence[str | None],
    world: WorldSpec,
    as_of: pd.Timestamp,
) -> CustomerBatch:
    """Features of customers given as feature records (the panel's feature names; ``None``
    for "never"; ``lifecycle`` a stage name). A ``None`` record is an unknown customer, shown
    with :func:`empty_record`'s values. The records are turned into columns and converted by
    :func:`batch_from_columns`: one conversion of request values for every endpoint."""
    default = empty_record(world.features)
    columns = {
        name: [default[name] if r is None else r[name] for r in records]
        for name in world.features.all_feature_names
    }
    given = np.fromiter((r is not None for r in records), np.bool_, len(records))
    return batch_from_columns(customer_ids, columns, segments, world, as_of, given)


def batch_from_columns(
    customer_ids: Sequence[str],
    columns: Mapping[str, Sequence[object]],
    segments: Sequence[str | None] | None,
    world: WorldSpec,
    as_of: pd.Timestamp,
    given: NDArray[np.bool_] | None = None,
) -> CustomerBatch:
    """Features of ``N`` customers given as one (N,) list per feature (the panel's feature
    names; ``None`` for "never"; ``lifecycle`` stage names), converted a column at a time.
    ``segments`` None: no customer type for anyone (each gets the world's ``all`` type if it
    has one, else is unknown; in a world whose segments are value tiers, a customer without one
    gets the tier of their ``monetary``). ``given``: (N,) False for customers who sent no
    feature record (their columns hold :func:`empty_record`'s values; they are unknown);
    default: all sent one."""
    n = len(customer_ids)
    stage_code = {s: k for k, s in enumerate(LIFECYCLE_STAGES)}
    features: dict[str, NDArray[np.generic]] = {}
    for name in world.features.all_feature_names:
        values = columns[name]
        if name == "lifecycle":
            features[name] = np.fromiter((stage_code[str(v)] for v in values), np.int8, n)
        elif name.startswith("opted_out_"):
            features[name] = np.asarray(values, np.bool_).reshape(n)
        else:  # None -> NaN
            features[name] = np.asarray(values, np.float64).reshape(n)
    labels: Sequence[str] = (
        [""] * n if segments is None else ["" if s is None else s for s in segments]
    )
    tiers = world.segment_labels(features)  # tiers or types: a missing segment is the one read
    if tiers is not None:
        labels = [s if s else str(t) for s, t in zip(labels, tiers, strict=True)]
    segment = segment_codes(labels, world)
    known = segment >= 0
    return CustomerBatch(
        customer_ids=np.asarray(list(customer_ids), dtype=object).reshape(n),
        features=features,
        segment=segment,
        known=known if given is None else known & given,
        as_of=as_of,
    )


def logs_from_rows(
    events: Sequence[Mapping[str, object]],
    contacts: Sequence[Mapping[str, object]],
    action_channels: Mapping[str, str],
) -> CanonicalLogs:
    """Canonical logs from raw rows of the canonical schema (an API request's events and
    contacts, each with its ``customer_id``); a contact without channel gets its action's."""
    ev = empty_events()
    if events:
        raw = pd.DataFrame(list(events))
        ev = pd.DataFrame(
            {
                "customer_id": raw["customer_id"].astype(str),
                "ts": pd.to_datetime(raw["ts"], utc=True).dt.as_unit("ns"),
                "kind": raw["kind"].astype(str),
                "role": raw["role"].astype(str),
                "channel": raw["channel"].astype(str),
                "value": raw["value"].astype(np.float64),
                "event_id": raw["event_id"].astype(str),
                "source_file": "request",
                "source_row": np.arange(1, len(raw) + 1, dtype=np.int64),
            }
        )
    co = empty_contacts()
    if contacts:
        raw = pd.DataFrame(list(contacts))
        channel = raw["channel"].astype(str)
        default = raw["action"].map(dict(action_channels)).fillna("").astype(str)
        co = pd.DataFrame(
            {
                "customer_id": raw["customer_id"].astype(str),
                "ts": pd.to_datetime(raw["ts"], utc=True).dt.as_unit("ns"),
                "action": raw["action"].astype(str),
                "channel": channel.where(channel != "", default),
                "cost": raw["cost"].astype(np.float64),
                "propensity": raw["propensity"].astype(np.float64),
                "campaign": raw["campaign"].astype(str),
                "source_file": "request",
                "source_row": np.arange(1, len(raw) + 1, dtype=np.int64),
            }
        )
    return CanonicalLogs(events=ev, contacts=co, customers=empty_customers())


def concat_batches(
    parts: Sequence[tuple[NDArray[np.int64], CustomerBatch]], n: int
) -> CustomerBatch:
    """One batch of ``n`` customers from parts scattered to the given (k,) row positions
    (the parts must cover every row once and share ``as_of``)."""
    first = parts[0][1]
    features: dict[str, NDArray[np.generic]] = {}
    for name in first.features:
        dtype = np.result_type(*(np.asarray(p.features[name]).dtype for _, p in parts))
        column = np.zeros(n, dtype)
        for rows, part in parts:
            column[rows] = part.features[name]
        features[name] = column
    ids = np.empty(n, dtype=object)
    segment = np.full(n, -1, np.int64)
    known = np.zeros(n, np.bool_)
    for rows, part in parts:
        ids[rows] = part.customer_ids
        segment[rows] = part.segment
        known[rows] = part.known
    return CustomerBatch(ids, features, segment, known, first.as_of)
