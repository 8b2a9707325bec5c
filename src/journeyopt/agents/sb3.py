"""Stable-baselines3 agents on the vectorised population env, and trained agents behind the
:class:`~journeyopt.agents.policy.Policy` interface.

- :func:`make_training_env`: the :class:`~journeyopt.sim.vec_env.PopulationVecEnv` wrapped for
  training (finite horizon, episode statistics, reward scaling).
- :func:`make_model` / :func:`load_checkpoint`: a PPO, A2C, DQN or MaskablePPO agent from an
  :class:`~journeyopt.agents.config.AgentConfig`, new or from a checkpoint.
- :class:`LearnedPolicy`: a trained agent as a :class:`~journeyopt.agents.policy.Policy`, so
  the evaluation runs it exactly like the baselines and the optimum.
- :func:`policy_spec`: the served policy's actions and observation columns.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from sb3_contrib import MaskablePPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from journeyopt.agents.config import A2CConfig, AgentConfig, DQNConfig, OnPolicyConfig, PPOConfig
from journeyopt.agents.policy import Bool, Float, IntArray, Observation
from journeyopt.sim.observation import ObservationLayout
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.vec_env import PopulationVecEnv
from journeyopt.sim.world import WorldSpec
from journeyopt.tracking.model import PolicySpec
from journeyopt.tracking.sb3_policy import ALGORITHMS, SB3Policy

Float32 = NDArray[np.float32]


class FiniteHorizon(VecEnvWrapper):
    """Marks the end of an episode as a true end (no ``TimeLimit.truncated``), so SB3 does not
    bootstrap from the last state's value: the objective is the return up to the horizon."""

    def reset(self) -> VecEnvObs:
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        if dones.any():
            for info in infos:
                info.pop("TimeLimit.truncated", None)
        return obs, rewards, dones, infos


class ScaleReward(VecEnvWrapper):
    """Multiplies each customer's reward (currency) by the scale of its customer type, so
    value targets are of order one (and, with balanced scales, every customer type weighs
    alike in the policy gradient: a customer's type is fixed and observed, so a per-type
    factor changes no type's optimal policy).

    Args:
        venv: The wrapped env.
        population: The population env inside ``venv`` (its customers' types).
        scales: (S,) factor per customer type.
    """

    def __init__(self, venv: VecEnv, population: PopulationVecEnv, scales: Float32) -> None:
        super().__init__(venv)
        self.population = population
        self.scales = np.asarray(scales, np.float32)
        self._segment = population.segment

    def reset(self) -> VecEnvObs:
        return self.venv.reset()

    def step_async(self, actions: np.ndarray) -> None:
        # the customers acted on now; an auto-reset inside the step replaces the array
        self._segment = self.population.segment
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        return obs, rewards * self.scales[self._segment], dones, infos


def make_training_env(
    world: WorldSpec,
    n_customers: int,
    horizon_weeks: int,
    start_week_of_year: int,
    reward_scales: Float32,
    *,
    pool_size: int = 10_000,
    seed: int = 0,
    bootstrap_at_horizon: bool = False,
    population: PopulationVecEnv | None = None,
    rules: ContactRules | None = None,
) -> tuple[VecEnv, PopulationVecEnv]:
    """The training env and the population env inside it.

    Wrapping order: population -> :class:`FiniteHorizon` (unless ``bootstrap_at_horizon``) ->
    ``VecMonitor`` (episode returns in currency, SB3's ``rollout/ep_rew_mean``) ->
    :class:`ScaleReward`. Masks pass through (``env_method("action_masks")``); call
    ``reset()`` before reading the population's features.

    Args:
        world: The world.
        n_customers: Customers stepped at once.
        horizon_weeks: Episode length, weeks.
        start_week_of_year: ISO week of year of an episode's first week.
        reward_scales: (S,) factor on the rewards of each customer type seen by the agent.
        pool_size: Initial customers that episodes draw from (pool seed fixed at 0).
        seed: Seed of the population's random numbers.
        bootstrap_at_horizon: Keep the time-limit flag at the horizon.
        population: A population env built by the caller (e.g. a calibrated world's
            :class:`~journeyopt.calibration.ensemble.EnsembleVecEnv`, a member per episode);
            the arguments above then only describe it. Default: a new
            :class:`PopulationVecEnv` of ``world``.
        rules: Contact rules giving the action masks the agent learns under (the rules it
            will be served under); default the world's own (opt-outs only).
    """
    if population is None:
        population = PopulationVecEnv(
            world,
            n_customers,
            horizon_weeks,
            start_week_of_year,
            pool_size=pool_size,
            seed=seed,
            rules=rules,
        )
    env: VecEnv = population if bootstrap_at_horizon else FiniteHorizon(population)
    env = ScaleReward(VecMonitor(env), population, reward_scales)
    return env, population


def _activation(name: str) -> type[torch.nn.Module]:
    classes: dict[str, type[torch.nn.Module]] = {
        "tanh": torch.nn.Tanh,
        "relu": torch.nn.ReLU,
        "elu": torch.nn.ELU,
        "leaky_relu": torch.nn.LeakyReLU,
    }
    return classes[name]


def _learning_rate(agent: AgentConfig) -> LinearSchedule:
    return LinearSchedule(agent.learning_rate, agent.learning_rate_final, 1.0)


