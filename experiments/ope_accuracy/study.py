"""What both OPE accuracy studies share: coworking logs through the user's path (generate,
ingest, panel), the target policies (baselines and agents trained with ``journeyopt-train``'s
configs), their true values in the true world, the MLflow runs, and the summary tables.

``run.py`` (window-only estimators, the true world as model) and ``long_term.py`` (the
long-term DR with a world calibrated on the logs) import it; run either from the repository
root or from this folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import journeyopt
from journeyopt.agents.baselines import (
    MyopicPolicy,
    NoContact,
    OptimumPolicy,
    StaffPolicy,
    UniformRandom,
)
from journeyopt.agents.config import register_configs as register_train_configs
from journeyopt.agents.config import train_config
from journeyopt.agents.policy import Policy
from journeyopt.agents.sb3 import LearnedPolicy
from journeyopt.agents.train import train
from journeyopt.calibration.card import markdown_table
from journeyopt.calibration.config import CapsConfig
from journeyopt.cli.entry import to_object
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.source import SourceConfig
from journeyopt.evaluation.ope.logged import ActedPolicy
from journeyopt.evaluation.simulate import evaluate_policies
from journeyopt.panel.build import build_panel
from journeyopt.panel.config import PanelConfig
from journeyopt.sim.config import GenerateConfig, shipped_practice
from journeyopt.sim.logs import generate_logs, write_logs
from journeyopt.sim.observation import observation_layout
from journeyopt.sim.optimum import OptimalPolicy
from journeyopt.sim.world import WorldSpec, load_world
from journeyopt.tracking.config import TrackingConfig

HERE = Path(__file__).parent
CONFIGS = Path(journeyopt.__file__).parent / "configs"
START_WEEK_OF_YEAR = 1  # 2023-01-02, the log generator's first week, is ISO week 1
TRUTH_SEED = 123
EXPERIMENT = "ope_accuracy"


def coworking_panel() -> PanelConfig:
    """The panel windows of the coworking demo (``configs/panel/coworking.yaml``)."""
    return to_object(OmegaConf.load(CONFIGS / "panel" / "coworking.yaml"), PanelConfig)


def coworking_caps() -> CapsConfig:
    """The coworking demo's calibration state caps (``configs/calibration/coworking.yaml``)."""
    return to_object(OmegaConf.load(CONFIGS / "calibration" / "coworking.yaml").caps, CapsConfig)


def coworking_source(path: Path) -> SourceConfig:
    """The shipped coworking source config reading the logs in ``path``."""
    raw = OmegaConf.load(CONFIGS / "data" / "coworking.yaml")
    raw.path = str(path)
    return to_object(raw, SourceConfig)


def simulate_logs(
    world: WorldSpec, logs_dir: Path, n_customers: int, weeks: int, exploration: float, seed: int
) -> tuple[pd.DataFrame, SourceConfig]:
    """Raw coworking logs of ``n_customers`` (all present at the start) over ``weeks`` weeks
    under the staff rules with ``exploration`` logged random exploration, written to
    ``logs_dir``, ingested and turned into the weekly panel; ``(panel, source)``."""
    cfg = GenerateConfig(
        staff=shipped_practice("coworking"),
        output_dir=str(logs_dir),
        n_customers=n_customers,
        weeks=weeks,
        initial_share=1.0,
        exploration=exploration,
        seed=seed,
    )
    write_logs(generate_logs(world, cfg, np.random.default_rng(seed)), logs_dir, overwrite=True)
    source = coworking_source(logs_dir)
    logs, _ = ingest_to_logs(source)
    return build_panel(logs, coworking_panel(), tuple(source.contact_channels)), source


def baseline_targets(world: WorldSpec, optimum: OptimalPolicy) -> list[Policy]:
    """No contact, uniform random, staff rules, myopic next-best offer, the exact optimum."""
    return [
        NoContact(),
        UniformRandom(),
        StaffPolicy(world, shipped_practice("coworking").to_practice()),
        MyopicPolicy(world),
        OptimumPolicy(world, optimum),
    ]


