"""``train(cfg) -> TrainResult``: train an SB3 agent in a simulated world, evaluate it against
the baselines and the exact optimum, and log the run to MLflow.

    result = train(train_config(composed_cfg))
    result.metrics["eval/pct_of_optimum"]

One run:

1. solve the world's exact optimum (for ``% of optimum`` and the optional warm start);
2. build the vectorised training env and the agent (new, warm-started from the optimum, or
   resumed from a checkpoint with ``train.resume``: the agent, its env and random states are
   restored so the run continues as if never stopped, see :mod:`journeyopt.agents.resume`;
   the run(s) it continues are linked and, if a killed process left them RUNNING, KILLED);
3. learn, evaluating every ``train.eval_every_steps`` steps on a fixed population (learning
   curve ``learning_curve.csv``: % of optimum against wall seconds) and checkpointing every
   ``train.checkpoint_every_steps`` steps (at the next rollout start) into
   ``<output_dir>/checkpoints/``; an interrupted run (Ctrl-C, SIGTERM, an error) writes the
   checkpoint of its last rollout start and is marked KILLED / FAILED;
4. evaluate the agent and the baselines on ``evaluation.n_customers`` customers with common
   random numbers; log the ``eval/`` metrics, the evaluation table (CSV, Markdown), plots
   (learning curve, action mix by lifecycle stage, value by segment), and the policy as a
   pyfunc model registered as a new version of ``tracking.registered_model``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray
from omegaconf import OmegaConf
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from journeyopt.agents import warm_start
from journeyopt.agents.baselines import UniformRandom
from journeyopt.agents.callbacks import (
    EntropySchedule,
    EvalPoint,
    Evaluate,
    LearningCurve,
    PeriodicEvaluation,
    Stopwatch,
)
from journeyopt.agents.config import OnPolicyConfig, TrainConfig
from journeyopt.agents.report import (
    ActionMixRecorder,
    action_mix_figure,
    final_metrics,
    learning_curve_figure,
)
from journeyopt.agents.resume import (
    RolloutCheckpoints,
    capture,
    recorded_run_id,
    restore,
    write_checkpoint,
)
from journeyopt.agents.sb3 import (
    LearnedPolicy,
    load_checkpoint,
    make_model,
    make_training_env,
    policy_spec,
)
from journeyopt.calibration.calibrated import CalibratedWorld
from journeyopt.calibration.ensemble import EnsembleVecEnv
from journeyopt.errors import ConfigError
from journeyopt.evaluation.capacity import CapacityPrices, capacity_prices
from journeyopt.evaluation.report import write_evaluation
from journeyopt.evaluation.simulate import (
    EvaluationResult,
    evaluate_policies,
    evaluate_with_baselines,
)
from journeyopt.sim.observation import ObservationLayout, observation_layout
from journeyopt.sim.optimum import OptimalPolicy, cyclic_weeks_of_year, solve_optimum
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.world import WorldSpec, load_world
from journeyopt.tracking.logger import RunLogger
from journeyopt.tracking.model import log_policy_model
from journeyopt.tracking.registry import RULES_TAG, PolicyRegistry
from journeyopt.tracking.run import OUTPUT_DIR_TAG, link_resumed_runs, tracked_run
from journeyopt.tracking.sb3_policy import SB3Policy
from journeyopt.tracking.tags import run_tags

log = logging.getLogger(__name__)

OPTIMUM_RULES_TAG = "journeyopt.optimum_rules"
"""Run tag: the contact rules the exact optimum (and the warm start) planned under."""
UNSEEN_RULES_TAG = "journeyopt.optimum_unseen_rules"
"""Run tag: the contact rules of ``simulator.rules`` the optimum could not plan under
(``none``: it saw them all); the masks still apply them."""
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PREFIX = "model"
CURVE_FILE = "learning_curve.csv"
_CHECKPOINT_RE = re.compile(rf"{CHECKPOINT_PREFIX}_(\d+)_steps\.zip$")


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    Attributes:
        metrics: Final ``eval/`` metrics of the agent (see
            :func:`journeyopt.agents.report.final_metrics`) and ``train/wall_seconds``.
        table: The final evaluation table (agent and baselines, all customers and by type).
        curve: Evaluation points during training (with the final one).
        output_dir: Folder of checkpoints, tables and plots.
        model_path: The final agent (SB3 zip).
        timesteps: Environment steps trained in total.
        start_step: Environment steps of the checkpoint the run resumed from (0: fresh).
        run_id: MLflow run id (``None`` with tracking off).
        model_version: Registered version of the policy (``None`` with tracking off).
        model: The trained agent.
    """

    metrics: dict[str, float]
    table: pd.DataFrame
    curve: tuple[EvalPoint, ...]
    output_dir: Path
    model_path: Path
    timesteps: int
    start_step: int
    run_id: str | None
    model_version: str | None
    model: BaseAlgorithm


