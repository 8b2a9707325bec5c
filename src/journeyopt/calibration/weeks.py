"""Customer-weeks of a panel in the world's discrete terms: the rows every response model is
fitted on.

A panel row (``docs/panel.md``) holds the customer's features at the start of the week, the
week's logged decision and its outcomes. Here each row becomes its discrete state index
(:class:`journeyopt.sim.discrete.DiscreteLayout`, the numbering the dynamics and the exact
optimum use), its action and week of year, and the four outcomes the world models: at least one
conversion, the week's list value, at least one engagement event and an opt-out.

Refunds: the world has no refund event, so its value model must learn what a conversion is
worth net of the refunds it will bring. A refund is booked weeks after its purchase, often in
a week without one, so it cannot be taken off the week it is booked in (the value model only
sees converting weeks). Instead every converting week's list value is scaled by the share of
the converting weeks' total value that was not refunded (:func:`net_list_values`): the total
list value stays the panel's net total and the calibrated world's reward is net of refunds.

A customer's first panel week (``tenure_weeks == 0``) is dropped: it is the week they appear in
the logs (their first visit or purchase), not a week the world simulates for a known customer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.panel.state import (
    GAP_FEATURE,
    LAST_ACTION_FEATURE,
    LIFECYCLE_STAGES,
    PATTERN_FEATURE,
    action_weeks_feature,
    pattern_feature,
)
from journeyopt.sim.discrete import (
    DiscreteLayout,
    Summary,
    gap_digit,
    last_action_digit,
    lasting_digit,
    pattern_digit,
    tenure_digit,
)
from journeyopt.sim.world import DiscreteSpec

IntArray = NDArray[np.int64]
Float = NDArray[np.float64]
Bool = NDArray[np.bool_]

UNKNOWN_SEGMENT = "all"
"""Segment name of customers without a ``segment`` attribute (CDNOW: everybody)."""


@dataclass(frozen=True)
class CustomerWeeks:
    """``M`` customer-weeks of a panel, each array (M,).

    Attributes:
        customer: Customer index into ``customer_ids``.
        week: Week index from the panel origin.
        week_of_year: ISO week of year (1..53).
        state: Discrete state index at the start of the week.
        lifecycle: Lifecycle stage code into :data:`journeyopt.panel.state.LIFECYCLE_STAGES`.
        segment: Segment index into ``segments``.
        action: Logged action index into ``actions`` (0 = ``none``, also when nothing was
            logged).
        propensity: Logged probability of that action; NaN when not logged.
        converted: At least one conversion in the week.
        conversions: Number of conversions in the week.
        list_value: The week's conversion value before any discount, net of refunds
            (:func:`net_list_values`), currency (0 without a conversion).
        engaged: At least one engagement event in the week.
        opted_out: An opt-out event in the week.
        customer_ids: (K,) customer ids.
        segments: Segment names.
        actions: Action names, ``none`` first.
    """

    customer: IntArray
    week: IntArray
    week_of_year: IntArray
    state: IntArray
    lifecycle: IntArray
    segment: IntArray
    action: IntArray
    propensity: Float
    converted: Bool
    conversions: IntArray
    list_value: Float
    engaged: Bool
    opted_out: Bool
    customer_ids: NDArray[np.object_]
    segments: tuple[str, ...]
    actions: tuple[str, ...]

    @property
    def n(self) -> int:
        """Number of customer-weeks ``M``."""
        return int(self.state.shape[0])

    def take(self, rows: NDArray[np.integer] | NDArray[np.bool_]) -> CustomerWeeks:
        """The customer-weeks ``rows`` (indices or a mask), same customers and names."""
        per_row = {
            name: getattr(self, name)[rows]
            for name in (
                "customer",
                "week",
                "week_of_year",
                "state",
                "lifecycle",
                "segment",
                "action",
                "propensity",
                "converted",
                "conversions",
                "list_value",
                "engaged",
                "opted_out",
            )
        }
        return CustomerWeeks(
            **per_row,
            customer_ids=self.customer_ids,
            segments=self.segments,
            actions=self.actions,
        )


def _capped(weeks: pd.Series, cap: int) -> IntArray:
    """Weeks since an event capped at ``cap``, NaN ("never") mapped to the cap (as the world's
    :func:`journeyopt.sim.discrete.summarise`)."""
    w = weeks.to_numpy(np.float64, na_value=np.nan)
    return np.clip(np.nan_to_num(w, nan=cap), 1, cap).astype(np.int64)


def panel_summary(
    panel: pd.DataFrame, segment: IntArray, spec: DiscreteSpec, channels: Sequence[str]
) -> Summary:
    """The discrete summary of panel rows (the panel-side mirror of
    :func:`journeyopt.sim.discrete.summarise`, which needs a finished world; the tests check
    that both agree on the calibrated world)."""
    n_conv = panel["n_conversions"].to_numpy(np.int64)
    optout = np.zeros(n_conv.shape[0], np.int64)
    for j, channel in enumerate(channels):
        optout |= panel[f"opted_out_{channel}"].to_numpy(bool).astype(np.int64) << j
    used = {
        "tenure_weeks": spec.tenure_cap_weeks > 0,
        PATTERN_FEATURE: spec.contact_pattern_weeks > 0,
        **{pattern_feature(c): spec.contact_pattern_by_channel for c in channels},
        LAST_ACTION_FEATURE: spec.last_action,
        "weeks_since_contact": spec.last_action,
        GAP_FEATURE: spec.gap_cap_weeks > 0,
        **{action_weeks_feature(a): True for a in spec.lasting_actions},
    }
    optional = {"n_conversions": n_conv} | {
        name: panel[name].to_numpy() for name, on in used.items() if on
    }
    return Summary(
        segment=np.asarray(segment, np.int64),
        conversions=np.minimum(n_conv, spec.conversions_cap),
        recency=np.where(n_conv > 0, _capped(panel["recency_weeks"], spec.recency_cap_weeks), 0),
        contact=_capped(panel["weeks_since_contact"], spec.contact_cap_weeks),
        engagement=_capped(panel["weeks_since_engagement"], spec.engagement_cap_weeks),
        optout=optout,
        tenure=tenure_digit(optional, spec),
        pattern=pattern_digit(optional, spec, tuple(channels)),
        last_action=last_action_digit(optional, spec),
        gap=gap_digit(optional, spec),
        lasting=lasting_digit(optional, spec),
    )


def codes_of(labels: pd.Series, names: Sequence[str], empty: str = "") -> IntArray:
    """(M,) index of each label's text (``astype(str)``; ``""`` read as ``empty``) in
    ``names``, -1 for a label not among them (hash-based: the panel's string columns have
    millions of rows; a categorical column, as the panel's are, is read once per category)."""
    if isinstance(labels.dtype, pd.CategoricalDtype):
        per_category = codes_of(pd.Series(labels.cat.categories, dtype=object), names, empty)
        # a missing value (code -1, the last entry) stays missing in astype(str): no name's
        return np.append(per_category, -1)[labels.cat.codes.to_numpy()]
    texts = labels.astype(str)
    if empty:
        texts = texts.replace("", empty)
    return np.asarray(pd.Categorical(texts, categories=list(names)).codes, np.int64)


def segment_names(panel: pd.DataFrame) -> tuple[str, ...]:
    """Segment names of a panel, sorted; :data:`UNKNOWN_SEGMENT` for customers without one
    (a categorical column, as the panel's, is read through the categories its rows use)."""
    labels = panel["segment"]
    if isinstance(labels.dtype, pd.CategoricalDtype):
        codes = labels.cat.codes.to_numpy()
        if codes.size and codes.min() >= 0:  # no missing label
            used = np.bincount(codes, minlength=len(labels.cat.categories)) > 0
            labels = pd.Series(labels.cat.categories[used], dtype=object)
    return tuple(sorted(labels.astype(str).replace("", UNKNOWN_SEGMENT).unique()))


def net_list_values(list_value: Float, refunded: Float, converted: Bool) -> Float:
    """(M,) list values net of refunds (see the module docstring).

    Args:
        list_value: (M,) the week's conversion value before any discount, before refunds,
            currency.
        refunded: (M,) refund amounts booked in the week, currency.
        converted: (M,) at least one conversion in the week.

    Returns:
        ``list_value`` unchanged without refunds; else the converting weeks' values times
        ``max(0, 1 - sum(refunded) / sum(list_value[converted]))`` and 0 in the other weeks.
    """
    total_refunded = float(refunded.sum())
    if total_refunded <= 0.0:
        return list_value
    total = float(list_value[converted].sum())
    kept = max(0.0, 1.0 - total_refunded / total) if total > 0 else 0.0
    return np.where(converted, list_value * kept, 0.0)


def customer_weeks(
    panel: pd.DataFrame,
    layout: DiscreteLayout,
    channels: Sequence[str],
    actions: Sequence[str],
    segments: Sequence[str],
    list_divisors: NDArray[np.float64] | None = None,
) -> CustomerWeeks:
    """The panel's customer-weeks (first weeks of customers dropped, see the module docstring).

    Args:
        panel: Panel rows (``journeyopt.panel.build.build_panel``).
        layout: How discrete states are numbered (caps, segments, channels).
        channels: Contact channels, in the order of the state's opt-out bits.
        actions: Action catalogue, ``none`` first; logged actions outside it are an error.
        segments: Segment names (``segment_names(panel)`` of the calibration panel).
        list_divisors: (A,) what revenue logged under each action is divided by to give the
            list value (:meth:`journeyopt.sim.rules.ActionCatalog.list_divisors`); None: the
            logged revenue is the list value.
    """
    rows = panel[panel["tenure_weeks"].to_numpy() > 0]
    segment = codes_of(rows["segment"], segments, UNKNOWN_SEGMENT)
    if (segment < 0).any():
        labels = rows["segment"].astype(str).replace("", UNKNOWN_SEGMENT)
        unknown = sorted(set(labels[segment < 0]))
        raise ValueError(f"segments {unknown} are not among {list(segments)}")
    action = codes_of(rows["action"], actions)
    if (action < 0).any():
        missing = sorted(set(rows["action"].astype(str)[action < 0]))
        raise ValueError(f"logged actions {missing} are not in the catalogue {actions}")
    summary = panel_summary(rows, segment, layout.spec, channels)
    refunded = (
        rows["refund_amount"].to_numpy(np.float64)
        if "refund_amount" in rows.columns  # panels written before refunds were read
        else np.zeros(len(rows), np.float64)
    )
    revenue = rows["revenue"].to_numpy(np.float64) + refunded  # the conversions' value
    if list_divisors is not None:
        revenue = revenue / np.asarray(list_divisors, np.float64)[action]
    customer, ids = pd.factorize(rows["customer_id"].astype(str), sort=True)
    lifecycle = codes_of(rows["lifecycle"], LIFECYCLE_STAGES)
    conversions = rows["conversions"].to_numpy(np.int64)
    revenue = net_list_values(revenue, refunded, conversions > 0)
    return CustomerWeeks(
        customer=customer.astype(np.int64),
        week=rows["week"].to_numpy(np.int64),
        week_of_year=rows["week_of_year"].to_numpy(np.int64),
        state=layout.encode(summary),
        lifecycle=lifecycle,
        segment=segment,
        action=action,
        propensity=rows["propensity"].to_numpy(np.float64),
        converted=conversions > 0,
        conversions=conversions,
        list_value=revenue,
        engaged=rows["engagements"].to_numpy() > 0,
        opted_out=rows["opted_out_in_week"].to_numpy(bool),
        customer_ids=np.asarray(ids, dtype=object),
        segments=tuple(segments),
        actions=tuple(actions),
    )
