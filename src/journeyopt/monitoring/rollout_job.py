"""``journeyopt-rollout status|advance|rollback`` and the weekly cycle's rollout step:
:func:`run_rollout`.

``status`` measures the canary (:mod:`journeyopt.monitoring.rollout`) and changes nothing;
``advance`` measures and carries out the decision in the registry
(:func:`journeyopt.tracking.rollout.widen` / :func:`~journeyopt.tracking.rollout.roll_back`),
``rollback`` returns the champion alias to the previous version now. ``advance`` and
``rollback`` are MLflow runs (``rollout-v<champion>-<date>``) with the evidence: the
``rollout/`` metrics (one value per run), the arms and comparisons as CSV, the verdict as
JSON and a Markdown page; serving processes follow the alias within their reload poll.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd
from omegaconf import OmegaConf

from journeyopt.calibration.card import markdown_table
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.errors import JourneyoptError
from journeyopt.monitoring.config import RolloutJobConfig
from journeyopt.monitoring.decisions_contacts import (
    decisions_to_contacts,
    read_decisions,
    with_decision_contacts,
)
from journeyopt.monitoring.exposure import COVARIATES, OUTCOMES, customer_outcomes
from journeyopt.monitoring.rollout import (
    CONTINUE,
    ROLLBACK,
    WIDEN,
    RolloutVerdict,
    adjustment_covariates,
    arm_table,
    compare_arms,
    comparison_table,
    decide,
    exposure_stage,
    rollout_groups,
    rollout_monday,
    verdict_metrics,
)
from journeyopt.outputs import staged_output_dir
from journeyopt.panel.build import build_panel
from journeyopt.serving.rollout import CONTROL_ARM, PREVIOUS_ARM
from journeyopt.sim.rules import ActionCatalog
from journeyopt.tracking.registry import PolicyRegistry
from journeyopt.tracking.rollout import CANARY, RolloutState, read_rollout, roll_back, widen
from journeyopt.tracking.run import tracked_run
from journeyopt.tracking.tags import run_tags


@dataclass(frozen=True)
class RolloutReport:
    """What :func:`run_rollout` found and did.

    Attributes:
        command: ``status``, ``advance`` or ``rollback``.
        before: The rollout state found.
        after: The rollout state left (the same for ``status`` and ``continue``).
        verdict: The measured verdict (None when nothing was measured: no canary, or a
            manual rollback without a decision log).
        acted: What was carried out: ``widen``, ``rollback`` or ``continue`` (nothing).
        arms: Per arm customers, customer-weeks and outcome per customer-week.
        run_id: MLflow run of the decision (None for ``status`` or tracking off).
    """

    command: str
    before: RolloutState
    after: RolloutState
    verdict: RolloutVerdict | None
    acted: str
    arms: pd.DataFrame
    run_id: str | None


def measure_rollout(
    cfg: RolloutJobConfig, state: RolloutState
) -> tuple[RolloutVerdict, pd.DataFrame, dict[str, object]]:
    """The canary against the previous policy and control, from the decision log and the
    real logs: ``(verdict, arms, facts)``.

    Raises:
        JourneyoptError: Unusable logs or decision log, or an unknown outcome.
    """
    settings = cfg.serve.rollout
    if settings.outcome not in OUTCOMES:
        raise JourneyoptError(
            f"serve.rollout.outcome must be one of {list(OUTCOMES)}, got {settings.outcome!r}"
        )
    unknown = [c for c in settings.covariates if c not in COVARIATES]
    if unknown:
        raise JourneyoptError(
            f"serve.rollout.covariates: unknown {unknown}; known: {list(COVARIATES)}"
        )
    data, panel_cfg = cfg.measured()
    if not data.path:
        raise JourneyoptError("data.path is required: the folder or file of the logs")
    margin_rate = data.economics.margin()
    decisions = read_decisions(cfg.decisions)
    logs, _ = ingest_to_logs(data)
    contacts = decisions_to_contacts(decisions, data)
    logs = with_decision_contacts(logs, contacts, decisions["week"].min())
    panel = build_panel(logs, panel_cfg, tuple(data.contact_channels))
    since = rollout_monday(state)
    facts: dict[str, object] = {
        "champion (canary)": state.champion,
        "previous": state.previous or "-",
        "canary share of treatment": state.canary_share,
        "canary started": str(state.started) if state.started is not None else "-",
        "outcome": f"{settings.outcome} per customer-week",
        "test": f"normal-mixture confidence sequence, alpha {settings.alpha:g}, tightest at "
        f"{settings.min_exposure_weeks} customer-weeks",
        "minimum exposure": f"rollback on the bound from {settings.rollback_exposure}"
        f", widening from {settings.min_exposure_weeks} customer-weeks per compared arm "
        "(the loss budget acts before the first)",
        "adjusted for": (", ".join(adjustment_covariates(settings.outcome, settings)) or "nothing")
        + f" (pre-period up to {settings.pre_weeks} weeks)",
    }
    empty = pd.DataFrame(columns=["arm", "customers", "customer_weeks"])
    if panel.empty:
        return decide(None, None, settings), empty, facts
    panel["week_start"] = pd.to_datetime(panel["week_start"], utc=True)
    groups, moved = rollout_groups(decisions, state)
    facts["customers seen in two arms (left out)"] = moved
    last_week = panel["week_start"].max()
    facts["measured weeks"] = f"{since.date()} to the week starting {last_week.date()}"
    if groups.empty or since > last_week:
        return decide(None, None, settings), empty, facts
    customers = customer_outcomes(
        panel,
        groups,
        since,
        settings.pre_weeks,
        margin_rate,
        ActionCatalog.from_source(data),
        data.amounts,
    )
    if customers.empty:
        return decide(None, None, settings), empty, facts
    vs_previous = compare_arms(customers, settings.outcome, PREVIOUS_ARM, settings)
    vs_control = compare_arms(customers, settings.outcome, CONTROL_ARM, settings)
    for c in (vs_previous, vs_control):
        if c is not None:
            facts[f"exposure against {c.against}"] = exposure_stage(c, settings)
    return (
        decide(vs_previous, vs_control, settings),
        arm_table(customers, settings.outcome),
        facts,
    )


def _markdown(report: RolloutReport, facts: dict[str, object]) -> str:
    lines = [f"# Staged rollout of version {report.before.champion}: {report.acted}", ""]
    lines += [f"- **{k}**: {v}" for k, v in facts.items()]
    if report.verdict is not None:
        lines += ["", f"## Verdict: {report.verdict.decision}", ""]
        lines += [f"- {r}" for r in report.verdict.reasons]
        table = comparison_table(report.verdict)
        if not table.empty:
            lines += ["", "## Canary against the other arms", "", markdown_table(table)]
    if not report.arms.empty:
        lines += ["", "## Arms", "", markdown_table(report.arms)]
    return "\n".join(lines) + "\n"


def _write_evidence(folder: Path, report: RolloutReport, facts: dict[str, object]) -> list[Path]:
    paths = [folder / "rollout.md", folder / "arms.csv", folder / "verdict.json"]
    paths[0].write_text(_markdown(report, facts))
    report.arms.to_csv(paths[1], index=False)
    verdict = report.verdict
    payload = {
        "command": report.command,
        "acted": report.acted,
        "decision": verdict.decision if verdict else "none",
        "reasons": list(verdict.reasons) if verdict else [],
        "before": report.before.key,
        "after": report.after.key,
        "facts": {k: str(v) for k, v in facts.items()},
    }
    paths[2].write_text(json.dumps(payload, indent=2) + "\n")
    if verdict is not None and verdict.vs_previous is not None:
        paths.append(folder / "comparisons.csv")
        comparison_table(verdict).to_csv(paths[-1], index=False)
    return paths


def _config_dict(cfg: object) -> dict[str, Any]:
    return cast(dict[str, Any], OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True))


def run_rollout(cfg: RolloutJobConfig) -> RolloutReport:
    """Run ``cfg.command`` on the champion's rollout (see the module docstring).

    Raises:
        JourneyoptError: No champion in the registry, tracking off, a manual rollback
            without a canary, or unusable inputs.
    """
    if not cfg.tracking.enabled:
        raise JourneyoptError("the rollout's state is in the MLflow registry: tracking=mlflow")
    registry = PolicyRegistry(cfg.tracking)
    state = read_rollout(registry)
    if state is None:
        raise JourneyoptError(f"no champion in the registry ({registry.name}): nothing to roll")
    if cfg.command == "rollback" and state.stage != CANARY:
        raise JourneyoptError(
            f"version {state.champion} serves the whole treatment group (stage "
            f"{state.stage}): no canary to roll back"
        )
    verdict: RolloutVerdict | None = None
    arms = pd.DataFrame(columns=["arm", "customers", "customer_weeks"])
    facts: dict[str, object] = {"champion": state.champion, "stage": state.stage}
    if state.stage == CANARY and cfg.decisions:
        verdict, arms, facts = measure_rollout(cfg, state)
    if cfg.command == "status":
        return RolloutReport("status", state, state, verdict, CONTINUE, arms, None)
    acted = ROLLBACK if cfg.command == "rollback" else CONTINUE
    if verdict is not None and cfg.command == "advance":
        acted = verdict.decision
    reason = f"manual: {cfg.reason}" if cfg.command == "rollback" else ""
    if verdict is not None and not reason:
        reason = "; ".join(verdict.reasons)
    day = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d")
    tags = {
        **run_tags(),
        "journeyopt.rollout.champion": state.champion,
        "journeyopt.rollout.previous": state.previous or "",
        "journeyopt.rollout.acted": acted,
        "journeyopt.rollout.reasons": reason or "-",
    }
    with tracked_run(_config_dict(cfg), f"rollout-v{state.champion}-{day}", tags=tags) as run:
        after = state
        if acted == WIDEN:
            after = widen(registry, reason)
        elif acted == ROLLBACK:
            after = roll_back(registry, reason)
        report = RolloutReport(cfg.command, state, after, verdict, acted, arms, run.run_id)
        metrics = verdict_metrics(verdict, state) if verdict is not None else {}
        metrics["rollout/acted"] = {WIDEN: 1.0, ROLLBACK: -1.0}.get(acted, 0.0)
        run.log_metrics(metrics, step=0)
        with contextlib.ExitStack() as stack:
            folder = (
                stack.enter_context(staged_output_dir(cfg.output_dir, cfg.overwrite))
                if cfg.output_dir
                else Path(stack.enter_context(tempfile.TemporaryDirectory()))
            )
            for path in _write_evidence(folder, report, facts):
                run.log_artifact(path, "rollout")
    return report
