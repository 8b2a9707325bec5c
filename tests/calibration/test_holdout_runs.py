"""Hold-out simulations start from the same customers' state: a run must not change it (the
walk advances in place; a state sharing the ring buffers leaked one run's contacts into the
next, which a summary with a contact pattern refused as an impossible state)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from journeyopt.calibration.estimate import Structure
from journeyopt.calibration.holdout import simulate_holdout
from journeyopt.panel.state import CustomerState, advance
from journeyopt.sim.discrete import DiscreteLayout
from journeyopt.sim.dynamics import sample_week
from journeyopt.sim.world import load_world


def test_a_holdout_run_leaves_the_starting_state_untouched() -> None:
    base = load_world("coworking")
    world = replace(
        base,
        features=replace(base.features.with_rule_features((2,), ()), recent_contacts=True),
        discrete=replace(base.discrete, contact_pattern_weeks=2),
    )
    rng = np.random.default_rng(0)
    n, n_actions = 300, world.actions.n_actions
    segment = rng.integers(0, len(world.segments), n)
    state = CustomerState.new(world.features, 0, np.zeros(n, np.int64))
    for week in range(6):
        actions = rng.integers(0, n_actions, n)
        state = advance(state, sample_week(world, state, segment, actions, week + 1, rng).activity)
    before = {name: np.array(getattr(state, name), copy=True) for name in ("rule_contacts_ring",)}
    structure = Structure(
        world.name,
        world.actions,
        world.features,
        DiscreteLayout.of(world),
        world.segment_names,
        world.currency,
        world.margin_rate,
    )
    replay = rng.integers(0, n_actions, (4, n))
    for run in range(2):  # the second run would meet the first one's contacts in the rings
        simulate_holdout(world, state, segment, replay, np.arange(7, 11), structure, rng)
        for name, values in before.items():
            np.testing.assert_array_equal(getattr(state, name), values, err_msg=f"run {run}")