@dataclass(frozen=True)
class World:
    """The world of a run and what is derived from it once."""

    spec: WorldSpec
    optimum: OptimalPolicy
    layout: ObservationLayout
    rules: ContactRules
    """The contact rules the agent is trained and evaluated under (``simulator.rules``)."""
    prices: CapacityPrices | None = None
    """With weekly capacities (``simulator.rules.capacity``): the prices on their actions;
    the agent learns (and imitates the optimum) in the priced world, and is evaluated in the
    real one."""

    @property
    def trained_in(self) -> WorldSpec:
        """The world the agent learns in: the priced world with capacities, else ``spec``."""
        return self.prices.priced if self.prices is not None else self.spec

    @property
    def demonstrator(self) -> OptimalPolicy:
        """The optimum the warm start imitates: the priced one with capacities."""
        return self.prices.optimum if self.prices is not None else self.optimum


def latest_checkpoint(path: Path) -> Path:
    """The checkpoint to resume from: ``path`` itself if it is a file, else the checkpoint
    with the most steps in ``path/checkpoints/`` (or in ``path``)."""
    if path.is_file():
        return path
    folder = path / CHECKPOINT_DIR if (path / CHECKPOINT_DIR).is_dir() else path
    found = [
        (int(m.group(1)), p) for p in folder.glob("*.zip") if (m := _CHECKPOINT_RE.search(p.name))
    ]
    if not found:
        raise ConfigError(
            f"train.resume: no checkpoint {CHECKPOINT_PREFIX}_<steps>_steps.zip in {folder}"
        )
    return max(found)[1]


def _run_folder_of(checkpoint: Path) -> Path:
    parent = checkpoint.parent
    return parent.parent if parent.name == CHECKPOINT_DIR else parent


def _save_checkpoint(model: BaseAlgorithm, out: Path, run_id: str | None) -> Path:
    """The checkpoint of the model as it is now (at the end of training: a rollout start)."""
    path = out / CHECKPOINT_DIR / f"{CHECKPOINT_PREFIX}_{model.num_timesteps}_steps.zip"
    return write_checkpoint(capture(model, run_id), path)


def _resume(cfg: TrainConfig, run: RunLogger, checkpoint: Path, model: BaseAlgorithm) -> None:
    """Restore the saved training state and link the run(s) this one continues."""
    exact = restore(model, checkpoint)
    earlier = recorded_run_id(checkpoint)
    link_resumed_runs(
        cfg.tracking,
        run.run_id,
        [earlier] if earlier else [],
        str(_run_folder_of(checkpoint).resolve()),
    )
    run.set_tags(
        {"journeyopt.resumed_from": str(checkpoint), "journeyopt.resumed_exactly": str(exact)}
    )


def _prepare_world(cfg: TrainConfig) -> World:
    sim = cfg.simulator
    spec = load_world(sim.world)
    weeks = cyclic_weeks_of_year(sim.start_week_of_year, sim.horizon_weeks)
    rules = sim.contact_rules(spec)
    # the optimum (and the warm start's demonstrations) plan under every rule the summary
    # represents; the others are named on the optimum and applied by the masks
    optimum = solve_optimum(spec, sim.horizon_weeks, sim.gamma, weeks, rules=rules)
    for line in optimum.unseen_rules:
        log.warning("the exact optimum cannot plan under the contact rule %s", line)
    shares = sim.rules.capacity_shares("simulator.rules")
    if shares and cfg.train.domain_randomisation:
        raise ConfigError(
            "simulator.rules.capacity is priced in one world: it cannot be combined with "
            "train.domain_randomisation (an ensemble member per episode) yet"
        )
    prices = (
        capacity_prices(
            spec,
            shares,
            rules,
            horizon_weeks=sim.horizon_weeks,
            gamma=sim.gamma,
            start_week_of_year=sim.start_week_of_year,
            n_customers=cfg.train.eval_customers,
            seed=cfg.evaluation.seed,
        )
        if shares
        else None
    )
    return World(spec, optimum, observation_layout(spec), rules, prices)


