"""Typed configuration of training: the ``agent`` and ``train`` config groups and
``configs/train.yaml``.

Schemas registered in Hydra's ConfigStore by :func:`register_configs`:

- ``agent/base_ppo`` (:class:`PPOConfig`, also used by ``MaskablePPO``), ``agent/base_a2c``
  (:class:`A2CConfig`), ``agent/base_dqn`` (:class:`DQNConfig`); the ``algorithm`` field says
  which stable-baselines3 class is trained;
- ``train/base_train`` (:class:`TrainSettings`): budget, vectorised env, evaluation and
  checkpoint schedule, torch threads, resume, warm start;
- ``base_train_job`` (:class:`TrainConfig`): the whole ``journeyopt-train`` job.

Use :func:`train_config` to turn a composed config into a :class:`TrainConfig` (it picks the
agent's schema from ``agent.algorithm``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from journeyopt.errors import ConfigError
from journeyopt.evaluation.config import EvaluationConfig
from journeyopt.evaluation.config import register_configs as register_evaluation
from journeyopt.sim.config import SimulatorConfig
from journeyopt.sim.config import register_configs as register_simulator
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.config import register_configs as register_tracking

ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "elu", "leaky_relu")
"""Names accepted by ``agent.activation`` (the ``torch.nn`` class of the same name)."""


@dataclass
class AgentConfig:
    """What every agent has: the algorithm, its network and optimiser, the discounting.

    Attributes:
        algorithm: stable-baselines3 class: ``PPO``, ``A2C``, ``DQN`` or ``MaskablePPO``.
        learning_rate: Adam (or RMSprop) step size at the start of training.
        learning_rate_final: Step size at the end; linear in between (equal to
            ``learning_rate``: constant).
        gamma: Discount factor per weekly step; ``None``: the simulator's ``gamma``, so the
            agent maximises the value the evaluation reports.
        net_arch: Hidden layer widths of the policy and value networks (DQN: Q-network).
        activation: Hidden activation, one of :data:`ACTIVATIONS`.
        reward_scale: Rewards (currency) are multiplied by this before the agent sees them, so
            value targets are of order one; evaluation always reports currency.
        balance_segments: Scale each customer type's rewards so that every type's mean
            return under the uniform random policy is the same (``reward_scale`` times the
            overall mean). A type is fixed and observed, so this changes no type's optimal
            policy, but the low-value types are no longer drowned in the high-value types'
            noise.
    """

    algorithm: str = "PPO"
    learning_rate: float = 3e-4
    learning_rate_final: float = 3e-4
    gamma: float | None = None
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "tanh"
    reward_scale: float = 0.01
    balance_segments: bool = False

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHM_SCHEMAS:
            raise ConfigError(
                f"agent.algorithm: unknown {self.algorithm!r}; known: {list(ALGORITHM_SCHEMAS)}"
            )
        if not isinstance(self, ALGORITHM_SCHEMAS[self.algorithm]):
            raise ConfigError(f"agent.algorithm {self.algorithm!r} needs another agent schema")
        if self.learning_rate <= 0 or self.learning_rate_final < 0:
            raise ConfigError("agent.learning_rate must be > 0 and learning_rate_final >= 0")
        if self.gamma is not None and not 0.0 < self.gamma <= 1.0:
            raise ConfigError(f"agent.gamma must be in (0, 1], got {self.gamma}")
        if not self.net_arch or min(self.net_arch) < 1:
            raise ConfigError(f"agent.net_arch needs positive widths, got {self.net_arch}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"agent.activation must be one of {ACTIVATIONS}")
        if self.reward_scale <= 0:
            raise ConfigError(f"agent.reward_scale must be > 0, got {self.reward_scale}")

    @property
    def masked(self) -> bool:
        """Whether the algorithm learns with the contact rules' action masks."""
        return self.algorithm == "MaskablePPO"


