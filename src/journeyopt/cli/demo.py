"""``journeyopt-demo``: the whole loop on the embedded demo data.

    journeyopt-demo                      # outputs/demo/<date>/<time>/
    journeyopt-demo generate.n_customers=3000 generate.seed=1 train.total_timesteps=100000

Steps, each a plain function of the package:

1. generate coworking logs with realistic mess from the ground-truth world
   (:func:`journeyopt.cli.generate.run`);
2. ingest them: validate, normalise, resolve identities, de-duplicate, quarantine bad rows
   (:func:`journeyopt.data.ingest.ingest`), printing the reconciled counts;
3. build the weekly customer panel, segments, RFM scores and cohorts
   (:func:`journeyopt.cli.panel.build_outputs`), printing their summary;
4. calibrate a simulator from the logs alone and print its fidelity summary
   (:func:`journeyopt.calibration.pipeline.calibrate`);
5. train an agent in the calibrated world (:func:`journeyopt.agents.train.train`) and compare
   it there with the baselines, as MLflow parent and child runs
   (:func:`journeyopt.evaluation.compare.compare`) — what you would do with your own logs;
6. because the demo knows the truth: compare it with no contact, random, staff rules, myopic
   and the exact optimum in the true world, on common random numbers
   (:func:`journeyopt.evaluation.simulate.evaluate_policies`);
7. run the promotion gate: the agent becomes ``champion`` only if it beats today's practice
   in the calibrated ensemble and by off-policy evaluation on the latest logs
   (:func:`journeyopt.cli.promote.promote`);
8. write this week's contact list from the raw logs with the champion, behind the hard guards
   and with the A/B holdout (:func:`journeyopt.serving.batch.score_logs`);
9. print the summary and the commands that open the MLflow UI on these runs and serve the
   champion.

Every run writes into its own Hydra run folder, so a re-run never touches an earlier one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import MISSING, DictConfig
from rich.console import Console
from rich.table import Table

from journeyopt.agents.baselines import StaffPolicy
from journeyopt.agents.config import AgentConfig, TrainSettings, train_config_in
from journeyopt.agents.config import register_configs as register_agents
from journeyopt.agents.policy import Policy
from journeyopt.agents.sb3 import LearnedPolicy
from journeyopt.agents.train import TrainResult, train
from journeyopt.calibration.config import CalibrateConfig, CalibrationConfig
from journeyopt.calibration.config import register_configs as register_calibration
from journeyopt.calibration.pipeline import CalibrationResult, calibrate
from journeyopt.cli import generate
from journeyopt.cli.entry import command, report_errors, to_object
from journeyopt.cli.entry import console as console_factory
from journeyopt.cli.ingest import counts_table
from journeyopt.cli.panel import build_outputs, print_panel_summary
from journeyopt.cli.promote import PromoteConfig, PromoteOPEConfig, promote
from journeyopt.cli.score import summary_table as score_summary
from journeyopt.data.ingest import ingest, load_canonical
from journeyopt.data.source import SourceConfig
from journeyopt.evaluation.compare import CompareConfig, compare
from journeyopt.evaluation.config import EvaluationConfig
from journeyopt.evaluation.report import write_evaluation
from journeyopt.evaluation.simulate import EvaluationResult, evaluate_with_baselines
from journeyopt.panel.config import PanelConfig
from journeyopt.serving.batch import ScoreResult, score_logs
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.config import register_configs as register_serving
from journeyopt.serving.served_model import load_served_model
from journeyopt.sim.config import GenerateConfig, SimulatorConfig
from journeyopt.sim.observation import observation_layout
from journeyopt.sim.world import load_world
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.promotion import Decision, GateConfig, PromotionRefused

register_agents()
register_calibration()
register_serving()


@dataclass
class DemoConfig:
    """Schema of ``configs/demo.yaml``.

    Attributes:
        generate: The demo logs (world, customers, weeks, seed, mess rates).
        data: The source the logs are read with (the coworking source).
        panel: Panel windows and as-of date.
        calibration: How the simulator is calibrated from the logs.
        simulator: The ground-truth world the policies are compared in, horizon, discount.
        agent: The agent trained in the calibrated world (any ``agent`` group option).
        train: Its training budget and warm start.
        evaluation: The comparison: customers, seed, baselines, staff rules.
        tracking: MLflow settings (``tracking=off`` writes nothing).
        serve: How the champion scores customers (guards, holdout); its ``world`` is set to
            the calibrated world the agent was trained in.
        gate: Thresholds of the promotion gate.
        ope: Off-policy evaluation settings of the promotion gate.
        seed: Seed of the agent.
        output_dir: Root folder of this run's outputs; empty means Hydra's run folder
            (``outputs/demo/<date>/<time>``).
    """

    generate: GenerateConfig = field(default_factory=GenerateConfig)
    data: SourceConfig = field(default_factory=SourceConfig)
    panel: PanelConfig = MISSING  # required: the business's panel windows (configs/panel/)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    agent: AgentConfig = MISSING
    train: TrainSettings = field(default_factory=TrainSettings)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    serve: ServingConfig = field(default_factory=ServingConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    ope: PromoteOPEConfig = field(default_factory=PromoteOPEConfig)
    seed: int = 0
    output_dir: str = ""


ConfigStore.instance().store(name="demo_schema", node=DemoConfig)


@dataclass(frozen=True)
class DemoOutputs:
    """Folders one demo run wrote, and what its steps returned."""

    logs: Path
    canonical: Path
    panel: Path
    world: Path
    train: Path
    comparison: Path
    contact_list: Path
    calibration: CalibrationResult | None = None
    training: TrainResult | None = None
    evaluation: EvaluationResult | None = None
    decision: Decision | None = None
    refused: str = ""
    """Why the gate refused the candidate (empty when it promoted it, or tracking is off)."""
    scoring: ScoreResult | None = None


@contextmanager
def working(console: Console, what: str) -> Iterator[None]:
    """A spinner while a step without its own progress bar runs (shown
    on a terminal only), then the step's duration."""
    started = time.monotonic()
    with console.status(f"[bold]{what}…", spinner="dots"):
        yield
    console.print(f"[dim]{what}: {time.monotonic() - started:.0f} s[/dim]")