def _evaluator(cfg: TrainConfig, world: World) -> Evaluate:
    """Evaluation of the agent alone on the fixed training-time evaluation population."""
    sim = cfg.simulator

    def evaluate(model: BaseAlgorithm, step: int, seconds: float) -> EvalPoint:
        result = evaluate_policies(
            world.spec,
            [LearnedPolicy.of(model, world.spec, world.layout)],
            n_customers=cfg.train.eval_customers,
            horizon_weeks=sim.horizon_weeks,
            gamma=sim.gamma,
            seed=cfg.evaluation.seed,
            start_week_of_year=sim.start_week_of_year,
            optimum=world.optimum,
            reference=None,
            rules=world.rules,
        )
        row = result.table.iloc[0]
        return EvalPoint(
            step=step,
            wall_seconds=seconds,
            value=float(row["value"]),
            pct_of_optimum=float(row["pct_of_optimum"]),
            forbidden_action_rate=float(row["forbidden_per_customer"]) / sim.horizon_weeks,
        )

    return evaluate


def _reward_scales(cfg: TrainConfig, world: World) -> NDArray[np.float32]:
    """(S,) factor on each customer type's rewards (see ``AgentConfig.balance_segments``):
    balanced scales come from one horizon of the uniform random policy on
    ``train.eval_customers`` customers drawn with the run's seed."""
    n_segments = len(world.spec.segment_names)
    scales = np.full(n_segments, cfg.agent.reward_scale, np.float32)
    if not cfg.agent.balance_segments:
        return scales
    sim = cfg.simulator
    result = evaluate_policies(
        world.spec,
        [UniformRandom()],
        n_customers=cfg.train.eval_customers,
        horizon_weeks=sim.horizon_weeks,
        gamma=sim.gamma,
        seed=cfg.seed,
        start_week_of_year=sim.start_week_of_year,
        optimum=world.optimum,
        reference=None,
        rules=world.rules,
    )
    size = np.abs(result.runs[0].value)
    overall = float(np.mean(size))
    for k in range(n_segments):
        rows = result.segment == k
        if rows.any() and np.mean(size[rows]) > 0:
            scales[k] = cfg.agent.reward_scale * overall / float(np.mean(size[rows]))
    return scales


def _ensemble_population(cfg: TrainConfig, run: RunLogger, rules: ContactRules) -> EnsembleVecEnv:
    """The training population of ``train.domain_randomisation``: ``simulator.world``'s
    bootstrap ensemble, one member drawn per episode."""
    sim, settings = cfg.simulator, cfg.train
    try:
        calibrated = CalibratedWorld.load(sim.world)
    except ConfigError as err:
        raise ConfigError(f"train.domain_randomisation needs a calibrated world: {err}") from err
    if not calibrated.members:
        raise ConfigError(
            f"train.domain_randomisation: the calibrated world {sim.world} has no ensemble "
            "members (calibrate it with calibration.ensemble_size >= 2)"
        )
    run.log_params({"train.ensemble_members": len(calibrated.members)})
    run.set_tags({"journeyopt.domain_randomisation": "true"})
    return EnsembleVecEnv(
        calibrated,
        settings.n_customers,
        horizon_weeks=sim.horizon_weeks,
        start_week_of_year=sim.start_week_of_year,
        pool_size=settings.pool_size,
        seed=cfg.seed,
        rules=rules,
    )


def _build_model(
    cfg: TrainConfig, world: World, run: RunLogger
) -> tuple[BaseAlgorithm, LearningCurve, int]:
    """The agent (new, warm-started or resumed), the learning curve and the start step."""
    sim, settings = cfg.simulator, cfg.train
    population = (
        _ensemble_population(cfg, run, world.rules) if settings.domain_randomisation else None
    )
    scales = _reward_scales(cfg, world)
    run.log_metrics(
        {
            f"train/reward_scale/{name}": float(v)
            for name, v in zip(world.spec.segment_names, scales, strict=True)
        },
        step=0,
    )
    env, _ = make_training_env(
        world.trained_in,
        settings.n_customers,
        sim.horizon_weeks,
        sim.start_week_of_year,
        scales,
        pool_size=settings.pool_size,
        seed=cfg.seed,
        bootstrap_at_horizon=settings.bootstrap_at_horizon,
        population=population,
        rules=world.rules,
    )
    out = Path(cfg.output_dir)
    if settings.resume:
        checkpoint = latest_checkpoint(Path(settings.resume))
        model = load_checkpoint(checkpoint, cfg.agent.algorithm, env)
        _resume(cfg, run, checkpoint, model)
        previous = LearningCurve(_run_folder_of(checkpoint) / CURVE_FILE)
        curve = LearningCurve(out / CURVE_FILE)
        if previous.path.resolve() != curve.path.resolve():
            for point in previous.points:
                if point.step <= model.num_timesteps:
                    curve.add(point)
        return model, curve, int(model.num_timesteps)
    model = make_model(cfg.agent, env, cfg.gamma, cfg.seed)
    if settings.warm_start.enabled:
        demos = warm_start.demonstrations(
            world.trained_in,
            world.demonstrator,
            settings.warm_start.n_customers,
            sim.start_week_of_year,
            settings.pool_size,
            cfg.seed,
            world.rules,
        )
        stats = warm_start.clone(model, demos, settings.warm_start, scales, cfg.seed)
        run.log_metrics(stats, step=0)
    return model, LearningCurve(out / CURVE_FILE), 0


