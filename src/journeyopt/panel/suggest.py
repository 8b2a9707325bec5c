"""Panel settings a business's own logs suggest, by a documented rule.

``panel.lapse_weeks`` has no default (a choice about the business: how long a customer may go
without buying before they count as lapsed). The rule here reads it off the logs: the
smallest whole number of weeks within which ``quantile`` (90 % by default) of the gaps between a
customer's consecutive weeks with a conversion lie, over every repeat customer (the gaps'
``quantile``, inverted empirical CDF). With that threshold, nine in
ten repeat purchases come while the customer is still ``active``; a customer silent for longer
than nine in ten of the observed gaps is ``lapsed``. ``journeyopt-ingest`` prints it; with
``panel.lapse_weeks: null`` (the generic ``configs/panel/default.yaml``) every command that
builds a panel uses it (:func:`resolve_lapse_weeks`, reading only the events up to the panel's
as-of instant), prints it and records it with its settings; a configured value always wins.

The rule needs repeat purchases: with fewer than ``min_gaps`` gaps it suggests nothing. Gaps
are censored by the log's length (a log of ``L`` weeks holds no gap longer than ``L - 1``), so a
short log under-states slow buyers' gaps: prefer logs covering several of the suggested gaps.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.data.schema import Role
from journeyopt.errors import ConfigError
from journeyopt.panel.config import PanelConfig, parse_as_of
from journeyopt.panel.weeks import week_index

FIRST_MONDAY = pd.Timestamp("1970-01-05", tz="UTC")  # any Monday: only differences count


def conversion_gaps_weeks(events: pd.DataFrame) -> NDArray[np.int64]:
    """(G,) weeks between each customer's consecutive calendar weeks (Monday to Sunday, UTC)
    with a conversion, every customer's gaps together (a customer converting in ``k`` distinct
    weeks gives ``k - 1`` gaps, each >= 1).

    Args:
        events: Canonical events (columns ``customer_id``, ``ts`` UTC, ``role``).
    """
    conversions = events.loc[events["role"] == Role.CONVERSION.value, ["customer_id", "ts"]]
    if conversions.empty:
        return np.zeros(0, np.int64)
    week = week_index(pd.to_datetime(conversions["ts"], utc=True), FIRST_MONDAY)
    weeks = pd.DataFrame(
        {"customer_id": conversions["customer_id"].to_numpy(), "week": week}
    ).drop_duplicates()
    weeks = weeks.sort_values(["customer_id", "week"], kind="stable")
    same = weeks["customer_id"].to_numpy()[1:] == weeks["customer_id"].to_numpy()[:-1]
    return np.diff(weeks["week"].to_numpy())[same].astype(np.int64)


@dataclass(frozen=True)
class LapseSuggestion:
    """What the gaps between conversions say about ``panel.lapse_weeks``.

    Attributes:
        n_gaps: Gaps between consecutive conversion weeks in the logs.
        median_weeks: Their median, weeks (``nan`` without gaps).
        quantile: The quantile the suggestion is read at (0.9: nine in ten gaps).
        quantile_weeks: The gaps' ``quantile``, weeks (``nan`` without gaps).
        lapse_weeks: The suggested ``panel.lapse_weeks`` (``quantile_weeks``, >= 1);
            ``None`` with fewer than the rule's minimum number of gaps.
    """

    n_gaps: int
    median_weeks: float
    quantile: float
    quantile_weeks: float
    lapse_weeks: int | None

    def line(self) -> str:
        """One line for a command's output."""
        if self.lapse_weeks is None:
            return (
                f"gaps between a customer's conversions: {self.n_gaps:,}, too few to suggest "
                "panel.lapse_weeks: choose it from how long your customers go between purchases"
            )
        return (
            f"gaps between a customer's conversions: {self.n_gaps:,} (median "
            f"{self.median_weeks:g} weeks, {self.quantile:.0%} <= {self.quantile_weeks:g}): "
            f"suggested panel.lapse_weeks {self.lapse_weeks} (used where your panel config "
            "says null, the default)"
        )


