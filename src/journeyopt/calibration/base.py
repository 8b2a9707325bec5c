"""The calibrated world's starting population, from the logs: every customer known at the end of
the panel with the state the panel's walk gives them (:func:`journeyopt.panel.build.state_at`)
and their segment, plus the arrival rate and mix of new customers
(:class:`journeyopt.sim.starting.StartingBase`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from journeyopt.calibration.weeks import UNKNOWN_SEGMENT
from journeyopt.data.schema import CanonicalLogs
from journeyopt.errors import JourneyoptError
from journeyopt.panel.build import state_at
from journeyopt.panel.config import PanelConfig
from journeyopt.sim.starting import StartingBase, arrivals

ARRIVAL_WEEKS = 52
"""Window over which the arrival rate and mix are measured, weeks before the as-of week (a year,
so that a seasonal business's arrivals are averaged over its seasons)."""


def starting_base(
    logs: CanonicalLogs,
    panel: pd.DataFrame,
    cfg: PanelConfig,
    contact_channels: Sequence[str],
    segments: Sequence[str],
) -> tuple[StartingBase, int]:
    """The customers at the end of ``panel`` (the start of the week after its last complete
    week) as a :class:`StartingBase`.

    Args:
        logs: The canonical logs the panel was built from.
        panel: The panel (all weeks, hold-out included): its last week's rows give each
            customer's segment label.
        cfg: The panel settings the panel was built with.
        contact_channels: The source's contact channels.
        segments: The calibrated world's segment names.

    Returns:
        ``(base, dropped)``: the base and the number of customers left out because their
        segment is not one of ``segments`` (it appears only after the calibration weeks).

    Raises:
        JourneyoptError: No customer of the panel has one of ``segments``.
    """
    last = int(panel["week"].max())
    rows = panel[panel["week"] == last]
    as_of = pd.Timestamp(rows["week_start"].iloc[0]) + pd.Timedelta(weeks=1)
    ids, state = state_at(logs, cfg, contact_channels, as_of)
    labels = rows["segment"].astype(str).replace("", UNKNOWN_SEGMENT)
    label_of = pd.Series(labels.to_numpy(), index=rows["customer_id"].astype(str).to_numpy())
    customer_labels = label_of.reindex(pd.Index(ids.astype(str))).to_numpy(object)
    lookup = {name: k for k, name in enumerate(segments)}
    segment = np.array([lookup.get(str(x), -1) for x in customer_labels], np.int64)
    keep = np.flatnonzero(segment >= 0)
    if keep.size == 0:
        raise JourneyoptError("no customer at the end of the logs has a calibrated segment")
    state = state.take(keep)
    segment = segment[keep]
    rate, shares, weeks = arrivals(
        state.first_week, segment, len(segments), state.week, ARRIVAL_WEEKS
    )
    base = StartingBase(
        state=state,
        segment=segment,
        customer_id=ids[keep].astype(str),
        arrivals_per_week=rate,
        arrival_shares=shares,
        arrival_weeks=weeks,
        as_of=as_of.isoformat(),
    )
    return base, int(ids.shape[0] - keep.size)
