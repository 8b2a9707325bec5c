"""``calibrate(cfg) -> CalibrationResult``: logs of any source -> a calibrated world, its
fidelity card and an MLflow run.

1. ingest the source in memory and build the weekly panel;
2. split the weeks: fit on those before ``calibration.split``, hold out the others;
3. fit the response models (:mod:`journeyopt.calibration.estimate`);
4. check the fit on the hold-out weeks, and against the ground truth when there is one
   (:mod:`journeyopt.calibration.holdout`, :mod:`journeyopt.calibration.policy_fidelity`);
5. write the world folder (with its starting population: the customers at the end of the logs,
   :mod:`journeyopt.calibration.base`) and the card, log everything to MLflow;
6. optionally export the folder to ``simulators/<name>/`` (:mod:`journeyopt.calibration.export`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from omegaconf import OmegaConf
from threadpoolctl import threadpool_limits

from journeyopt.calibration.base import starting_base
from journeyopt.calibration.bgnbd import panel_reference
from journeyopt.calibration.card import write_card
from journeyopt.calibration.config import CalibrateConfig
from journeyopt.calibration.cycles import cycles_meta, practice_cycles
from journeyopt.calibration.estimate import Estimate, Structure, estimate
from journeyopt.calibration.export import check_export, export_target, export_world
from journeyopt.calibration.extrapolation import world_extrapolation
from journeyopt.calibration.fidelity import (
    CardFidelity,
    Decisions,
    action_calibration,
    card_fidelity,
    holdout_weeks,
    logged_decisions,
    value_calibration,
)
from journeyopt.calibration.holdout import (
    HoldoutData,
    HoldoutReport,
    holdout_data,
    world_holdout,
)
from journeyopt.calibration.policy_fidelity import PolicyFidelity, check_truth, policy_fidelity
from journeyopt.calibration.propensity import contacts_identified
from journeyopt.calibration.rules_check import (
    caps_with_rule_components,
    check_rules,
    solved_optimum,
    with_rule_components,
)
from journeyopt.calibration.segmentation import FILE, choose_segments
from journeyopt.calibration.summary import (
    candidate_specs,
    select_summary,
    selection_meta,
    summary_panel_config,
)
from journeyopt.calibration.weeks import CustomerWeeks, codes_of, customer_weeks, segment_names
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.schema import CanonicalLogs
from journeyopt.errors import JourneyoptError
from journeyopt.outputs import check_output_dir, staged_output_dir
from journeyopt.panel.build import walk_panel
from journeyopt.panel.config import feature_spec
from journeyopt.panel.suggest import resolve_lapse_weeks
from journeyopt.parallel import run_tasks, start_task
from journeyopt.sim.discrete import DiscreteLayout
from journeyopt.sim.dynamics import ResponseTable
from journeyopt.sim.rules import ActionCatalog
from journeyopt.sim.world import DiscreteSpec, WorldSpec, load_world
from journeyopt.timing import StageTime, Stopwatch
from journeyopt.tracking.run import tracked_run


@dataclass(frozen=True)
class CalibrationResult:
    """What a calibration produced.

    Attributes:
        output_dir: Folder of the calibrated world (load it with ``load_world``) and card.
        estimate: The fitted world and its diagnostics.
        holdout: Hold-out fidelity; None without hold-out weeks.
        fidelity: The card's by-action calibration, weekly tracking and ensemble spread;
            None without hold-out weeks.
        policies: Policy-value fidelity; None without a ground truth.
        metrics: The fidelity metrics logged to MLflow (``sim/...``).
        run_id: MLflow run id; None with tracking off.
        exported: The export folder (``simulators/<name>/``); None without ``export``.
        stages: Wall and CPU time of each stage (``ingest``, ``panel``, ``propensities``,
            ``penalties``, ``point_fit``, ``ensemble``, ``base``, ``holdout``, ``policies``,
            ``card``), also logged as each ends (:mod:`journeyopt.timing`).
    """

    output_dir: Path
    estimate: Estimate
    holdout: HoldoutReport | None
    policies: PolicyFidelity | None
    metrics: dict[str, float]
    run_id: str | None
    exported: Path | None = None
    fidelity: CardFidelity | None = None
    stages: dict[str, StageTime] = field(default_factory=dict)


def fingerprint(logs: CanonicalLogs) -> str:
    """SHA-256 of the canonical events and contacts (customer, time, kind/action, value): the
    same logs give the same fingerprint whatever their file layout."""
    digest = hashlib.sha256()
    events = logs.events[["customer_id", "ts", "kind", "value"]]
    contacts = logs.contacts[["customer_id", "ts", "action"]]
    for frame in (events, contacts):
        hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        digest.update(np.sort(hashed).tobytes())
    return digest.hexdigest()


def sample_customers(logs: CanonicalLogs, max_customers: int, seed: int) -> CanonicalLogs:
    """The logs of a random sample of at most ``max_customers`` customers (all of them when
    ``max_customers`` is 0 or not smaller than their number).

    The sample is the customers with the smallest seeded hashes of their ids: a uniform
    random sample for a given ``seed``, computed with integer operations only (the ids are
    hashed once per table; comparing millions of id strings against a set is much slower).
    """
    if max_customers <= 0:
        return logs
    key = f"{seed % 10**16:016d}"

    def hashes(frame: pd.DataFrame) -> NDArray[np.uint64]:
        ids = frame["customer_id"].astype(str).to_numpy(object)
        return pd.util.hash_array(ids, hash_key=key, categorize=True)

    tables = {"events": logs.events, "contacts": logs.contacts, "customers": logs.customers}
    hashed = {
        name: hashes(frame)
        for name, frame in tables.items()
        if not frame.empty and "customer_id" in frame
    }
    present = [hashed[n] for n in ("events", "contacts") if n in hashed]
    unique = np.unique(np.concatenate(present)) if present else np.zeros(0, np.uint64)
    if unique.shape[0] <= max_customers:
        return logs
    cutoff = np.partition(unique, max_customers - 1)[max_customers - 1]
    kept = {name: tables[name][h <= cutoff].reset_index(drop=True) for name, h in hashed.items()}
    return replace(logs, **kept)


def split_week(panel: pd.DataFrame, split: str, holdout_weeks: int) -> int:
    """First hold-out week index: the week starting on or after ``split`` (a Monday at or
    after it), else ``holdout_weeks`` before the panel's end (no hold-out: past the end)."""
    last = int(panel["week"].max())
    if split:
        ts = pd.Timestamp(split, tz="UTC")
        starts = panel.drop_duplicates("week").set_index("week")["week_start"]
        later = starts[starts >= ts]
        return int(later.index.min()) if not later.empty else last + 1
    return last + 1 - holdout_weeks