@dataclass
class OnPolicyConfig(AgentConfig):
    """Actor-critic agents (PPO, A2C, MaskablePPO).

    Attributes:
        n_steps: Steps per customer between updates; a rollout holds ``n_steps *
            train.n_customers`` transitions.
        gae_lambda: GAE's bias-variance trade-off.
        ent_coef: Entropy bonus weight at the start of training.
        ent_coef_final: Entropy bonus weight at the end; linear in between.
        vf_coef: Value loss weight.
        max_grad_norm: Gradient clipping (L2 norm).
        ortho_init: Orthogonal initialisation of the networks.
    """

    n_steps: int = 64
    gae_lambda: float = 0.95
    ent_coef: float = 0.0
    ent_coef_final: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    ortho_init: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_steps < 1:
            raise ConfigError(f"agent.n_steps must be >= 1, got {self.n_steps}")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise ConfigError(f"agent.gae_lambda must be in [0, 1], got {self.gae_lambda}")
        if self.ent_coef < 0 or self.ent_coef_final < 0:
            raise ConfigError("agent.ent_coef and ent_coef_final must be >= 0")


@dataclass
class PPOConfig(OnPolicyConfig):
    """PPO and MaskablePPO (``algorithm: MaskablePPO`` learns with the action masks).

    Attributes:
        batch_size: Minibatch size, transitions.
        n_epochs: Passes over each rollout.
        clip_range: PPO's ratio clipping.
        target_kl: Stop an update's epochs early beyond this KL divergence; ``None``: never.
    """

    batch_size: int = 512
    n_epochs: int = 10
    clip_range: float = 0.2
    target_kl: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 2:
            raise ConfigError(f"agent.batch_size must be >= 2, got {self.batch_size}")
        if self.n_epochs < 1:
            raise ConfigError(f"agent.n_epochs must be >= 1, got {self.n_epochs}")
        if not 0.0 < self.clip_range < 1.0:
            raise ConfigError(f"agent.clip_range must be in (0, 1), got {self.clip_range}")


@dataclass
class A2CConfig(OnPolicyConfig):
    """A2C (one gradient step per rollout).

    Attributes:
        use_rms_prop: RMSprop (SB3's default for A2C) instead of Adam.
        normalize_advantage: Standardise advantages per rollout.
    """

    algorithm: str = "A2C"
    n_steps: int = 8
    learning_rate: float = 7e-4
    learning_rate_final: float = 7e-4
    use_rms_prop: bool = True
    normalize_advantage: bool = False


@dataclass
class DQNConfig(AgentConfig):
    """DQN (greedy on Q-values; forbidden choices are carried out as ``none``).

    Attributes:
        buffer_size: Replay buffer capacity, transitions.
        learning_starts: Transitions collected before learning starts.
        batch_size: Minibatch size, transitions.
        tau: Soft target update coefficient (1: hard update).
        train_freq: Vectorised steps between gradient phases.
        gradient_steps: Gradient steps per phase (-1: as many as transitions collected).
        target_update_interval: Environment steps between target network updates.
        exploration_fraction: Share of training over which epsilon decays.
        exploration_initial_eps: Epsilon at the start.
        exploration_final_eps: Epsilon after the decay.
    """

    algorithm: str = "DQN"
    learning_rate: float = 1e-4
    learning_rate_final: float = 1e-4
    buffer_size: int = 200_000
    learning_starts: int = 1_000
    batch_size: int = 256
    tau: float = 1.0
    train_freq: int = 1
    gradient_steps: int = 4
    target_update_interval: int = 10_000
    exploration_fraction: float = 0.2
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.buffer_size < self.batch_size:
            raise ConfigError("agent.buffer_size must be >= agent.batch_size")
        for name in ("exploration_fraction", "exploration_initial_eps", "exploration_final_eps"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"agent.{name} must be in [0, 1]")


ALGORITHM_SCHEMAS: dict[str, type[AgentConfig]] = {
    "PPO": PPOConfig,
    "MaskablePPO": PPOConfig,
    "A2C": A2CConfig,
    "DQN": DQNConfig,
}
"""The schema of each ``agent.algorithm``."""


