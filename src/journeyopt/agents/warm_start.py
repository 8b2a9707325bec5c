"""Warm start by behaviour cloning from the world's exact DP optimum.

Customers are simulated under the optimum (:class:`~journeyopt.agents.baselines.OptimumPolicy`)
in the population env; every customer-week gives an example (observation vector, masks,
optimal action, optimal value-to-go ``V*_t(s)``). The actor is fitted by maximum likelihood
to the optimal actions and the critic by least squares to ``reward_scale * V*_t(s)``, the
exact finite-horizon value the critic would otherwise have to learn (scaled like the
agent's rewards). Reinforcement learning
then starts from a near-optimal policy with a calibrated critic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from sb3_contrib import MaskablePPO
from stable_baselines3.common.base_class import BaseAlgorithm

from journeyopt.agents.baselines import OptimumPolicy
from journeyopt.agents.config import WarmStartConfig
from journeyopt.agents.policy import Observation
from journeyopt.sim.discrete import discrete_state
from journeyopt.sim.optimum import OptimalPolicy
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.vec_env import PopulationVecEnv
from journeyopt.sim.world import WorldSpec


@dataclass(frozen=True)
class Demonstrations:
    """``M`` customer-weeks under the optimum.

    Attributes:
        observations: (M, D) float32 observation vectors.
        masks: (M, A) allowed actions.
        actions: (M,) the optimum's actions.
        values: (M,) optimal expected discounted return from that week on, currency.
        segment: (M,) customer type index.
    """

    observations: NDArray[np.float32]
    masks: NDArray[np.bool_]
    actions: NDArray[np.int64]
    values: NDArray[np.float64]
    segment: NDArray[np.int64]


def demonstrations(
    world: WorldSpec,
    optimum: OptimalPolicy,
    n_customers: int,
    start_week_of_year: int,
    pool_size: int,
    seed: int,
    rules: ContactRules | None = None,
) -> Demonstrations:
    """Simulate ``n_customers`` customers for the optimum's horizon under the optimum, within
    ``rules`` (default the world's own): a forbidden optimal action is demonstrated as
    ``none``, so the clone learns only contacts the rules allow."""
    env = PopulationVecEnv(
        world,
        n_customers,
        optimum.horizon_weeks,
        start_week_of_year,
        pool_size=pool_size,
        seed=seed,
        rules=rules,
    )
    policy = OptimumPolicy(world, optimum)
    obs = np.ascontiguousarray(env.reset())
    observations, all_masks, all_actions, all_values, segments = [], [], [], [], []
    rng = np.random.default_rng(seed)
    for week in range(optimum.horizon_weeks):
        woy = int(optimum.weeks_of_year[week])
        masks = env.action_masks().copy()
        seen = Observation(env.features, env.segment, woy, week)
        actions, _ = policy.act(seen, masks, rng)
        values = optimum.value(discrete_state(env.features, env.segment, world), week)
        observations.append(obs)
        all_masks.append(masks)
        all_actions.append(actions)
        all_values.append(values)
        segments.append(env.segment.copy())
        obs = np.ascontiguousarray(env.step(actions)[0])
    return Demonstrations(
        observations=np.concatenate(observations),
        masks=np.concatenate(all_masks),
        actions=np.concatenate(all_actions),
        values=np.concatenate(all_values),
        segment=np.concatenate(segments),
    )


def clone(
    model: BaseAlgorithm,
    demos: Demonstrations,
    settings: WarmStartConfig,
    reward_scales: NDArray[np.float32],
    seed: int,
) -> dict[str, float]:
    """Fit ``model``'s actor to the demonstrated actions and its critic to the values scaled
    like the agent's rewards (``reward_scales`` (S,) per customer type).

    Returns:
        The last epoch's mean ``train/warm_start/action_nll`` (nats) and
        ``train/warm_start/value_mse`` (squared scaled currency), and
        ``train/warm_start/accuracy`` (share of examples whose most probable action is the
        optimum's).
    """
    policy: Any = model.policy
    masked = isinstance(model, MaskablePPO)
    optimizer = torch.optim.Adam(policy.parameters(), lr=settings.learning_rate)
    obs = torch.as_tensor(demos.observations)
    actions = torch.as_tensor(demos.actions)
    scaled = demos.values * np.asarray(reward_scales, np.float64)[demos.segment]
    targets = torch.as_tensor(scaled, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    policy.set_training_mode(True)
    nll = mse = 0.0
    for _ in range(settings.epochs):
        order = torch.randperm(obs.shape[0], generator=generator)
        totals = np.zeros(2)
        for start in range(0, obs.shape[0], settings.batch_size):
            rows = order[start : start + settings.batch_size]
            kwargs = {"action_masks": demos.masks[rows.numpy()]} if masked else {}
            values, log_prob, _ = policy.evaluate_actions(obs[rows], actions[rows], **kwargs)
            action_loss = -log_prob.mean()
            value_loss = torch.nn.functional.mse_loss(values.flatten(), targets[rows])
            optimizer.zero_grad()
            (action_loss + value_loss).backward()
            optimizer.step()
            totals += np.array([action_loss.item(), value_loss.item()]) * rows.shape[0]
        nll, mse = (totals / obs.shape[0]).tolist()
    policy.set_training_mode(False)
    return {
        "train/warm_start/action_nll": nll,
        "train/warm_start/value_mse": mse,
        "train/warm_start/accuracy": _accuracy(model, demos, masked),
    }


def _accuracy(model: BaseAlgorithm, demos: Demonstrations, masked: bool) -> float:
    policy: Any = model.policy
    with torch.no_grad():
        obs = torch.as_tensor(demos.observations)
        if masked:
            dist = policy.get_distribution(obs, action_masks=demos.masks)
        else:
            dist = policy.get_distribution(obs)
        chosen = dist.distribution.probs.argmax(dim=1).numpy()
    return float(np.mean(chosen == demos.actions))
