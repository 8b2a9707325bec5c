"""The world's value function of a target policy: the model term of the direct method and of
sequential doubly robust.

The model is a world (the calibrated one, or any :class:`~journeyopt.sim.world.WorldSpec`);
its expected rewards and outcome probabilities over the discrete summary
(:func:`journeyopt.sim.optimum.outcome_model`) give, by backward induction over the horizon,

    q_t(s, a) = r(s, a, t) + gamma * sum_o p(o | s, a, t) v_{t+1}(s'(s, a, o)),
    v_t(s) = sum_a pibar_t(a | s) q_t(s, a),

where ``pibar_t(. | s)`` is the target policy projected onto the discrete states: the mean of
its probabilities over the logged customers in state ``s`` in week ``t`` (states nobody was in
take the week's mean over all customers). A policy that depends only on the discrete state and
week is represented exactly; others approximately — the doubly robust correction repairs what
the projection and the model get wrong.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from journeyopt.sim.discrete import DiscreteLayout, discrete_state
from journeyopt.sim.optimum import next_states, outcome_model
from journeyopt.sim.world import WorldSpec

Float = NDArray[np.float64]
IntArray = NDArray[np.int64]


def projected_policy(states: IntArray, target: Float, n_states: int) -> Float:
    """(n_states, A) mean target probabilities per discrete state.

    Args:
        states: (K,) discrete state of each customer in one week.
        target: (K, A) target probabilities of each customer.
        n_states: Number of discrete states.
    """
    sums = np.zeros((n_states, target.shape[1]))
    np.add.at(sums, states, target)
    counts = np.bincount(states, minlength=n_states).astype(np.float64)
    fallback = target.mean(axis=0)
    seen = counts > 0
    out = np.broadcast_to(fallback, sums.shape).copy()
    out[seen] = sums[seen] / counts[seen, None]
    return out


def model_q_values(
    world: WorldSpec,
    features: dict[str, NDArray[np.generic]],
    segment: IntArray,
    week_of_year: IntArray,
    target: Float,
    gamma: float,
) -> Float:
    """(K, H, A) ``q_t(x_kt, a)`` of the model ``world`` in the logged states (see the module
    docstring).

    Args:
        world: The model world (its segments in the logs' order).
        features: Feature name -> (K, H) logged features.
        segment: (K,) segment index.
        week_of_year: (H,) ISO week of year of each week.
        target: (K, H, A) target probabilities in the logged states.
        gamma: Weekly discount factor.
    """
    layout = DiscreteLayout.of(world)
    all_states = layout.all_states()
    nxt = next_states(world, layout, all_states)
    k, h, n_actions = target.shape
    logged_states = np.stack(
        [
            discrete_state({n: v[:, t] for n, v in features.items()}, segment, world)
            for t in range(h)
        ],
        axis=1,
    )
    out = np.empty((k, h, n_actions))
    v_next = np.zeros(layout.n_states)
    for t in range(h - 1, -1, -1):
        m = outcome_model(world, all_states, nxt, int(week_of_year[t]))
        q = m.reward + gamma * (m.prob * v_next[m.next_state]).sum(axis=1)  # (A, n_states)
        pibar = projected_policy(logged_states[:, t], target[:, t], layout.n_states)
        v_next = (pibar * q.T).sum(axis=1)
        out[:, t] = q[:, logged_states[:, t]].T
    return out