def _on_policy_kwargs(agent: OnPolicyConfig) -> dict[str, Any]:
    return {
        "n_steps": agent.n_steps,
        "gae_lambda": agent.gae_lambda,
        "ent_coef": agent.ent_coef,
        "vf_coef": agent.vf_coef,
        "max_grad_norm": agent.max_grad_norm,
    }


def _algorithm_kwargs(agent: AgentConfig) -> dict[str, Any]:
    """The algorithm-specific constructor arguments of ``agent``."""
    if isinstance(agent, PPOConfig):
        return {
            **_on_policy_kwargs(agent),
            "batch_size": agent.batch_size,
            "n_epochs": agent.n_epochs,
            "clip_range": agent.clip_range,
            "target_kl": agent.target_kl,
        }
    if isinstance(agent, A2CConfig):
        return {
            **_on_policy_kwargs(agent),
            "use_rms_prop": agent.use_rms_prop,
            "normalize_advantage": agent.normalize_advantage,
        }
    if isinstance(agent, DQNConfig):
        return {
            "buffer_size": agent.buffer_size,
            "learning_starts": agent.learning_starts,
            "batch_size": agent.batch_size,
            "tau": agent.tau,
            "train_freq": agent.train_freq,
            "gradient_steps": agent.gradient_steps,
            "target_update_interval": agent.target_update_interval,
            "exploration_fraction": agent.exploration_fraction,
            "exploration_initial_eps": agent.exploration_initial_eps,
            "exploration_final_eps": agent.exploration_final_eps,
        }
    raise TypeError(f"no SB3 arguments for {type(agent).__name__}")


def make_model(agent: AgentConfig, env: VecEnv, gamma: float, seed: int) -> BaseAlgorithm:
    """A new SB3 agent of ``agent.algorithm`` on ``env`` (CPU).

    Args:
        agent: Algorithm and hyperparameters.
        env: The training env (:func:`make_training_env`).
        gamma: Discount factor per step.
        seed: Seed of the networks' initialisation and the agent's sampling.
    """
    policy_kwargs: dict[str, Any] = {
        "net_arch": list(agent.net_arch),
        "activation_fn": _activation(agent.activation),
    }
    if isinstance(agent, OnPolicyConfig):
        policy_kwargs["ortho_init"] = agent.ortho_init
    algorithm: Any = ALGORITHMS[agent.algorithm]
    model: BaseAlgorithm = algorithm(
        "MlpPolicy",
        env,
        learning_rate=_learning_rate(agent),
        gamma=gamma,
        policy_kwargs=policy_kwargs,
        seed=seed,
        device="cpu",
        verbose=0,
        **_algorithm_kwargs(agent),
    )
    return model


def load_checkpoint(path: Path, algorithm: str, env: VecEnv) -> BaseAlgorithm:
    """Reload a checkpoint written by training to continue it on ``env``.

    A checkpoint is SB3's own zip, which unpickles the agent's settings: load only your own
    runs' checkpoints (served policies load without unpickling, see
    :class:`journeyopt.tracking.sb3_policy.SB3Policy`).
    """
    algorithm_class: Any = ALGORITHMS[algorithm]
    model: BaseAlgorithm = algorithm_class.load(path, env=env, device="cpu")
    return model


def layout_version(layout: ObservationLayout) -> str:
    """A short fingerprint of the observation layout: its columns and caps."""
    text = repr((layout.columns, sorted(layout.caps.items())))
    return "obs-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def policy_spec(world: WorldSpec, layout: ObservationLayout) -> PolicySpec:
    """What a served policy of ``world`` expects: action names, observation columns and the
    layout's fingerprint."""
    return PolicySpec(tuple(world.actions.names), layout.columns, layout_version(layout))


@dataclass(frozen=True)
class LearnedPolicy:
    """A trained SB3 agent as a :class:`~journeyopt.agents.policy.Policy` (deterministic: the
    most probable action, or the greedy one for DQN).

    A masked agent (MaskablePPO) chooses among the allowed actions. Any other agent chooses
    among all actions, as it did in training; a forbidden choice is carried out as ``none``
    by the simulator and counted as forbidden by the evaluation.

    Attributes:
        network: The agent's network (:meth:`SB3Policy.from_model`).
        layout: Observation layout the agent was trained on.
        masked: Whether the agent chooses among allowed actions only.
        name: Name in tables and charts.
    """

    network: SB3Policy
    layout: ObservationLayout
    masked: bool
    name: str = "agent"

    @classmethod
    def of(cls, model: BaseAlgorithm, world: WorldSpec, layout: ObservationLayout) -> LearnedPolicy:
        """The current weights of ``model`` (later training changes them: the network is
        shared, not copied)."""
        network = SB3Policy.from_model(model, policy_spec(world, layout))
        return cls(network, layout, isinstance(model, MaskablePPO), type(model).__name__)

    def act(
        self, observation: Observation, masks: Bool, rng: np.random.Generator
    ) -> tuple[IntArray, Float]:
        seen = masks if self.masked else np.ones_like(masks)
        actions, probabilities = self.network.act(observation.vector(self.layout), seen)
        kept = np.where(masks, probabilities, 0.0)
        total = kept.sum(axis=1, keepdims=True)
        safe = np.where(
            total > 0, kept / np.where(total > 0, total, 1.0), masks / masks.sum(1)[:, None]
        )
        return actions, np.asarray(safe, np.float64)
