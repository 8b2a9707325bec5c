"""Closed-loop validation of the gate and the staged rollout on a ground-truth world (the
coworking world, or ``--world roastery``: the online coffee roastery outside the calibrated
model's family, with its own export, source config, contact rules and practice): a previous
champion serves, a candidate is put through the gate and (promoted, or forced past
a refusal and clearly labelled) served as a canary, and the weekly cycle measures and widens
or rolls it back while the world lives through the weeks the served policy decides. See
README.md ("Closed loop").

    .venv/bin/python experiments/rollout/closed_loop.py --scenario bad --out work/rollout_cl/bad
    .venv/bin/python experiments/rollout/closed_loop.py --scenario good --out work/rollout_cl/good
    .venv/bin/python experiments/rollout/closed_loop.py --world roastery --scenario bad \
        --out work/rollout_cl/roastery_bad

Scenarios (the demo's choices stay in the config files; the bad candidate's action is the
catalogue's costliest one, whatever its name):

- ``good``: previous champion = a cautious policy that contacts no one (a linear softmax with
  all its mass on ``none``); candidate = the policy the first weekly cycle trains in the world
  it calibrates from the history (as usual); the gate judges it against the champion.
- ``good-optimum``: previous champion = the cautious no-contact policy; candidate = the exact
  optimum of the world the first weekly cycle calibrated (what the product itself can compute,
  not the truth's optimum), planned under the serving contact rules
  (:class:`journeyopt.agents.optimum_model.PlannedOptimum`), registered and judged by the gate
  like any candidate.
- ``bad``: previous champion = that first trained policy; candidate = a policy that sends
  the costliest action to everyone the contact rules allow; the gate judges it, and it is then
  deployed as a canary **with the gate bypassed** (``--force``, default on) to exercise the
  rollback.

``--previous practice`` makes today's practice the previous champion in any scenario: the
control group's practice registered as a served version
(:func:`journeyopt.serving.practice.register_practice`), so the rest of treatment gets what
the control group gets and the gate judges the candidate against the practice's value.

Every served week is decided by the serving scorer (champion, canary and previous arms,
control group on today's practice); the weekly cycle (``run_cycle``, re-training switched
off: ``drift.retrain_on=[]``, no schedule) runs after every week while the canary is in
progress and measures, widens or rolls back; after the decision the champion serves the rest
of the year without cycles (they would only measure). The loop's counterfactual twin (the
same customers on today's practice with common random numbers) gives the true values.

Writes ``weeks.csv`` and ``summary.json`` into ``--out`` and every run into ``--out/mlflow.db``
(experiment ``rollout_closed_loop``; a last run ``closed_loop-<scenario>`` holds the summary).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir

from journeyopt.agents.optimum_model import PlannedOptimum
from journeyopt.agents.sb3 import policy_spec
from journeyopt.cli.entry import to_object
from journeyopt.cli.promote import promote_version
from journeyopt.loop.closed_loop import ClosedLoop, run_closed_loop
from journeyopt.loop.config import CycleConfig, register_configs
from journeyopt.loop.cycle import current_champion, run_cycle
from journeyopt.loop.gate import gate
from journeyopt.loop.truth import CoworkingTruth, ShopHistory, ShopTruth, TruthWorld
from journeyopt.serving.config import ExplorationConfig, HoldoutConfig, ServingConfig
from journeyopt.serving.guards import serving_rules
from journeyopt.serving.practice import register_practice
from journeyopt.serving.rollout import ARMS, CANARY_ARM, CONTROL_ARM, FULL_ARM, PREVIOUS_ARM
from journeyopt.sim.config import GenerateConfig, shipped_practice, shipped_rules
from journeyopt.sim.observation import observation_layout
from journeyopt.sim.shop import load_shop
from journeyopt.sim.world import WorldSpec, load_world
from journeyopt.tracking.model import LinearSoftmaxPolicy, ServablePolicy, log_policy_model
from journeyopt.tracking.promotion import Decision
from journeyopt.tracking.registry import CHAMPION, PolicyRegistry, ResolvedVersion
from journeyopt.tracking.rollout import CANARY, read_rollout, start_rollout
from journeyopt.tracking.run import tracked_run
from journeyopt.tracking.tags import SIMULATOR_TAG

CONFIGS = Path(__file__).resolve().parents[2] / "src" / "journeyopt" / "configs"
SMALL_BUDGET = ["+experiment=small_cycle"]  # configs/experiment/small_cycle.yaml
NO_RETRAINING = ["drift.retrain_on=[]", "schedule.every_weeks=0"]
WORLD_OVERRIDES: dict[str, list[str]] = {
    "coworking": [  # the demo's business settings and the contact rules it trains under
        "data=coworking",
        "panel=coworking",
        "calibration=coworking",
        "rules@serve.rules=coworking",
        "practice@serve.holdout.staff=coworking",  # the control group as the study ran it
    ],
    "roastery": [  # the roastery's own source config, settings, contact rules and practice
        "data=roastery",
        "panel=roastery",
        "calibration=roastery",
        "rules@simulator.rules=roastery",
        "rules@serve.rules=roastery",
        "practice@serve.holdout.staff=roastery",
    ],
}
"""Cycle overrides a user of each truth world's business sets (``configs/*/<world>.yaml``)."""