def _callbacks(
    cfg: TrainConfig, world: World, run: RunLogger, curve: LearningCurve, clock: Stopwatch
) -> list[BaseCallback]:
    settings, agent = cfg.train, cfg.agent
    callbacks: list[BaseCallback] = []
    if settings.eval_every_steps > 0:
        evaluate = _evaluator(cfg, world)
        callbacks.append(PeriodicEvaluation(evaluate, settings.eval_every_steps, run, curve, clock))
    if isinstance(agent, OnPolicyConfig) and agent.ent_coef != agent.ent_coef_final:
        callbacks.append(EntropySchedule(agent.ent_coef, agent.ent_coef_final))
    return callbacks


def _checkpoints(cfg: TrainConfig, run: RunLogger) -> RolloutCheckpoints:
    folder = Path(cfg.output_dir) / CHECKPOINT_DIR
    every = cfg.train.checkpoint_every_steps
    on_policy = isinstance(cfg.agent, OnPolicyConfig)
    return RolloutCheckpoints(folder, CHECKPOINT_PREFIX, every, run.run_id, keep_latest=on_policy)


def _learn(
    cfg: TrainConfig,
    model: BaseAlgorithm,
    callbacks: list[BaseCallback],
    start_step: int,
    checkpoints: RolloutCheckpoints,
) -> None:
    """Learn up to ``train.total_timesteps``; when interrupted, write the checkpoint of the
    last rollout start (resuming from it repeats the interrupted rollout exactly)."""
    remaining = cfg.train.total_timesteps - start_step
    if remaining <= 0:
        return
    try:
        model.learn(
            total_timesteps=remaining,
            callback=[checkpoints, *callbacks],
            progress_bar=cfg.train.progress_bar,
            reset_num_timesteps=start_step == 0,
        )
    except BaseException:
        if checkpoints.write_latest() is None:  # before its first rollout, or DQN: not exact
            path = checkpoints.path(int(model.num_timesteps))
            path.parent.mkdir(parents=True, exist_ok=True)
            model.save(path)
        raise


def _final_evaluation(
    cfg: TrainConfig, world: World, model: BaseAlgorithm
) -> tuple[EvaluationResult, ActionMixRecorder]:
    sim, ev = cfg.simulator, cfg.evaluation
    agent = LearnedPolicy.of(model, world.spec, world.layout)
    recorder = ActionMixRecorder(agent, world.spec.actions.n_actions)
    result = evaluate_with_baselines(world.spec, sim, ev, [recorder], world.optimum)
    return result, recorder


def _log_outputs(
    cfg: TrainConfig,
    world: World,
    run: RunLogger,
    result: EvaluationResult,
    recorder: ActionMixRecorder,
    curve: LearningCurve,
) -> None:
    """Write the evaluation table and plots into the output folder and the run."""
    out = Path(cfg.output_dir)
    folder = write_evaluation(
        result, out / "evaluation", overwrite=True, currency=world.spec.currency
    )
    run.log_artifact(folder, "evaluation")
    title = cfg.default_run_name
    figures = {
        "learning_curve.png": learning_curve_figure(curve.points, title),
        "action_mix.png": action_mix_figure(recorder.counts, world.spec.actions.names, title),
    }
    for name, figure in figures.items():
        figure.savefig(out / name, dpi=120)
        run.log_figure(figure, f"plots/{name}")
        plt.close(figure)  # a long sweep would otherwise keep every run's figures open
    run.log_artifact(out / CURVE_FILE)


