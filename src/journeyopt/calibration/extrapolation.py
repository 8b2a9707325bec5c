"""Where the calibrated world extrapolates: how much of a policy's expected customer-weeks lie
in (state, action) cells the fitted logs barely hold.

The world's responses are fitted on the logged customer-weeks; in a (discrete state, action)
cell the logs hold a handful of times, its response is the models' extrapolation from the
populated cells next to it. A policy the world recommends may spend many customer-weeks in
such cells (today's practice mails every other week, so "opted in, no contact for five weeks"
is rare in the logs, yet it is where never contacting puts most customers). The card reports,
for the world's own exact optimum and for today's practice as the world models it:

- the expected customer-weeks of the policy in every (state, action) over the card's horizon,
  starting from the world's own starting population (:func:`starting_distribution`), computed
  exactly by forward propagation of the state distribution through the world's transition
  tables (:func:`occupancy`: the transpose of the DP's backward step, no sampling, no seed);
- the share of them, and of the policy's expected discounted reward, in cells with fewer than
  ``calibration.card.min_cell_weeks`` logged customer-weeks (:func:`logged_cells`);
- the few thin cells that carry most of that mass, in words (:func:`state_words`).

The verdict refuses a world whose optimum spends more than
``calibration.card.max_extrapolated_share`` of its customer-weeks in thin cells
(:func:`extrapolation_reasons`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from journeyopt.calibration.weeks import CustomerWeeks
from journeyopt.panel.state import (
    LIFECYCLE_STAGES,
    CustomerState,
    lifecycle_code,
    state_features,
)
from journeyopt.sim.discrete import DiscreteLayout, Summary, discrete_state, pattern_weeks
from journeyopt.sim.optimum import OptimalPolicy, next_states, outcome_model, weekly_allowed
from journeyopt.sim.population import arrival_rows
from journeyopt.sim.practice import LoggedPractice, masked_softmax
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.summary_rules import PlannedRules, plan_rules
from journeyopt.sim.world import WorldSpec

Float = NDArray[np.float64]
IntArray = NDArray[np.int64]

StatePolicy = Callable[[IntArray, int, NDArray[np.bool_]], Float]
"""A policy over discrete states: (state indices (k,), episode week t, allowed actions (k, A))
-> (k, A) action probabilities (rows sum to 1, zero where not allowed)."""

TOP_CELLS = 5
"""Thin cells listed per policy on the card (those carrying the most of its expected weeks)."""


@dataclass(frozen=True)
class Occupancy:
    """A policy's expected customer-weeks and discounted reward per (state, action).

    Attributes:
        weeks: (n_states, A) expected customer-weeks over the horizon.
        reward: (n_states, A) expected discounted reward earned there, currency
            (``gamma ** t`` for episode week ``t``).
    """

    weeks: Float
    reward: Float


def starting_distribution(world: WorldSpec, horizon_weeks: int) -> Float:
    """(n_states,) expected customers per discrete state where every simulation of ``world``
    starts (:func:`journeyopt.sim.population.starting_population`, as counts): each customer of
    the world's starting base in its state at the as-of date, plus the
    ``arrivals_per_week * horizon_weeks`` new customers, without history, spread over the
    segments of the customers who arrived in the base's arrival window.

    Raises:
        ValueError: The world has no starting base (a synthetic population has no fixed
            starting distribution).
    """
    base = world.base
    if base is None:
        raise ValueError(f"world {world.name!r} has no starting base of customers")
    layout = DiscreteLayout.of(world)
    state = base.conformed(world.features)
    known = discrete_state(state_features(state, world.features), base.segment, world)
    counts = np.bincount(known, minlength=layout.n_states).astype(np.float64)
    expected_new = base.arrivals_per_week * max(horizon_weeks, 0)
    if expected_new > 0:
        week = base.state.week
        segments, n = np.unique(base.segment[arrival_rows(base)], return_counts=True)
        new = CustomerState.new(world.features, week, np.full(segments.size, week, np.int64))
        states = discrete_state(state_features(new, world.features), segments, world)
        np.add.at(counts, states, expected_new * n / n.sum())
    return counts


def occupancy(
    world: WorldSpec,
    start: Float,
    policies: Mapping[str, StatePolicy],
    gamma: float,
    weeks_of_year: IntArray,
    rules: PlannedRules | None = None,
) -> dict[str, Occupancy]:
    """Expected customer-weeks and discounted reward of each policy per (state, action), by
    forward propagation of its state distribution ``d_t`` (``d_0 = start``):

        weeks[s, a]  = sum_t d_t(s) pi_t(a | s)
        reward[s, a] = sum_t gamma^t d_t(s) pi_t(a | s) r_t(s, a)
        d_{t+1}(s')  = sum_{s, a, o: next(s, a, o) = s'} d_t(s) pi_t(a | s) P_t(o | s, a)

    with the world's own tables (:func:`journeyopt.sim.optimum.next_states` once for every
    state, :func:`~journeyopt.sim.optimum.outcome_model` each week over the states some
    policy's ``d_t`` reaches: the tables the DP reads). Nobody leaves the world, so every week
    holds ``start.sum()`` customer-weeks.

    Args:
        world: The world.
        start: (n_states,) customers per state in episode week 0.
        policies: The policies' action probabilities by name (:data:`StatePolicy`); the
            actions they are offered are the world's own rule and ``rules``' representable
            part.
        gamma: Weekly discount factor.
        weeks_of_year: (H,) ISO week of year of each episode week.
        rules: The planned contact rules the actions obey (None: the world's own rule).
    """
    layout = DiscreteLayout.of(world)
    n_states, n_actions = layout.n_states, world.actions.n_actions
    every = layout.all_states()
    nxt = next_states(world, layout, every)
    allowed = weekly_allowed(world, every, np.asarray(weeks_of_year, np.int64), rules)
    out = {
        name: Occupancy(np.zeros((n_states, n_actions)), np.zeros((n_states, n_actions)))
        for name in policies
    }
    d = {name: np.asarray(start, np.float64) for name in policies}
    for t, woy in enumerate(np.asarray(weeks_of_year, np.int64)):
        reached = np.flatnonzero(np.logical_or.reduce([p > 0 for p in d.values()]))
        model = outcome_model(world, layout.decode(reached), nxt[:, :, reached], int(woy), reached)
        mask = allowed(t)[reached]
        for name, act in policies.items():
            pi = act(reached, t, mask) * d[name][reached, None]  # (k, A) customer-weeks
            moved = np.zeros(n_states)
            for a in range(n_actions):
                w = pi[:, a]
                if not w.any():
                    continue
                out[name].weeks[reached, a] += w
                out[name].reward[reached, a] += gamma**t * w * model.reward[a]
                flow = model.prob(a) * w  # (8, k)
                moved += np.bincount(
                    model.next_state[a].ravel(), weights=flow.ravel(), minlength=n_states
                )
            d[name] = moved
    return out


def table_policy(optimum: OptimalPolicy) -> StatePolicy:
    """The optimum's table as a :data:`StatePolicy` (one action per state and week)."""

    def act(states: IntArray, t: int, allowed: NDArray[np.bool_]) -> Float:
        chosen = optimum.actions[t, states].astype(np.int64)
        chosen = np.where(allowed[np.arange(states.size), chosen], chosen, 0)
        out = np.zeros(allowed.shape)
        out[np.arange(states.size), chosen] = 1.0
        return out

    return act


def practice_policy(practice: LoggedPractice, weeks_of_year: IntArray) -> StatePolicy:
    """Today's practice estimated from the logs as a :data:`StatePolicy` (its state numbering
    is the world's; its campaign calendar's week 0 is the episode's first week, as in
    simulation)."""

    def act(states: IntArray, t: int, allowed: NDArray[np.bool_]) -> Float:
        return masked_softmax(practice.state_logits(states, int(weeks_of_year[t]), t), allowed)

    return act


def logged_cells(weeks: CustomerWeeks, n_states: int, n_actions: int) -> IntArray:
    """(n_states, A) fitted customer-weeks per (discrete state, logged action): what the logs
    hold (raw counts, not the fit's weights)."""
    flat = np.bincount(weeks.state * n_actions + weeks.action, minlength=n_states * n_actions)
    return flat.reshape(n_states, n_actions).astype(np.int64)


def state_words(world: WorldSpec, state: int) -> str:
    """One discrete state in the card's words: segment, lifecycle, conversions and weeks since
    the last, weeks since contact (and the last action, the contact pattern), weeks since
    engagement, opt-outs, tenure and the gap between conversions when the summary has them."""
    spec = world.discrete
    s = DiscreteLayout.of(world).decode(np.array([state]))
    n_channels = len(world.channels)
    out_all = int(s.optout[0]) == (1 << n_channels) - 1 and n_channels > 0
    lapse = world.features.lapse_weeks
    stage = lifecycle_code(s.conversions, s.recency, np.array([out_all]), lapse)
    words = [world.segment_names[int(s.segment[0])], LIFECYCLE_STAGES[int(stage[0])]]
    conversions, recency = int(s.conversions[0]), int(s.recency[0])
    if conversions:
        more = "+" if conversions >= spec.conversions_cap else ""
        ago = _weeks_ago(recency, spec.recency_cap_weeks)
        words.append(f"{conversions}{more} conversion(s), the last {ago}")
    contact = int(s.contact[0])
    if contact >= spec.contact_cap_weeks:
        words.append(f"no contact for {contact}+ weeks (or never)")
    else:
        last = int(_component(s, "last_action"))
        named = ""
        if last and not spec.lasting_actions:
            named = f" ({world.actions.names[last]})"
        elif last:
            named = f" (last lasting: {spec.lasting_actions[last - 1]})"
        words.append(f"last contact {contact} week(s) ago{named}")
    if spec.contact_pattern_weeks:
        pattern = int(_component(s, "pattern"))
        weeks_back = range(1, spec.contact_pattern_weeks + 1)
        held = pattern_weeks(np.asarray([pattern]), spec, len(world.channels))[0]
        by_channel = spec.contact_pattern_by_channel
        ago_list = [
            f"{k} ({world.channels[held[k - 1] - 1]})" if by_channel else str(k)
            for k in weeks_back
            if held[k - 1]
        ]
        words.append(
            f"contacted {', '.join(ago_list)} week(s) ago"
            if ago_list
            else f"no contact in the last {spec.contact_pattern_weeks} weeks"
        )
    engagement = int(s.engagement[0])
    if engagement >= spec.engagement_cap_weeks:
        words.append(f"no engagement for {engagement}+ weeks (or never)")
    else:
        words.append(f"last engagement {engagement} week(s) ago")
    optout = int(s.optout[0])
    out = [c for j, c in enumerate(world.channels) if optout >> j & 1]
    words.append(f"opted out of {', '.join(out)}" if out else "opted in")
    if spec.tenure_cap_weeks:
        tenure = int(_component(s, "tenure"))
        more = "+" if tenure >= spec.tenure_cap_weeks else ""
        words.append(f"tenure {tenure}{more} weeks")
    gap = int(_component(s, "gap"))
    if gap:
        low = (gap - 1) * spec.gap_bin_weeks
        words.append(f"previous gap between conversions {low}+ weeks")
    return "; ".join(words)


def _component(summary: Summary, name: str) -> int:
    return int(np.asarray(getattr(summary, name)).ravel()[0])


def _weeks_ago(weeks: int, cap: int) -> str:
    return f"{weeks}+ weeks ago" if weeks >= cap else f"{weeks} week(s) ago"


@dataclass(frozen=True)
class ThinCell:
    """One (state, action) cell the logs barely hold, where a policy spends customer-weeks.

    Attributes:
        state: Discrete state index.
        action: Action name.
        words: The state in the card's words (:func:`state_words`).
        logged_weeks: Fitted customer-weeks in the cell.
        policy_weeks: The policy's expected customer-weeks in the cell over the horizon.
    """

    state: int
    action: str
    words: str
    logged_weeks: int
    policy_weeks: float


@dataclass(frozen=True)
class PolicyExtrapolation:
    """How much of one policy rests on thin cells.

    Attributes:
        policy: The policy's name (``optimum``: the world's exact optimum; ``practice``:
            today's practice as the world models it).
        weeks: Its expected customer-weeks over the horizon (every customer every week).
        thin_share: Share of them in cells with fewer than ``min_cell_weeks`` logged
            customer-weeks.
        thin_value_share: Share of its expected discounted reward earned there (NaN when the
            total is not positive).
        cells: The thin cells carrying the most of its expected weeks, most first.
    """

    policy: str
    weeks: float
    thin_share: float
    thin_value_share: float
    cells: tuple[ThinCell, ...]


def policy_extrapolation(
    world: WorldSpec,
    policy: str,
    occupied: Occupancy,
    logged: IntArray,
    min_cell_weeks: int,
    top: int = TOP_CELLS,
) -> PolicyExtrapolation:
    """Share of ``occupied``'s customer-weeks and discounted reward in the cells where
    ``logged`` (n_states, A) holds fewer than ``min_cell_weeks`` customer-weeks, and the
    ``top`` such cells with the most of its weeks."""
    thin = logged < min_cell_weeks
    total = float(occupied.weeks.sum())
    in_thin = np.where(thin, occupied.weeks, 0.0)
    value = float(occupied.reward.sum())
    thin_value = float(occupied.reward[thin].sum())
    flat = in_thin.ravel()
    order = np.argsort(-flat, kind="stable")[:top]
    n_actions = logged.shape[1]
    cells = tuple(
        ThinCell(
            int(i // n_actions),
            world.actions.names[int(i % n_actions)],
            state_words(world, int(i // n_actions)),
            int(logged.ravel()[i]),
            float(flat[i]),
        )
        for i in order
        if flat[i] > 0
    )
    return PolicyExtrapolation(
        policy,
        total,
        float(in_thin.sum()) / total if total > 0 else float("nan"),
        thin_value / value if value > 0 else float("nan"),
        cells,
    )


@dataclass(frozen=True)
class Extrapolation:
    """Where a calibrated world extrapolates for the policies it is used to choose.

    Attributes:
        min_cell_weeks: Logged customer-weeks below which a (state, action) cell is thin
            (``calibration.card.min_cell_weeks``).
        max_share: The optimum's largest thin share the verdict accepts
            (``calibration.card.max_extrapolated_share``; 1 = no check).
        horizon_weeks: Weeks the policies are followed (the card's DP horizon).
        customers: Customers of the starting population (base plus expected arrivals).
        thin_cells: (state, action) cells below ``min_cell_weeks`` (``none`` included).
        cells: Every (state, action) cell of the world.
        policies: One record per policy (the optimum first).

    Its time is the calibration's ``base`` stage's (logged with the plan), not recorded here:
    two runs of the same config and seed write the same ``calibration.json``.
    """

    min_cell_weeks: int
    max_share: float
    horizon_weeks: int
    customers: float
    thin_cells: int
    cells: int
    policies: tuple[PolicyExtrapolation, ...]

    def as_meta(self) -> dict[str, Any]:
        """A JSON-ready record (``extrapolation`` in ``calibration.json``, read by the card)."""
        return {
            "min_cell_weeks": self.min_cell_weeks,
            "max_share": self.max_share,
            "horizon_weeks": self.horizon_weeks,
            "customers": self.customers,
            "thin_cells": self.thin_cells,
            "cells": self.cells,
            "policies": [
                {
                    "policy": p.policy,
                    "weeks": p.weeks,
                    "thin_share": p.thin_share,
                    "thin_value_share": p.thin_value_share,
                    "cells": [
                        {
                            "state": c.state,
                            "action": c.action,
                            "words": c.words,
                            "logged_weeks": c.logged_weeks,
                            "policy_weeks": c.policy_weeks,
                        }
                        for c in p.cells
                    ],
                }
                for p in self.policies
            ],
        }

    def metrics(self) -> dict[str, float]:
        """The MLflow metrics: each policy's thin shares of weeks and of value."""
        out = {}
        for p in self.policies:
            out[f"sim/extrapolated_share/{p.policy}"] = p.thin_share
            out[f"sim/extrapolated_value_share/{p.policy}"] = p.thin_value_share
        return out


def world_extrapolation(
    world: WorldSpec,
    optimum: OptimalPolicy,
    weeks: CustomerWeeks,
    min_cell_weeks: int,
    max_share: float,
    rules: ContactRules | None = None,
) -> Extrapolation:
    """Where ``world`` extrapolates for its exact ``optimum`` (as planned, under the planned
    ``rules``: the calibration's one plan,
    :meth:`~journeyopt.calibration.calibrated.CalibratedWorld.optimum`, pessimistic about the
    ensemble's disagreement by ``calibration.pessimism``) and for today's
    practice as it models it (when the world has one over its own states), over the
    optimum's horizon from the world's starting population, against the fitted customer-weeks
    ``weeks`` (numbered as the world's states)."""
    layout = DiscreteLayout.of(world)
    n_actions = world.actions.n_actions
    horizon, woy = optimum.horizon_weeks, optimum.weeks_of_year
    planned = plan_rules(rules, world) if rules is not None else None
    start = starting_distribution(world, horizon)
    logged = logged_cells(weeks, layout.n_states, n_actions)
    policies: dict[str, StatePolicy] = {"optimum": table_policy(optimum)}
    practice = world.logged_practice
    if practice is not None and practice.state_logit.shape[0] == layout.n_states:
        policies["practice"] = practice_policy(practice, woy)
    occupied = occupancy(world, start, policies, optimum.gamma, woy, planned)
    records = tuple(
        policy_extrapolation(world, name, occupied[name], logged, min_cell_weeks)
        for name in policies
    )
    return Extrapolation(
        min_cell_weeks,
        max_share,
        horizon,
        float(start.sum()),
        int((logged < min_cell_weeks).sum()),
        int(logged.size),
        records,
    )


def extrapolation_reasons(meta: Mapping[str, Any]) -> list[str]:
    """The verdict's reason when the world's optimum spends more than ``max_share`` of its
    customer-weeks in thin cells (none when it does not, or the world records no figures)."""
    record = meta.get("extrapolation")
    if not record:
        return []
    optimum = record["policies"][0]
    share = float(optimum["thin_share"])
    if not share > float(record["max_share"]):
        return []
    return [
        f"its {optimum['policy']} spends {100 * share:.1f} % of its customer-weeks in states "
        f"and actions the logs hold fewer than {record['min_cell_weeks']} times (above "
        f"{100 * float(record['max_share']):g} %): log more exploration in those states, or "
        "more customers"
    ]


def extrapolation_lines(meta: Mapping[str, Any]) -> list[str]:
    """The card's section "Where the world extrapolates" (none when not recorded)."""
    record = meta.get("extrapolation")
    if not record:
        return []
    limit = record["min_cell_weeks"]
    check = (
        f"the verdict refuses the world when its optimum's share exceeds "
        f"{100 * float(record['max_share']):g} % (`calibration.card.max_extrapolated_share`)"
        if float(record["max_share"]) < 1.0
        else "no verdict check (`calibration.card.max_extrapolated_share` 1)"
    )
    lines = [
        "## Where the world extrapolates",
        "",
        f"Expected customer-weeks of each policy (the optimum: the world's exact optimum as "
        f"planned, see its planning line above) over {record['horizon_weeks']} weeks from the "
        f"world's {record['customers']:,.0f} starting customers, per (state, action), computed "
        f"exactly from the world's own transitions; a cell is thin when the fitted logs hold it "
        f"fewer than {limit} times (`calibration.card.min_cell_weeks`; "
        f"{record['thin_cells']:,} of the {record['cells']:,} cells). There the world's "
        "responses are the models' extrapolation from the cells next to it, not data; "
        f"{check}.",
        "",
        "| policy | customer-weeks in thin cells | expected discounted reward earned there |",
        "|---|---|---|",
    ]
    for p in record["policies"]:
        value = float(p["thin_value_share"])
        shown = f"{100 * value:.1f} %" if value == value else "–"
        lines.append(f"| {p['policy']} | {100 * float(p['thin_share']):.1f} % | {shown} |")
    for p in record["policies"]:
        if not p["cells"]:
            continue
        lines += [
            "",
            f"The thin cells carrying most of the {p['policy']}'s weeks there:",
            "",
            "| state | action | logged weeks | expected weeks of the policy |",
            "|---|---|---|---|",
            *(
                f"| {c['words']} | {c['action']} | {c['logged_weeks']:,} "
                f"| {c['policy_weeks']:,.0f} |"
                for c in p["cells"]
            ),
        ]
    return [*lines, ""]
