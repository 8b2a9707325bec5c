"""The gate of a finished closed loop run again with today's gate code, on the loop's own
stored world, logs and policies (read only): what the gate predicts now, e.g. with the bias
bound that counts the world's per-action error (docs/ope.md, *The bias bound*). See README.md
("The bias bound from the per-action checks").

    .venv/bin/python experiments/rollout/regate.py work/s8-gate/roastery_bad_s1 \
        --out work/s9-gate/roastery_bad_s1

The loop's MLflow database is copied into ``--out`` (the original is never written). The
loops' registered models were logged into MLflow's default artifact root of the folder they
ran in (often a temporary worktree, since deleted), so the two policies are registered again
in the copy, as the loop made them: the first cycle's trained policy from its final
checkpoint (``cycles/<week>/train/checkpoints``), the bad candidate as the constant costliest
action, the good scenarios' previous champion as the constant ``none`` (the action at index
0), the ``good-optimum`` candidate as the calibrated world's optimum solved again under the
serving rules (:func:`experiments.rollout.closed_loop.calibrated_optimum`, deterministic); the
``champion`` alias goes to the previous champion the loop's gate judged against, and
the gate (:func:`experiments.rollout.closed_loop.judge`, the cycle's gate) judges the
loop's candidate in the world the first cycle calibrated, on the logs up to the first served
week, with the loop's settings (``summary.json``). Its decision run goes to an experiment
``regate`` whose artifacts live under ``--out``. Writes ``gate.csv`` (the evidence, with the
bias bound's parts) and ``predicted.json`` (the predictions per customer-week, as the loop's
``summary.json`` records them) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from closed_loop import (  # run as a script: its folder is on the path
    NO_RETRAINING,
    SMALL_BUDGET,
    WORLD_OVERRIDES,
    calibrated_optimum,
    constant_policy,
    cycle_config,
    judge,
    predicted_uplift,
    register_policy,
)
from sb3_contrib import MaskablePPO

from journeyopt.agents.sb3 import policy_spec
from journeyopt.loop.config import CycleConfig
from journeyopt.serving.config import HoldoutConfig, ServingConfig
from journeyopt.sim.config import shipped_practice, shipped_rules
from journeyopt.sim.observation import observation_layout
from journeyopt.sim.world import load_world
from journeyopt.tracking.registry import CHAMPION, PolicyRegistry, ResolvedVersion
from journeyopt.tracking.run import open_client
from journeyopt.tracking.sb3_policy import SB3Policy


def first_world(root: Path) -> Path:
    """The world the loop's first cycle calibrated (its ``cycles/<week>-<id>/world``)."""
    for folder in sorted((root / "cycles").iterdir()):
        if (folder / "world").is_dir():
            return folder / "world"
    raise FileNotFoundError(f"{root}/cycles holds no calibrated world")


def restore_policies(
    cfg: CycleConfig, world_folder: Path, scenario: str
) -> tuple[ResolvedVersion, ResolvedVersion]:
    """``(previous champion, candidate)`` registered again in the copy as the loop made them
    (see the module docstring)."""
    world = load_world(str(world_folder))
    registry = PolicyRegistry(cfg.tracking)
    if scenario == "good-optimum":  # deterministic: solved again as the loop solved it
        cautious = register_policy(cfg, constant_policy(world, 0), str(world_folder), "cautious")
        optimum = calibrated_optimum(cfg, world)
        best = register_policy(cfg, optimum, str(world_folder), "calibrated-optimum")
        return registry.version(cautious.version), registry.version(best.version)
    checkpoints = sorted((world_folder.parent / "train" / "checkpoints").glob("model_*.zip"))
    model = MaskablePPO.load(str(checkpoints[-1]), device="cpu")
    trained = SB3Policy.from_model(model, policy_spec(world, observation_layout(world)))
    first = register_policy(cfg, trained, str(world_folder), "trained (restored)")  # type: ignore[arg-type]
    if scenario == "good":
        cautious = register_policy(cfg, constant_policy(world, 0), str(world_folder), "cautious")
        return registry.version(cautious.version), registry.version(first.version)
    costliest = int(np.argmax(world.actions.costs))
    spam = register_policy(
        cfg, constant_policy(world, costliest), str(world_folder), "spam-costliest"
    )
    return registry.version(first.version), registry.version(spam.version)


def regate(root: Path, out: Path) -> dict[str, object]:
    """Judge the loop's candidate again (see the module docstring); the predictions."""
    summary = json.loads((root / "summary.json").read_text())
    settings = summary["settings"]
    world_name = settings.get("world", "coworking")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "mlflow.db", out / "mlflow.db")
    cfg = cycle_config(
        [
            f"tracking.tracking_uri=sqlite:///{(out / 'mlflow.db').resolve()}",
            f"tracking.artifact_location={(out / 'mlruns').resolve().as_uri()}",
            "tracking.experiment=regate",
            f"seed={settings['seed']}",
            *SMALL_BUDGET,
            f"train.total_timesteps={settings['timesteps']}",
            f"train.checkpoint_every_steps={settings['timesteps']}",
            *NO_RETRAINING,
            *WORLD_OVERRIDES[world_name],
            f"calibration.ensemble_size={settings.get('ensemble', 0)}",
            *settings.get("overrides", []),
        ]
    )
    serving = ServingConfig(
        rules=shipped_rules(world_name), holdout=HoldoutConfig(staff=shipped_practice(world_name))
    )
    cfg = replace(
        cfg,
        data=replace(cfg.data, path=str(root / "logs")),
        decisions=str(root / "decisions"),
        work_dir=str(out / "cycles"),
        serve=replace(serving, rollout=cfg.serve.rollout),
    )
    open_client(cfg.tracking)  # MLflow's defaults: models:/ URIs resolve in the copy
    world_folder = first_world(root)
    previous, candidate = restore_policies(cfg, world_folder, settings["scenario"])
    PolicyRegistry(cfg.tracking).promote(
        previous.version, CHAMPION, reason="regate: the loop's previous champion"
    )
    monday = pd.Timestamp(pd.read_csv(root / "weeks.csv")["week"].iloc[0])
    started = time.monotonic()
    decision = judge(cfg, candidate, world_folder, monday)
    decision.table.to_csv(out / "gate.csv", index=False)
    predicted: dict[str, object] = {
        "run": root.name,
        "previous": previous.version,
        "candidate": candidate.version,
        "verdict": decision.verdict,
        "reasons": list(decision.reasons),
        "minutes": (time.monotonic() - started) / 60,
        **predicted_uplift(decision, cfg.simulator.horizon_weeks, cfg.simulator.gamma),
    }
    (out / "predicted.json").write_text(json.dumps(predicted, indent=2, default=str) + "\n")
    return predicted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path, help="a closed loop's output folder (read only)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.out.resolve() == args.root.resolve():
        raise SystemExit("--out must differ from the loop's folder")
    print(json.dumps(regate(args.root, args.out), indent=2, default=str))


if __name__ == "__main__":
    main()