def demo_folders(root: Path) -> DemoOutputs:
    """The folders of a demo run under ``root``."""
    return DemoOutputs(
        root / "logs",
        root / "canonical",
        root / "panel",
        root / "world",
        root / "train",
        root / "comparison",
        root / "contact_list" / "actions.csv",
    )


def _prepare_data(cfg: DemoConfig, out: DemoOutputs, console: Console) -> None:
    console.rule("[bold]1. demo logs from the coworking world")
    cfg.generate.output_dir = str(out.logs)
    with working(console, "simulating two years of customers"):
        generate.run(cfg.generate)
    console.print(f"raw logs (with injected mess) in {out.logs}")

    console.rule("[bold]2. ingest: validate, resolve identities, de-duplicate")
    cfg.data.path = str(out.logs)
    with working(console, "ingesting"):
        result = ingest(cfg.data, out.canonical)
    console.print(counts_table(result))
    console.print(
        f"{result.resolved_customers:,} customers after identity resolution; "
        f"{result.rows_rejected:,} rows rejected -> {out.canonical / 'rejects.csv'}"
    )

    console.rule("[bold]3. weekly customer panel, segments, cohorts")
    logs = load_canonical(out.canonical)
    with working(console, "building the weekly panel"):
        summary = build_outputs(logs, cfg.panel, cfg.data.contact_channels, out.panel)
    print_panel_summary(summary, console)
    console.print(f"panel, segments, RFM scores and cohort plot in {out.panel}")


def _calibrate(cfg: DemoConfig, out: DemoOutputs, console: Console) -> CalibrationResult:
    console.rule("[bold]4. calibrate a simulator from the logs alone")
    job = CalibrateConfig(
        data=cfg.data,
        panel=cfg.panel,
        calibration=cfg.calibration,
        rules=cfg.serve.rules,  # the card names a served rule the world's summary cannot see
        tracking=cfg.tracking,
        output_dir=str(out.world),
    )
    with working(console, "fitting response models, bootstrap ensemble, hold-out simulation"):
        result = calibrate(job)
    table = Table("fidelity on the hold-out weeks", "value")
    for name, value in sorted(result.metrics.items()):
        table.add_row(name.removeprefix("sim/"), f"{value:,.4f}")
    console.print(table)
    console.print(f"calibrated world and its fidelity card (card.md, card.png) in {out.world}")
    practice = result.estimate.calibrated.world.logged_practice
    if practice is not None:
        d = practice.diagnostics
        console.print(
            "today's practice estimated from the logs (held out): log-loss "
            f"{d['log_loss']:.3f} nats per customer-week (constant rates "
            f"{d['constant_log_loss']:.3f}), its most probable action is the logged one in "
            f"{d['agreement']:.1%} of customer-weeks"
        )
    if cfg.evaluation.staff.source == "logged" and not cfg.evaluation.staff.world:
        cfg.evaluation.staff.world = str(out.world)  # also in the true world of step 6
    return result