def _register(cfg: TrainConfig, world: World, run: RunLogger, model: BaseAlgorithm) -> str | None:
    """Log the policy as a pyfunc model and register it; the registered version."""
    policy = SB3Policy.from_model(model, policy_spec(world.spec, world.layout))
    env = model.get_env()
    assert env is not None
    examples = np.asarray(env.reset())[:5]
    masks = np.asarray(env.env_method("action_masks"))[:5]
    info = log_policy_model(run, policy, examples, masks, step=int(model.num_timesteps))
    if info is None:
        return None
    tags = {
        "journeyopt.agent": cfg.agent.algorithm,
        "journeyopt.simulator": cfg.simulator.world,
        RULES_TAG: cfg.simulator.rules.fingerprint(),  # the gate compares it with serve.rules
    }
    return PolicyRegistry(cfg.tracking).register(info, tags=tags).version


def _log_ensemble_use(model: BaseAlgorithm, run: RunLogger) -> None:
    """With domain randomisation: training episodes simulated by each ensemble member."""
    population = getattr(model.get_env(), "population", None)
    if isinstance(population, EnsembleVecEnv):
        counts = population.episodes_per_member
        metrics = {f"train/ensemble/episodes_member_{k}": float(c) for k, c in enumerate(counts)}
        run.log_metrics(metrics, step=int(model.num_timesteps))


def _record(point: EvalPoint, curve: LearningCurve, run: RunLogger) -> None:
    curve.add(point)
    run.log_metrics(point.metrics(), step=point.step)


def train(cfg: TrainConfig, callbacks: Sequence[BaseCallback] = ()) -> TrainResult:
    """Train, evaluate and log one agent (see the module docstring).

    Args:
        cfg: The job configuration; ``cfg.output_dir`` must be set.
        callbacks: Extra SB3 callbacks (a sweep's pruning, a test's interruption).

    Raises:
        ConfigError: No output folder, or ``train.resume`` names no checkpoint.
    """
    if not cfg.output_dir:
        raise ConfigError("output_dir must be set (journeyopt-train sets Hydra's run folder)")
    started = time.monotonic()  # the learning curve's clock includes the optimum and warm start
    torch.set_num_threads(cfg.train.torch_threads)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = _prepare_world(cfg)
    tags = run_tags(simulator=cfg.simulator.world, agent=cfg.agent.algorithm)
    tags[OUTPUT_DIR_TAG] = str(out.resolve())
    tags[OPTIMUM_RULES_TAG] = world.optimum.rules
    tags[UNSEEN_RULES_TAG] = "; ".join(world.optimum.unseen_rules) or "none"
    node = OmegaConf.structured(cfg)
    with tracked_run(node, cfg.default_run_name, tags=tags, tracking=cfg.tracking) as run:
        model, curve, start_step = _build_model(cfg, world, run)
        if world.prices is not None:  # what holds the agent to the weekly capacities
            run.log_params(
                {f"train.capacity_price.{a}": round(p, 6) for a, p in world.prices.prices.items()}
            )
        model.set_logger(run.sb3_logger())
        clock = Stopwatch(curve.wall_seconds, started)
        if cfg.train.warm_start.enabled and start_step == 0 and cfg.train.eval_every_steps > 0:
            _record(_evaluator(cfg, world)(model, 0, clock.seconds()), curve, run)
        extra = [*_callbacks(cfg, world, run, curve, clock), *callbacks]
        _learn(cfg, model, extra, start_step, _checkpoints(cfg, run))
        model_path = _save_checkpoint(model, out, run.run_id)
        wall_seconds = clock.seconds()
        _log_ensemble_use(model, run)
        if not curve.points or curve.points[-1].step != model.num_timesteps:
            _record(
                _evaluator(cfg, world)(model, int(model.num_timesteps), wall_seconds), curve, run
            )
        result, recorder = _final_evaluation(cfg, world, model)
        metrics = {**final_metrics(result, recorder.name), "train/wall_seconds": wall_seconds}
        run.log_metrics(metrics, step=int(model.num_timesteps))
        _log_outputs(cfg, world, run, result, recorder, curve)
        version = _register(cfg, world, run, model)
        return TrainResult(
            metrics=metrics,
            table=result.table,
            curve=tuple(curve.points),
            output_dir=out,
            model_path=model_path,
            timesteps=int(model.num_timesteps),
            start_step=start_step,
            run_id=run.run_id,
            model_version=version,
            model=model,
        )
