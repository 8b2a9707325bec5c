"""The behaviour policy of the logs: today's practice plus uniform exploration.

Today's practice is a :class:`journeyopt.sim.practice.Practice` (declarative rules, first match
wins, each only if the action's channel is not opted out); the demo's staff rules are one such
list in the demo's configuration. With probability ``epsilon`` the action is instead drawn
uniformly from the allowed actions (those whose channel is not opted out, ``none`` included),
so the logged propensity of the chosen action ``a`` is
``(1 - epsilon) * [a == practice's action] + epsilon / n_allowed``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from journeyopt.errors import ConfigError
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.world import WorldSpec

IntArray = NDArray[np.int64]
Float = NDArray[np.float64]


def contact_rules(world: WorldSpec) -> ContactRules:
    """The world's own contact rules: opted-out channels are forbidden, and the actions the
    world cannot value (``world.unsupported_actions``) for everybody."""
    return ContactRules(world.actions, world.features, unsupported=world.unsupported_actions)


def world_under_rules(world: WorldSpec, rules: ContactRules) -> WorldSpec:
    """``world`` whose customer state also counts what ``rules`` read (their windows and
    actions, ``rules.spec``, and the feature switches either has on); ``world`` itself when
    it already does.

    Raises:
        ConfigError: ``rules`` were made for other channels or feature windows.
    """
    if rules.spec == world.features:
        return world
    if rules.spec.without_counts() != world.features.without_counts():
        raise ConfigError(
            f"the contact rules were made for the features {rules.spec.without_counts()}, "
            f"world {world.name!r} has {world.features}"
        )
    spec = world.features.counting(rules.spec)
    return world if spec == world.features else replace(world, features=spec)


def explore(
    staff: NDArray[np.integer],
    allowed: NDArray[np.bool_],
    epsilon: float,
    rng: np.random.Generator,
) -> tuple[IntArray, Float]:
    """Epsilon-uniform exploration around the staff's actions.

    Args:
        staff: (N,) staff actions (must be allowed).
        allowed: (N, A) allowed actions.
        epsilon: Exploration rate in [0, 1].
        rng: Source of randomness.

    Returns:
        ``(actions, propensities)``, each (N,): the chosen action and the probability that
        the behaviour policy chose it.
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    n = allowed.shape[0]
    staff = np.asarray(staff, np.int64)
    if not allowed[np.arange(n), staff].all():
        raise ValueError("a staff action is not allowed")
    n_allowed = allowed.sum(axis=1)
    # uniform draw among allowed actions: the k-th allowed column, k uniform
    k = np.floor(rng.random(n) * n_allowed).astype(np.int64)
    uniform = np.argmax(np.cumsum(allowed, axis=1) > k[:, None], axis=1)
    explores = rng.random(n) < epsilon
    actions = np.where(explores, uniform, staff).astype(np.int64)
    propensity = (1.0 - epsilon) * (actions == staff) + epsilon / n_allowed
    return actions, propensity.astype(np.float64)
