"""The campaign cycles of today's practice, read off the logged contacts by a documented rule.

Today's practice estimated from the logs (:mod:`journeyopt.sim.practice`) may depend on the
week of a campaign calendar: ``week % c`` for each cycle length ``c`` of
``calibration.practice_cycles_weeks`` (a mailing every 4 weeks: 4; a quarterly offer: 13).
Left empty (``null``), the cycles are those the logs show. For every contact action with at
least ``min_gaps`` gaps between a customer's consecutive weeks contacted with it:

1. its **modal gap** ``g``: the most common such gap between 2 and ``max_cycle_weeks`` weeks
   (the shortest among ties), and the share of the action's gaps equal to ``g``;
2. its **calendar concentration** at ``g``: the share ``s`` of the action's contacts that fall
   in the busiest week of the ``g``-week calendar (``week % g``), as an excess over the uniform
   share, ``(s - 1/g) / (1 - 1/g)``: 0 when the contacts ignore the calendar, 1 when all of
   them fall in one week of it.

``g`` is a cycle of the practice when both are large: the modal gap holds at least
``min_gap_share`` of the gaps (a customer who keeps qualifying is contacted every ``g`` weeks)
*and* the excess is at least ``min_excess`` (the contacts keep to a calendar, not to each
customer's own state: a call after an engagement also has a modal gap, but falls on any week).
The cycles are the union over the actions.

The thresholds (0.08 and 0.3) were set on the whole contact logs of four practices known
from their configs (gap share / excess): the coworking demo's logs
(``journeyopt-generate n_customers=2000 seed=1``: mailing every 4 weeks
0.79 / 0.91, win-back offer every 13 0.31 / 0.43; calls after an engagement 0.05 / 0.01 and
exploration's e-mails 0.04 / 0.00 are not cycles: found [4, 13]), the coworking CRM example
(the same 4 and 13, 0.78 / 0.92 and 0.38 / 0.44; calls 0.08 / 0.04), the wine club's export
(letter and case deal every 4 weeks, 0.84 / 0.95 and 0.75 / 0.89; the sommelier's calls
0.07 / 0.10; its quarterly tasting card, for a few member types and often blocked by the
all-channel cap, is missed: modal gap 4, 0.09 / 0.22; found [4]) and the roastery's (mailing
every 2 weeks 0.79 / 0.99, voucher every 4 0.70 / 0.74, the quarterly postcard as 26 weeks, its
modal gap, 0.10 / 0.38, whose calendar holds the 13-week one; calls 0.05 / 0.29, kept out by
their gap share; found [2, 4, 26]). A cycle the rule misses costs the practice model some fit
(its held-out calibration is on the card): give the cycles when you know them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from journeyopt.panel.suggest import FIRST_MONDAY
from journeyopt.panel.weeks import week_index

MIN_GAPS = 30
"""Fewest gaps an action needs before its cycle is judged."""
MIN_GAP_SHARE = 0.08
"""Least share of an action's gaps its modal gap must hold to be a cycle."""
MIN_EXCESS = 0.3
"""Least calendar concentration (excess over uniform, 0..1) a cycle must show."""
MAX_CYCLE_WEEKS = 26
"""Longest cycle considered, weeks."""


@dataclass(frozen=True)
class ActionCycle:
    """What one action's logged contacts say about a campaign cycle.

    Attributes:
        action: The action's name.
        contacts: Customer-weeks contacted with it.
        gaps: Gaps between a customer's consecutive such weeks (each >= 1 week).
        modal_gap_weeks: The most common gap between 2 and ``MAX_CYCLE_WEEKS`` weeks (0: none).
        gap_share: Share of ``gaps`` equal to the modal gap (0 without one).
        calendar_excess: Concentration of the contacts on one week of the modal gap's
            calendar, ``(s - 1/g) / (1 - 1/g)`` (0 without a modal gap).
        cycle: Whether the modal gap is a cycle of the practice by the module's rule.
    """

    action: str
    contacts: int
    gaps: int
    modal_gap_weeks: int
    gap_share: float
    calendar_excess: float
    cycle: bool


