"""``compare(cfg) -> Comparison``: trained policies from MLflow and the baselines on the same
customers and random numbers, logged as one parent run with a child run per policy.

    result = compare(CompareConfig(runs=["3f2a..."], models=["models:/journey-policy@champion"]))
    result.table          # one row per policy, the eval/ metrics as columns

Trained policies are loaded back from MLflow as pyfunc models without unpickling anything
(:mod:`journeyopt.tracking.sb3_policy`): from training runs (their logged ``policy`` model),
registered versions (``models:/<name>/<version>`` or ``models:/<name>@<alias>``) or every run
of the tracking experiment that matches an MLflow filter and has a policy. They are evaluated
together with the configured baselines by :func:`~journeyopt.evaluation.simulate.evaluate_policies`
(common random numbers: every policy meets the same customers and the same random numbers).

Each child run carries the same ``eval/`` metric names as a training run's final evaluation
(:func:`journeyopt.agents.report.final_metrics`), so the MLflow UI's compare view lines the
policies up with each other and with their training runs. The parent run holds the comparison
table (``comparison.csv``, ``comparison.md``), its chart (``comparison.png``) and the full
evaluation by customer type (``evaluation.csv``, ``.md``, ``.png``) under ``comparison/``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from hydra.core.config_store import ConfigStore
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from journeyopt.agents.report import final_metrics
from journeyopt.agents.sb3 import LearnedPolicy, policy_spec
from journeyopt.errors import ConfigError
from journeyopt.evaluation.capacity import (
    CapacityPrices,
    capacity_metrics,
    capacity_policy,
    capacity_prices,
)
from journeyopt.evaluation.config import EvaluationConfig
from journeyopt.evaluation.report import write_evaluation
from journeyopt.evaluation.simulate import EvaluationResult, evaluate_with_baselines
from journeyopt.outputs import staged_output_dir
from journeyopt.sim.config import SimulatorConfig
from journeyopt.sim.observation import ObservationLayout, observation_layout
from journeyopt.sim.world import WorldSpec, load_world
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.logger import RunLogger
from journeyopt.tracking.model import load_policy_model, unwrap_policy
from journeyopt.tracking.registry import PolicyRegistry
from journeyopt.tracking.run import experiment_id, open_client, tracked_run
from journeyopt.tracking.sb3_policy import SB3Policy
from journeyopt.tracking.tags import AGENT_TAG, run_tags

POLICY_MODEL_NAME = "policy"
"""Name of the pyfunc model a training run logs (:func:`journeyopt.agents.train.train`)."""
KIND_TAG = "journeyopt.kind"
POLICY_TAG = "journeyopt.policy"
POLICY_KIND_TAG = "journeyopt.policy_kind"
SOURCE_RUN_TAG = "journeyopt.source_run_id"
MODEL_URI_TAG = "journeyopt.model_uri"
TABLE_CSV, TABLE_MARKDOWN, TABLE_CHART = "comparison.csv", "comparison.md", "comparison.png"
CAPACITY_MARKDOWN = "capacity.md"


@dataclass
class CompareConfig:
    """``journeyopt-compare``: trained policies and baselines on common random numbers.

    Attributes:
        runs: MLflow run ids of training runs whose logged policy is compared.
        models: Registered versions, ``models:/<name>/<version>`` or ``models:/<name>@<alias>``.
        search: An MLflow filter over the runs of ``tracking.experiment`` (e.g.
            ``tags.journeyopt.agent = 'MaskablePPO'``); every matching run with a logged
            policy is compared. Empty: no search.
        simulator: The world the policies are evaluated in (their observation layout must
            match the one they were trained on).
        evaluation: Customers, seed, baselines and staff rules (as for a training run's final
            evaluation: the same settings give the same numbers).
        tracking: Where the runs and models are read from and the comparison is logged to.
        output_dir: Folder of the comparison files; empty: ``comparison/`` in Hydra's run
            folder.
        overwrite: Allow writing into a non-empty ``output_dir``.
        run_name: Name of the parent run.
    """

    runs: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    search: str = ""
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    output_dir: str = ""
    overwrite: bool = False
    run_name: str = "compare"

    def __post_init__(self) -> None:
        if (self.runs or self.models or self.search) and not self.tracking.enabled:
            raise ConfigError(
                "runs, models and search are read from MLflow: they need tracking enabled "
                "(tracking=mlflow)"
            )
        if not self.run_name.strip():
            raise ConfigError("run_name must not be empty")


@dataclass(frozen=True)
class Candidate:
    """A trained policy to load from MLflow.

    Attributes:
        name: Policy name in tables, charts and as child run name.
        model_uri: Where the pyfunc model is (``models:/...``).
        source_run_id: The training run that logged it (``None`` if unknown).
        algorithm: SB3 algorithm from the training run's tags (``""`` if unknown).
    """

    name: str
    model_uri: str
    source_run_id: str | None
    algorithm: str


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare` produced.

    Attributes:
        evaluation: The evaluation of every policy (trained ones first, then baselines).
        table: One row per policy: ``policy``, ``kind`` (``learned``/``baseline``),
            ``source_run_id``, ``model_uri`` and the ``eval/`` metrics.
        metrics: Policy name -> its ``eval/`` metrics (what its child run logged).
        output_dir: Folder of the comparison files.
        parent_run_id: The parent run (``None`` with tracking off).
        child_run_ids: Policy name -> its child run id (empty with tracking off).
        capacity: With weekly capacities (``simulator.rules.capacity``): what they cost,
            :func:`~journeyopt.evaluation.capacity.capacity_metrics` (the value the priced
            optimum ``optimum_capacity`` gives up against the unconstrained optimum, the
            prices and the weekly shares), logged on the parent run; empty otherwise.
    """

    evaluation: EvaluationResult
    table: pd.DataFrame
    metrics: dict[str, dict[str, float]]
    output_dir: Path
    parent_run_id: str | None
    child_run_ids: dict[str, str]
    capacity: dict[str, float] = field(default_factory=dict)