def logging_start(panel: pd.DataFrame) -> int:
    """First week with a logged decision (a contact or a logged ``none``); 0 when nothing
    was ever logged (purchase-only sources). Earlier weeks are not fitted: their contact
    decisions are unknown (the history before the company started logging)."""
    logged = panel["propensity"].notna().to_numpy() | (codes_of(panel["action"], ("none",)) != 0)
    return int(panel.loc[logged, "week"].min()) if logged.any() else 0


@threadpool_limits.wrap(limits=1, user_api="blas")
def calibrate(cfg: CalibrateConfig) -> CalibrationResult:
    """Run a calibration (see the module docstring); ``cfg.data.path`` must be set.

    BLAS runs on one thread: the calibration's dense algebra is small (a few hundred columns,
    bootstrap products of 64 rows), and on a busy machine OpenBLAS's threads waiting for each
    other made such calls 10-20 times slower (a 64 x 10,000 product: 9 ms instead of 0.5 ms).
    DuckDB's threads (ingest, panel) are not BLAS and keep their parallelism."""
    out = Path(cfg.output_dir)
    check_output_dir(out, cfg.overwrite)
    target = export_target(cfg.export, cfg.export_dir) if cfg.export else None
    if target is not None:
        check_export(target, cfg.overwrite)  # refuse before the work, not after it
    source, cal = cfg.data, cfg.calibration
    if not source.path:
        raise JourneyoptError("data.path is required: the logs to calibrate on")
    margin_rate = source.economics.margin()  # refuse before the work, not after it
    clock = Stopwatch()
    logs, _ = ingest_to_logs(source, cal.workers)  # the contacts beside the events
    # the logs' fingerprint (the world's metadata) needs nothing else: hashed beside the panel
    data_fingerprint = start_task(partial(fingerprint, logs), cal.workers)
    # panel.lapse_weeks null: read off the logs (up to panel.as_of); recorded with the config
    panel_settings, lapse_found = resolve_lapse_weeks(cfg.panel, logs.events)
    cfg = replace(cfg, panel=panel_settings)
    logs = sample_customers(logs, cal.max_customers, cal.seed)
    clock.lap("ingest")
    channels = tuple(source.contact_channels)
    actions = ActionCatalog.from_source(source)
    owner = f"data source {source.name!r}"
    # the candidates also get what the contact rules need (eligibility needs no component,
    # and its customer types are known once the panel is built)
    without_types = replace(cfg.rules, eligibility=[])
    needs = without_types.for_catalog(
        actions, feature_spec(cfg.panel, channels), (), "rules", owner
    )
    summary_cfg = with_rule_components(cal.summary, needs)
    # the panel counts what every candidate summary reads (calibration.summary), and what the
    # configured caps read (the value tiers' choice uses them, whatever the candidates)
    caps = caps_with_rule_components(DiscreteSpec(**asdict(cal.caps)), needs)
    specs = candidate_specs(caps, summary_cfg, actions=source.action_names)
    panel_cfg = summary_panel_config(cfg.panel, (caps, *specs), source.action_names)
    if cal.behaviour_types:  # the behaviour types read the lifetime counts
        panel_cfg = replace(panel_cfg, lifetime_counts=True)
    panel, walk = walk_panel(logs, panel_cfg, channels, through_as_of=True)
    known_ids, end_state = walk.ids(), walk.state
    if panel.empty:
        raise JourneyoptError(f"{source.path}: the logs give an empty panel")
    first_holdout = split_week(panel, cal.split, cal.holdout_weeks)
    # the first logged decision's week, read once (a string comparison over every panel row;
    # the segments chosen below relabel rows, never add or drop them)
    logged_from = logging_start(panel)
    start = logged_from
    if cal.recent_weeks > 0:
        start = max(start, first_holdout - cal.recent_weeks)
    fit_panel = panel[(panel["week"] < first_holdout) & (panel["week"] >= start)]
    if fit_panel.empty:
        raise JourneyoptError("no weeks before the split to calibrate on")
    found_cycles = None  # calibration.practice_cycles_weeks null: the cycles the logs show
    if cal.practice_cycles_weeks is None:
        found_cycles = practice_cycles(fit_panel[["customer_id", "week", "action"]])
        cal = replace(cal, practice_cycles_weeks=list(found_cycles.weeks))
    segments = segment_names(fit_panel)
    truth = load_world(cal.truth_world) if cal.truth_world else None
    if truth is not None:
        check_truth(truth, segments, source.action_names)
    # caps above the weeks of history the fit sees would leave their top bins without data
    history = int(fit_panel["week"].max()) - int(panel["week"].min())
    spec, caps_clipped = caps.within_history(history)
    names = source.action_names
    used = set(actions.channels[1:])
    silent = tuple(j for j, c in enumerate(channels) if c not in used)
    divisors = actions.list_divisors(source.amounts)
    segmentation = None
    if cal.value_tiers or cal.behaviour_types:  # segments by held-out likelihood
        panel, segmentation = choose_segments(
            panel,
            (start, first_holdout),
            spec,
            cal,
            channels,
            names,
            divisors,
            silent,
            origin_week=logged_from,
        )
        fit_panel = panel[(panel["week"] < first_holdout) & (panel["week"] >= start)]
        segments = segment_names(fit_panel)
        clock.lap("segments")
    features = feature_spec(panel_cfg, channels)
    rules = cfg.rules.for_catalog(actions, features, segments, "rules", owner)
    selection = None
    if cal.summary.select:
        candidates = candidate_specs(spec, summary_cfg, history, names)
        selection = select_summary(
            fit_panel,
            candidates,
            cal,
            channels,
            names,
            segments,
            divisors,
            silent,
            origin_week=logged_from,
            rules=rules,
        )
        spec = selection.chosen.spec
        clock.lap("summary")
    layout = DiscreteLayout(spec, len(segments), len(channels), len(names))
    structure = Structure(
        cal.name,
        actions,
        features,
        layout,
        segments,
        source.economics.currency,
        margin_rate,
    )
    divisors = actions.list_divisors(source.amounts)
    weeks = customer_weeks(fit_panel, layout, channels, names, segments, divisors)
    last_week = fit_panel[fit_panel["week"] == fit_panel["week"].max()]
    config = cast(dict[str, Any], OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True))
    meta: dict[str, Any] = {
        "data_fingerprint": data_fingerprint.result(),
        "max_customers": cal.max_customers,
        "config": config,
        "fit_weeks": [int(fit_panel["week"].min()), int(first_holdout) - 1],
        "fit_customer_weeks": weeks.n,
        "fit_customers": int(weeks.customer_ids.shape[0]),
        "practice_calendar": _calendar_origin(panel, logged_from),
        "practice_cycles": cycles_meta(cal.practice_cycles_weeks, found_cycles),
        "caps_clipped": {k: {"configured": c, "used": u} for k, (c, u) in caps_clipped.items()},
        "history_weeks": history,
        "lapse_weeks": {
            "weeks": cfg.panel.lapse_weeks,
            "from_logs": lapse_found is not None,
            **(asdict(lapse_found) if lapse_found is not None else {}),
        },
        **({"value_tiers": segmentation.as_meta()} if segmentation and cal.value_tiers else {}),
        **(
            {"segmentation": segmentation.segmentation_meta()}
            if segmentation and cal.behaviour_types
            else {}
        ),
    }
    hold_panel = panel[panel["week"] >= first_holdout]
    clock.lap("panel")
    shared = None
    if not hold_panel.empty:
        # what every world's hold-out check shares needs no fitted world: it is computed
        # beside the fits, on the core their serial parts leave idle
        identified = contacts_identified(weeks, cal.min_support)
        split = int(hold_panel["week"].min())

        def shared_data() -> tuple[HoldoutData, CustomerWeeks]:
            # the state at the split from the panel's own walk, not a second aggregation of
            # the logs (panel_cfg's lapse_weeks is resolved: state_at's state at that Monday)
            ids, state = walk.state_at_week(split)
            data = holdout_data(identified, structure, hold_panel, ids, state, fit_panel, divisors)
            # the logged decisions' customer-weeks, numbered as the world will number them
            numbering = (structure.layout, structure.features.contact_channels)
            labels = (structure.actions.names, structure.segments)
            return data, holdout_weeks(hold_panel, *numbering, *labels, divisors)

        shared = start_task(shared_data, cal.workers)
    est = estimate(weeks, structure, cal, last_week, meta, clock)
    if segmentation is not None and segmentation.kept != FILE:  # the scorer reads them too
        cuts, types = segmentation.cuts, segmentation.types
        fitted = est.calibrated
        est = replace(
            est,
            calibrated=replace(
                fitted,
                world=replace(fitted.world, segment_value_cuts=cuts, segment_types=types),
                members=tuple(
                    replace(m, segment_value_cuts=cuts, segment_types=types) for m in fitted.members
                ),
            ),
        )
    base, dropped = starting_base(panel, known_ids, end_state, segments)
    started = est.calibrated.with_base(base)
    base_meta = {
        "as_of": base.as_of,
        "customers": base.n_customers,
        "left_out": dropped,
        "arrivals_per_week": base.arrivals_per_week,
    }
    served = cfg.rules.for_world(started.world, "rules")
    horizon = cal.policy_horizon_weeks
    # the calibration's one plan of the world's optimum (pessimistic about the members, as
    # the product plans it), read by the rules check, the card's solve time and where the
    # world extrapolates, then dropped (on 1 M states its values take 0.4 GB)
    optimum, dp_seconds = solved_optimum(started, served, horizon, cal.gamma)
    seen = check_rules(started.world, served, optimum, cal.gamma, cal.seed)
    summary_meta = (
        selection_meta(selection, started.world, horizon, cal.gamma, served, dp_seconds)
        if selection is not None
        else {}
    )
    extrapolation = (
        world_extrapolation(
            started.world,
            optimum,
            weeks,
            cal.card.min_cell_weeks,
            cal.card.max_extrapolated_share,
            served,
        )
        if optimum is not None and started.world.base is not None
        else None
    )
    del optimum
    est = replace(
        est,
        calibrated=replace(
            started,
            meta={
                **started.meta,
                "starting_population": base_meta,
                "contact_rules": seen.as_meta(),
                **({"summary_selection": summary_meta} if summary_meta else {}),
                **({"extrapolation": extrapolation.as_meta()} if extrapolation else {}),
            },
        ),
    )
    clock.lap("base")
    holdout, fidelity = None, None
    if shared is not None:
        checks = _holdouts(est, structure, hold_panel, shared.result, cfg)
        holdout = checks.point
        if not est.identified:  # purchase-only logs: BG/NBD is the reference model
            bought = fit_panel[fit_panel["conversions"].to_numpy() > 0]
            codes, _ = pd.factorize(bought["customer_id"])
            n_hold = int(hold_panel["week"].nunique())
            week = bought["week"].to_numpy(np.int64)
            holdout = holdout.with_reference(panel_reference(codes, week, first_holdout, n_hold))
        fidelity = card_fidelity(
            est.calibrated.world,
            holdout,
            checks.decisions,
            cal.card,
            checks.members,
            cal.seed,
            checks.value_rows,
            checks.by_actions,
        )
    clock.lap("holdout")
    policies = None
    if truth is not None:
        policies = policy_fidelity(truth, est.calibrated, cal, cfg.rules)  # as served, planned
        clock.lap("policies")
    metrics = {**(holdout.metrics if holdout else {}), **(policies.metrics if policies else {})}
    metrics.update(fidelity.metrics() if fidelity is not None else {})
    metrics["sim/rules_unseen"] = float(len(seen.unseen))
    metrics.update(extrapolation.metrics() if extrapolation is not None else {})
    if seen.planned_contacts:
        metrics["sim/rules_dropped_share"] = seen.dropped_share
    if segmentation is not None:  # each candidate segmentation's held-out score
        metrics.update(
            {
                f"sim/segments_loglik/{k.replace(' ', '_')}": v
                for k, v in segmentation.loglik.items()
            }
        )
    metrics.update(  # each action-effect factor's held-out score, every action weighing the same
        {
            f"sim/action_penalty_loglik/{name}/{factor:g}": score
            for name, choice in est.penalties.action_choices.items()
            for factor, score in choice.scores.items()
        }
    )
    practice = est.calibrated.world.logged_practice  # today's practice: its held-out check
    if practice is not None:
        metrics.update({f"sim/practice_{k}": v for k, v in practice.diagnostics.items()})
    with staged_output_dir(out, cfg.overwrite) as staging:
        est.calibrated.save(staging)
        est.support.to_csv(staging / "support.csv", index=False)
        write_card(staging, est, holdout, policies, fidelity)
    with tracked_run(
        config, f"calibrate-{cal.name}", tags={"journeyopt.calibration": cal.name}
    ) as run:
        run.log_params(
            {
                "data.fingerprint": meta["data_fingerprint"],
                **penalty_params(est),
                **({"segments": segmentation.kept} if segmentation is not None else {}),
            }
        )
        run.log_metrics(metrics, step=0)
        for path in sorted(out.rglob("*")):
            if path.is_file():
                parent = path.parent.relative_to(out)
                run.log_artifact(
                    path, str(Path("world") / parent) if str(parent) != "." else "world"
                )
        run_id = run.run_id
    exported = export_world(out, target, cfg.overwrite) if target is not None else None
    clock.lap("card")
    return CalibrationResult(
        out, est, holdout, policies, metrics, run_id, exported, fidelity, stages=clock.stages
    )


