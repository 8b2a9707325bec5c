"""The direct method's projection of a target far from the logging policy: with a rollout of
the target in the model world, the true world's value of the exact optimum from staff-logged
states is its exact value; from the logged states alone it is several percent too low."""

from __future__ import annotations

import numpy as np

from journeyopt.agents.baselines import OptimumPolicy
from journeyopt.agents.policy import Observation
from journeyopt.evaluation.ope.model_value import ValueModel, model_q_values, visited_states
from journeyopt.panel.state import state_features
from journeyopt.sim.behaviour import contact_rules, explore
from journeyopt.sim.config import shipped_practice
from journeyopt.sim.discrete import discrete_state
from journeyopt.sim.env import EpisodeClock, step_customers
from journeyopt.sim.optimum import solve_optimum
from journeyopt.sim.population import initial_population
from journeyopt.sim.world import load_world

WEEKS = 6
GAMMA = 0.995
CUSTOMERS = 3000


def test_rollout_projection_values_a_distant_target_exactly() -> None:
    world = load_world("coworking")
    rules = contact_rules(world)
    clock = EpisodeClock.of(WEEKS, 1)
    weeks = clock.weeks_of_year[:WEEKS]
    optimum = solve_optimum(world, WEEKS, GAMMA, weeks)
    target_policy = OptimumPolicy(world, optimum)
    pop_seed, world_seed, policy_seed = np.random.SeedSequence(5).spawn(3)
    state, customers, _ = initial_population(world, CUSTOMERS, np.random.default_rng(pop_seed))
    segment = customers.segment.astype(np.int64)
    world_rng, policy_rng = np.random.default_rng(world_seed), np.random.default_rng(policy_seed)
    staff = shipped_practice("coworking").to_practice()
    features, target = [], []
    for t in range(WEEKS):  # states logged under the staff rules with 5 % exploration
        f = state_features(state, world.features)
        masks = rules.masks(f)
        seen = Observation(f, segment, int(weeks[t]), t, world.segment_names)
        target.append(target_policy.act(seen, masks, policy_rng)[1])
        logged, _ = explore(staff.actions(world, f, segment, t), masks, 0.05, policy_rng)
        step = step_customers(world, state, f, segment, masks, logged, int(weeks[t]), world_rng)
        features.append(f)
        state = step.state
    grid = {k: np.stack([f[k] for f in features], axis=1) for k in world.features.feature_names}
    probs = np.stack(target, axis=1)
    exact = float(np.mean(optimum.value(discrete_state(features[0], segment, world), 0)))
    model = ValueModel(world)

    def direct_value(q: np.ndarray) -> float:
        return float(np.mean((probs[:, 0] * q[:, 0]).sum(axis=1)))

    visited = visited_states(model, target_policy, rules, 2000, weeks, seed=0)
    with_rollout = direct_value(
        model_q_values(model, grid, segment, weeks, probs, GAMMA, None, visited)
    )
    logged_only = direct_value(model_q_values(model, grid, segment, weeks, probs, GAMMA))
    assert abs(with_rollout - exact) / exact < 0.01  # measured: -0.5 %
    assert (exact - logged_only) / exact > 0.02  # measured: -10 %