def _logged_policy_uri(client: MlflowClient, run: Run) -> str | None:
    """``models:/<model_id>`` of the policy model logged by ``run``, if any."""
    outputs = run.outputs.model_outputs if run.outputs is not None else []
    for output in outputs:
        model = client.get_logged_model(output.model_id)
        if model.name == POLICY_MODEL_NAME:
            return str(model.model_uri)
    return None


def _run_candidate(client: MlflowClient, run_id: str, where: str) -> Candidate | None:
    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        raise ConfigError(f"{where}: no MLflow run {run_id!r} in the tracking store") from err
    uri = _logged_policy_uri(client, run)
    if uri is None:
        return None
    tags = run.data.tags
    return Candidate(run.info.run_name or run_id, uri, run_id, tags.get(AGENT_TAG, ""))


def find_candidates(cfg: CompareConfig, client: MlflowClient) -> list[Candidate]:
    """The trained policies named by ``cfg.runs``, ``cfg.models`` and ``cfg.search``, in that
    order, each once (by model URI).

    Raises:
        ConfigError: A run that does not exist or has no logged policy, a model URI that is
            not a registered version.
    """
    found: list[Candidate] = []
    for run_id in cfg.runs:
        candidate = _run_candidate(client, run_id, "runs")
        if candidate is None:
            raise ConfigError(f"runs: MLflow run {run_id!r} has no logged policy model")
        found.append(candidate)
    for uri in cfg.models:
        name = uri.removeprefix("models:/").split("@")[0].split("/")[0]
        try:
            registry = PolicyRegistry(replace(cfg.tracking, registered_model=name or "?"))
            version = registry.resolve(uri)
        except (MlflowException, ValueError) as err:
            raise ConfigError(f"models: {uri!r} is not a registered version: {err}") from err
        algorithm = ""
        if version.source_run_id:
            algorithm = client.get_run(version.source_run_id).data.tags.get(AGENT_TAG, "")
        name = f"{version.name}/v{version.version}"
        found.append(Candidate(name, version.uri, version.source_run_id, algorithm))
    if cfg.search:
        experiment = experiment_id(client, cfg.tracking)
        try:
            runs = client.search_runs([experiment], filter_string=cfg.search)
        except MlflowException as err:
            raise ConfigError(f"search: not a valid MLflow filter: {err.message}") from err
        for run in runs:
            candidate = _run_candidate(client, run.info.run_id, "search")
            if candidate is not None:
                found.append(candidate)
    unique: dict[str, Candidate] = {}
    for candidate in found:
        unique.setdefault(candidate.model_uri, candidate)
    return list(unique.values())