@dataclass(frozen=True)
class PracticeCycles:
    """The cycles the logs show and the evidence per action.

    Attributes:
        weeks: The cycle lengths found, weeks, ascending (empty: none).
        actions: The evidence of every contact action, by name.
    """

    weeks: tuple[int, ...]
    actions: tuple[ActionCycle, ...]

    def line(self) -> str:
        """One line for a command's output."""
        found = [f"{a.action} every {a.modal_gap_weeks}" for a in self.actions if a.cycle]
        if not found:
            return (
                "campaign cycles of today's practice found in the logs: none "
                "(calibration.practice_cycles_weeks: [])"
            )
        return (
            f"campaign cycles of today's practice found in the logs: {', '.join(found)} weeks "
            f"(calibration.practice_cycles_weeks: {list(self.weeks)})"
        )

    def as_meta(self) -> dict[str, Any]:
        """A JSON-able record (``calibration.json``)."""
        return {"weeks": list(self.weeks), "actions": [asdict(a) for a in self.actions]}


def action_cycle(action: str, customers: np.ndarray, weeks: np.ndarray) -> ActionCycle:
    """The evidence of one action from its contacted customer-weeks ((n,) customer codes and
    (n,) week indices, any order, duplicates allowed)."""
    frame = pd.DataFrame({"c": customers, "w": weeks}).drop_duplicates()
    frame = frame.sort_values(["c", "w"], kind="stable")
    c, w = frame["c"].to_numpy(), frame["w"].to_numpy(np.int64)
    gaps = np.diff(w)[c[1:] == c[:-1]]
    inside = gaps[(gaps >= 2) & (gaps <= MAX_CYCLE_WEEKS)]
    if gaps.size < MIN_GAPS or inside.size == 0:
        return ActionCycle(action, int(w.size), int(gaps.size), 0, 0.0, 0.0, False)
    counts = np.bincount(inside, minlength=MAX_CYCLE_WEEKS + 1)
    g = int(np.argmax(counts))  # the shortest among ties
    share = float(counts[g] / gaps.size)
    busiest = np.bincount(w % g, minlength=g).max() / w.size
    excess = float((busiest - 1.0 / g) / (1.0 - 1.0 / g))
    cycle = gaps.size >= MIN_GAPS and share >= MIN_GAP_SHARE and excess >= MIN_EXCESS
    return ActionCycle(action, int(w.size), int(gaps.size), g, share, excess, cycle)


def practice_cycles(contacts: pd.DataFrame, no_contact: str = "none") -> PracticeCycles:
    """The campaign cycles of the logged contacts by the module's rule.

    Args:
        contacts: One row per contact (or per customer-week with a decision): columns
            ``customer_id``, ``week`` (week index, any origin) and ``action``; rows whose
            action is ``no_contact`` are left out.
        no_contact: The name of the no-contact action.
    """
    rows = contacts.loc[contacts["action"].astype(str) != no_contact]
    codes = pd.factorize(rows["customer_id"])[0]
    weeks = rows["week"].to_numpy(np.int64)
    actions = rows["action"].astype(str).to_numpy()
    found = tuple(
        action_cycle(str(a), codes[actions == a], weeks[actions == a])
        for a in sorted(set(actions.tolist()))
    )
    cycles = tuple(sorted({a.modal_gap_weeks for a in found if a.cycle}))
    return PracticeCycles(cycles, found)


def contact_cycles(contacts: pd.DataFrame) -> PracticeCycles:
    """:func:`practice_cycles` of canonical contacts (columns ``customer_id``, ``ts`` UTC and
    ``action``), weeks counted Monday to Sunday as the panel counts them: what
    ``journeyopt-ingest`` shows before any calibration."""
    weeks = week_index(pd.to_datetime(contacts["ts"], utc=True), FIRST_MONDAY)
    frame = pd.DataFrame(
        {
            "customer_id": contacts["customer_id"].to_numpy(),
            "week": weeks,
            "action": contacts["action"].astype(str).to_numpy(),
        }
    )
    return practice_cycles(frame)


def cycles_meta(configured: list[int] | None, found: PracticeCycles | None) -> dict[str, Any]:
    """``calibration.json``'s record of the cycles used: configured, or found (with evidence)."""
    if found is None:
        return {"weeks": list(configured or []), "source": "config"}
    return {**found.as_meta(), "source": "logs"}


def found_line(meta: Mapping[str, Any]) -> str | None:
    """The line of :meth:`PracticeCycles.line` for a :func:`cycles_meta` record of cycles
    found in the logs; None for configured ones (nothing to report)."""
    if meta.get("source") != "logs":
        return None
    actions = tuple(ActionCycle(**a) for a in meta.get("actions", []))
    return PracticeCycles(tuple(int(w) for w in meta.get("weeks", [])), actions).line()