def _train(cfg: DemoConfig, out: DemoOutputs, console: Console) -> TrainResult:
    console.rule("[bold]5. train an agent in the calibrated world")
    job = train_config_in(
        str(out.world),
        agent=cfg.agent,
        simulator=cfg.simulator,
        train=cfg.train,
        evaluation=cfg.evaluation,
        tracking=cfg.tracking,
        seed=cfg.seed,
        output_dir=str(out.train),
        run_name=f"demo-{cfg.agent.algorithm}-seed{cfg.seed}",
    )
    result = train(job)
    console.print(
        f"{result.timesteps:,} customer-weeks in {result.metrics['train/wall_seconds']:.0f} s; "
        f"{result.metrics['eval/pct_of_optimum']:.1f} % of the calibrated world's optimum; "
        f"model in {result.model_path}"
    )
    if result.run_id is not None:
        with working(console, "comparing with the baselines in the calibrated world"):
            comparison = compare(
                CompareConfig(
                    runs=[result.run_id],
                    simulator=job.simulator,
                    evaluation=cfg.evaluation,
                    tracking=cfg.tracking,
                    output_dir=str(out.train / "comparison"),
                    run_name="demo-compare-calibrated-world",
                )
            )
        console.print(
            f"comparison in the calibrated world logged to MLflow (parent run "
            f"{comparison.parent_run_id}, one child run per policy)"
        )
    return result


def _compare(
    cfg: DemoConfig, out: DemoOutputs, trained: TrainResult, console: Console
) -> EvaluationResult:
    console.rule("[bold]6. compare in the true world (common random numbers)")
    truth = load_world(cfg.simulator.world)
    calibrated = load_world(str(out.world))
    agent = LearnedPolicy.of(trained.model, calibrated, observation_layout(calibrated))
    policies: list[Policy] = [agent]
    if cfg.evaluation.staff.source == "logged":  # beside it, the rules that made the logs
        written = cfg.generate.staff.to_practice().check(truth, "generate.staff")
        policies.append(StaffPolicy(truth, written, name=HANDWRITTEN))
    with working(console, "simulating every policy on the same customers"):
        result = evaluate_with_baselines(truth, cfg.simulator, cfg.evaluation, policies)
    write_evaluation(result, str(out.comparison), overwrite=False, currency=truth.currency)
    console.print(summary_table(result.table))
    console.print(f"comparison table and chart in {out.comparison}")
    return result


HANDWRITTEN = "staff_rules_handwritten"
"""The demo's hand-written staff rules (``generate.staff``, without the logs' exploration)
beside today's practice estimated from the logs (``staff_rules``) in the true world."""


def _evidence_number(x: float) -> str:
    """Currency with one decimal; the model check's relative gap and tolerance (below 1) with
    three."""
    return f"{x:,.1f}" if abs(x) >= 1 else f"{x:.3f}"


def _promote(
    cfg: DemoConfig, out: DemoOutputs, trained: TrainResult, console: Console
) -> tuple[Decision | None, str]:
    """The gate's decision, or why it refused (the candidate stays unserved)."""
    console.rule(
        "[bold]7. promotion gate: simulation (calibrated ensemble) + off-policy evaluation"
    )
    if trained.model_version is None:
        console.print("tracking is off: nothing registered, nothing to promote")
        return None, ""
    candidate = f"models:/{cfg.tracking.registered_model}/{trained.model_version}"
    job = PromoteConfig(
        candidate=candidate,
        data=cfg.data,
        panel=cfg.panel,
        simulator=replace(cfg.simulator, world=str(out.world)),
        calibrated_world=str(out.world),
        n_customers=cfg.evaluation.n_customers,
        seed=cfg.evaluation.seed,
        gate=cfg.gate,
        ope=cfg.ope,
        tracking=cfg.tracking,
        evaluation=cfg.evaluation,  # today's staff rules: the baseline without a champion
        serve=cfg.serve,  # its contact rules mask the off-policy evaluation as served
    )
    try:
        with working(console, "simulating the ensemble and evaluating on the latest logs"):
            decision = promote(job)
    except PromotionRefused as refused:
        console.print(f"[yellow]not promoted[/yellow]: {refused}")
        return None, str(refused)
    console.print(f"[green]promoted[/green] {candidate} to alias 'champion'")
    return decision, ""


