"""The two measurement jobs a weekly cycle calls: :func:`measure_uplift` (``journeyopt-uplift``)
and :func:`detect_drift` (``journeyopt-drift``). Each ingests the logs in memory, builds the
weekly panel, measures, writes its report into ``output_dir`` and logs one MLflow run."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.schema import CanonicalLogs
from journeyopt.errors import JourneyoptError
from journeyopt.monitoring.config import DriftJobConfig, UpliftJobConfig, WindowConfig
from journeyopt.monitoring.decisions_contacts import (
    WEEK,
    customer_groups,
    decisions_to_contacts,
    read_decisions,
    with_decision_contacts,
)
from journeyopt.monitoring.drift import (
    DriftFindings,
    action_drift,
    drift_reasons,
    population_drift,
    response_drift,
)
from journeyopt.monitoring.exposure import OUTCOMES, customer_outcomes
from journeyopt.monitoring.prediction import predicted_margin_uplift
from journeyopt.monitoring.report import write_drift_report, write_uplift_report
from journeyopt.monitoring.uplift import uplift_table
from journeyopt.outputs import check_output_dir, staged_output_dir
from journeyopt.panel.build import build_panel
from journeyopt.panel.config import counting, feature_spec, parse_as_of
from journeyopt.panel.segments import customer_snapshot
from journeyopt.panel.suggest import panel_for_logs
from journeyopt.sim.rules import ActionCatalog
from journeyopt.sim.world import load_world
from journeyopt.tracking.run import tracked_run
from journeyopt.tracking.tags import run_tags


@dataclass(frozen=True)
class UpliftResult:
    """What :func:`measure_uplift` measured.

    Attributes:
        table: Uplift per outcome, overall and by segment
            (:data:`~journeyopt.monitoring.uplift.UPLIFT_COLUMNS`).
        customers: The customer-level outcomes behind it.
        prediction: Predicted vs realised margin uplift per customer-week (empty without a
            prediction run).
        metrics: The ``uplift/`` metrics logged to MLflow.
        output_dir: Folder of the report.
        run_id: MLflow run id; None with tracking off.
    """

    table: pd.DataFrame
    customers: pd.DataFrame
    prediction: dict[str, float]
    metrics: dict[str, float]
    output_dir: Path
    run_id: str | None


def _config_dict(cfg: object) -> dict[str, Any]:
    return cast(dict[str, Any], OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True))


def _monday(ts: pd.Timestamp) -> pd.Timestamp:
    """Monday 00:00 UTC of the week containing ``ts`` (weeks of the panel start then)."""
    day = ts.tz_convert("UTC").normalize()
    return day - pd.Timedelta(days=int(day.day_of_week))


def _logs(cfg: UpliftJobConfig | DriftJobConfig) -> CanonicalLogs:
    if not cfg.data.path:
        raise JourneyoptError("data.path is required: the folder or file of the logs")
    logs, _ = ingest_to_logs(cfg.data)
    return logs


def _panel(logs: CanonicalLogs, cfg: UpliftJobConfig | DriftJobConfig) -> pd.DataFrame:
    panel = build_panel(logs, cfg.panel, tuple(cfg.data.contact_channels))
    if panel.empty:
        raise JourneyoptError(f"{cfg.data.path}: the logs give an empty panel")
    panel["week_start"] = pd.to_datetime(panel["week_start"], utc=True)
    return panel


def _lifecycle_at(
    logs: CanonicalLogs, cfg: UpliftJobConfig, since: pd.Timestamp, ids: pd.Series
) -> pd.Series:
    """Each customer's lifecycle stage at ``since`` (``new``: first seen later)."""
    snapshot = customer_snapshot(logs, cfg.panel, tuple(cfg.data.contact_channels), since)
    stage = snapshot.set_index("customer_id")["lifecycle"].astype(str)
    return ids.map(stage).fillna("new")