def unique_names(names: Sequence[str], taken: Sequence[str]) -> list[str]:
    """``names`` made distinct from each other and from ``taken`` by a ``#2``, ``#3`` suffix."""
    used = set(taken)
    out: list[str] = []
    for name in names:
        candidate, k = name, 2
        while candidate in used:
            candidate, k = f"{name}#{k}", k + 1
        used.add(candidate)
        out.append(candidate)
    return out


def load_learned(
    candidate: Candidate,
    settings: TrackingConfig,
    world: WorldSpec,
    layout: ObservationLayout,
    folder: Path,
) -> LearnedPolicy:
    """The candidate's policy as a :class:`LearnedPolicy`, read from MLflow into ``folder``
    (no unpickling).

    Raises:
        ConfigError: The model is not an SB3 policy, or was trained on another world's
            actions or observation layout.
    """
    model = load_policy_model(candidate.model_uri, settings, folder)
    policy = unwrap_policy(model)
    if not isinstance(policy, SB3Policy):
        raise ConfigError(
            f"{candidate.model_uri}: {type(policy).__name__} is not a trained SB3 agent"
        )
    want = policy_spec(world, layout)
    if policy.spec.action_names != want.action_names:
        raise ConfigError(
            f"{candidate.model_uri}: actions {list(policy.spec.action_names)} differ from "
            f"world {world.name!r}'s {list(want.action_names)}"
        )
    if policy.spec.layout_version != want.layout_version:
        raise ConfigError(
            f"{candidate.model_uri}: trained on observation layout {policy.spec.layout_version}, "
            f"world {world.name!r} has {want.layout_version} (simulator.world must be the "
            "training world)"
        )
    masked = policy.meta.get("algorithm") == "MaskablePPO"
    return LearnedPolicy(policy, layout, masked, candidate.name)


def comparison_table(
    result: EvaluationResult, learned: Sequence[Candidate], metrics: dict[str, dict[str, float]]
) -> pd.DataFrame:
    """One row per policy (evaluation order): name, kind, source and its ``eval/`` metrics."""
    by_name = {c.name: c for c in learned}
    records = []
    for run in result.runs:
        candidate = by_name.get(run.name)
        records.append(
            {
                "policy": run.name,
                "kind": "learned" if candidate else "baseline",
                "source_run_id": candidate.source_run_id if candidate else "",
                "model_uri": candidate.model_uri if candidate else "",
                **metrics[run.name],
            }
        )
    return pd.DataFrame.from_records(records)


def _pm(table: pd.DataFrame, key: str, digits: int = 1) -> list[str]:
    """``mean ± half-width`` strings of ``eval/<key>`` and its CI columns (``–`` if absent)."""
    if f"eval/{key}" not in table:
        return ["–"] * len(table)
    out = []
    for mean, low, high in zip(
        table[f"eval/{key}"], table[f"eval/{key}_ci_low"], table[f"eval/{key}_ci_high"], strict=True
    ):
        out.append("–" if mean != mean else f"{mean:,.{digits}f} ± {(high - low) / 2:,.{digits}f}")
    return out