@dataclass(frozen=True)
class _Holdouts:
    """Every world's hold-out checks of one calibration (see :func:`_holdouts`)."""

    point: HoldoutReport
    members: list[tuple[WorldSpec, HoldoutReport]]
    value_rows: pd.DataFrame | None
    decisions: Decisions
    by_actions: list[pd.DataFrame]


def _holdouts(
    est: Estimate,
    structure: Structure,
    hold_panel: pd.DataFrame,
    shared: Callable[[], tuple[HoldoutData, CustomerWeeks]],
    cfg: CalibrateConfig,
) -> _Holdouts:
    """The point world's hold-out report and by-action calibration, with
    ``calibration.card.ensemble`` each member's (simulated on the same customers with the same
    random numbers), and the point world's by-action value rows (None when the logs do not
    identify contact effects). What the worlds' checks share (the customers' state at the
    split, actual outcomes, references) and the logged decisions' customer-weeks come from
    ``shared`` (started beside the fits); the decisions get their propensities here, then the
    value check and one task per world run on ``calibration.workers`` processes
    (:func:`journeyopt.parallel.run_tasks`).
    """
    cal = cfg.calibration
    worlds = [est.calibrated.world]
    if cal.card.ensemble:
        worlds += list(est.calibrated.members)
    origin = int(est.calibrated.meta.get("practice_calendar", {}).get("week", 0))

    def check(world: WorldSpec) -> Callable[[], object]:
        def run() -> object:
            done = (
                world_holdout(world, data, structure, cal),
                action_calibration(world, decisions, cal.card, cal.seed),
            )
            # its simulator's tables are not kept for the rest of the calibration: with every
            # member checked in one process they added up (about 1 GB each on 1.4 M states)
            ResponseTable.release(world)
            return done

        return run

    def value() -> pd.DataFrame | None:
        if not est.identified:
            return None
        world = est.calibrated.world
        return value_calibration(world, hold_panel, cal.card, cal.gamma, cfg.data.amounts, cal.seed)

    data, logged_weeks = shared()
    decisions = logged_decisions(est.calibrated.world, logged_weeks, origin)
    # the value check needs neither, so it runs beside the worlds' checks, first (the
    # hold-out's longest task on 1 M and 3 M-row logs)
    value_rows, *results = run_tasks([value, *(check(w) for w in worlds)], cal.workers)
    checks = cast(list[tuple[HoldoutReport, pd.DataFrame]], results)
    reports = [r for r, _ in checks]
    return _Holdouts(
        reports[0],
        list(zip(worlds[1:], reports[1:], strict=True)),
        cast(pd.DataFrame | None, value_rows),
        decisions,
        [a for _, a in checks],
    )


def _calendar_origin(panel: pd.DataFrame, week: int) -> dict[str, Any]:
    """Week 0 of the campaign calendar of today's practice estimated from the logs: the
    first week with a logged decision, ``week`` (:func:`logging_start`; panel week index and
    its Monday, ISO date)."""
    starts = panel.loc[panel["week"] == week, "week_start"]
    monday = pd.Timestamp(starts.iloc[0]).strftime("%Y-%m-%d") if not starts.empty else ""
    return {"week": week, "monday": monday}


def penalty_params(est: Estimate) -> dict[str, float]:
    """The MLflow params of the chosen penalties: each binary model's ``C`` and action factor,
    the value model's ``alpha``, the trees each model kept."""
    params = {f"calibration.penalty.{k}": v for k, v in est.penalties.binary.items()}
    params["calibration.penalty.value_alpha"] = est.penalties.value
    # the factor on each binary model's action effects' penalty (calibration.action_penalty)
    params.update({f"calibration.penalty.action.{k}": v for k, v in est.penalties.action.items()})
    # the trees each model kept (calibration.response_model; 0: the GLM alone)
    params.update(
        {f"calibration.trees.{k}": float(est.penalties.rounds.get(k, 0)) for k in est.families}
    )
    return params
