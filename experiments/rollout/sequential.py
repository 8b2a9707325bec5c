"""The staged rollout's always-valid test on synthetic rollouts: the error rate under weekly
looks when the canary has no effect, and the weeks to a decision for a range of true effects.

    .venv/bin/python experiments/rollout/sequential.py --null 500 --per-effect 100
    .venv/bin/python experiments/rollout/sequential.py --rollback --null 500 --per-effect 40
    .venv/bin/python experiments/rollout/sequential.py --rollback --confirm 600

Writes ``null.csv``, ``effects.csv`` and ``summary.md`` beside this file (``--rollback``:
``rollback_null.csv``, ``rollback_effects.csv``, ``rollback_summary.md``, with ``--confirm``
``rollback_confirm.csv``: the rollback's own
minimum exposure ``serve.rollout.min_exposure_rollback_weeks`` over a range of candidates, each
decision rule on the same rollouts). The rollouts are
:mod:`journeyopt.monitoring.rollout_sim` (production ``compare_arms`` and ``decide`` with the
default ``serve.rollout``).
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from journeyopt.calibration.card import markdown_table
from journeyopt.monitoring.rollout import CONTINUE, ROLLBACK, WIDEN
from journeyopt.monitoring.rollout_sim import Scenario, error_rates, error_rates_many, with_lift
from journeyopt.serving.config import RolloutConfig

HERE = Path(__file__).parent
LIFTS = (-0.3, -0.15, -0.05, 0.05, 0.1, 0.2, 0.3, 0.5)
ESTIMATORS = {
    "before (13 pre-weeks, outcome's mean)": RolloutConfig(pre_weeks=13, covariates=[]),
    "after (default: 52 pre-weeks, 4 covariates + segment)": RolloutConfig(),
}
"""The rollout's earlier default adjustment and the current default (the synthetic customers
have no segment: that covariate is constant here and left out)."""
SCENARIOS = {
    "default (6,000 customers, 26 weeks)": Scenario(),
    "small (2,000 customers, 26 weeks)": Scenario(customers=2000),
}


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson interval of a binomial share."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _widths(runs: pd.DataFrame, weeks: tuple[int, ...]) -> dict[str, float]:
    """Mean half-width of the sequence against previous at each of ``weeks`` over the
    rollouts still running then."""
    out = {}
    for week in weeks:
        values = [w[week - 1] for w in runs["half_widths"] if len(w) >= week]
        out[f"half_width_week_{week}"] = float(np.nanmean(values)) if values else float("nan")
    return out


WIDTH_WEEKS = (4, 8, 13, 26)


def null_rates(experiments: int, seed: int) -> pd.DataFrame:
    rows = []
    for (k, (name, scenario)), (estimator, settings) in itertools.product(
        enumerate(SCENARIOS.items()), ESTIMATORS.items()
    ):
        runs = error_rates(scenario, settings, experiments, seed + k)
        wrong = int((runs["decision"] != CONTINUE).sum())
        low, high = _wilson(wrong, experiments)
        rows.append(
            {
                "scenario": name,
                "estimator": estimator,
                "experiments": experiments,
                "wrong_decisions": wrong,
                "error_rate": wrong / experiments,
                "error_ci_low": low,
                "error_ci_high": high,
                "false_widen": int((runs["decision"] == WIDEN).sum()),
                "false_rollback": int((runs["decision"] == ROLLBACK).sum()),
                "sequence_missed_0": float(runs["missed"].mean()),
                "naive_95_rejected": float(runs["naive_rejected"].mean()),
                **_widths(runs, WIDTH_WEEKS),
            }
        )
    return pd.DataFrame(rows)


def confirm_small(experiments: int, seed: int) -> pd.DataFrame:
    """Null rollouts of the small scenario at the default ``serve.rollout`` (another seed than
    :func:`null_rates`): the error rate where it is closest to ``alpha``."""
    runs = error_rates(SCENARIOS["small (2,000 customers, 26 weeks)"], RolloutConfig(),
                       experiments, seed)  # fmt: skip
    wrong = int((runs["decision"] != CONTINUE).sum())
    low, high = _wilson(wrong, experiments)
    return pd.DataFrame([{"scenario": "small (2,000 customers, 26 weeks)", "seed": seed,
                          "experiments": experiments, "wrong_decisions": wrong,
                          "error_rate": wrong / experiments, "error_ci_low": low,
                          "error_ci_high": high,
                          "sequence_missed_0": float(runs["missed"].mean()),
                          "naive_95_rejected": float(runs["naive_rejected"].mean())}])  # fmt: skip


def decision_shares(runs: pd.DataFrame) -> dict[str, float]:
    """Shares of ``runs`` (one row per rollout) widened, rolled back and undecided, and the
    median week of the decided ones (NaN without one)."""
    decided = runs.loc[runs["decision"] != CONTINUE, "week"]
    return {
        "widened": float((runs["decision"] == WIDEN).mean()),
        "rolled_back": float((runs["decision"] == ROLLBACK).mean()),
        "undecided_after_26_weeks": float((runs["decision"] == CONTINUE).mean()),
        "median_weeks_to_decision": float(decided.median()) if len(decided) else np.nan,
    }


def null_errors(runs: pd.DataFrame, experiments: int) -> dict[str, float]:
    """Wrong decisions of null rollouts (canary = previous): their count and rate with its
    Wilson interval, split into rollbacks and widenings."""
    wrong = int((runs["decision"] != CONTINUE).sum())
    low, high = _wilson(wrong, experiments)
    return {
        "experiments": experiments,
        "wrong_decisions": wrong,
        "error_rate": wrong / experiments,
        "error_ci_low": low,
        "error_ci_high": high,
        "false_rollback": int((runs["decision"] == ROLLBACK).sum()),
        "false_widen": int((runs["decision"] == WIDEN).sum()),
    }


def effect_table(experiments: int, seed: int, base: Scenario) -> pd.DataFrame:
    rows = []
    for (k, lift), (estimator, settings) in itertools.product(enumerate(LIFTS), ESTIMATORS.items()):
        scenario = with_lift(base, lift)
        runs = error_rates(scenario, settings, experiments, seed + 100 + k)
        rows.append(
            {
                "scenario": scenario.customers,
                "estimator": estimator,
                "canary_lift": lift,
                "true_effect_per_customer_week": scenario.true_effect,
                "experiments": experiments,
                **decision_shares(runs),
                "sequence_missed_true_effect": float(runs["missed"].mean()),
            }
        )
    return pd.DataFrame(rows)


ROLLBACK_EXPOSURES = (1, 360, 720, 1080, 1440, 2000)
"""Candidates of ``serve.rollout.min_exposure_rollback_weeks`` (customer-weeks per compared
arm; 2,000 = the widening's minimum exposure, the rule before; 1 = no burn-in)."""
ROLLBACK_SCENARIOS = {
    "1,000 customers": Scenario(customers=1000),
    "2,000 customers": Scenario(customers=2000),
    "6,000 customers": Scenario(),
}


def _rules() -> tuple[RolloutConfig, ...]:
    return tuple(RolloutConfig(min_exposure_rollback_weeks=r) for r in ROLLBACK_EXPOSURES)


def rollback_null(experiments: int, seed: int) -> pd.DataFrame:
    """Null rollouts (canary = previous) of each scenario: wrong rollbacks and widenings
    under 26 weekly looks for each candidate rollback exposure, on the same rollouts."""
    rows = []
    for k, (name, scenario) in enumerate(ROLLBACK_SCENARIOS.items()):
        for rule, runs in zip(_rules(), error_rates_many(scenario, _rules(), experiments,
                                                          seed + k), strict=True):  # fmt: skip
            rollbacks = runs[runs["decision"] == ROLLBACK]
            rows.append(
                {
                    "scenario": name,
                    "min_exposure_rollback_weeks": rule.min_exposure_rollback_weeks,
                    **null_errors(runs, experiments),
                    "false_rollback_weeks": " ".join(str(w) for w in sorted(rollbacks["week"])),
                }
            )
    return pd.DataFrame(rows)


def rollback_effects(experiments: int, seed: int) -> pd.DataFrame:
    """Weeks to a decision by true effect for each candidate rollback exposure (same
    rollouts for every candidate)."""
    rows = []
    for (k, lift), (name, base) in itertools.product(enumerate(LIFTS), ROLLBACK_SCENARIOS.items()):
        scenario = with_lift(base, lift)
        all_runs = error_rates_many(scenario, _rules(), experiments, seed + 100 + k)
        for rule, runs in zip(_rules(), all_runs, strict=True):
            decided = runs.loc[runs["decision"] != CONTINUE, "week"]
            rows.append(
                {
                    "scenario": name,
                    "min_exposure_rollback_weeks": rule.min_exposure_rollback_weeks,
                    "canary_lift": lift,
                    "true_effect_per_customer_week": scenario.true_effect,
                    "experiments": experiments,
                    **decision_shares(runs),
                    "mean_weeks_to_decision": float(decided.mean()) if len(decided) else np.nan,
                }
            )
    return pd.DataFrame(rows)


def rollback_confirm(experiments: int, seed: int) -> pd.DataFrame:
    """Null rollouts of 1,000 and 2,000 customers at the default ``serve.rollout`` and with the
    rollback waiting for the widening's exposure (the rule before), on the same rollouts."""
    rules = (RolloutConfig(), RolloutConfig(min_exposure_rollback_weeks=2000))
    rows = []
    for k, customers in enumerate((1000, 2000)):
        all_runs = error_rates_many(Scenario(customers=customers), rules, experiments, seed + k)
        for rule, runs in zip(rules, all_runs, strict=True):
            rows.append(
                {
                    "customers": customers,
                    "seed": seed + k,
                    "min_exposure_rollback_weeks": rule.min_exposure_rollback_weeks,
                    **null_errors(runs, experiments),
                }
            )
    return pd.DataFrame(rows)


def rollback_study(null: int, per_effect: int, seed: int) -> None:
    """``--rollback``: the two tables and ``rollback_summary.md``."""
    start = time.monotonic()
    null_table = rollback_null(null, seed)
    null_table.to_csv(HERE / "rollback_null.csv", index=False)
    print(markdown_table(null_table), f"\n{time.monotonic() - start:.0f} s", flush=True)
    effects = rollback_effects(per_effect, seed) if per_effect else pd.DataFrame()
    effects.to_csv(HERE / "rollback_effects.csv", index=False)
    lines = [
        "# Staged rollout: the rollback's own minimum exposure on synthetic rollouts",
        "",
        f"Command: `.venv/bin/python experiments/rollout/sequential.py --rollback --null {null} "
        f"--per-effect {per_effect} --seed {seed}` ({time.monotonic() - start:.0f} s).",
        "",
        f"Candidates of serve.rollout.min_exposure_rollback_weeks: {ROLLBACK_EXPOSURES}; "
        f"everything else the default {RolloutConfig()}; scenarios: {ROLLBACK_SCENARIOS}.",
        "",
        "## No effect (canary = previous): wrong decisions over 26 weekly looks",
        "",
        markdown_table(null_table),
        "",
        "## Weeks to a decision by true effect",
        "",
        markdown_table(effects) if len(effects) else "(not run)",
        "",
    ]
    (HERE / "rollback_summary.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--null", type=int, default=500, help="null rollouts per scenario")
    parser.add_argument("--per-effect", type=int, default=100, help="rollouts per effect")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--confirm",
        type=int,
        default=0,
        help="only this many more null rollouts of the small scenario at the default "
        "serve.rollout (written to null_confirm.csv)",
    )
    parser.add_argument(
        "--rollback",
        action="store_true",
        help="the rollback's minimum exposure study (rollback_*.csv, rollback_summary.md)",
    )
    args = parser.parse_args()
    start = time.monotonic()
    if args.rollback and args.confirm:
        confirm = rollback_confirm(args.confirm, args.seed + 1000)
        confirm.to_csv(HERE / "rollback_confirm.csv", index=False)
        print(markdown_table(confirm), f"\n{time.monotonic() - start:.0f} s")
        return
    if args.rollback:
        rollback_study(args.null, args.per_effect, args.seed)
        return
    if args.confirm:
        confirm = confirm_small(args.confirm, args.seed + 1000)
        confirm.to_csv(HERE / "null_confirm.csv", index=False)
        print(markdown_table(confirm), f"\n{time.monotonic() - start:.0f} s")
        return
    null = null_rates(args.null, args.seed)
    null.to_csv(HERE / "null.csv", index=False)
    effects = pd.concat(
        [effect_table(args.per_effect, args.seed, s) for s in SCENARIOS.values()],
        ignore_index=True,
    )
    effects.to_csv(HERE / "effects.csv", index=False)
    base = replace(Scenario())
    lines = [
        "# Staged rollout: always-valid test on synthetic rollouts",
        "",
        f"Command: `.venv/bin/python experiments/rollout/sequential.py --null {args.null} "
        f"--per-effect {args.per_effect} --seed {args.seed}` ({time.monotonic() - start:.0f} s).",
        "",
        f"Estimators: {ESTIMATORS}; scenario: {base}.",
        "",
        "## No effect (canary = previous): wrong decisions over 26 weekly looks",
        "",
        markdown_table(null),
        "",
        "## Weeks to a decision by true effect (both scenarios)",
        "",
        markdown_table(effects),
        "",
    ]
    (HERE / "summary.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