def comparison_markdown(table: pd.DataFrame, currency: str) -> str:
    """The comparison table as Markdown: value, % of optimum, paired uplift vs today's practice,
    contacts, opt-outs, revenue and cost per policy."""
    header = (
        f"| policy | kind | value per customer ({currency}, 95 % CI) | % of optimum "
        f"| uplift vs today's practice ({currency}, paired 95 % CI) | contacts per customer-week "
        f"| opt-out rate | revenue ({currency}) | cost ({currency}) | forbidden per week |"
    )
    lines = [header, "|" + "---|" * 10]
    value, uplift = _pm(table, "value"), _pm(table, "uplift_vs_staff")
    for i, rec in enumerate(table.to_dict("records")):
        lines.append(
            f"| {rec['policy']} | {rec['kind']} | {value[i]} "
            f"| {float(rec['eval/pct_of_optimum']):.1f} % | {uplift[i]} "
            f"| {float(rec['eval/contacts_per_customer_week']):.3f} "
            f"| {100 * float(rec['eval/opt_out_rate']):.1f} % "
            f"| {float(rec['eval/revenue']):,.0f} | {float(rec['eval/cost']):,.1f} "
            f"| {float(rec['eval/forbidden_action_rate']):.3f} |"
        )
    return "\n".join(lines) + "\n"


def comparison_chart(table: pd.DataFrame, path: Path, title: str) -> None:
    """Two panels: % of the exact optimum per policy, and the paired uplift vs today's practice with
    its 95 % CI (learned policies in orange, baselines in blue)."""
    names = table["policy"].tolist()
    colours = ["tab:orange" if k == "learned" else "tab:blue" for k in table["kind"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * len(names) + 1.8))
    y = range(len(names))
    left.barh(y, table["eval/pct_of_optimum"], color=colours)
    left.axvline(100.0, color="tab:red", linestyle="--", label="exact optimum")
    left.set_yticks(list(y), names)
    left.invert_yaxis()
    left.set_xlabel("% of optimum")
    left.legend(loc="lower right", fontsize="small")
    if "eval/uplift_vs_staff" in table:
        mean = table["eval/uplift_vs_staff"].fillna(0.0)
        err = [
            (mean - table["eval/uplift_vs_staff_ci_low"]).fillna(0.0),
            (table["eval/uplift_vs_staff_ci_high"] - mean).fillna(0.0),
        ]
        right.barh(y, mean, xerr=err, color=colours, capsize=3)
    right.axvline(0.0, color="black", linewidth=0.8)
    right.set_yticks(list(y), [""] * len(names))
    right.invert_yaxis()
    right.set_xlabel("uplift vs today's practice per customer (paired 95 % CI)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _write(
    cfg: CompareConfig, world: WorldSpec, result: EvaluationResult, table: pd.DataFrame
) -> Path:
    sim = cfg.simulator
    title = (
        f"{world.name}: {cfg.evaluation.n_customers:,} customers x {sim.horizon_weeks} weeks, "
        f"seed {cfg.evaluation.seed}"
    )
    with staged_output_dir(cfg.output_dir, cfg.overwrite) as out:
        table.to_csv(out / TABLE_CSV, index=False)
        (out / TABLE_MARKDOWN).write_text(comparison_markdown(table, world.currency), "utf-8")
        comparison_chart(table, out / TABLE_CHART, title)
        write_evaluation(result, out, overwrite=True, currency=world.currency)
    return Path(cfg.output_dir)


