"""The calibrated world's starting population, from the logs: every customer of the panel's last
week with the state the panel's walk ends in, through the logged part of the as-of week
(:func:`journeyopt.panel.build.walk_panel` with ``through_as_of``), and their
segment, plus the arrival rate and mix of new customers
(:class:`journeyopt.sim.starting.StartingBase`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.calibration.weeks import UNKNOWN_SEGMENT
from journeyopt.errors import JourneyoptError
from journeyopt.panel.state import CustomerState
from journeyopt.sim.starting import StartingBase, arrivals

ARRIVAL_WEEKS = 52
"""Window over which the arrival rate and mix are measured, weeks before the as-of week (a year,
so that a seasonal business's arrivals are averaged over its seasons)."""


def starting_base(
    panel: pd.DataFrame, ids: NDArray[np.object_], state: CustomerState, segments: Sequence[str]
) -> tuple[StartingBase, int]:
    """The customers of the panel's last week, at the start of the week ``state`` is in, as a
    :class:`StartingBase` (as-of: that week's Monday).

    Args:
        panel: The panel (all weeks, hold-out included): its last week's rows give each
            customer's segment label.
        ids: (N,) customer ids of ``state``.
        state: The state the panel's walk ends in: at the start of the week after the panel's
            last week, or of the week after that when the walk also counted the logged but
            incomplete as-of week (:func:`journeyopt.panel.build.walk_panel` with
            ``through_as_of``: the logs' last week is not lost to the base).
        segments: The calibrated world's segment names.

    Returns:
        ``(base, left_out)``: the base and the number of customers of ``state`` left out: those
        first active after the panel's last complete week (no panel row yet) and those whose
        segment is not one of ``segments`` (it appears only after the calibration weeks).

    Raises:
        JourneyoptError: No customer of the panel's last week has one of ``segments``.
    """
    last = int(panel["week"].max())
    rows = panel[panel["week"] == last]
    if state.week not in (last + 1, last + 2):
        raise ValueError(f"the state is at week {state.week}, the panel ends in week {last}")
    as_of = pd.Timestamp(rows["week_start"].iloc[0]) + pd.Timedelta(weeks=state.week - last)
    labels = rows["segment"].astype(str).replace("", UNKNOWN_SEGMENT)
    label_of = pd.Series(labels.to_numpy(), index=rows["customer_id"].astype(str).to_numpy())
    customer_labels = label_of.reindex(pd.Index(ids.astype(str))).to_numpy(object)
    lookup = {name: k for k, name in enumerate(segments)}
    segment = np.array([lookup.get(str(x), -1) for x in customer_labels], np.int64)
    keep = np.flatnonzero(segment >= 0)
    if keep.size == 0:
        raise JourneyoptError("no customer at the end of the logs has a calibrated segment")
    kept_state = state.take(keep)
    segment = segment[keep]
    # arrivals over complete weeks: a customer first seen in the as-of week has no panel row
    # (no segment yet), so that week would count none
    rate, shares, weeks = arrivals(
        kept_state.first_week, segment, len(segments), last + 1, ARRIVAL_WEEKS
    )
    base = StartingBase(
        state=kept_state,
        segment=segment,
        customer_id=ids[keep].astype(str),
        arrivals_per_week=rate,
        arrival_shares=shares,
        arrival_weeks=weeks,
        as_of=as_of.isoformat(),
    )
    return base, int(ids.shape[0] - keep.size)
