"""``journeyopt-promote``: move the ``champion`` alias to a candidate only on evidence.

    journeyopt-promote candidate=models:/journey-policy/3 data.path=work/logs
    journeyopt-promote candidate=<run id> data.path=work/logs calibrated_world=work/calibrated

Exit codes: 0 promoted (with ``gate.inconclusive=canary``, also an inconclusive gate's canary),
3 refused by the gate on evidence against the candidate (the message names the failed tests),
4 refused as inconclusive (not enough evidence: every value test passed, the blocking failures
are only model checks whose interval straddles the tolerance or actions with too little
logged support; the terminal says how much more data would settle them), 2 for a
configuration or input problem. See :mod:`journeyopt.tracking.promotion` and ``docs/ope.md``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from hydra.core.config_store import ConfigStore
from mlflow.exceptions import MlflowException
from omegaconf import MISSING, DictConfig, OmegaConf
from rich.table import Table

from journeyopt.agents.baselines import StaffPolicy
from journeyopt.agents.policy import Policy
from journeyopt.agents.practice_model import ServedPractice
from journeyopt.calibration.calibrated import CalibratedWorld
from journeyopt.cli.entry import command, console, log, report_errors, to_object
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.source import SourceConfig
from journeyopt.errors import ConfigError, JourneyoptError
from journeyopt.evaluation.config import EvaluationConfig
from journeyopt.evaluation.config import register_configs as register_evaluation
from journeyopt.evaluation.ope.diagnostics import OverlapThresholds
from journeyopt.evaluation.ope.evaluate import (
    LONG_TERM_ESTIMATORS,
    LogEvaluation,
    OPESettings,
    evaluate_long_term,
    evaluate_on_logs,
    paired_improvement,
)
from journeyopt.evaluation.ope.logged import (
    LoggedTrajectories,
    logged_trajectories,
    target_probabilities,
)
from journeyopt.evaluation.ope.model_check import (
    ActionCheck,
    ModelCheckSettings,
    action_shares,
    check_every_action,
    check_model,
    material_actions,
)
from journeyopt.evaluation.ope.model_free import MODEL_FREE_ESTIMATOR, check_model_free
from journeyopt.evaluation.ope.model_value import ValueModel
from journeyopt.evaluation.simulate import evaluate_policies
from journeyopt.panel.build import build_panel
from journeyopt.panel.config import PanelConfig, counting
from journeyopt.serving.config import RolloutConfig, ServingConfig
from journeyopt.serving.config import register_configs as register_serving
from journeyopt.serving.guards import serving_rules
from journeyopt.sim.config import RulesConfig, SimulatorConfig, StaffRulesConfig
from journeyopt.sim.config import register_configs as register_simulator
from journeyopt.sim.observation import observation_layout
from journeyopt.sim.practice import Practice
from journeyopt.sim.world import WorldSpec, load_world
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.config import register_configs as register_tracking
from journeyopt.tracking.model import load_policy_model, unwrap_policy
from journeyopt.tracking.promotion import (
    Decision,
    Evidence,
    GateConfig,
    PromotionInconclusive,
    PromotionRefused,
    ServedPolicy,
    WorldError,
    bias_parts,
    decide,
    larger_bias,
    model_check_evidence,
    model_error_interval,
    model_free_evidence,
    simulation_evidence,
    support_shortfall,
    value_verdict,
    world_error_more_data,
)
from journeyopt.tracking.registry import CHAMPION, RULES_TAG, PolicyRegistry, ResolvedVersion
from journeyopt.tracking.rollout import read_rollout as current_rollout
from journeyopt.tracking.rollout import start_rollout
from journeyopt.tracking.run import tracked_run


@dataclass
class PromoteOPEConfig:
    """Off-policy evaluation of the gate.

    Attributes:
        horizon_weeks: Importance-weighted window, weeks: the last ``horizon_weeks`` weeks
            of the logs before their final week (whose states start the model's value-to-go)
            for the long-term estimators (``lt_dr``, ``lt_dm``); the last ``horizon_weeks``
            weeks for the others.
        n_boot: Bootstrap replicates over customers.
        min_ess_share: Overlap diagnostics fail below this effective-sample-size share (of
            the window's cumulative weights).
        min_action_support: Overlap diagnostics fail when an action the candidate puts at
            least 5 % of its decisions on was taken, where the candidate would take it too,
            by fewer than this many logged decisions in the window.
        seed: Seed of the bootstrap, of stochastic policies and of the model rollout.
        rollout_customers: Customers simulated in the model world to project the policies
            onto the states reached after the window (long-term estimators).
        model_check_weeks: The model check replays the logging policy in the model world
            over the last ``model_check_weeks`` weeks of the logs (fewer when the logs are
            shorter) and compares with what the logs realised.
        model_free_max_weeks: The model-free evidence looks for the longest window the
            overlap diagnostics pass among the first weeks of the last
            ``model_free_max_weeks`` weeks of the logs (fewer when the logs are shorter).
    """

    horizon_weeks: int = 1
    n_boot: int = 500
    min_ess_share: float = 0.01
    min_action_support: int = 30
    seed: int = 0
    rollout_customers: int = 2000
    model_check_weeks: int = 13
    model_free_max_weeks: int = 13

    def __post_init__(self) -> None:
        if self.horizon_weeks < 1:
            raise ConfigError(f"ope.horizon_weeks must be >= 1, got {self.horizon_weeks}")
        if self.model_check_weeks < 1:
            raise ConfigError(f"ope.model_check_weeks must be >= 1, got {self.model_check_weeks}")
        if self.min_action_support < 0:
            raise ConfigError(f"ope.min_action_support must be >= 0, got {self.min_action_support}")
        if self.rollout_customers < 1:
            raise ConfigError(f"ope.rollout_customers must be >= 1, got {self.rollout_customers}")
        if self.model_free_max_weeks < 1:
            raise ConfigError(
                f"ope.model_free_max_weeks must be >= 1, got {self.model_free_max_weeks}"
            )


@dataclass
class PromoteConfig:
    """``journeyopt-promote``.

    Attributes:
        candidate: A registered version ``models:/<name>/<version>`` or the id of the run
            that logged and registered it.
        data: The logs' source (``data.path``: the most recent logs, held out from training).
        panel: Panel settings.
        simulator: The world, horizon, discount factor and first week of the simulation test.
        calibrated_world: Folder of a calibrated world; its ensemble members replace
            ``simulator.world`` in the simulation test and its point estimate is the OPE model.
        n_customers: Simulated customers.
        seed: Seed of the simulation.
        gate: Thresholds.
        ope: Off-policy evaluation settings.
        tracking: Where the registry and the decision run live.
        serve: Only ``serve.rules`` is read: the contact rules the policy will be served
            under (frequency caps, cool-down, opt-outs). Off-policy evaluation masks the
            candidate's and the champion's probabilities with them exactly as serving does,
            so a contact serving would forbid is never credited to a policy (and the logged
            decisions, taken under these rules, keep their overlap).
        evaluation: Only ``evaluation.staff`` is read: today's staff rules, the baseline the
            candidate must beat while no version is ``champion`` (the same settings as
            ``journeyopt-evaluate``, ``-train`` and ``-compare``, so every command measures
            against the same practice; their segment names must be the world's).
    """

    candidate: str = MISSING
    data: SourceConfig = field(default_factory=SourceConfig)
    panel: PanelConfig = MISSING  # required: the business's panel windows (configs/panel/)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    calibrated_world: str = ""
    n_customers: int = 5000
    seed: int = 0
    gate: GateConfig = field(default_factory=GateConfig)
    ope: PromoteOPEConfig = field(default_factory=PromoteOPEConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    serve: ServingConfig = field(default_factory=ServingConfig)

    def __post_init__(self) -> None:
        if self.n_customers < 2:
            raise ConfigError(f"n_customers must be >= 2, got {self.n_customers}")


def register_configs() -> None:
    register_simulator()
    register_tracking()
    register_evaluation()
    register_serving()
    ConfigStore.instance().store(name="promote_schema", node=PromoteConfig)


def check_trained_rules(
    registry: PolicyRegistry, version: ResolvedVersion, served: RulesConfig
) -> None:
    """Refuse a candidate trained under other contact rules than ``serve.rules``: serving's
    guard would cut its decisions to rules it never learned (a policy never trained for the
    world it is served in). Versions registered without the ``journeyopt.rules`` tag (before
    it existed, or by hand) are not checked.

    Raises:
        ConfigError: The rules differ; the message names every differing option.
    """
    recorded = registry.version_tags(version.version).get(RULES_TAG)
    if recorded is None:
        return
    changed = RulesConfig.differences(recorded, served)
    if changed:
        raise ConfigError(
            f"{version.uri} was trained under other contact rules than serve.rules ("
            + "; ".join(changed)
            + "): train it under the rules it will be served under "
            "(rules@simulator.rules=<the same file as rules@serve.rules>)"
        )


def resolve_candidate(registry: PolicyRegistry, candidate: str) -> ResolvedVersion:
    """The registered version named by ``candidate`` (a models URI or a run id)."""
    try:
        if candidate.startswith("models:/"):
            return registry.resolve(candidate)
        found = registry.client.search_model_versions(
            f"name='{registry.name}' and run_id='{candidate}'"
        )
    except (MlflowException, ValueError) as err:
        raise JourneyoptError(f"candidate={candidate}: {str(err).splitlines()[0]}") from err
    if not found:
        raise JourneyoptError(
            f"candidate={candidate}: no version of {registry.name} was registered by this run"
        )
    return registry.version(max(int(v.version) for v in found))


def load_served(
    version: ResolvedVersion,
    settings: TrackingConfig,
    world: WorldSpec,
    name: str,
    acting_world: WorldSpec | None = None,
) -> Policy:
    """A registered version as a policy over ``world``'s observations; a version that is
    today's practice (:class:`~journeyopt.agents.practice_model.ServedPractice`) as the
    ``StaffPolicy`` the gate runs today's practice as, acting in ``acting_world`` (default
    ``world``)."""
    with tempfile.TemporaryDirectory() as tmp:
        model = load_policy_model(version.uri, settings, Path(tmp))
        network = unwrap_policy(model)
    if isinstance(network, ServedPractice):
        return network.staff(acting_world or world, version.uri, name=name)
    return ServedPolicy(network, observation_layout(world), name)


def champion_policy(
    registry: PolicyRegistry,
    settings: TrackingConfig,
    world: WorldSpec,
    champion_world: str = "",
    staff: StaffRulesConfig | None = None,
) -> tuple[Policy, str]:
    """The ``champion`` version as a policy, or today's practice in ``world`` when none
    holds the alias: ``staff`` (checked against the world's actions, customer types and
    features; without it, a practice that contacts nobody). The champion reads its observations over
    the layout of ``champion_world``, the world it was trained in (default ``world``): every
    re-calibration gives a world with other feature caps, and a policy must see the features
    scaled as in its training."""
    try:
        version = registry.alias(CHAMPION)
    except MlflowException:  # no version holds the alias
        practice = (
            staff.practice_for(world, "evaluation.staff") if staff is not None else Practice()
        )
        return StaffPolicy(world, practice), "staff_rules"
    own = load_world(champion_world) if champion_world else world
    name = f"champion_v{version.version}"
    return load_served(version, settings, own, name, acting_world=world), version.uri


def promote(cfg: PromoteConfig) -> Decision:
    """Run the gate (see :mod:`journeyopt.tracking.promotion`); promote when it passes.

    Raises:
        PromotionRefused: A test failed (after the decision run is recorded).
    """
    if not cfg.data.path:
        raise JourneyoptError("data.path is required: the most recent logs for the OPE test")
    sim = cfg.simulator
    calibrated = CalibratedWorld.load(cfg.calibrated_world) if cfg.calibrated_world else None
    world = calibrated.world if calibrated is not None else load_world(sim.world)
    registry = PolicyRegistry(cfg.tracking)
    version = resolve_candidate(registry, cfg.candidate)
    check_trained_rules(registry, version, cfg.serve.rules)
    candidate = load_served(version, cfg.tracking, world, f"candidate_v{version.version}")
    champion, champion_ref = champion_policy(
        registry, cfg.tracking, world, staff=cfg.evaluation.staff
    )

    practice = todays_practice(world, champion_ref, cfg.evaluation.staff)
    members = calibrated.members if calibrated is not None and calibrated.members else (world,)
    decision = run_gate(
        cfg, world, members, version, candidate, champion, champion_ref, practice=practice
    )
    console().print(evidence_table(decision, version.uri))
    parts = components_table(decision)
    if parts is not None:
        console().print(parts)
    for line in inconclusive_lines(decision, cfg):
        console().print(line)
    if not decision.promote:
        refused = f"{version.uri} not promoted over {champion_ref}: " + "; ".join(decision.reasons)
        if decision.inconclusive:
            raise PromotionInconclusive(f"inconclusive, not enough evidence: {refused}")
        raise PromotionRefused(refused)
    promote_version(
        registry,
        version,
        decision,
        promotion_reason(decision, champion_ref),
        cfg.serve.rollout,
    )
    return decision


def promotion_reason(decision: Decision, champion_ref: str, how: str = "") -> str:
    """The ``champion`` alias's reason: beaten on the evidence, or, for a canary on an
    inconclusive gate, that the staged rollout's always-valid test is the evidence."""
    where = f" ({how})" if how else ""
    if decision.canary_only:
        return (
            f"canary only{where}: the gate was inconclusive against {champion_ref} (every value "
            "test passed; not enough evidence for "
            + ", ".join(sorted({e.test for e in decision.evidence if e.inconclusive}))
            + "); gate.inconclusive=canary: the staged rollout's always-valid test is the "
            "evidence"
        )
    return f"beats {champion_ref} in simulation and by off-policy evaluation{where}"


def inconclusive_lines(decision: Decision, cfg: PromoteConfig) -> list[str]:
    """What the terminal says about an inconclusive gate: the verdict, how much more data
    would settle each inconclusive test, and what ``gate.inconclusive`` did or would do."""
    if not decision.inconclusive:
        return []
    lines = ["inconclusive: not enough evidence (every value test passed; no evidence against)"]
    lines += [f"  more data needed: {line}" for line in decision.more_data]
    if decision.canary_only:
        lines.append(
            "  gate.inconclusive=canary: promoted as a canary only; the staged rollout decides "
            "(journeyopt-rollout status)"
        )
    elif cfg.gate.inconclusive == "canary":
        lines.append(
            "  gate.inconclusive=canary needs serve.rollout.enabled=true and a champion to "
            "compare the canary with: refused"
        )
    else:
        lines.append(
            "  gate.inconclusive=canary (with serve.rollout.enabled) would promote it as a "
            "canary only, the staged rollout's always-valid test then being the evidence"
        )
    return lines


TODAYS_PRACTICE = "today's practice"
"""Baseline label of today's practice (``evaluation.staff``)."""


def baseline_label(champion_ref: str) -> str:
    """What the candidate is judged against: ``today's practice`` without a champion, else
    ``champion (<models URI>)``."""
    return TODAYS_PRACTICE if champion_ref == "staff_rules" else f"champion ({champion_ref})"


def todays_practice(
    world: WorldSpec, champion_ref: str, staff: StaffRulesConfig | None
) -> Policy | None:
    """Today's practice as a second baseline when a champion exists (``None`` without one:
    the champion is then today's practice already)."""
    if champion_ref == "staff_rules":
        return None
    practice = staff.practice_for(world, "evaluation.staff") if staff is not None else Practice()
    return StaffPolicy(world, practice)


def run_gate(
    cfg: PromoteConfig,
    world: WorldSpec,
    members: Sequence[WorldSpec],
    version: ResolvedVersion,
    candidate: Policy,
    champion: Policy,
    champion_ref: str,
    practice: Policy | None = None,
) -> Decision:
    """The gate's tests — simulation in every world of ``members`` (common random numbers),
    off-policy evaluation on the logs with ``world`` as the model, the model check and the
    model-free evidence — and the decision, recorded as an MLflow run; nothing is promoted
    here. ``practice`` (today's practice, when ``champion`` is a registered champion) adds
    rows against it that do not block."""
    baselines = [(champion, baseline_label(champion_ref), True)]
    if practice is not None:
        baselines.append((practice, TODAYS_PRACTICE, False))
    panel, model = recent_panel(cfg, world), ValueModel(world)  # one model: shared tables
    # the world's measured error on the logging policy's value and on each action's outcome
    # widens the value tests (docs/ope.md, *The bias bound*)
    checks, error = model_checks(cfg, model, panel, candidate, per_action=cfg.gate.model_error)
    if not cfg.gate.model_error:
        error = WorldError()
    evidence = simulation_rows(cfg, members, candidate, baselines, error)
    # worlds, not value models: each member's tables are built for one policy and freed (a
    # value model keeps its outcome model of every week of year: 1 to 2 GB on a roastery world)
    ope_members = tuple(members) if cfg.gate.model_error and len(members) > 1 else ()
    policy_errors = [(e.candidate_error, e.champion_error) for e in evidence]
    evidence.extend(
        ope_evidence(
            cfg, model, candidate, baselines, panel, error.logging, ope_members, policy_errors
        )
    )
    evidence.append(model_free_row(cfg, model, candidate, panel))
    evidence.extend(checks)
    canary_possible = cfg.serve.rollout.enabled and champion_ref != "staff_rules"
    decision = decide(evidence, cfg.gate.inconclusive, canary_possible)
    for warning in decision.warnings:
        log.warning("%s", warning)
    record(cfg, decision, version, champion_ref)
    return decision


def simulation_rows(
    cfg: PromoteConfig,
    members: Sequence[WorldSpec],
    candidate: Policy,
    baselines: Sequence[tuple[Policy, str, bool]],
    error: WorldError | None = None,
) -> list[Evidence]:
    """The simulation test in every world of ``members`` (the same customers and random
    numbers in each): the candidate against each ``(policy, label, blocking)`` baseline, one
    row per baseline over the members' values (their spread and, with ``error``, the model
    check's bias bound counted in the interval: from the logging policy's check and from the
    per-action checks weighted by the value each policy draws from each action over the
    members, see :func:`~journeyopt.tracking.promotion.simulation_evidence`)."""
    sim, gate = cfg.simulator, cfg.gate
    error = error if error is not None else WorldError()
    values: list[list[np.ndarray]] = []  # per member: candidate, then each baseline
    parts: list[list[np.ndarray]] = []  # per member: (A,) mean value drawn from each action
    for member in members:
        result = evaluate_policies(
            member,
            [candidate, *(policy for policy, _, _ in baselines)],
            n_customers=cfg.n_customers,
            horizon_weeks=sim.horizon_weeks,
            gamma=sim.gamma,
            seed=cfg.seed,
            start_week_of_year=sim.start_week_of_year,
            rules=serving_rules(member, cfg.serve.rules),  # what serving will allow
            reference=None,
            outcome_weeks=gate.model_check_outcome_weeks,  # as the per-action check's outcome
        )
        values.append([run.value for run in result.runs])
        parts.append([np.asarray(run.action_value).mean(axis=0) for run in result.runs])
    source = members[0].name if len(members) == 1 else f"mean of {len(members)} members"
    rows: list[Evidence] = []
    for j, (_, label, blocking) in enumerate(baselines):
        candidate_values = np.stack([v[0] for v in values])
        baseline_values = np.stack([v[1 + j] for v in values])
        candidate_error = error.policy_error(np.mean([p[0] for p in parts], axis=0))
        baseline_error = error.policy_error(np.mean([p[1 + j] for p in parts], axis=0))
        uplifts = (candidate_values - baseline_values).mean(axis=1)
        where = source if len(members) == 1 else (
            f"{source} (uplifts {uplifts.min():+,.2f} to {uplifts.max():+,.2f})"
        )  # fmt: skip
        rows.append(
            simulation_evidence(
                where,
                candidate_values,
                baseline_values,
                gate.confidence,
                gate.min_sim_improvement,
                baseline=label,
                blocking=blocking,
                key="simulation" if blocking else "simulation_vs_practice",
                relative_error=error.logging,
                model_error=gate.model_error,
                candidate_error=candidate_error,
                champion_error=baseline_error,
            )
        )
    return rows


def promote_version(
    registry: PolicyRegistry,
    version: ResolvedVersion,
    decision: Decision,
    reason: str,
    rollout: RolloutConfig | None = None,
    started: pd.Timestamp | None = None,
) -> None:
    """Move the ``champion`` alias to ``version`` with the decision's lower bounds as evidence;
    with ``rollout`` enabled and a champion replaced, ``version`` starts on a canary share of
    the treatment group (:func:`journeyopt.tracking.rollout.start_rollout`) from ``started``
    (UTC; default now)."""
    replaced = current_rollout(registry)
    registry.promote(
        version.version,
        CHAMPION,
        reason=reason,
        evidence={
            f"{e.test}.{k}.lower_bound": f"{e.lower_bound:.4f}"
            for k, e in enumerate(decision.evidence)
        },
    )
    log.info("promoted %s to %s", version.uri, CHAMPION)
    if rollout is not None and rollout.enabled:
        previous = replaced.champion if replaced is not None else None
        if replaced is not None and replaced.previous is not None:
            previous = replaced.previous  # a canary replaced mid-way: the proven version stays
        state = start_rollout(registry, version.version, previous, rollout.canary_share, started)
        log.info("rollout of %s: %s", version.uri, state.stage)


def _number(value: float, relative: bool, signed: bool) -> str:
    if not np.isfinite(value):
        return "–"
    if relative:
        return f"{100 * value:+.1f} %"
    return f"{value:+,.2f}" if signed else f"{value:,.2f}"


def _result(evidence: Evidence) -> str:
    if evidence.passed:
        return "[green]pass[/green]"
    if evidence.inconclusive and evidence.blocking:
        return "[yellow]inconclusive[/yellow]"
    return "[red]FAIL[/red]" if evidence.blocking else "[yellow]fail (warning)[/yellow]"


def evidence_table(decision: Decision, candidate: str) -> Table:
    """The gate's evidence as a rich table: one row per test with what the candidate was
    judged against, the estimate and its interval (the two-sided interval whose lower end is
    the one-sided bound), the pass rule and the result."""
    colour = {"promoted": "green", "refused": "red"}.get(decision.verdict, "yellow")
    verdict = f"[{colour}]{decision.verdict}[/{colour}]"
    table = Table(title=f"promotion gate: {candidate} {verdict}", title_justify="left")
    for column in ("test", "judged against", "source", "estimate", "interval", "criterion"):
        table.add_column(column, justify="right" if column in ("estimate", "interval") else "left")
    table.add_column("result")
    for e in decision.evidence:
        signed = e.test in ("simulation", "ope")
        interval = (
            f"{_number(e.lower_bound, e.relative, signed)} to "
            f"{_number(e.ci_high, e.relative, signed)}"
        )
        table.add_row(
            e.test,
            e.baseline or "–",
            e.source,
            _number(e.improvement, e.relative, signed),
            interval,
            e.criterion,
            _result(e),
        )
    return table


def components_table(decision: Decision) -> Table | None:
    """What each value test's interval is made of (None when no row measured the world's
    error): the interval from sampling alone, the improvement's standard deviation across the
    ensemble's members, the bias bound from the model check's relative bound, and the interval
    that counts them all (docs/ope.md, *The value tests' intervals*)."""
    rows = [
        e
        for e in decision.evidence
        if e.test in ("simulation", "ope") and (np.isfinite(e.members_sd) or np.isfinite(e.bias))
    ]
    if not rows:
        return None
    title = "value tests: the interval with the world's own error"
    table = Table(title=title, title_justify="left")
    for column in ("test", "judged against", "sampling", "members SD", "world bias", "interval"):
        left = column in ("test", "judged against")
        table.add_column(column, justify="left" if left else "right")
    for e in rows:
        bias = f"±{e.bias:,.2f} ({e.bias_source})" if np.isfinite(e.bias) else "–"
        table.add_row(
            e.test,
            e.baseline or "–",
            f"{_number(e.sampling_low, False, True)} to {_number(e.sampling_high, False, True)}",
            _number(e.members_sd, False, False),
            bias,
            f"{_number(e.lower_bound, False, True)} to {_number(e.ci_high, False, True)}",
        )
    return table


def recent_panel(cfg: PromoteConfig, world: WorldSpec | None = None) -> pd.DataFrame:
    """The weekly panel of the gate's logs (``cfg.data``); with ``world``, it also counts
    every window and action the served rules (``serve.rules``) and the world's own summary
    read (its feature switches too), whatever ``cfg.panel`` names, so rules with their own
    windows are evaluated on the logs as in serving, and with ``panel.lapse_weeks`` null the
    world's own lapse threshold (without ``world``: read off the logs)."""
    logs, _ = ingest_to_logs(cfg.data)
    settings = cfg.panel
    if world is not None:
        # what the world's own summary reads (its pattern, last action...) and the rules
        settings = counting(settings, world.features, serving_rules(world, cfg.serve.rules).spec)
        if settings.lapse_weeks is None:  # null: the world's own threshold, as it is served
            settings = replace(settings, lapse_weeks=world.features.lapse_weeks)
    panel = build_panel(logs, settings, tuple(cfg.data.contact_channels))
    if panel.empty:
        raise JourneyoptError(f"{cfg.data.path}: the logs give an empty panel")
    return panel


def served_trajectories(
    cfg: PromoteConfig, panel: pd.DataFrame, world: WorldSpec, weeks: int
) -> LoggedTrajectories:
    """The last ``weeks`` weeks of the logs' ``panel`` as trajectories, masked by the contact
    rules ``serve.rules`` exactly as serving masks (a contact serving would forbid is never
    credited to a policy)."""
    recent = panel[panel["week"] > int(panel["week"].max()) - weeks]
    rules = serving_rules(world, cfg.serve.rules)
    return logged_trajectories(recent, world, rules, weeks, cfg.data.amounts)


def recent_weeks(cfg: PromoteConfig, panel: pd.DataFrame, wanted: int) -> int:
    """``wanted``, or fewer when the logs hold fewer weeks from their first contact decision
    to their last week.

    Raises:
        JourneyoptError: The logs hold no contact decision.
    """
    decided = panel["propensity"].notna() | (panel["action"].astype(str) != "none")
    if not decided.any():
        raise JourneyoptError(f"{cfg.data.path}: the logs hold no contact decision")
    last = int(panel["week"].max())
    return min(wanted, last - int(panel.loc[decided, "week"].min()) + 1)


def model_evidence(
    cfg: PromoteConfig, model: ValueModel, panel: pd.DataFrame, candidate: Policy | None = None
) -> list[Evidence]:
    """The model check's rows of the gate (:func:`model_checks`)."""
    return model_checks(cfg, model, panel, candidate)[0]


def model_checks(
    cfg: PromoteConfig,
    model: ValueModel,
    panel: pd.DataFrame,
    candidate: Policy | None = None,
    per_action: bool = False,
) -> tuple[list[Evidence], WorldError]:
    """The model check (:mod:`journeyopt.evaluation.ope.model_check`): the logging policy
    replayed in the ``model`` world over the last ``ope.model_check_weeks`` weeks of the logs
    (all of them when fewer) against what the logs realised; then, with a ``candidate``, the
    model's response to each action it takes in at least ``gate.model_check_min_action_share``
    of its decisions on those logged states (one row per action). Also the bounds they put
    on the world's relative error (the value tests' bias bound): the logging policy's, and
    with ``per_action`` every action's, whatever the candidate's share of it
    (:func:`~journeyopt.evaluation.ope.model_check.check_every_action`, one pass of the model
    for the rows and the bounds)."""
    weeks = recent_weeks(cfg, panel, cfg.ope.model_check_weeks)
    logged = served_trajectories(cfg, panel, model.world, weeks)
    settings = ModelCheckSettings(
        tolerance=cfg.gate.model_check_tolerance,
        n_boot=cfg.ope.n_boot,
        confidence=2 * cfg.gate.confidence - 1,
        seed=cfg.ope.seed,
        strict=cfg.gate.model_check_strict,
        min_action_share=cfg.gate.model_check_min_action_share,
        action_outcome_weeks=cfg.gate.model_check_outcome_weeks,
    )
    try:
        check = check_model(logged, model, cfg.simulator.gamma, settings)
    except ValueError as err:  # e.g. the logged customers realised no reward at all
        raise JourneyoptError(f"{cfg.data.path}: model check: {err}") from err
    blocking = cfg.gate.require_model_check
    source = (
        f"logging policy replayed in the model world, "
        f"{logged.n_customers} customers x {weeks} weeks"
    )
    rows = [model_check_evidence(check, source, blocking, units=logged.n_customers)]
    error = WorldError(check.error_bound, confidence=settings.confidence)
    if candidate is None:
        return rows, error
    target = target_probabilities(candidate, logged, cfg.ope.seed)
    shares = action_shares(target)
    used = material_actions(shares, settings.min_action_share)
    every: tuple[ActionCheck, ...] = ()
    if per_action or used:
        every = check_every_action(logged, model, cfg.simulator.gamma, shares, settings)
    if per_action:
        error = WorldError.of(check.error_bound, every, settings.confidence)
    for action in (every[a] for a in used):
        where = (
            f"outcome of {action.action!r} ({100 * action.share:.0f} % of the candidate's "
            f"decisions, {action.decisions} logged, {settings.action_outcome_weeks}-week outcome)"
        )
        rows.append(model_check_evidence(action, where, blocking, f"model_check_{action.action}"))
    return rows, error


def model_free_row(
    cfg: PromoteConfig, model: ValueModel, candidate: Policy, panel: pd.DataFrame
) -> Evidence:
    """The model-free evidence (:mod:`journeyopt.evaluation.ope.model_free`) of the
    candidate over the first weeks of the last ``ope.model_free_max_weeks`` logged weeks."""
    weeks = recent_weeks(cfg, panel, cfg.ope.model_free_max_weeks)
    logged = served_trajectories(cfg, panel, model.world, weeks)
    check = check_model_free(candidate, logged, model.world, ope_settings(cfg))
    window = check.window
    ess = window.ess_share[window.weeks - 1] if window.weeks else window.ess_share[0]
    source = (
        f"{MODEL_FREE_ESTIMATOR}, {logged.n_customers} customers, first {window.weeks} of "
        f"{weeks} logged weeks supported (ESS {100 * ess:.1f} %)"
    )
    return model_free_evidence(
        check,
        source,
        cfg.gate.require_model_free,
        cfg.ope.min_action_support,
        model.world.actions.names,
    )


def ope_settings(cfg: PromoteConfig) -> OPESettings:
    """The gate's OPE settings; intervals at ``2 * gate.confidence - 1``, so their lower end
    is the one-sided bound at ``gate.confidence``."""
    return OPESettings(
        gamma=cfg.simulator.gamma,
        n_boot=cfg.ope.n_boot,
        confidence=2 * cfg.gate.confidence - 1,
        seed=cfg.ope.seed,
        thresholds=OverlapThresholds(
            min_ess_share=cfg.ope.min_ess_share, min_action_support=cfg.ope.min_action_support
        ),
        rollout_customers=cfg.ope.rollout_customers,
    )


def ope_evidence(
    cfg: PromoteConfig,
    model: ValueModel,
    candidate: Policy,
    baselines: Sequence[tuple[Policy, str, bool]],
    panel: pd.DataFrame,
    relative_error: float = float("nan"),
    members: tuple[WorldSpec | ValueModel, ...] = (),
    policy_errors: Sequence[tuple[float, float]] = (),
) -> list[Evidence]:
    """The OPE test on the most recent weeks of the logs' ``panel`` (see
    :class:`PromoteOPEConfig`), the candidate against each ``(policy, label, blocking)``
    baseline; the long-term estimators value the policies over ``simulator.horizon_weeks``
    weeks from the window's first week (weeks of year from the logs' calendar), with
    ``model`` as the model world. Their model-based part (the value-to-go) counts the world's
    own error as the simulation test does (:func:`~journeyopt.tracking.promotion.
    model_error_interval`): the paired improvement's spread across ``members`` (the
    calibrated ensemble, each as the value-to-go's model) and, with ``relative_error`` (the
    model check's bound) and ``policy_errors`` (per baseline, the candidate's and the
    baseline's per-action bound on the relative error of their values, from the simulation
    test's rows: :meth:`~journeyopt.tracking.promotion.WorldError.policy_error`), the bias
    bound :func:`~journeyopt.tracking.promotion.bias_bound` on the two policies'
    value-to-go."""
    world = model.world
    estimator = cfg.gate.ope_estimator
    long_term = estimator in LONG_TERM_ESTIMATORS
    weeks = cfg.ope.horizon_weeks + (1 if long_term else 0)
    if long_term and cfg.ope.horizon_weeks > cfg.simulator.horizon_weeks:
        raise ConfigError(
            f"ope.horizon_weeks ({cfg.ope.horizon_weeks}) must not exceed "
            f"simulator.horizon_weeks ({cfg.simulator.horizon_weeks})"
        )
    logged = served_trajectories(cfg, panel, world, weeks)
    settings = ope_settings(cfg)

    def evaluate(policy: Policy) -> LogEvaluation:
        if long_term:
            return evaluate_long_term(
                policy, logged, model, settings, cfg.simulator.horizon_weeks, members
            )
        return evaluate_on_logs(policy, logged, world, settings, (estimator,))

    cand = evaluate(candidate)
    threshold = cfg.gate.min_ope_improvement
    value = f", {cfg.simulator.horizon_weeks}-week value" if long_term else ""
    source = (
        f"{estimator}, {logged.n_customers} customers x {cfg.ope.horizon_weeks}-week window{value}"
    )
    rows = []
    for j, (policy, label, blocking) in enumerate(baselines):
        errors = policy_errors[j] if j < len(policy_errors) else (np.nan, np.nan)
        champ = evaluate(policy)
        diff = paired_improvement(cand, champ, estimator, settings)
        member_uplifts = np.subtract(
            cand.member_values.get(estimator, ()), champ.member_values.get(estimator, ())
        )
        members_sd = float(member_uplifts.std(ddof=1)) if len(member_uplifts) > 1 else np.nan
        model_parts = (
            cand.model_part.get(estimator, np.nan),
            champ.model_part.get(estimator, np.nan),
        )
        parts = bias_parts(relative_error, *model_parts, *errors)
        bias = larger_bias(parts)
        low, high = model_error_interval(
            diff.value, diff.ci_low, diff.ci_high, members_sd, bias, cfg.gate.confidence
        )
        value_passed, value_inconclusive, value_note = value_verdict(low, diff.ci_low, threshold)
        notes = [value_note] if value_note else []
        more = ""
        overlap_short = False
        if cfg.gate.require_overlap and not cand.diagnostics.passed:
            notes.append("overlap diagnostics failed: " + "; ".join(cand.diagnostics.reasons))
            more = support_shortfall(
                cand.diagnostics, cfg.ope.min_action_support, world.actions.names
            )
            overlap_short = not more  # failed on more than support: evidence against
        row = Evidence(
            "ope",
            source,
            cand.intervals[estimator].value,
            champ.intervals[estimator].value,
            diff.value,
            low,
            threshold,
            not notes,
            "; ".join(notes),
            blocking,
            ci_high=high,
            baseline=label,
            criterion=f"lower bound > {threshold:g}"
            + (", overlap diagnostics pass" if cfg.gate.require_overlap else ""),
            key="ope" if blocking else "ope_vs_practice",
            sampling_low=diff.ci_low,
            sampling_high=diff.ci_high,
            members_sd=members_sd,
            bias=bias,
            relative_error=relative_error if np.isfinite(bias) else np.nan,
            bias_logging=parts[0],
            bias_actions=parts[1],
            candidate_error=errors[0] if np.isfinite(parts[1]) else np.nan,
            champion_error=errors[1] if np.isfinite(parts[1]) else np.nan,
        )
        inconclusive = bool(notes) and not overlap_short and (value_passed or value_inconclusive)
        needed = [more] if more else []
        if value_inconclusive:
            needed.append(world_error_more_data(row))
        rows.append(
            replace(
                row,
                inconclusive=inconclusive,
                more_data="; ".join(needed) if inconclusive else "",
            )
        )
    return rows


def record(cfg: PromoteConfig, decision: Decision, version: ResolvedVersion, champion: str) -> None:
    """The decision, evidence table, reasons and warnings as an MLflow run."""
    config = cast(dict[str, Any], OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True))
    tags = {"journeyopt.promotion.decision": decision.verdict}
    with tracked_run(config, f"promote-v{version.version}", tags=tags) as run:
        run.log_params({"promotion.candidate": version.uri, "promotion.champion": champion})
        metrics: dict[str, float] = {}
        for e in decision.evidence:
            if not e.blocking:
                continue
            if e.test in ("model_check", "model_free"):
                if e.key == "model_check":
                    metrics["ope/model_check_gap"] = e.improvement
                    metrics["ope/model_check_passed"] = float(e.passed)
                continue
            key = "sim" if e.test == "simulation" else "ope"
            metrics[f"{key}/improvement_lower_bound"] = min(
                e.lower_bound, metrics.get(f"{key}/improvement_lower_bound", np.inf)
            )
        metrics["eval/promoted"] = float(decision.promote)
        run.log_final_metrics({**metrics, **decision.metrics()})
        run.log_dict(
            {
                "promoted": decision.promote,
                "verdict": decision.verdict,
                "inconclusive": decision.inconclusive,
                "canary_only": decision.canary_only,
                "more_data": list(decision.more_data),
                "reasons": list(decision.reasons),
                "warnings": list(decision.warnings),
                "evidence": decision.table.to_dict(orient="records"),
            },
            "promotion/decision.json",
        )


@command("promote")
def main(cfg: DictConfig) -> None:
    register_configs()
    report_errors(lambda: promote(to_object(cfg, PromoteConfig)))


register_configs()