def suggest_lapse_weeks(
    events: pd.DataFrame, quantile: float = 0.9, min_gaps: int = 30
) -> LapseSuggestion:
    """``panel.lapse_weeks`` by the module's rule: the smallest whole number of weeks within
    which ``quantile`` of :func:`conversion_gaps_weeks` lie, at least 1; none with fewer than
    ``min_gaps`` gaps."""
    if not 0.0 < quantile < 1.0 or min_gaps < 1:
        raise ValueError("quantile must be in (0, 1) and min_gaps >= 1")
    gaps = conversion_gaps_weeks(events)
    if gaps.size == 0:
        return LapseSuggestion(0, math.nan, quantile, math.nan, None)
    at = float(np.quantile(gaps, quantile, method="inverted_cdf"))
    suggested = max(1, math.ceil(at)) if gaps.size >= min_gaps else None
    return LapseSuggestion(int(gaps.size), float(np.median(gaps)), quantile, at, suggested)


def conversions_until(events: pd.DataFrame, as_of: pd.Timestamp | None) -> pd.DataFrame:
    """The events at or before ``as_of`` (all of them for None): what a panel built at
    ``as_of`` may read, so a later event cannot change an earlier panel."""
    if as_of is None or events.empty:
        return events
    return events[pd.to_datetime(events["ts"], utc=True) <= as_of]


def resolve_lapse_weeks(
    cfg: PanelConfig, events: pd.DataFrame, as_of: pd.Timestamp | None = None
) -> tuple[PanelConfig, LapseSuggestion | None]:
    """``cfg`` with a ``lapse_weeks``: its own when it gives one (then no suggestion), else
    (``panel.lapse_weeks: null``) the value :func:`suggest_lapse_weeks` reads off the events at
    or before the panel's as-of instant, with that suggestion.

    Args:
        cfg: Panel settings.
        events: Canonical events (``customer_id``, ``ts`` UTC, ``role``).
        as_of: The panel's as-of instant; None: ``cfg.as_of`` (empty: every event, as a panel
            built at the last activity reads them all).

    Raises:
        ConfigError: ``lapse_weeks`` is null and the logs hold too few repeat purchases for
            the rule (one line: set it).
    """
    if cfg.lapse_weeks is not None:
        return cfg, None
    until = as_of if as_of is not None else (parse_as_of(cfg.as_of) if cfg.as_of else None)
    found = suggest_lapse_weeks(conversions_until(events, until))
    if found.lapse_weeks is None:
        raise ConfigError(
            f"panel.lapse_weeks is null (derive it from the logs), but the logs hold "
            f"{found.n_gaps:,} gaps between a customer's conversions, too few for the rule: "
            "set panel.lapse_weeks=<weeks without a conversion after which a customer is "
            "lapsed>"
        )
    return replace(cfg, lapse_weeks=found.lapse_weeks), found


def derived_line(found: LapseSuggestion) -> str:
    """One line for a command that derived ``panel.lapse_weeks`` from the logs."""
    return (
        f"panel.lapse_weeks {found.lapse_weeks}, derived from the logs (null in the config): "
        f"{found.quantile:.0%} of {found.n_gaps:,} gaps between a customer's conversions are "
        f"<= {found.quantile_weeks:g} weeks (median {found.median_weeks:g})"
    )


def panel_for_logs(
    cfg: PanelConfig, events: pd.DataFrame, as_of: pd.Timestamp | None = None
) -> PanelConfig:
    """:func:`resolve_lapse_weeks` for a command: the settings its panel is built with, the
    derived ``lapse_weeks`` said on the ``journeyopt`` log (the command's console)."""
    resolved, found = resolve_lapse_weeks(cfg, events, as_of)
    if found is not None:
        logging.getLogger("journeyopt").info(derived_line(found))
    return resolved