def measure_uplift(cfg: UpliftJobConfig) -> UpliftResult:
    """Estimate the champion's real uplift over the holdout (see :mod:`..exposure` and
    :mod:`..uplift`), write the report and log the run.

    Raises:
        JourneyoptError: Unusable decision log or logs, or ``since`` after the data.
    """
    out = Path(cfg.output_dir)
    check_output_dir(out, cfg.overwrite)
    margin_rate = cfg.data.economics.margin()  # refuse before the work
    decisions = read_decisions(cfg.decisions)
    logs = _logs(cfg)
    cfg = replace(cfg, panel=panel_for_logs(cfg.panel, logs.events))  # lapse_weeks null
    if cfg.contacts == "decisions":
        contacts = decisions_to_contacts(decisions, cfg.data)
        logs = with_decision_contacts(logs, contacts, decisions["week"].min())
    panel = _panel(logs, cfg)
    since = _monday(parse_as_of(cfg.since))
    last_week = panel["week_start"].max()
    if since > last_week:
        raise JourneyoptError(
            f"since={cfg.since} is after the data: the last complete week of the logs starts "
            f"{last_week.date()}"
        )
    groups, n_both = customer_groups(decisions, since)
    customers = customer_outcomes(
        panel,
        groups,
        since,
        cfg.estimator.pre_weeks,
        margin_rate,
        ActionCatalog.from_source(cfg.data),
        cfg.data.amounts,
    )
    if customers.empty:
        raise JourneyoptError(
            f"no customer of the decision log {cfg.decisions} has a complete week in the logs "
            f"from {since.date()} on: do the logs and the decision log share customer ids?"
        )
    customers["lifecycle"] = _lifecycle_at(logs, cfg, since, customers["customer_id"])
    est = cfg.estimator
    table = uplift_table(
        customers,
        OUTCOMES,
        ("segment", "lifecycle"),
        method=est.method,
        interval=est.interval,
        confidence=est.confidence,
        bootstrap_samples=est.bootstrap_samples,
        min_customers=est.min_customers,
        rng=np.random.default_rng(est.seed),
    )
    overall = table[table["grouping"] == "all"].set_index("outcome")
    if overall["uplift"].isna().all():
        raise JourneyoptError(
            f"too few customers per group to estimate uplift (treatment "
            f"{int(overall['treatment_customers'].iloc[0])}, control "
            f"{int(overall['control_customers'].iloc[0])}; estimator.min_customers="
            f"{est.min_customers})"
        )
    prediction = (
        predicted_margin_uplift(cfg.tracking, cfg.prediction, _row(overall, "margin"))
        if cfg.prediction.run_id
        else {}
    )
    metrics = _uplift_metrics(overall, customers, n_both, prediction)
    facts: dict[str, object] = {
        "measured weeks": f"{since.date()} to the week starting {last_week.date()}",
        "customers": f"{int((customers['group'] == 'treatment').sum())} treatment, "
        f"{int((customers['group'] == 'control').sum())} control",
        "scored customers without a complete week in the logs": len(groups) - len(customers),
        "customers scored in both groups (left out)": n_both,
        "estimator": f"{est.method}, {est.interval} {est.confidence:.0%} interval, "
        f"pre-period {est.pre_weeks} weeks",
        "currency": cfg.data.economics.currency,
    }
    with tracked_run(
        _config_dict(cfg), f"uplift-{since.date()}", tags=run_tags(), log_config=True
    ) as run:
        with staged_output_dir(out, cfg.overwrite) as staging:
            paths = write_uplift_report(staging, table, customers, facts, prediction)
            run.log_metrics(metrics, step=0)
            for path in paths:
                run.log_artifact(path, "uplift")
        run_id = run.run_id
    return UpliftResult(table, customers, prediction, metrics, out, run_id)


def _row(table: pd.DataFrame, label: str) -> pd.Series:
    row = table.loc[label]
    assert isinstance(row, pd.Series)
    return row


def _uplift_metrics(
    overall: pd.DataFrame, customers: pd.DataFrame, n_both: int, prediction: dict[str, float]
) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for outcome, row in overall.iterrows():
        for column in ("uplift", "ci_low", "ci_high", "treatment_mean", "control_mean"):
            value = float(row[column])
            if np.isfinite(value):
                suffix = "" if column == "uplift" else f"_{column}"
                metrics[f"uplift/{outcome}{suffix}"] = value
    metrics["uplift/treatment_customers"] = float((customers["group"] == "treatment").sum())
    metrics["uplift/control_customers"] = float((customers["group"] == "control").sum())
    metrics["uplift/customers_in_both_groups"] = float(n_both)
    metrics.update({f"uplift/{k}": v for k, v in prediction.items() if np.isfinite(v)})
    return metrics


# -- drift -----------------------------------------------------------------------------------