def _score(
    cfg: DemoConfig, out: DemoOutputs, trained: TrainResult, promoted: bool, console: Console
) -> ScoreResult:
    """This week's contact list with the champion; when the gate refused the candidate, what
    the candidate *would* contact, written as a preview beside it (nothing is served)."""
    registry = cfg.tracking.registered_model
    if promoted:
        console.rule("[bold]8. this week's contact list from the raw logs (champion + guards)")
        model_uri, path = f"models:/{registry}@champion", out.contact_list
    else:
        console.rule(
            "[bold]8. preview: what the refused candidate would contact this week (not served)"
        )
        model_uri = f"models:/{registry}/{trained.model_version}"
        path = out.contact_list.with_name("preview_actions.csv")
    events = load_canonical(out.canonical).events
    as_of = next_monday(pd.Timestamp(events["ts"].max()))
    settings = replace(cfg.serve, world=str(out.world))
    model = load_served_model(model_uri, cfg.tracking)
    with working(console, "scoring every customer"):
        result = score_logs(cfg.data, as_of, model, settings, path)
    console.print(score_summary(result))
    what = "contact list" if promoted else "preview contact list (not promoted, not served)"
    console.print(f"{what} {path}; every decision in decisions.csv beside it")
    return result


def next_monday(ts: pd.Timestamp) -> str:
    """ISO date of the first Monday after ``ts``: the week the contact list is for."""
    day = ts.normalize()
    return str((day + pd.Timedelta(days=7 - day.day_of_week)).date())


def _closing(out: DemoOutputs, cfg: DemoConfig, console: Console) -> None:
    console.rule("[bold]9. summary")
    if out.evaluation is not None:
        console.print("policies in the true world, 52 weeks, common random numbers:")
        console.print(summary_table(out.evaluation.table))
    uri = cfg.tracking.resolved_tracking_uri() if cfg.tracking.enabled else ""
    if uri:
        console.print("open the runs in the MLflow UI (experiment 'journeyopt' -> Compare):")
        console.print(f"  .venv/bin/mlflow ui --backend-store-uri {uri}", soft_wrap=True)
    if out.refused:
        console.print(
            "[yellow]the gate refused the agent[/yellow] (its evidence rests on a world the logs "
            f"do not show right): {out.refused}"
        )
    if out.decision is not None:
        console.print("serve the champion (API docs on http://127.0.0.1:8000/docs):")
        console.print(
            f"  .venv/bin/journeyopt-serve data=coworking serve.world={out.world}"
            " rules@serve.rules=coworking"
            " practice@serve.holdout.staff=logged"
            + ("" if "MLFLOW_TRACKING_URI" in os.environ else f" tracking.tracking_uri={uri}"),
            soft_wrap=True,
        )


def summary_table(table: pd.DataFrame) -> Table:
    """The demo's closing table: policy, value ± CI, % of optimum, uplift vs today's practice
    (± CI)."""
    rows = table[table["segment"] == "all"]
    out = Table(
        "policy",
        "value per customer (95 % CI)",
        "% of optimum",
        "uplift vs today's practice (95 % CI)",
    )
    for rec in rows.to_dict("records"):
        value_half = (rec["value_ci_high"] - rec["value_ci_low"]) / 2
        uplift = "–"
        if pd.notna(rec.get("uplift")):
            half = (rec["uplift_ci_high"] - rec["uplift_ci_low"]) / 2
            uplift = f"{rec['uplift']:+,.0f} ± {half:,.0f}"
        out.add_row(
            str(rec["policy"]),
            f"{rec['value']:,.0f} ± {value_half:,.0f}",
            f"{rec['pct_of_optimum']:.1f} %",
            uplift,
        )
    return out


def run_demo(cfg: DemoConfig, root: Path, console: Console | None = None) -> DemoOutputs:
    """Run every step of the demo under ``root``; print what happened."""
    console = console or console_factory()
    out = demo_folders(root)
    _prepare_data(cfg, out, console)
    calibration = _calibrate(cfg, out, console)
    training = _train(cfg, out, console)
    evaluation = _compare(cfg, out, training, console)
    decision, refused = _promote(cfg, out, training, console)
    registered = training.model_version is not None
    scoring = _score(cfg, out, training, decision is not None, console) if registered else None
    done = replace(
        out,
        calibration=calibration,
        training=training,
        evaluation=evaluation,
        decision=decision,
        refused=refused,
        scoring=scoring,
    )
    _closing(done, cfg, console)
    return done


def run(cfg: DictConfig) -> DemoOutputs:
    """Validate the composed config and run the demo in this run's folder."""
    demo = to_object(cfg, DemoConfig)
    root = Path(demo.output_dir or HydraConfig.get().runtime.output_dir)
    return run_demo(demo, root)


@command("demo")
def main(cfg: DictConfig) -> None:
    """Entry point of ``journeyopt-demo``."""
    report_errors(lambda: run(cfg))


if __name__ == "__main__":
    main()