@dataclass
class WarmStartConfig:
    """Behaviour cloning from the world's exact DP optimum before reinforcement learning
    (actor-critic agents only): the policy network is fitted to the optimum's actions and the
    value network to the optimum's values on customers simulated under the optimum.

    Attributes:
        enabled: Warm start at all.
        n_customers: Customers simulated for one horizon each; ``n_customers * horizon``
            (observation, action, value) examples.
        epochs: Passes over the examples.
        batch_size: Minibatch size, examples.
        learning_rate: Adam step size.
    """

    enabled: bool = False
    n_customers: int = 2_000
    epochs: int = 5
    batch_size: int = 1_024
    learning_rate: float = 1e-3

    def __post_init__(self) -> None:
        if self.n_customers < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("train.warm_start: n_customers, epochs, batch_size must be >= 1")
        if self.learning_rate <= 0:
            raise ConfigError("train.warm_start.learning_rate must be > 0")


@dataclass
class TrainSettings:
    """Budget and schedule of one training run (the ``train`` config group).

    Attributes:
        total_timesteps: Environment steps (customer-weeks) to train for, in total: a resumed
            run continues up to this count.
        n_customers: Customers stepped at once by the vectorised env (SB3's ``num_envs``).
        pool_size: Initial customers that training episodes are drawn from.
        eval_every_steps: Environment steps between evaluations during training (0: none).
        eval_customers: Customers of the fixed evaluation population during training (the
            final evaluation uses ``evaluation.n_customers``).
        checkpoint_every_steps: Environment steps between checkpoints, each written at the
            next rollout start (0: none; the final model is always saved).
        torch_threads: Torch CPU threads; one is several times faster than torch's default
            for these small networks.
        resume: A checkpoint (``.zip``) or an earlier run's output folder to continue from
            (its last checkpoint); empty: start fresh. A resumed run continues exactly as
            the interrupted one would have (see :mod:`journeyopt.agents.resume`), except DQN,
            which resumes with an empty replay buffer (checkpoints do not hold it).
        progress_bar: Show a progress bar while training.
        bootstrap_at_horizon: Treat the end of an episode as a time limit and bootstrap from
            the value of the last state (an infinite-horizon agent). Off by default: the
            evaluated value is the finite-horizon return, which ends at the horizon.
        warm_start: Behaviour cloning from the DP optimum before training.
        domain_randomisation: Train robustly to calibration error: ``simulator.world`` must be
            a calibrated world with a bootstrap ensemble (``journeyopt-calibrate``), and every
            training episode simulates one member drawn at random (evaluation, the optimum and
            the warm start use the point estimate).
    """

    total_timesteps: int = 2_000_000
    n_customers: int = 256
    pool_size: int = 10_000
    eval_every_steps: int = 250_000
    eval_customers: int = 2_000
    checkpoint_every_steps: int = 500_000
    torch_threads: int = 1
    resume: str = ""
    progress_bar: bool = True
    bootstrap_at_horizon: bool = False
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    domain_randomisation: bool = False

    def __post_init__(self) -> None:
        if self.total_timesteps < 1:
            raise ConfigError(f"train.total_timesteps must be >= 1, got {self.total_timesteps}")
        if self.n_customers < 1 or self.pool_size < 1:
            raise ConfigError("train.n_customers and train.pool_size must be >= 1")
        if self.eval_every_steps < 0 or self.checkpoint_every_steps < 0:
            raise ConfigError("train.eval_every_steps and checkpoint_every_steps must be >= 0")
        if self.eval_customers < 2:
            raise ConfigError(f"train.eval_customers must be >= 2, got {self.eval_customers}")
        if self.torch_threads < 1:
            raise ConfigError(f"train.torch_threads must be >= 1, got {self.torch_threads}")