def _window_weeks(
    starts: pd.Series, window: WindowConfig, default: tuple[pd.Timestamp, pd.Timestamp], name: str
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[first, end)`` week starts of a window; a clear error when it holds no week."""
    first = _monday(parse_as_of(window.start)) if window.start else default[0]
    end = parse_as_of(window.end) if window.end else default[1]
    if not ((starts >= first) & (starts < end)).any():
        raise JourneyoptError(
            f"{name} window {first.date()} to {end.date()} holds no complete week of the logs "
            f"(weeks start {starts.min().date()} to {starts.max().date()})"
        )
    return first, end


def drift_windows(
    panel: pd.DataFrame, cfg: DriftJobConfig
) -> tuple[tuple[pd.Timestamp, pd.Timestamp], tuple[pd.Timestamp, pd.Timestamp]]:
    """The reference and current windows as ``[first week start, end)`` instants."""
    starts = panel["week_start"]
    last = starts.max()
    default_current = (last - (cfg.current_weeks - 1) * WEEK, last + WEEK)
    current = _window_weeks(starts, cfg.current, default_current, "current")
    default_reference = (current[0] - cfg.reference_weeks * WEEK, current[0])
    reference = _window_weeks(starts, cfg.reference, default_reference, "reference")
    if reference[1] > current[0]:
        raise JourneyoptError(
            f"the reference window (to {reference[1].date()}) overlaps the current window "
            f"(from {current[0].date()})"
        )
    return reference, current


def one_week_per_customer(
    panel: pd.DataFrame, window: tuple[pd.Timestamp, pd.Timestamp], rng: np.random.Generator
) -> pd.DataFrame:
    """One uniformly drawn panel row of each customer present in ``window``: independent
    samples (one per customer) that average over the calendar (a snapshot at one week would
    see, e.g., where a monthly mailing's cycle stands)."""
    inside = panel[(panel["week_start"] >= window[0]) & (panel["week_start"] < window[1])]
    order = rng.permutation(len(inside))
    return inside.iloc[order].drop_duplicates("customer_id", keep="first")


def detect_drift(cfg: DriftJobConfig) -> tuple[DriftFindings, str | None]:
    """Compare the current window with the reference (see :mod:`..drift`), write the report
    and log the run; returns the findings and the MLflow run id (None with tracking off).

    Raises:
        JourneyoptError: Unusable logs or world, or a window without weeks.
    """
    out = Path(cfg.output_dir)
    check_output_dir(out, cfg.overwrite)
    logs = _logs(cfg)
    cfg = replace(cfg, panel=panel_for_logs(cfg.panel, logs.events))  # lapse_weeks null
    spec = feature_spec(cfg.panel, tuple(cfg.data.contact_channels))
    world = load_world(cfg.world) if cfg.world else None
    if world is not None:  # the panel also counts what the world's summary reads
        cfg = replace(cfg, panel=counting(cfg.panel, world.features))
    panel = _panel(logs, cfg)
    reference, current = drift_windows(panel, cfg)
    unknown = sorted(set(cfg.exclude_features) - set(spec.feature_names))
    if unknown:
        raise JourneyoptError(f"exclude_features {unknown} are not panel features")
    features = [f for f in spec.feature_names if f not in cfg.exclude_features]
    th = cfg.thresholds
    rng = np.random.default_rng(cfg.seed)
    population = population_drift(
        one_week_per_customer(panel, reference, rng),
        one_week_per_customer(panel, current, rng),
        features,
        th,
    )
    in_window = {
        name: panel[(panel["week_start"] >= w[0]) & (panel["week_start"] < w[1])]
        for name, w in (("reference", reference), ("current", current))
    }
    weeks = {k: v[v["tenure_weeks"] > 0] for k, v in in_window.items()}
    try:
        actions = action_drift(weeks["reference"], weeks["current"], cfg.data.action_names, th)
        responses = pd.DataFrame()
        if world is not None:
            responses = pd.concat(
                [response_drift(rows, world, name, th) for name, rows in weeks.items()],
                ignore_index=True,
            )
    except ValueError as err:
        raise JourneyoptError(f"{cfg.data.path}: {err}") from err
    findings = DriftFindings(
        population, actions, responses, drift_reasons(population, actions, responses)
    )
    verdict = {
        "drift_detected": findings.drift_detected,
        "reasons": list(findings.reasons),
        "reference": [str(reference[0].date()), str(reference[1].date())],
        "current": [str(current[0].date()), str(current[1].date())],
    }
    facts = {
        "reference weeks": f"{reference[0].date()} to {reference[1].date()} (exclusive)",
        "current weeks": f"{current[0].date()} to {current[1].date()} (exclusive)",
        "world (responses)": cfg.world or "(none)",
    }
    with tracked_run(_config_dict(cfg), "drift", tags=run_tags()) as run:
        run.set_tags({"journeyopt.drift_detected": str(findings.drift_detected).lower()})
        with staged_output_dir(out, cfg.overwrite) as staging:
            paths = write_drift_report(staging, findings, facts, verdict)
            run.log_metrics(_drift_metrics(findings), step=0)
            for path in paths:
                run.log_artifact(path, "drift")
        run_id = run.run_id
    return findings, run_id


def _drift_metrics(findings: DriftFindings) -> dict[str, float]:
    population, actions = findings.population, findings.actions
    overall = actions[actions["grouping"] == "all"]
    metrics = {
        "drift/detected": float(findings.drift_detected),
        "drift/reasons": float(len(findings.reasons)),
        "drift/features_drifted": float(population["drifted"].sum()),
        "drift/max_feature_psi": float(np.nanmax(population["psi"].to_numpy(np.float64))),
        "drift/action_psi": float(overall["psi"].iloc[0]),
    }
    if not findings.responses.empty:
        current = findings.responses[findings.responses["window"] == "current"]
        metrics["drift/responses_drifted"] = float(current["drifted"].sum())
        metrics["drift/max_response_abs_z"] = float(np.nanmax(np.abs(current["z"].to_numpy())))
    return {k: v for k, v in metrics.items() if np.isfinite(v)}