def compare(cfg: CompareConfig) -> Comparison:
    """Evaluate the trained policies of ``cfg`` and the baselines on common random numbers;
    write and log the comparison (see the module docstring).

    Raises:
        ConfigError: No ``output_dir``; a run or model that cannot be found or does not fit
            the world.
        OutputExistsError: ``output_dir`` is not empty and ``overwrite`` is false.
    """
    if not cfg.output_dir:
        raise ConfigError("output_dir must be set (journeyopt-compare sets Hydra's run folder)")
    world = load_world(cfg.simulator.world)
    layout = observation_layout(world)
    candidates: list[Candidate] = []
    learned: list[LearnedPolicy] = []
    if cfg.tracking.enabled and (cfg.runs or cfg.models or cfg.search):
        client = open_client(cfg.tracking)
        found = find_candidates(cfg, client)
        names = unique_names([c.name for c in found], cfg.evaluation.policies)
        candidates = [
            Candidate(n, c.model_uri, c.source_run_id, c.algorithm)
            for n, c in zip(names, found, strict=True)
        ]
        with tempfile.TemporaryDirectory() as tmp:
            learned = [
                load_learned(c, cfg.tracking, world, layout, Path(tmp) / str(k))
                for k, c in enumerate(candidates)
            ]
    prices = _capacity_prices(cfg, world)
    extra = [capacity_policy(prices)] if prices else []
    result = evaluate_with_baselines(world, cfg.simulator, cfg.evaluation, [*learned, *extra])
    metrics = {run.name: final_metrics(result, run.name) for run in result.runs}
    table = comparison_table(result, candidates, metrics)
    capacity = capacity_metrics(result, prices) if prices else {}
    out = _write(cfg, world, result, table)
    if capacity:
        lines = [f"| `{k}` | {v:.4g} |" for k, v in capacity.items()]
        text = "| metric | value |\n|---|---|\n" + "\n".join(lines) + "\n"
        (out / CAPACITY_MARKDOWN).write_text(text, "utf-8")
    node = OmegaConf.structured(cfg)
    tags = {**run_tags(simulator=cfg.simulator.world), KIND_TAG: "comparison"}
    with tracked_run(node, cfg.run_name, tags=tags, tracking=cfg.tracking) as parent:
        children = _log_children(cfg, parent, table, candidates, metrics)
        if capacity:
            parent.log_final_metrics(capacity)
        parent.log_artifact(out, "comparison")
        return Comparison(result, table, metrics, out, parent.run_id, children, capacity)


def _capacity_prices(cfg: CompareConfig, world: WorldSpec) -> CapacityPrices | None:
    """The prices holding the optimum to ``simulator.rules.capacity`` (None without one)."""
    sim = cfg.simulator
    shares = sim.rules.capacity_shares("simulator.rules")
    if not shares:
        return None
    if "optimum" not in cfg.evaluation.policies:
        raise ConfigError(
            "simulator.rules.capacity: the value it costs is measured against the optimum; "
            "keep 'optimum' in evaluation.policies"
        )
    return capacity_prices(
        world,
        shares,
        sim.contact_rules(world),
        horizon_weeks=sim.horizon_weeks,
        gamma=sim.gamma,
        start_week_of_year=sim.start_week_of_year,
        n_customers=cfg.evaluation.n_customers,
        seed=cfg.evaluation.seed,
    )


def _log_children(
    cfg: CompareConfig,
    parent: RunLogger,
    table: pd.DataFrame,
    candidates: Sequence[Candidate],
    metrics: dict[str, dict[str, float]],
) -> dict[str, str]:
    """One child run of ``parent`` per policy: its ``eval/`` metrics, kind and source as
    tags; policy name -> child run id."""
    algorithms = {c.name: c.algorithm for c in candidates}
    children: dict[str, str] = {}
    for rec in table.to_dict("records"):
        name = str(rec["policy"])
        tags = {
            KIND_TAG: "comparison_policy",
            POLICY_TAG: name,
            POLICY_KIND_TAG: str(rec["kind"]),
            SOURCE_RUN_TAG: str(rec["source_run_id"]),
            MODEL_URI_TAG: str(rec["model_uri"]),
        }
        if algorithms.get(name):
            tags[AGENT_TAG] = algorithms[name]
        with tracked_run(
            {},
            name,
            parent_run_id=parent.run_id,
            tags=tags,
            tracking=cfg.tracking,
            log_config=False,
        ) as child:
            child.log_params({"policy": name, "policy_kind": rec["kind"]})
            child.log_final_metrics(metrics[name])
        if child.run_id is not None:
            children[name] = child.run_id
    return children


def register_configs() -> None:
    """Register :class:`CompareConfig` as ``base_compare`` in Hydra's ConfigStore (with the
    simulator, evaluation and tracking schemas that ``configs/compare.yaml`` composes)."""
    from journeyopt.evaluation.config import register_configs as register_evaluation
    from journeyopt.sim.config import register_configs as register_simulator
    from journeyopt.tracking.config import register_configs as register_tracking

    register_simulator()
    register_evaluation()
    register_tracking()
    ConfigStore.instance().store(name="base_compare", node=CompareConfig)
