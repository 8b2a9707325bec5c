"""The exact optimum of a world: finite-horizon dynamic programming over the discrete summary.

Because the world's responses depend only on the discrete summary (:mod:`journeyopt.sim.discrete`)
and the week of year, and the summary is Markov, backward induction over
(summary, week of the episode) gives the best expected discounted return any policy that sees
the customer's features can reach:

    V_H(s) = 0
    Q_t(s, a) = r_t(s, a) + gamma * sum_o P_t(o | s, a) V_{t+1}(next(s, a, o))
    V_t(s) = max over allowed a of Q_t(s, a)

where "allowed" is the world's own rule (opt-outs, unsupported actions) and, when the
optimum is solved under contact rules (``solve_optimum(..., rules=)``), every rule the summary
represents, evaluated on the summaries by the rules object itself
(:mod:`journeyopt.sim.summary_rules`; the others are named in ``OptimalPolicy.unseen_rules``),
with outcomes ``o`` = (converted, engaged, opted out) drawn independently given (s, a), the
expected reward ``r_t`` of :func:`journeyopt.sim.dynamics.expected_reward`, and ``next`` from
:func:`journeyopt.sim.discrete.next_summary`: the same functions the dynamics sample from.
Vectorised over all states at once; one solve of the coworking world takes about a second.

**Planning with pessimism** (``solve_optimum(..., members=, pessimism=)``): a calibrated world
is an estimate, and its optimum seeks out exactly the (state, action) cells whose responses
it over-predicts (the optimiser's curse). With the worlds of its bootstrap ensemble
(``members``, refits on resampled customers) each week's

    Q_t(s, a) = Qpoint_t(s, a) - pessimism * SD_m[ Qm_t(s, a) ]

where ``Qm_t`` is member ``m``'s one-step backup of the same next-week values ``V_{t+1}``
(its own rewards and outcome probabilities) and ``V_t(s) = max_a Q_t(s, a)``: a cell the
members disagree on (few logged customer-weeks, an extrapolation) is valued lower by
``pessimism`` standard deviations of that disagreement, compounded over the horizon (the
pessimistic value iteration of Jin, Yang and Wang 2021, "Is pessimism provably efficient for
offline RL?", with the ensemble's spread as the uncertainty, as MOPO, Yu et al. 2020, uses
it). ``pessimism = 0`` or fewer than two members: the plain optimum, exactly. It costs one
backup per member per week (six solves' time with five members).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from journeyopt.sim.discrete import DiscreteLayout, Summary, allowed_actions, next_summary
from journeyopt.sim.dynamics import (
    contact_engagement,
    expected_reward,
    response_probabilities,
    sigmoid,
)
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.summary_rules import PlannedRules, plan_rules, rule_masks
from journeyopt.sim.world import FittedResponses, WorldSpec

Float = NDArray[np.float64]
IntArray = NDArray[np.int64]
TablePolicy = Callable[[Summary, int], IntArray]
"""A policy over summaries: (summaries (n,), episode week t) -> actions (n,)."""


def cyclic_weeks_of_year(start_week_of_year: int, horizon_weeks: int) -> NDArray[np.int64]:
    """(H,) ISO week of year of each episode week, cycling through 52 weeks."""
    if not 1 <= start_week_of_year <= 53:
        raise ValueError(f"start_week_of_year must be in 1..53, got {start_week_of_year}")
    return ((start_week_of_year - 1 + np.arange(horizon_weeks)) % 52 + 1).astype(np.int64)


@dataclass(frozen=True)
class Transitions:
    """Next-state indices and probabilities of every (state, action) in one episode week.

    The outcome's three parts are drawn independently given (state, action), so the week keeps
    their three probabilities, (A, n_states) each, and forms the 8 outcomes' products one
    action at a time (:meth:`prob`): 3 instead of 8 floats per (state, action) (on 1.4 M
    states x 5 actions, 170 instead of 455 MB per week of year; a value check keeps one per
    hold-out week).

    Attributes:
        next_state: (A, 8, n_states) next state for outcome ``o = 4 c + 2 e + x`` (converted,
            engaged, opted out of the action's channel); int32 below 2^31 states.
        reward: (A, n_states) expected reward, currency.
        convert, engage, optout: (A, n_states) probability of a conversion, an engagement
            and an opt-out of the action's channel.
    """

    next_state: NDArray[np.signedinteger]
    reward: Float
    convert: Float
    engage: Float
    optout: Float

    def prob(self, a: int) -> Float:
        """(8, n_states) probability of each outcome ``o`` of action ``a``."""
        pc, pe, px = self.convert[a], self.engage[a], self.optout[a]
        return np.stack(
            [
                (pc if o & 4 else 1 - pc) * (pe if o & 2 else 1 - pe) * (px if o & 1 else 1 - px)
                for o in range(8)
            ]
        )

    def q_values(self, v_next: Float, gamma: float) -> Float:
        """(A, n_states) ``Q(s, a) = r(s, a) + gamma * sum_o P(o | s, a) v_next(next(s, a, o))``
        for ``v_next`` (n_states,), one action and outcome at a time (temporaries of
        (n_states,); the outcomes' products and their sum in :meth:`prob`'s order)."""
        q = np.empty_like(self.reward)
        for a in range(q.shape[0]):
            parts = [(1 - p, p) for p in (self.convert[a], self.engage[a], self.optout[a])]
            nxt = self.next_state[a]
            total = np.zeros(q.shape[1])
            for o in range(8):
                pc, pe, px = parts[0][o >> 2], parts[1][(o >> 1) & 1], parts[2][o & 1]
                total += pc * pe * px * v_next[nxt[o]]
            q[a] = self.reward[a] + gamma * total
        return q


def next_states(
    world: WorldSpec, layout: DiscreteLayout, states: Summary
) -> NDArray[np.signedinteger]:
    """(A, 8, n) next-state index for every action and outcome (independent of the week);
    int32 when the layout has fewer than 2^31 states (half the memory of int64)."""
    n = states.segment.shape[0]
    n_actions = world.actions.n_actions
    channel = world.params.channel
    lasting = world.lasting_codes
    out = np.empty((n_actions, 8, n), np.int32 if layout.n_states < 2**31 else np.int64)
    for a in range(n_actions):
        opt_bit = (1 << int(channel[a])) if channel[a] >= 0 else 0
        for o in range(8):
            converted, engaged, opted = bool(o & 4), bool(o & 2), bool(o & 1)
            nxt = next_summary(
                states,
                world.discrete,
                np.full(n, converted),
                np.full(n, engaged),
                np.full(n, a != 0),
                np.full(n, opt_bit if opted else 0, np.int64),
                np.full(n, a, np.int64),
                np.full(n, lasting[a], np.int64),
                np.full(n, channel[a], np.int64),
                len(world.channels),
            )
            out[a, o] = layout.encode(nxt)
    return out


def outcome_model(
    world: WorldSpec,
    states: Summary,
    next_state: NDArray[np.signedinteger],
    week_of_year: int,
    index: NDArray[np.integer] | None = None,
) -> Transitions:
    """Rewards and outcome probabilities of every (state, action) in a week of the year.

    ``index``: the states' indices (:meth:`DiscreteLayout.encode` of ``states``), when the
    caller has them: a calibrated world then reads its tables' rows directly, every action
    at once (the same numbers, without encoding the summaries once per action)."""
    if world.responses is not None and index is not None:
        return _fitted_outcome_model(world, np.asarray(index, np.int64), next_state, week_of_year)
    n = states.segment.shape[0]
    n_actions = world.actions.n_actions
    reward, convert, engage, optout = (np.empty((n_actions, n)) for _ in range(4))
    for a in range(n_actions):
        actions = np.full(n, a)
        r = response_probabilities(world, states, actions, week_of_year)
        reward[a] = expected_reward(world, r, actions)
        convert[a], engage[a], optout[a] = r.convert, r.engage, r.optout
    return Transitions(next_state, reward, convert, engage, optout)


def _fitted_outcome_model(
    world: WorldSpec, index: IntArray, next_state: NDArray[np.signedinteger], week_of_year: int
) -> Transitions:
    """:func:`outcome_model` of a calibrated world's states ``index``: its fitted tables'
    rows (:func:`~journeyopt.sim.dynamics.fitted_responses` and
    :func:`~journeyopt.sim.dynamics.expected_reward`, element for element), read from the
    tables' action-major copies (:func:`_action_major`) so each action's row is contiguous."""
    world.require_identified_actions("search for, optimise or score a contact policy")
    fitted = world.responses
    assert fitted is not None
    convert_logit, engage_contact, optout = _action_major(fitted)
    n_rows = convert_logit.shape[1]
    every = index.shape[0] == n_rows and bool(np.all(index == np.arange(n_rows)))
    rows = slice(None) if every else index
    convert = sigmoid(convert_logit[:, rows] + fitted.convert_season[week_of_year])
    inquiry = sigmoid(fitted.engage_logit[rows, 0] + fitted.engage_season[week_of_year])
    engage = 1.0 - (1.0 - engage_contact[:, rows]) * (1.0 - inquiry)
    value = np.asarray(fitted.value[rows], np.float64)
    margin = world.margin_rate - world.actions.discount_rates
    reward = convert * value * margin[:, None] - world.params.cost[:, None]
    return Transitions(next_state, reward, convert, engage, np.asarray(optout[:, rows]))


def _action_major(fitted: FittedResponses) -> tuple[Float, Float, Float]:
    """(A, n) contiguous copies of the conversion logits, the contacts' own engagement
    (:func:`~journeyopt.sim.dynamics.contact_engagement`) and the opt-out probabilities of a
    world's tables, made once per tables (the DP reads them every week of every member)."""
    cached = _ACTION_MAJOR.get(fitted)
    if cached is not None:
        return cached

    def major(table: NDArray[np.floating]) -> Float:
        return np.ascontiguousarray(np.asarray(table, np.float64).T)

    made = (major(fitted.convert_logit), major(contact_engagement(fitted)), major(fitted.optout))
    _ACTION_MAJOR[fitted] = made
    return made


_ACTION_MAJOR: weakref.WeakKeyDictionary[FittedResponses, tuple[Float, Float, Float]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class OptimalPolicy:
    """The exact optimum of a world over a finite horizon.

    Attributes:
        layout: How discrete states are numbered.
        values: (H + 1, n_states) optimal expected discounted return from episode week ``t``
            on, currency; ``values[H] == 0``.
        actions: (H, n_states) optimal action in episode week ``t`` (ties go to the lowest
            action index, so ``none`` wins ties).
        gamma: Weekly discount factor.
        weeks_of_year: (H,) ISO week of year of each episode week.
        rules: The contact rules the plan obeys, in one line (``ContactRules.summary`` of
            their representable part; ``opt-outs only``: the world's own rule).
        unseen_rules: The contact rules the plan did not see, each with the reason (the
            summary cannot evaluate them, :func:`journeyopt.sim.summary_rules.plan_rules`):
            they still apply at execution, where a planned contact they forbid becomes
            ``none``. Empty: the plan obeys every rule it is served under.
    """

    layout: DiscreteLayout
    values: Float
    actions: NDArray[np.int8]
    gamma: float
    weeks_of_year: IntArray
    rules: str = "opt-outs only"
    unseen_rules: tuple[str, ...] = ()

    @property
    def horizon_weeks(self) -> int:
        return int(self.actions.shape[0])

    def optimal_actions(self, discrete_states: NDArray[np.integer], week: int) -> IntArray:
        """(N,) optimal actions of customers in ``discrete_states`` (N,) at episode week
        ``week`` (0-based, ``< horizon_weeks``)."""
        return self.actions[week, np.asarray(discrete_states, np.int64)].astype(np.int64)

    def value(self, discrete_states: NDArray[np.integer], week: int = 0) -> Float:
        """(N,) optimal expected discounted return from episode week ``week`` on."""
        return self.values[week, np.asarray(discrete_states, np.int64)]


def _backward(
    world: WorldSpec,
    gamma: float,
    weeks_of_year: IntArray,
    choose: Callable[[Float, int], tuple[Float, IntArray]],
    states: Summary | None = None,
    members: Sequence[WorldSpec] = (),
    pessimism: float = 0.0,
) -> tuple[Float, NDArray[np.int8]]:
    layout = DiscreteLayout.of(world)
    states = layout.all_states() if states is None else states  # every state, in index order
    index = np.arange(layout.n_states)
    nxt = next_states(world, layout, states)
    horizon = int(weeks_of_year.shape[0])
    values = np.zeros((horizon + 1, layout.n_states))
    actions = np.zeros((horizon, layout.n_states), np.int8)
    pessimistic = plans_pessimistically(len(members), pessimism)
    for t in range(horizon - 1, -1, -1):
        week = int(weeks_of_year[t])
        q = outcome_model(world, states, nxt, week, index).q_values(values[t + 1], gamma)
        if pessimistic:
            q -= pessimism * _members_sd(members, states, nxt, week, values[t + 1], gamma, index)
        values[t], chosen = choose(q, t)
        actions[t] = chosen
    return values, actions


def plans_pessimistically(n_members: int, pessimism: float) -> bool:
    """Whether a plan with ``n_members`` ensemble members and ``pessimism`` discounts any
    (state, action): a positive pessimism and at least two members (a spread needs two)."""
    return pessimism > 0.0 and n_members >= 2


def _members_sd(
    members: Sequence[WorldSpec],
    states: Summary,
    nxt: NDArray[np.signedinteger],
    week_of_year: int,
    v_next: Float,
    gamma: float,
    index: IntArray | None = None,
) -> Float:
    """(A, n_states) standard deviation over ``members`` (two or more; ``ddof = 1``) of
    their one-step backups of the same ``v_next``, accumulated one member at a time
    (Welford: one (A, n) array per member at a time, not all of them)."""

    def backup(member: WorldSpec) -> Float:
        return outcome_model(member, states, nxt, week_of_year, index).q_values(v_next, gamma)

    first, *rest = members
    mean = backup(first)
    square = np.zeros_like(mean)
    for k, member in enumerate(rest, start=2):
        q = backup(member)
        delta = q - mean
        mean = mean + delta / k
        square += delta * (q - mean)
    return np.sqrt(square / (len(members) - 1))


def weekly_allowed(
    world: WorldSpec, states: Summary, weeks_of_year: IntArray, rules: PlannedRules | None
) -> Callable[[int], NDArray[np.bool_]]:
    """``allowed(t)``: the (n, A) actions allowed in episode week ``t`` for ``states`` (n,):
    the world's own rule (:func:`~journeyopt.sim.discrete.allowed_actions`), and with
    ``rules`` their representable part evaluated on the summaries (one mask per distinct
    quiet-week key, :func:`~journeyopt.sim.summary_rules.rule_masks`)."""
    own = allowed_actions(states, world)
    if rules is None:
        return lambda t: own
    by_key = {k: own & m for k, m in rule_masks(rules, states, weeks_of_year).items()}
    return lambda t: by_key[rules.week_key(int(weeks_of_year[t]))]


def solve_optimum(
    world: WorldSpec,
    horizon_weeks: int,
    gamma: float,
    weeks_of_year: IntArray | None = None,
    rules: ContactRules | None = None,
    members: Sequence[WorldSpec] = (),
    pessimism: float = 0.0,
) -> OptimalPolicy:
    """Backward induction over all discrete states (see the module docstring).

    Args:
        world: The world.
        horizon_weeks: Episode length ``H``, weeks.
        gamma: Weekly discount factor in (0, 1].
        weeks_of_year: (H,) ISO week of year of each episode week; default weeks 1, 2, ...
        rules: The contact rules the policy is served under: the plan obeys the ones the
            summary represents (:func:`~journeyopt.sim.summary_rules.plan_rules`; the
            ``max`` over the actions they allow in each state and week) and names the others
            in :attr:`OptimalPolicy.unseen_rules`. None: the world's own rule (opt-outs and
            unsupported actions), as before.
        members: The world's ensemble (worlds of the same structure, e.g. a calibrated
            world's bootstrap refits) whose spread the plan is pessimistic about; fewer than
            two: none.
        pessimism: Standard deviations of the members' one-step backups each (state,
            action) is valued below the world's own (>= 0; 0: the plain optimum). The
            returned ``values`` are then these pessimistic values, not the world's expected
            returns of the plan (:func:`evaluate_table_policy` gives those).
    """
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    woy = cyclic_weeks_of_year(1, horizon_weeks) if weeks_of_year is None else weeks_of_year
    woy = np.asarray(woy, np.int64)
    if woy.shape != (horizon_weeks,):
        raise ValueError(f"weeks_of_year must have shape ({horizon_weeks},), got {woy.shape}")
    if not pessimism >= 0.0:
        raise ValueError(f"pessimism must be >= 0, got {pessimism}")
    layout = DiscreteLayout.of(world)
    for member in members:
        if DiscreteLayout.of(member) != layout or member.actions.names != world.actions.names:
            raise ValueError("every member must have the world's discrete states and actions")
    states = layout.all_states()
    planned = plan_rules(rules, world) if rules is not None else None
    allowed = weekly_allowed(world, states, woy, planned)

    def best(q: Float, t: int) -> tuple[Float, IntArray]:
        q = np.where(allowed(t).T, q, -np.inf)
        chosen = np.argmax(q, axis=0)
        return q[chosen, np.arange(q.shape[1])], chosen

    values, actions = _backward(world, gamma, woy, best, states, members, pessimism)
    if planned is None:
        return OptimalPolicy(layout, values, actions, gamma, woy)
    return OptimalPolicy(
        layout, values, actions, gamma, woy, planned.rules.summary(), planned.unseen
    )


def evaluate_table_policy(
    world: WorldSpec,
    policy: TablePolicy,
    gamma: float,
    weeks_of_year: IntArray,
    rules: ContactRules | None = None,
) -> Float:
    """Exact expected discounted return of a policy over summaries: (H + 1, n_states).

    ``policy(summaries, t)`` gives the action of every state in episode week ``t``; actions on
    an opted-out channel are carried out as ``none``, as in the dynamics, and so are actions
    ``rules`` forbid (their guard, evaluated on the summaries).

    Raises:
        ValueError: ``rules`` hold a rule the summary cannot evaluate (no exact value then).
    """
    woy = np.asarray(weeks_of_year, np.int64)
    states = DiscreteLayout.of(world).all_states()
    planned = plan_rules(rules, world) if rules is not None else None
    if planned is not None and planned.unseen:
        raise ValueError(
            "no exact value under rules the summary cannot evaluate: " + "; ".join(planned.unseen)
        )
    allowed = weekly_allowed(world, states, woy, planned)
    index = np.arange(states.segment.shape[0])

    def follow(q: Float, t: int) -> tuple[Float, IntArray]:
        a = np.asarray(policy(states, t), np.int64)
        a = np.where(allowed(t)[index, a], a, 0)
        return q[a, index], a

    values, _ = _backward(world, gamma, woy, follow, states)
    return values
