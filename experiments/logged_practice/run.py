"""How closely does today's practice estimated from the logs reproduce the practice that made
them? See README.md.

    .venv/bin/python experiments/logged_practice/run.py --out work/logged_practice

1. Logs of the coworking ground truth as the demo makes them (5,000 customers, 104 weeks, the
   hand-written staff rules ``configs/practice/coworking.yaml`` with 10 % logged uniform
   exploration, realistic mess), calibrated with the shipped calibration defaults (tracking
   off; no bootstrap ensemble: the practice does not depend on it).
2. In the true world, 10,000 customers over 52 weeks under the staff rules: per customer-week,
   whether the estimated practice's most probable action is the staff's, the estimated
   probability of the staff's action, and the total-variation distance between the estimated
   and the true logging policy (staff rules + 10 % uniform over the allowed actions).
3. The policy values in the true world on common random numbers (10,000 customers, 52 weeks,
   gamma 0.995): the hand-written rules, the true logging policy (with its exploration) and
   the estimated practice; paired differences with 95 % CIs.

Writes ``summary.json`` and ``values.csv`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir

from journeyopt.agents.baselines import StaffPolicy
from journeyopt.agents.policy import Bool, Float, IntArray, Observation, sample_from
from journeyopt.agents.report import paired_uplift
from journeyopt.calibration.config import CalibrateConfig
from journeyopt.calibration.config import register_configs as register_calibration
from journeyopt.calibration.pipeline import calibrate
from journeyopt.cli.entry import to_object
from journeyopt.evaluation.simulate import evaluate_policies
from journeyopt.panel.state import advance, state_features
from journeyopt.serving.exploration import explored_probabilities
from journeyopt.sim.behaviour import contact_rules
from journeyopt.sim.config import GenerateConfig, shipped_practice
from journeyopt.sim.config import register_configs as register_sim
from journeyopt.sim.discrete import summarise
from journeyopt.sim.dynamics import sample_outcome
from journeyopt.sim.logs import generate_logs, write_logs
from journeyopt.sim.population import initial_population
from journeyopt.sim.practice import LoggedPractice, Practice
from journeyopt.sim.world import WorldSpec, load_world

CONFIGS = Path(__file__).resolve().parents[2] / "src" / "journeyopt" / "configs"
EXPLORATION = 0.1


@dataclass(frozen=True)
class LoggingPolicy:
    """The true behaviour policy of the logs: the staff rules, and with probability
    ``epsilon`` a uniformly drawn allowed action instead."""

    world: WorldSpec
    practice: Practice
    epsilon: float
    name: str = "logging_policy_true"

    def act(
        self, observation: Observation, masks: Bool, rng: np.random.Generator
    ) -> tuple[IntArray, Float]:
        staff = self.practice.actions(
            self.world, observation.features, observation.segment, observation.week
        )
        staff = np.where(masks[np.arange(observation.n), staff], staff, 0)
        probabilities = explored_probabilities(staff, masks, self.epsilon)
        return sample_from(probabilities, rng), probabilities


def make_logs(out: Path, seed: int) -> Path:
    register_sim()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        raw = compose(
            "generate",
            overrides=[
                "simulator=coworking",
                "practice@staff=coworking",
                f"output_dir={out}",
                "n_customers=5000",
                "weeks=104",
                f"exploration={EXPLORATION}",
                f"seed={seed}",
                "mess.exact_duplicate_rate=0.01",
                "mess.near_duplicate_rate=0.01",
                "mess.identity_fragment_rate=0.05",
                "mess.offset_timestamp_rate=0.2",
                "mess.malformed_rate=0.002",
            ],
        )
    cfg = to_object(raw, GenerateConfig)
    logs = generate_logs(load_world("coworking"), cfg, np.random.default_rng(seed))
    write_logs(logs, out, overwrite=True)
    return out


def calibrated_practice(logs: Path, out: Path) -> LoggedPractice:
    register_calibration()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        raw = compose(
            "calibrate",
            overrides=[
                "data=coworking",
                "panel=coworking",
                "calibration=coworking",
                f"data.path={logs}",
                f"output_dir={out}",
                "overwrite=true",
                "tracking=off",
                "calibration.ensemble_size=0",
                "calibration.holdout_runs=1",
            ],
        )
    result = calibrate(to_object(raw, CalibrateConfig))
    practice = load_world(result.output_dir).logged_practice
    assert practice is not None
    return practice


def agreement(
    world: WorldSpec, estimated: LoggedPractice, n: int, weeks: int, seed: int
) -> dict[str, float]:
    """Step 2 of the module docstring."""
    rng = np.random.default_rng(seed)
    state, customers, _ = initial_population(world, n, rng)
    practice = shipped_practice("coworking").to_practice().check(world, "staff")
    rules = contact_rules(world)
    hits, p_staff, p_true, tv, contacted = [], [], [], [], []
    for t in range(weeks):
        features = state_features(state, world.features)
        masks = rules.masks(features)
        staff = practice.actions(world, features, customers.segment, t)
        truth = EXPLORATION * masks / masks.sum(axis=1, keepdims=True)
        truth[np.arange(n), staff] += 1.0 - EXPLORATION
        woy = t % 52 + 1
        p = estimated.probabilities(features, customers.segment, world.segment_names, woy, t, masks)
        hits.append(p.argmax(axis=1) == staff)
        p_staff.append(p[np.arange(n), staff])
        p_true.append(truth[np.arange(n), staff])
        tv.append(0.5 * np.abs(p - truth).sum(axis=1))
        contacted.append(staff > 0)
        actions, _ = LoggingPolicy(world, practice, EXPLORATION).act(
            Observation(features, customers.segment, woy, t), masks, rng
        )
        summary = summarise(features, customers.segment, world)
        state = advance(state, sample_outcome(world, summary, actions, woy, rng).activity)
    hit, staff_p, distance = np.concatenate(hits), np.concatenate(p_staff), np.concatenate(tv)
    contact = np.concatenate(contacted)
    return {
        "customer_weeks": float(hit.shape[0]),
        "agreement_most_probable_is_staff": float(hit.mean()),
        "agreement_when_staff_contacts": float(hit[contact].mean()),
        "agreement_when_staff_does_not_contact": float(hit[~contact].mean()),
        "mean_probability_of_staff_action": float(staff_p.mean()),
        "true_probability_of_staff_action_mean": float(np.concatenate(p_true).mean()),
        "mean_total_variation_to_true_logging_policy": float(distance.mean()),
        "staff_contact_share": float(contact.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("work/logged_practice"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    logs = make_logs(out / "logs", args.seed)
    estimated = calibrated_practice(logs, out / "world")
    truth = load_world("coworking")
    summary: dict[str, object] = {"held_out": dict(estimated.diagnostics)}
    summary["agreement"] = agreement(truth, estimated, 10_000, 52, seed=1)
    written = shipped_practice("coworking").to_practice().check(truth, "staff")
    policies = [
        StaffPolicy(truth, written, name="staff_rules_handwritten"),
        LoggingPolicy(truth, written, EXPLORATION),
        StaffPolicy(truth, estimated, name="logged_practice_estimated"),
    ]
    result = evaluate_policies(
        truth, policies, 10_000, 52, 0.995, seed=2, reference="staff_rules_handwritten"
    )
    table = result.table[result.table["segment"] == "all"]
    keep = ["policy", "value", "value_ci_low", "value_ci_high", "uplift", "uplift_ci_low"]
    keep += ["uplift_ci_high", "contacts_per_customer_week"]
    values = table[[c for c in keep if c in table.columns]]
    values.to_csv(out / "values.csv", index=False)
    summary["values"] = values.to_dict("records")
    mean, low, high = paired_uplift(result, "logged_practice_estimated", "logging_policy_true")
    summary["estimated_minus_true_logging_policy"] = {"mean": mean, "ci_low": low, "ci_high": high}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    with pd.option_context("display.width", 160):
        print(json.dumps({k: v for k, v in summary.items() if k != "values"}, indent=2))
        print(values.to_string(index=False))


if __name__ == "__main__":
    main()