@dataclass(frozen=True)
class TrainedAgent:
    """An agent trained by the project's training code, as a target policy.

    Attributes:
        policy: The agent acting as it would be served (its most probable allowed action).
        run_id: Its MLflow training run (``None`` with tracking off).
        pct_of_optimum: Its value in its training world as % of that world's optimum.
    """

    policy: Policy
    run_id: str | None
    pct_of_optimum: float


AGENTS: dict[str, list[str]] = {
    "ppo_warm": ["+experiment=coworking_best"],
    "ppo": ["agent=maskable_ppo"],
}
"""Trained target agents: ``journeyopt-train`` overrides. ``ppo_warm``: MaskablePPO
warm-started from the training world's exact optimum (the project's best settings);
``ppo``: MaskablePPO from scratch (a small budget leaves it between random and the optimum)."""


def train_agent(
    kind: str,
    world: str,
    horizon_weeks: int,
    gamma: float,
    timesteps: int,
    seed: int,
    output_dir: Path,
    tracking: TrackingConfig,
) -> TrainedAgent:
    """Train agent ``kind`` (:data:`AGENTS`) with ``journeyopt-train``'s configs in ``world``
    (a shipped world's name or a calibrated world's folder) over ``horizon_weeks`` weeks."""
    register_train_configs()
    overrides = [
        "simulator=coworking",  # the coworking settings (its contact rules), in ``world``
        "practice@evaluation.staff=coworking",
        *AGENTS[kind],
        f"simulator.world={world}",
        f"simulator.horizon_weeks={horizon_weeks}",
        f"simulator.gamma={gamma}",
        f"simulator.start_week_of_year={START_WEEK_OF_YEAR}",
        f"seed={seed}",
        f"train.total_timesteps={timesteps}",
        "train.eval_every_steps=0",
        "train.checkpoint_every_steps=0",
        "train.progress_bar=false",
        "evaluation.n_customers=2000",
        f"output_dir={output_dir}",
        f"run_name=ope-target-{kind}-seed{seed}",
    ]
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        node = compose("train", overrides=overrides)
    node.tracking = OmegaConf.structured(tracking)
    result = train(train_config(node))
    spec = load_world(world)
    learned = LearnedPolicy.of(result.model, spec, observation_layout(spec))
    policy = ActedPolicy(replace(learned, name=kind))
    return TrainedAgent(policy, result.run_id, result.metrics["eval/pct_of_optimum"])


TRUTH_CHUNK = 200_000
"""Customers simulated at once for the truth (memory stays bounded; chunks have their own seeds)."""


@dataclass(frozen=True)
class TrueValue:
    """A policy's true value per customer, currency, as the study simulates it.

    Attributes:
        value: Mean discounted return over the simulated customers of the world's initial
            population.
        half_width: Half-width of its 95 % confidence interval (normal approximation over
            customers): the truth's own Monte Carlo error. The reward is heavy-tailed (a
            customer's 8-week return has a standard deviation of about 3.5 times the mean),
            so 20,000 customers leave +-5 %, shared by every case that uses this truth.
    """

    value: float
    half_width: float


