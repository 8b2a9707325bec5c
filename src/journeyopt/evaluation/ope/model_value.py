"""The world's value function of a target policy: the model term of the direct method and of
sequential doubly robust, over the logged weeks and, for the long-term estimators, beyond them.

The model is a world (the calibrated one, or any :class:`~journeyopt.sim.world.WorldSpec`);
its expected rewards and outcome probabilities over the discrete summary
(:func:`journeyopt.sim.optimum.outcome_model`) give, by backward induction,

    q_t(s, a) = r(s, a, t) + gamma * sum_o p(o | s, a, t) v_{t+1}(s'(s, a, o)),
    v_t(s) = sum_a pibar_t(a | s) q_t(s, a),

where ``pibar_t(. | s)`` is the target policy projected onto the discrete states: the mean of
its probabilities over the logged customers in state ``s`` in week ``t`` (states nobody was in
take the mean over the customers of the same segment and purchase history, else over all
customers; ``dm`` and ``dr`` first take the target's mean in the states a rollout of it in the
model world visits, :func:`model_q_values`). A policy that depends only on the discrete state
and week is represented exactly where its states were logged or visited; others
approximately — the doubly robust correction repairs what the projection and the model get
wrong inside the logged window, not beyond it.

Long-term values (:func:`long_term_model_values`): the logged window covers weeks ``0..H-1``
(plus the state at the start of week ``H``); the value horizon ``V >= H`` weeks (the
simulation's, e.g. 52) continues the induction over weeks ``H..V-1`` with ``v_V = 0``, weeks of
year cycling on from the logs' calendar (:func:`journeyopt.sim.optimum.cyclic_weeks_of_year`),
the target following its projection. ``v_H`` is the model's value-to-go of the remaining
``V - H`` weeks, discounted to week ``H``. The states customers reach after the window are
rarely those of the logged weeks, so the projection of week ``t >= H`` comes first from a
rollout of the target in the model world (:func:`visited_states`: simulated customers of the
world's starting population, the target's probabilities in the states they visit in week
``t``), then from the states pooled over the logged weeks and the rollout, then from the
segment-and-history means.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from journeyopt.agents.policy import Observation, Policy
from journeyopt.evaluation.simulate import CommonRandomNumbers, simulate_policy
from journeyopt.sim.behaviour import world_under_rules
from journeyopt.sim.discrete import DiscreteLayout, Summary, allowed_actions, discrete_state
from journeyopt.sim.env import EpisodeClock
from journeyopt.sim.optimum import Transitions, cyclic_weeks_of_year, next_states, outcome_model
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.world import WorldSpec

Float = NDArray[np.float64]
IntArray = NDArray[np.int64]


CACHE_BYTES = 512 * 2**20
"""Memory a :class:`ValueModel` keeps weekly outcome models in (the most recently used weeks;
a week needs ``4 x A x n_states`` floats: 52 weeks of a 717,336-state world would be 6 GB)."""


@dataclass
class ValueModel:
    """A model world's discrete dynamics, with the weekly outcome models computed once and
    reused across policies while they fit in :data:`CACHE_BYTES` (the most recently used
    weeks; others are computed again when asked for, the same numbers).

    Attributes:
        world: The model world (its segments in the logs' order).
    """

    world: WorldSpec
    layout: DiscreteLayout = field(init=False)
    states: Summary = field(init=False)
    allowed: NDArray[np.bool_] = field(init=False)
    _next: NDArray[np.signedinteger] = field(init=False)
    _weeks: OrderedDict[int, Transitions] = field(init=False, default_factory=OrderedDict)

    def __post_init__(self) -> None:
        self.layout = DiscreteLayout.of(self.world)
        self.states = self.layout.all_states()
        self.allowed = allowed_actions(self.states, self.world)
        self._next = next_states(self.world, self.layout, self.states)

    def transitions(self, week_of_year: int) -> Transitions:
        """Rewards and outcome probabilities of every (action, state) in a week of the year."""
        if week_of_year in self._weeks:
            self._weeks.move_to_end(week_of_year)
            return self._weeks[week_of_year]
        made = outcome_model(
            self.world, self.states, self._next, week_of_year, np.arange(self.layout.n_states)
        )
        week_bytes = 4 * made.reward.nbytes
        while self._weeks and (len(self._weeks) + 1) * week_bytes > CACHE_BYTES:
            self._weeks.popitem(last=False)  # the least recently used week
        if week_bytes <= CACHE_BYTES:
            self._weeks[week_of_year] = made
        return made

    def q_values(self, v_next: Float, week_of_year: int, gamma: float) -> Float:
        """(A, n_states) ``q_t`` given ``v_{t+1}`` (n_states,)."""
        return self.transitions(week_of_year).q_values(v_next, gamma)

    def logged_states(
        self, features: Mapping[str, NDArray[np.generic]], segment: IntArray
    ) -> IntArray:
        """(K, T) discrete state of each logged customer-week from (K, T) features."""
        weeks = next(iter(features.values())).shape[1]
        return np.stack(
            [
                discrete_state({n: v[:, t] for n, v in features.items()}, segment, self.world)
                for t in range(weeks)
            ],
            axis=1,
        )

    def history_group(self, states: IntArray) -> IntArray:
        """(n,) coarse key of states: segment and purchase history (conversions, recency)."""
        s = self.layout.decode(states)
        return np.asarray(s.segment * self.layout.dims[1] + _history(s, self.layout), np.int64)


def _history(s: Summary, layout: DiscreteLayout) -> IntArray:
    r_cap = layout.spec.recency_cap_weeks
    return np.where(s.conversions == 0, 0, 1 + (s.conversions - 1) * r_cap + s.recency - 1)


def _mean_by(keys: IntArray, target: Float, n_keys: int) -> tuple[Float, NDArray[np.bool_]]:
    """((n_keys, A) mean target per key, (n_keys,) whether the key was seen)."""
    sums = np.zeros((n_keys, target.shape[1]))
    np.add.at(sums, keys, target)
    counts = np.bincount(keys, minlength=n_keys).astype(np.float64)
    seen = counts > 0
    sums[seen] /= counts[seen, None]
    return sums, seen


def projected_policy(states: IntArray, target: Float, n_states: int) -> Float:
    """(n_states, A) mean target probabilities per discrete state; unseen states take the
    mean over all customers.

    Args:
        states: (K,) discrete state of each customer in one week.
        target: (K, A) target probabilities of each customer.
        n_states: Number of discrete states.
    """
    means, seen = _mean_by(states, target, n_states)
    out = np.broadcast_to(target.mean(axis=0), means.shape).copy()
    out[seen] = means[seen]
    return out


def _carry_out(model: ValueModel, policy: Float) -> Float:
    """(n_states, A) ``policy`` with the mass of opted-out channels moved to ``none``."""
    moved = np.where(model.allowed, 0.0, policy).sum(axis=1)
    out = np.where(model.allowed, policy, 0.0)
    out[:, 0] += moved
    return out


def masked_probabilities(probs: Float, masks: NDArray[np.bool_]) -> Float:
    """(N, A) ``probs`` with the mass of forbidden actions moved to ``none`` (the serving
    guard carries a forbidden request out as ``none``)."""
    allowed = np.where(masks, probs, 0.0)
    allowed[:, 0] += np.where(masks, 0.0, probs).sum(axis=1)
    return allowed


def visited_states(
    model: ValueModel,
    policy: Policy,
    rules: ContactRules,
    n_customers: int,
    weeks_of_year: IntArray,
    seed: int,
) -> tuple[IntArray, Float]:
    """Roll ``n_customers`` of the model world's starting population forward under ``policy``.

    Args:
        model: The model world.
        policy: The target policy (guarded by ``rules``).
        rules: The contact rules serving applies (the logs' masks' rules,
            :attr:`~journeyopt.evaluation.ope.logged.LoggedTrajectories.rules`): the
            projection after the window then holds the policy as served. With the world's own
            rules (opt-outs only) a policy that asks for a contact every week is valued as if
            the frequency caps did not exist: on a calibrated roastery world, always calling
            made 0.463 contacts per customer-week instead of serving's 0.234 and was valued at
            -16.4 per customer over 26 weeks instead of +4.4.
        n_customers: Simulated customers.
        weeks_of_year: (W,) ISO week of year of each simulated week.
        seed: Seed of the population, the world and the policy.

    Returns:
        ``(states, probs)``: (W, N) discrete state of each customer at the start of each week
        and (W, N, A) the policy's masked probabilities there.
    """
    world = world_under_rules(model.world, rules)  # its state counts what the rules read
    common = CommonRandomNumbers.of(seed)
    weeks = weeks_of_year.shape[0]
    state, segment = common.customers(world, n_customers, weeks)
    recorder = _StateRecorder(policy, model.world)  # states in the model's layout
    clock = EpisodeClock(weeks, np.append(weeks_of_year, weeks_of_year[-1]))
    simulate_policy(world, recorder, state, segment, clock, 1.0, *common.generators(), rules)
    return np.stack(recorder.states), np.stack(recorder.probs)


@dataclass
class _StateRecorder:
    """Passes ``inner``'s choices through and records, each week, every customer's discrete
    state and ``inner``'s masked probabilities."""

    inner: Policy
    world: WorldSpec
    states: list[IntArray] = field(default_factory=list)
    probs: list[Float] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.inner.name

    def act(
        self, observation: Observation, masks: NDArray[np.bool_], rng: np.random.Generator
    ) -> tuple[IntArray, Float]:
        actions, p = self.inner.act(observation, masks, rng)
        self.states.append(discrete_state(observation.features, observation.segment, self.world))
        self.probs.append(masked_probabilities(p, masks))
        return actions, p


def pooled_projection(model: ValueModel, states: IntArray, target: Float) -> Float:
    """(n_states, A) the target projected onto every discrete state from (n,) logged states
    and their (n, A) probabilities: the state's mean where logged, else the mean of its
    segment and purchase history, else the overall mean; actions on an opted-out channel are
    carried out as ``none`` (as in the dynamics)."""
    n_states = model.layout.n_states
    out = projected_policy(states, target, n_states)
    _, seen = _mean_by(states, target, n_states)
    groups = model.history_group(np.arange(n_states))
    n_groups = int(groups.max()) + 1
    group_means, group_seen = _mean_by(groups[states], target, n_groups)
    fill = ~seen & group_seen[groups]
    out[fill] = group_means[groups[fill]]
    return _carry_out(model, out)


def model_q_values(
    world: WorldSpec | ValueModel,
    features: Mapping[str, NDArray[np.generic]],
    segment: IntArray,
    week_of_year: IntArray,
    target: Float,
    gamma: float,
    terminal: Float | None = None,
    visited: tuple[IntArray, Float] | None = None,
) -> Float:
    """(K, H, A) ``q_t(x_kt, a)`` of the model ``world`` in the logged states (see the module
    docstring).

    The target's projection in week ``t`` is its mean over the customers logged in each state
    that week. States nobody was logged in take, without ``visited``, the mean over all logged
    customers of the week; with ``visited``, the target's mean over the rollout's customers in
    that state and week, else the pooled projection (:func:`pooled_projection` over the logged
    and visited states of every week). A target far from the logging policy reaches states
    the logs rarely hold in later weeks: without ``visited`` the direct method's value of the
    coworking optimum over 8 weeks from 5,000 staff-logged customers is about 8 % too low.

    Args:
        world: The model world (its segments in the logs' order), or its :class:`ValueModel`.
        features: Feature name -> (K, H) logged features.
        segment: (K,) segment index.
        week_of_year: (H,) ISO week of year of each week.
        target: (K, H, A) target probabilities in the logged states.
        gamma: Weekly discount factor.
        terminal: (n_states,) ``v_H``, the value-to-go after the last logged week, currency;
            None: 0 (the value ends with the logged weeks).
        visited: ``(states, probs)`` of :func:`visited_states` over at least the ``H``
            logged weeks, or None (see above).
    """
    model = world if isinstance(world, ValueModel) else ValueModel(world)
    n_states = model.layout.n_states
    logged = model.logged_states(features, segment)
    k, h, n_actions = target.shape
    if visited is not None and visited[0].shape[0] < h:
        raise ValueError(f"visited must cover the {h} logged weeks")
    pooled = None
    if visited is not None:
        pooled = pooled_projection(
            model,
            np.concatenate([logged.reshape(-1), visited[0][:h].reshape(-1)]),
            np.concatenate([target.reshape(-1, n_actions), visited[1][:h].reshape(-1, n_actions)]),
        )
    out = np.empty((k, h, n_actions))
    v_next = np.zeros(n_states) if terminal is None else terminal
    for t in range(h - 1, -1, -1):
        q = model.q_values(v_next, int(week_of_year[t]), gamma)  # (A, n_states)
        pibar = projected_policy(logged[:, t], target[:, t], n_states)
        if visited is not None and pooled is not None:
            _, seen = _mean_by(logged[:, t], target[:, t], n_states)
            rollout, in_rollout = _mean_by(visited[0][t], visited[1][t], n_states)
            fill = np.where(in_rollout[:, None], _carry_out(model, rollout), pooled)
            pibar = np.where(seen[:, None], pibar, fill)
        v_next = (pibar * q.T).sum(axis=1)
        out[:, t] = q[:, logged[:, t]].T
    return out


def continuation_values(
    model: ValueModel, policies: list[Float], weeks_of_year: IntArray, gamma: float
) -> Float:
    """(n_states,) the model's expected discounted return over ``weeks_of_year`` (W,) weeks
    following ``policies[t]`` (n_states, A) in week ``t``, from the first week, currency (0
    when W = 0)."""
    v = np.zeros(model.layout.n_states)
    for t in range(weeks_of_year.shape[0] - 1, -1, -1):
        q = model.q_values(v, int(weeks_of_year[t]), gamma)
        v = (policies[t] * q.T).sum(axis=1)
    return v


def long_term_model_values(
    world: WorldSpec | ValueModel,
    features: Mapping[str, NDArray[np.generic]],
    segment: IntArray,
    week_of_year: IntArray,
    target: Float,
    gamma: float,
    value_horizon_weeks: int,
    visited: tuple[IntArray, Float] | None = None,
) -> tuple[Float, Float]:
    """The model's long-term values over a window of ``H`` logged weeks (see the module
    docstring).

    Args:
        world: The model world (its segments in the logs' order), or its :class:`ValueModel`.
        features: Feature name -> (K, H + 1) logged features (week ``H``: the state after the
            window).
        segment: (K,) segment index.
        week_of_year: (H + 1,) ISO week of year of each logged week.
        target: (K, H + 1, A) target probabilities in the logged states.
        gamma: Weekly discount factor.
        value_horizon_weeks: ``V >= H``, weeks of the value from week 0.
        visited: ``(states, probs)`` of :func:`visited_states` over weeks ``0..V-1`` (the
            target's probabilities in the states a rollout visits), or None: the projection
            after the window comes from the logged weeks alone.

    Returns:
        ``(q, terminal)``: (K, H, A) ``q_t(x_kt, a)`` including the value-to-go, and (K,)
        ``v_H(x_kH)`` in the logged states after the window, currency.
    """
    model = world if isinstance(world, ValueModel) else ValueModel(world)
    h_plus = target.shape[1]
    h = h_plus - 1
    if h < 1:
        raise ValueError("the long-term values need at least one logged week plus the next")
    if value_horizon_weeks < h:
        raise ValueError(
            f"value_horizon_weeks ({value_horizon_weeks}) must be >= the window ({h} weeks)"
        )
    logged = model.logged_states(features, segment)
    n_actions = target.shape[2]
    pool_states, pool_probs = logged.reshape(-1), target.reshape(-1, n_actions)
    if visited is not None:
        if visited[0].shape[0] < value_horizon_weeks:
            raise ValueError(f"visited must cover the {value_horizon_weeks} weeks of the value")
        pool_states = np.concatenate([pool_states, visited[0].reshape(-1)])
        pool_probs = np.concatenate([pool_probs, visited[1].reshape(-1, n_actions)])
    pooled = pooled_projection(model, pool_states, pool_probs)
    policies = []
    for t in range(h, value_horizon_weeks):
        if visited is None:
            policies.append(pooled)
            continue
        means, seen = _mean_by(visited[0][t], visited[1][t], model.layout.n_states)
        policies.append(_carry_out(model, np.where(seen[:, None], means, pooled)))
    later = cyclic_weeks_of_year(int(week_of_year[h]), value_horizon_weeks - h)
    v_h = continuation_values(model, policies, later, gamma)
    window = {n: np.asarray(v)[:, :h] for n, v in features.items()}
    q = model_q_values(model, window, segment, week_of_year[:h], target[:, :h], gamma, v_h)
    return q, v_h[logged[:, h]]
