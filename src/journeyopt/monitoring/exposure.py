"""Customer-level outcomes of the A/B holdout, read off the weekly panel.

A scored customer is exposed from their first scored week at or after ``since`` to the end of
the panel (intent to treat: later weeks count whatever was decided in them). For each outcome
of :data:`OUTCOMES` the table holds the customer's mean per exposed week and, as the
pre-period covariate, the mean over the ``pre_weeks`` weeks before the customer was first
scored at all (0 without such weeks); beside them, the pre-period's length (weeks with a
panel row, up to ``pre_weeks``) and its share of weeks with a conversion
(:data:`COVARIATES`, the covariates a regression adjustment may use). The covariate must
precede the treatment: when the policy has been serving for months, the weeks just before
``since`` already carry its effect (a customer it won over books more then too), and
adjusting for them would remove that part of the uplift from the estimate.

Outcomes per customer-week:

- ``conversions``: conversions;
- ``revenue``: what the customer paid net of the refunds booked in the week (the panel's
  ``revenue``; negative in a week with only a refund), currency;
- ``margin``: margin net of contact cost, currency: ``revenue - (1 - margin_rate) * list
  value - contact cost``, the list value being the revenue before the discount of the week's
  action (:meth:`journeyopt.sim.rules.ActionCatalog.list_values`; the same reward the
  simulator pays);
- ``opt_outs``: weeks with an opt-out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from journeyopt.monitoring.decisions_contacts import WEEK
from journeyopt.sim.rules import ActionCatalog

OUTCOMES: tuple[str, ...] = ("conversions", "revenue", "margin", "opt_outs")
COVARIATES: tuple[str, ...] = (
    *(f"{o}_pre" for o in OUTCOMES),
    "pre_weeks",
    "active_pre",
    "segment",
)
"""Covariate columns of :func:`customer_outcomes`, per customer: each outcome's mean per
pre-period week, the pre-period's weeks, its share of weeks with a conversion, and the static
segment (known before any decision)."""


def weekly_outcomes(
    panel: pd.DataFrame,
    margin_rate: float,
    catalog: ActionCatalog | None = None,
    prices: str = "paid",
) -> pd.DataFrame:
    """The :data:`OUTCOMES` of every panel row: columns ``customer_id``, ``week_start`` and
    one per outcome.

    Args:
        panel: Panel rows.
        margin_rate: Share of the list value that is margin (``data.economics.margin_rate``).
        catalog: The action catalogue with its discounts (``ActionCatalog.from_source``);
            None: no action gives a discount.
        prices: The source's price basis (``data.amounts``).
    """
    revenue = panel["revenue"].to_numpy(np.float64)
    list_value = revenue
    if catalog is not None:
        action = catalog.index(panel["action"].astype(str).to_numpy())
        list_value = catalog.list_values(revenue, action, prices)
    margin = revenue - (1.0 - margin_rate) * list_value
    return pd.DataFrame(
        {
            "customer_id": panel["customer_id"].astype(str).to_numpy(),
            "week_start": pd.to_datetime(panel["week_start"], utc=True).to_numpy(),
            "conversions": panel["conversions"].to_numpy(np.float64),
            "revenue": revenue,
            "margin": margin - panel["contact_cost"].to_numpy(np.float64),
            "opt_outs": panel["opted_out_in_week"].to_numpy(bool).astype(np.float64),
        }
    )


def customer_outcomes(
    panel: pd.DataFrame,
    groups: pd.DataFrame,
    since: pd.Timestamp,
    pre_weeks: int,
    margin_rate: float,
    catalog: ActionCatalog | None = None,
    prices: str = "paid",
) -> pd.DataFrame:
    """One row per exposed customer.

    Args:
        panel: Panel rows (``journeyopt.panel.build.build_panel``) covering the pre-period
            and the measurement weeks.
        groups: ``customer_id``, ``group``, ``first_week`` and optionally ``first_scored``
            (from :func:`~journeyopt.monitoring.decisions_contacts.customer_groups`; without
            it the pre-period ends at ``since``).
        since: Monday 00:00 UTC of the first measured week.
        pre_weeks: Weeks before the customer's first scored week (at the latest ``since``)
            averaged into the covariates.
        margin_rate: Share of the list value that is margin (``data.economics.margin_rate``).
        catalog, prices: The actions' discounts and the logs' price basis
            (:func:`weekly_outcomes`).

    Returns:
        ``customer_id``, ``group``, ``segment`` (static attribute, ``(unknown)`` when empty),
        ``weeks`` (exposed weeks), ``pre_weeks`` (pre-period weeks with a panel row), per
        outcome ``<outcome>`` (mean per exposed week) and ``<outcome>_pre`` (pre-period mean
        per week, 0 without pre-period weeks), and ``active_pre`` (share of the pre-period
        weeks with a conversion, 0 without them). Customers without an exposed panel week are
        not in it.
    """
    weekly = weekly_outcomes(panel, margin_rate, catalog, prices)
    first = groups.set_index("customer_id")["first_week"]
    start = first.where(first >= since, since)
    weekly["exposed_from"] = weekly["customer_id"].map(start)
    known = weekly["exposed_from"].notna()
    post = weekly[known & (weekly["week_start"] >= weekly["exposed_from"])]
    scored = groups.set_index("customer_id")["first_scored"] if "first_scored" in groups else first
    pre_end = weekly["customer_id"].map(scored.where(scored < since, since))
    starts = weekly["week_start"]
    pre_mask = (starts < pre_end) & (starts >= pre_end - pre_weeks * WEEK)
    pre = weekly[known & pre_mask]
    post_sum = post.groupby("customer_id")[list(OUTCOMES)].sum()
    post_n = post.groupby("customer_id").size().rename("weeks")
    pre_sum = pre.groupby("customer_id")[list(OUTCOMES)].sum()
    pre_n = pre.groupby("customer_id").size().rename("pre_weeks")
    active = (pre["conversions"] > 0).groupby(pre["customer_id"]).sum().rename("active_pre")
    table = pd.concat([post_n, post_sum.div(post_n, axis=0)], axis=1)
    pre_mean = pre_sum.div(pre_n, axis=0).add_suffix("_pre")
    table = (
        table.join(pre_n).join(pre_mean).join(active.div(pre_n).rename("active_pre")).fillna(0.0)
    )
    table["pre_weeks"] = table["pre_weeks"].astype(np.int64)
    table["weeks"] = table["weeks"].astype(np.int64)
    segment = panel.drop_duplicates("customer_id").set_index("customer_id")["segment"]
    table = table.join(groups.set_index("customer_id")["group"])
    table["segment"] = segment.reindex(table.index).astype(str).replace("", "(unknown)")
    columns = ["group", "segment", "weeks", "pre_weeks", *OUTCOMES]
    columns += [f"{o}_pre" for o in OUTCOMES] + ["active_pre"]
    return table.loc[:, columns].rename_axis("customer_id").reset_index()