def truth_world(args: argparse.Namespace) -> TruthWorld[Any]:
    """The ground-truth world of ``args.world`` with its history under today's practice
    (``configs/practice/<world>.yaml``): ``args.customers`` customers, ``args.history_weeks``
    logged weeks."""
    practice = shipped_practice(args.world)
    if args.world == "roastery":
        history = ShopHistory(
            practice.to_practice(), n_customers=args.customers, weeks=args.history_weeks
        )
        return ShopTruth(load_shop("roastery"), history)
    generate = GenerateConfig(
        staff=practice,
        output_dir="unused",
        n_customers=args.customers,
        weeks=args.history_weeks,
        seed=args.seed,
    )
    return CoworkingTruth(load_world("coworking"), None, generate)


def cycle_config(overrides: list[str]) -> CycleConfig:
    """``configs/cycle.yaml`` with ``overrides``."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("cycle", overrides=["week=2000-01-03", "work_dir=unused", *overrides])
    return to_object(cfg, CycleConfig)


def constant_policy(world: WorldSpec, action: int, strength: float = 20.0) -> LinearSoftmaxPolicy:
    """A policy over ``world``'s observation layout that takes ``action`` whenever the contact
    rules allow it (its logit ``strength`` above every other; masked out, the rest tie)."""
    layout = observation_layout(world)
    bias = np.zeros(world.actions.n_actions)
    bias[action] = strength
    return LinearSoftmaxPolicy(
        policy_spec(world, layout), np.zeros((layout.size, world.actions.n_actions)), bias
    )


def register_policy(
    cfg: CycleConfig, policy: ServablePolicy, world_folder: str, name: str
) -> ResolvedVersion:
    """Log ``policy`` into a run ``name`` and register it, tagged with the world it reads
    (``journeyopt.simulator``)."""
    d, a = len(policy.spec.feature_names), len(policy.spec.action_names)
    with tracked_run({}, name, tracking=cfg.tracking, log_config=False) as run:
        info = log_policy_model(run, policy, np.zeros((2, d), np.float32), np.ones((2, a), bool))
    assert info is not None
    return PolicyRegistry(cfg.tracking).register(info, tags={SIMULATOR_TAG: world_folder})


def calibrated_optimum(cfg: CycleConfig, world: WorldSpec) -> PlannedOptimum:
    """The ``good-optimum`` candidate: the exact optimum of the calibrated ``world`` over
    ``cfg.simulator``'s horizon and discount, planned under the contact rules the scorer
    enforces (``cfg.serve.rules``)."""
    sim = cfg.simulator
    rules = serving_rules(world, cfg.serve.rules)
    return PlannedOptimum.solve(world, sim.horizon_weeks, sim.gamma, rules)


def judge(
    cfg: CycleConfig, candidate: ResolvedVersion, world: Path, monday: pd.Timestamp
) -> Decision:
    """The cycle's gate (:func:`journeyopt.loop.gate.gate`) for ``candidate`` against the
    current champion in the calibrated ``world``, on the logs up to ``monday``."""
    champion = current_champion(PolicyRegistry(cfg.tracking))
    panel = replace(cfg.panel, as_of=monday.strftime("%Y-%m-%d"))
    job = cfg.gate_job(candidate.uri, str(world), panel)
    return gate(job, candidate, champion.world, monday)


def predicted_uplift(decision: Decision, horizon: int, gamma: float) -> dict[str, float]:
    """The gate's predictions against the champion, per customer-week: each test's estimate
    and interval (value per customer over the discounted horizon) divided by the horizon's
    discount sum ``sum_t gamma^t``, t < ``horizon`` (a constant weekly effect's value): the
    interval with the world's error (``_low``, ``_high``), from sampling alone
    (``_sampling_low``, ``_sampling_high``: the gate's interval before it counted the world's
    error), and the components (members' SD, bias bound, the model check's relative bound)."""
    annuity = (1 - gamma**horizon) / (1 - gamma)
    out: dict[str, float] = {}
    for e in decision.evidence:
        if e.test not in ("simulation", "ope") or e.baseline.startswith("today"):
            continue
        out[f"predicted/{e.key}"] = e.improvement / annuity
        out[f"predicted/{e.key}_low"] = e.lower_bound / annuity
        out[f"predicted/{e.key}_high"] = e.ci_high / annuity
        out[f"predicted/{e.key}_sampling_low"] = e.sampling_low / annuity
        out[f"predicted/{e.key}_sampling_high"] = e.sampling_high / annuity
        out[f"predicted/{e.key}_members_sd"] = e.members_sd / annuity
        out[f"predicted/{e.key}_bias"] = e.bias / annuity
        out[f"predicted/{e.key}_model_check_bound"] = e.relative_error
        out[f"predicted/{e.key}_passed"] = float(e.passed)
        out[f"predicted/{e.key}_inconclusive"] = float(e.inconclusive)
    return out


def arm_gaps(loop: ClosedLoop) -> dict[str, float]:
    """Last week's true effect per arm: mean realised minus twin (today's practice) reward
    per customer of each arm, currency."""
    out = {}
    for arm in (CONTROL_ARM, FULL_ARM, CANARY_ARM, PREVIOUS_ARM):
        rows = loop.last_arm == ARMS.index(arm)
        out[f"true_gap_{arm}"] = float(loop.last_gap[rows].mean()) if rows.any() else np.nan
    return out


def setup(args: argparse.Namespace, cfg: CycleConfig, loop: ClosedLoop) -> dict[str, Any]:
    """The previous champion, the candidate through the gate, and the canary: what the gate
    said and predicted, and whether it was forced."""
    root = args.out
    monday = loop.monday
    first = run_cycle(replace(cfg, week=monday.strftime("%Y-%m-%d")))  # a first trained policy
    world_folder = first.folder / "world"
    registry = PolicyRegistry(cfg.tracking)
    trained = registry.version(first.record.candidate)
    world = load_world(str(world_folder))
    info: dict[str, Any] = {"first_cycle_run": first.record.run_id, "trained": trained.version}
    info["first_gate_promoted"] = first.record.promoted
    info["first_gate_refused"] = list(first.record.refused)
    if not first.record.promoted:  # the first deployment, whatever the gate says
        registry.promote(trained.version, CHAMPION, reason="closed-loop validation: first "
                         "trained policy deployed with the gate bypassed")  # fmt: skip
        start_rollout(registry, trained.version, None, cfg.serve.rollout.canary_share)
    if args.scenario in ("good", "good-optimum") and args.previous == "scenario":
        cautious = register_policy(cfg, constant_policy(world, 0), str(world_folder), "cautious")
        registry.promote(cautious.version, CHAMPION, reason="closed-loop validation: a "
                         "cautious previous champion that contacts no one")  # fmt: skip
        start_rollout(registry, cautious.version, None, cfg.serve.rollout.canary_share)
    candidate = trained
    if args.previous == "practice":  # what the control group gets, as a served version
        serve = replace(cfg.serve, world=str(world_folder))
        practice = register_practice(serve, cfg.tracking, world=world).version
        registry.promote(practice.version, CHAMPION, reason="closed-loop validation: today's "
                         "practice as the previous champion")  # fmt: skip
        start_rollout(registry, practice.version, None, cfg.serve.rollout.canary_share)
        info["practice_version"] = practice.version
    if args.scenario == "good-optimum":  # the calibrated world's optimum under serve.rules
        solving = time.monotonic()
        optimum = calibrated_optimum(cfg, world)
        info["optimum_solve_seconds"] = time.monotonic() - solving
        info["optimum_rules"] = optimum.rules
        info["optimum_unseen_rules"] = list(optimum.unseen_rules)
        shares = np.bincount(optimum.actions.ravel(), minlength=world.actions.n_actions)
        info["optimum_state_week_shares"] = dict(
            zip(world.actions.names, (shares / shares.sum()).round(4).tolist(), strict=True)
        )
        candidate = register_policy(cfg, optimum, str(world_folder), "calibrated-optimum")
    if args.scenario == "bad":
        costliest = int(np.argmax(world.actions.costs))
        spam = constant_policy(world, costliest)
        candidate = register_policy(cfg, spam, str(world_folder), "spam-costliest")
        info["bad_action"] = world.actions.names[costliest]
    info["previous"] = current_champion(registry).version.version  # type: ignore[union-attr]
    info["candidate"] = candidate.version
    decision = judge(cfg, candidate, world_folder, monday)
    info["gate_promoted"] = decision.promote
    info["gate_reasons"] = list(decision.reasons)
    info |= predicted_uplift(decision, cfg.simulator.horizon_weeks, cfg.simulator.gamma)
    decision.table.to_csv(root / "gate.csv", index=False)
    info["forced"] = False
    if not decision.promote and args.force:
        promote_version(
            registry,
            candidate,
            decision,
            f"FORCED canary, gate bypassed: closed-loop validation ({args.scenario}) "
            "of the rollout (the gate refused: " + "; ".join(decision.reasons)[:200] + ")",
            cfg.serve.rollout,
            monday,
        )
        info["forced"] = True
    state = read_rollout(registry)
    info["canary_started"] = bool(state is not None and state.stage == CANARY)
    return info


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up, serve ``args.weeks`` weeks, summarise."""
    root: Path = args.out
    cfg = cycle_config(
        [
            f"tracking.tracking_uri=sqlite:///{(root / 'mlflow.db').resolve()}",
            f"tracking.artifact_location={(root / 'mlruns').resolve().as_uri()}",
            "tracking.experiment=rollout_closed_loop",
            f"seed={args.seed}",
            *SMALL_BUDGET,
            f"train.total_timesteps={args.timesteps}",
            f"train.checkpoint_every_steps={args.timesteps}",
            *NO_RETRAINING,
            *WORLD_OVERRIDES[args.world],
            f"calibration.ensemble_size={args.ensemble}",
            *args.overrides,
        ]
    )
    serving = replace(
        ServingConfig(
            rules=shipped_rules(args.world),
            holdout=HoldoutConfig(staff=shipped_practice(args.world)),
        ),
        exploration=ExplorationConfig(share=args.exploration),
    )
    serving = replace(serving, rollout=cfg.serve.rollout)
    loop = ClosedLoop(truth_world(args), seed=args.seed)
    loop.write(str(root / "logs"), str(root / "decisions"))
    (root / "decisions").mkdir()  # no served week yet: an empty decision log
    cfg = replace(
        cfg,
        data=replace(cfg.data, path=str(root / "logs")),
        decisions=str(root / "decisions"),
        work_dir=str(root / "cycles"),
        serve=serving,
    )
    started = time.monotonic()
    info = setup(args, cfg, loop)
    print(json.dumps(info, default=str), flush=True)
    registry = PolicyRegistry(cfg.tracking)
    rows: list[dict[str, Any]] = []
    for _ in range(args.weeks):
        state = read_rollout(registry)
        canary = state is not None and state.stage == CANARY
        (week,) = run_closed_loop(loop, cfg, serving, 1, root, adapt=canary or args.cycle_all)
        record = week.cycle.record if week.cycle is not None else None
        row: dict[str, Any] = {
            **asdict(week.truth),
            **arm_gaps(loop),
            "served_by": week.champion,
            "stage": state.stage if state is not None else "",
            "cycle_run": record.run_id if record is not None else "",
            "rollout": record.rollout if record is not None else "",
            **{k: v for k, v in (record.uplift if record is not None else {}).items()
               if k.startswith("rollout/")},
        }  # fmt: skip
        rows.append(row)
        print(json.dumps(row, default=str)[:500], flush=True)
        pd.DataFrame(rows).to_csv(root / "weeks.csv", index=False)
    summary = summarise(pd.DataFrame(rows), info, args)
    summary["minutes"] = (time.monotonic() - started) / 60
    summary["settings"] = {
        **vars(args),
        "out": str(root),
        "cycle_overrides": SMALL_BUDGET + NO_RETRAINING + args.overrides,
    }
    (root / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    with tracked_run(
        {}, f"closed_loop-{args.scenario}", tracking=cfg.tracking, log_config=False
    ) as run_:
        run_.log_metrics(
            {
                f"sim/closed_loop/{k}": float(v)
                for k, v in summary.items()
                if isinstance(v, int | float) and np.isfinite(v)
            },
            step=0,
        )
        for name in ("weeks.csv", "summary.json", "gate.csv"):
            run_.log_artifact(root / name, "closed_loop")
        summary["summary_run_id"] = run_.run_id
    (root / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def summarise(rows: pd.DataFrame, info: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Week of the decision, the served arm's year value against today's practice, and the
    uplift realised during the canary (true and as the rollout measured it)."""
    out: dict[str, Any] = dict(info)
    decided = rows[rows["rollout"].isin(["widen", "rollback"])]
    out["decision"] = str(decided["rollout"].iloc[0]) if len(decided) else "none"
    out["decision_after_weeks"] = int(decided["loop_week"].iloc[0]) + 1 if len(decided) else -1
    served = float(rows["treatment_reward"].sum())
    practice = float(rows["twin_treatment_reward"].sum())
    out["year/served_per_customer"] = served
    out["year/practice_per_customer"] = practice
    out["year/served_vs_practice"] = served / practice - 1 if practice else np.nan
    canary = rows[rows["stage"] == CANARY]
    if len(canary):
        true_prev = (canary["true_gap_canary"] - canary["true_gap_previous"]).mean()
        out["realised_true/vs_previous"] = float(true_prev)
        out["realised_true/vs_control"] = float(canary["true_gap_canary"].mean())
        last = canary.dropna(subset=["rollout/vs_previous"]).tail(1)
        for against in ("previous", "control"):
            key = f"rollout/vs_{against}"
            if len(last) and key in last:
                est, low, high = (float(last[k].iloc[0]) for k in (key, f"{key}_cs_low",
                                                                   f"{key}_cs_high"))  # fmt: skip
                truth = out[f"realised_true/vs_{against}"]
                out[f"realised_measured/vs_{against}"] = est
                out[f"realised_measured/vs_{against}_low"] = low
                out[f"realised_measured/vs_{against}_high"] = high
                out[f"realised_measured/vs_{against}_covers_truth"] = float(low <= truth <= high)
        truth = out["realised_true/vs_previous"]  # what the gate predicted: vs the champion
        for test in ("simulation", "ope"):
            for kind in ("", "_sampling"):
                low, high = (out.get(f"predicted/{test}{kind}{end}", np.nan)
                             for end in ("_low", "_high"))  # fmt: skip
                if np.isfinite(low) and np.isfinite(high):
                    covered = float(low <= truth <= high)
                    out[f"predicted/{test}{kind}_covers_truth"] = covered
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", choices=("good", "good-optimum", "bad"), required=True)
    parser.add_argument("--world", choices=tuple(WORLD_OVERRIDES), default="coworking",
                        help="the ground-truth world")  # fmt: skip
    parser.add_argument("--weeks", type=int, default=52, help="served weeks")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--history-weeks", type=int, default=78)
    parser.add_argument("--exploration", type=float, default=0.1, help="serve.exploration.share")
    parser.add_argument("--timesteps", type=int, default=8192, help="training steps")
    parser.add_argument("--no-force", dest="force", action="store_false",
                        help="do not deploy a refused candidate")  # fmt: skip
    parser.add_argument("--cycle-all", action="store_true", help="a cycle after every week")
    parser.add_argument("--previous", choices=("scenario", "practice"), default="scenario",
                        help="previous champion: the scenario's (no contact, or the first "
                        "trained policy) or today's practice registered as a version")  # fmt: skip
    parser.add_argument("--ensemble", type=int, default=0,
                        help="calibration.ensemble_size (the gate's members)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("overrides", nargs="*", help="more cycle config overrides (key=value)")
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    print(json.dumps(run(args), indent=2, default=str))


if __name__ == "__main__":
    main()