@dataclass
class TrainConfig:
    """``journeyopt-train``: train an agent in a simulated world, evaluate it against the
    baselines and the exact optimum, log everything to MLflow.

    Attributes:
        seed: Seed of the agent, the training env and the warm start (the evaluation has its
            own ``evaluation.seed``, so every run meets the same evaluation customers).
        output_dir: Folder of checkpoints, evaluation tables and plots; empty: Hydra's run
            folder.
        overwrite: Allow a non-empty ``output_dir`` (an earlier run's checkpoints and
            reports are replaced).
        run_name: MLflow run name; empty: ``<algorithm>-<world>-seed<seed>``.
        simulator: World, horizon, discount factor.
        agent: Algorithm and hyperparameters.
        train: Budget and schedule.
        evaluation: Final evaluation: customers, seed, baselines, staff rules.
        tracking: MLflow settings.
    """

    seed: int = 0
    output_dir: str = ""
    overwrite: bool = False
    run_name: str = ""
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    agent: AgentConfig = field(default_factory=PPOConfig)
    train: TrainSettings = field(default_factory=TrainSettings)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        if self.train.warm_start.enabled and self.agent.algorithm == "DQN":
            raise ConfigError("train.warm_start needs an actor-critic agent, not DQN")

    @property
    def gamma(self) -> float:
        """The agent's discount factor (the simulator's unless the agent sets its own)."""
        return self.agent.gamma if self.agent.gamma is not None else self.simulator.gamma

    @property
    def default_run_name(self) -> str:
        """``run_name`` or ``<algorithm>-<world>-seed<seed>``."""
        world = self.simulator.world.rstrip("/").split("/")[-1]
        return self.run_name or f"{self.agent.algorithm}-{world}-seed{self.seed}"


@dataclass
class TrainJobSchema(TrainConfig):
    """The schema of ``configs/train.yaml`` in Hydra's ConfigStore: :class:`TrainConfig` with an
    untyped ``agent`` node, so the ``agent`` group can put any agent schema there
    (:func:`train_config` then validates it against the schema of ``agent.algorithm``)."""

    agent: Any = MISSING


def train_config(cfg: DictConfig | dict[str, Any]) -> TrainConfig:
    """A composed ``journeyopt-train`` config as a validated :class:`TrainConfig`; the agent
    schema follows ``agent.algorithm``. Any problem is a :class:`ConfigError`."""
    node = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    algorithm = str(OmegaConf.select(node, "agent.algorithm", default="PPO"))
    schema = ALGORITHM_SCHEMAS.get(algorithm)
    if schema is None:
        raise ConfigError(
            f"agent.algorithm: unknown {algorithm!r}; known: {list(ALGORITHM_SCHEMAS)}"
        )
    try:
        base = OmegaConf.structured(TrainConfig(agent=schema(algorithm=algorithm)))
        obj = OmegaConf.to_object(OmegaConf.merge(base, node))
    except OmegaConfBaseException as err:
        raise ConfigError(f"invalid configuration: {err}".splitlines()[0]) from err
    if not isinstance(obj, TrainConfig):
        raise ConfigError("configuration did not produce a TrainConfig")
    return obj


def train_config_in(
    world: str,
    *,
    agent: AgentConfig | DictConfig | dict[str, Any],
    simulator: SimulatorConfig,
    train: TrainSettings,
    evaluation: EvaluationConfig,
    tracking: TrackingConfig,
    seed: int,
    output_dir: str,
    run_name: str,
) -> TrainConfig:
    """A validated :class:`TrainConfig` of jobs that train inside a bigger one (the demo, the
    weekly cycle): their parts, with ``simulator.world`` set to ``world`` (a calibrated
    world's folder)."""

    def node(part: object) -> Any:
        return part if isinstance(part, dict | DictConfig) else OmegaConf.structured(part)

    sim = OmegaConf.merge(OmegaConf.structured(simulator), {"world": world})
    return train_config(
        {
            "seed": seed,
            "output_dir": output_dir,
            "run_name": run_name,
            "simulator": sim,
            "agent": node(agent),
            "train": node(train),
            "evaluation": node(evaluation),
            "tracking": node(tracking),
        }
    )


def register_configs() -> None:
    """Register the agent, train and job schemas in Hydra's ConfigStore (referenced from the
    defaults lists of ``configs/agent/*.yaml``, ``configs/train/*.yaml``, ``train.yaml``), and
    the simulator, evaluation and tracking schemas that ``train.yaml`` composes too."""
    register_simulator()
    register_evaluation()
    register_tracking()
    cs = ConfigStore.instance()
    cs.store(group="agent", name="base_ppo", node=PPOConfig)
    cs.store(group="agent", name="base_a2c", node=A2CConfig)
    cs.store(group="agent", name="base_dqn", node=DQNConfig)
    cs.store(group="train", name="base_train", node=TrainSettings)
    cs.store(name="base_train_job", node=TrainJobSchema)