def true_value_intervals(
    world: WorldSpec,
    policies: Sequence[Policy],
    n_customers: int,
    horizon_weeks: int,
    gamma: float,
    optimum: OptimalPolicy,
) -> dict[str, TrueValue]:
    """Policy name -> its value per customer in ``world`` with its 95 % Monte Carlo error:
    ``n_customers`` of the world's initial population over ``horizon_weeks`` weeks from ISO
    week 1, common random numbers (the same customers for every call), simulated in chunks of
    at most :data:`TRUTH_CHUNK` customers (chunk ``i`` with seed ``TRUTH_SEED + i``)."""
    sizes = [TRUTH_CHUNK] * (n_customers // TRUTH_CHUNK)
    if n_customers % TRUTH_CHUNK:
        sizes.append(n_customers % TRUTH_CHUNK)
    values: dict[str, list[np.ndarray]] = {p.name: [] for p in policies}
    for i, size in enumerate(sizes):
        truth = evaluate_policies(
            world,
            policies,
            n_customers=size,
            horizon_weeks=horizon_weeks,
            gamma=gamma,
            seed=TRUTH_SEED + i,
            start_week_of_year=START_WEEK_OF_YEAR,
            optimum=optimum,
            reference=None,
        )
        for run in truth.runs:
            values[run.name].append(run.value)
    out: dict[str, TrueValue] = {}
    for name, chunks in values.items():
        value = np.concatenate(chunks)
        half = 1.96 * float(np.std(value, ddof=1)) / np.sqrt(value.shape[0])
        out[name] = TrueValue(float(np.mean(value)), half)
    return out


def true_values(
    world: WorldSpec,
    policies: Sequence[Policy],
    n_customers: int,
    horizon_weeks: int,
    gamma: float,
    optimum: OptimalPolicy,
) -> dict[str, float]:
    """Policy name -> its value per customer in ``world``, currency (the ``value`` of
    :func:`true_value_intervals`)."""
    truth = true_value_intervals(world, policies, n_customers, horizon_weeks, gamma, optimum)
    return {name: t.value for name, t in truth.items()}


def study_tracking(output_dir: Path) -> TrackingConfig:
    """MLflow settings of a study: experiment ``ope_accuracy`` in ``MLFLOW_TRACKING_URI``
    when it is set, else in the SQLite file ``mlflow.db`` (artifacts ``mlruns/``) of
    ``output_dir``."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return TrackingConfig(experiment=EXPERIMENT)
    out = output_dir.resolve()
    return TrackingConfig(
        tracking_uri=f"sqlite:///{out / 'mlflow.db'}",
        artifact_location=str(out / "mlruns"),
        experiment=EXPERIMENT,
    )


def abs_mean(x: pd.Series) -> float:
    return float(np.mean(np.abs(x)))


def abs_max(x: pd.Series) -> float:
    return float(np.max(np.abs(x)))


def write_summary(path: Path, preface: str, sections: dict[str, pd.DataFrame]) -> None:
    """Markdown file: ``preface``, then titled tables."""
    tables = [f"## {title}\n\n{markdown_table(table)}" for title, table in sections.items()]
    path.write_text("\n\n".join([preface, *tables]) + "\n")


def case_metrics(frame: pd.DataFrame) -> dict[str, float]:
    """``ope/`` metrics of one case's rows (``policy``, ``estimator``, ``rel_error``,
    ``covered``, ``ess_share``): ``ope/<policy>/<estimator>/rel_error`` and ``.../covered``,
    ``ope/<policy>/ess_share``."""
    metrics: dict[str, float] = {}
    for row in frame.itertuples():
        key = f"ope/{row.policy}/{row.estimator}"
        metrics[f"{key}/rel_error"] = float(row.rel_error)
        metrics[f"{key}/covered"] = float(row.covered)
        metrics[f"ope/{row.policy}/ess_share"] = float(row.ess_share)
    return metrics


def summary_metrics(table: pd.DataFrame, keys: Sequence[str]) -> dict[str, float]:
    """``ope/<key values>/<column>`` metrics of an aggregated table (one row per key
    combination; every other numeric column becomes a metric)."""
    metrics: dict[str, float] = {}
    for _, row in table.iterrows():
        prefix = "ope/" + "/".join(f"{k}_{row[k]}" for k in keys)
        for column in table.columns:
            if column not in keys and np.issubdtype(type(row[column]), np.number):
                metrics[f"{prefix}/{column}"] = float(row[column])
    return metrics
