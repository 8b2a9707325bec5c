"""Sim-to-real on the roastery: a ground truth OUTSIDE the calibrated model's family.

Two steps around the product's own commands (see README.md, section "A second truth"):

    python experiments/sim_to_real/roastery.py generate --out logs/roastery20k
    journeyopt-ingest data=roastery data.path=logs/roastery20k output_dir=out/roastery_canonical
    journeyopt-calibrate data=roastery panel=roastery calibration=roastery \
        data.path=logs/roastery20k output_dir=out/roastery_world \
        calibration.name=roastery_calibrated
    python experiments/sim_to_real/roastery.py evaluate --logs logs/roastery20k \
        --world out/roastery_world --out out/roastery_fidelity

``evaluate`` values policies in the true roastery world (:mod:`journeyopt.sim.shop`) and in the
calibrated world on the same customers: the calibrated world's starting base (the export's
customers as of its as-of date, their panel state as the panel built it from the logs) matched
by customer id to the truth's states at that date (``true_states.npz`` written beside the
export by ``generate``; for an export without it, the history is simulated again from the same
seed and checked against the export's counts). Both worlds start in the as-of week, with the
same world seed for every policy; the shop's all-channel contact rule is a mask and a guard in
both worlds. The calibrated world's exact optimum plans under the contact rules ``--rules``
(default ``shop``: the truth's own rule, at most ``max_contacts`` contacts in any
``history_weeks`` weeks over all channels; or a file of ``configs/rules/``) as far as its
summary represents them (``summary.json`` names what it did not see); the optimum planned
without them is run beside it (``calibrated_optimum_without_rules``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from journeyopt.agents.baselines import (
    MyopicPolicy,
    NoContact,
    OptimumPolicy,
    StaffPolicy,
    UniformRandom,
)
from journeyopt.agents.policy import Policy
from journeyopt.calibration.calibrated import CalibratedWorld, align_segments
from journeyopt.calibration.policy_fidelity import AlwaysAction
from journeyopt.panel.state import CustomerState
from journeyopt.panel.weeks import week_of_year
from journeyopt.sim.config import CapConfig, RulesConfig, shipped_practice, shipped_rules
from journeyopt.sim.optimum import cyclic_weeks_of_year
from journeyopt.sim.shop import ShopSpec, ShopState, guard, load_shop
from journeyopt.sim.shop_eval import (
    Bool,
    Chooser,
    Population,
    matched_population,
    myopic_chooser,
    observable_world,
    product_chooser,
    run_calibrated,
    run_truth,
    state_chooser,
)
from journeyopt.sim.shop_logs import (
    TRUE_STATES_FILE,
    TrueStates,
    render_shop_logs,
    simulate_shop_logs,
    write_shop_logs,
)
from journeyopt.sim.shop_optimum import (
    IntArray,
    ShopOptimum,
    evaluate_state_policy,
    solve_shop_optimum,
)
from journeyopt.sim.world import WorldSpec

COMPARED = (
    "no_contact",
    "random",
    "staff_rules",
    "myopic",
    "true_optimum",
    "always_newsletter",
    "always_voucher",
    "always_call",
    "always_postcard",
)
"""The nine policies of the fidelity metrics (the coworking experiment's set)."""


def generate(args: argparse.Namespace) -> None:
    spec = load_shop(args.world)
    practice = shipped_practice(args.practice).to_practice()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    records = simulate_shop_logs(spec, practice, args.customers, args.weeks, args.exploration, rng)
    export = render_shop_logs(spec, records, rng)
    write_shop_logs(export, args.out, overwrite=args.overwrite, truth=records.truth)
    took = time.perf_counter() - start
    print(json.dumps({**export.counts, "seconds": round(took, 1)}, indent=2))


def true_states(spec: ShopSpec, args: argparse.Namespace) -> TrueStates:
    """The truth's states behind the export ``args.logs``: its ``true_states.npz``, else the
    history simulated again with ``generate``'s arguments (``--gen-*``), refused unless it
    reproduces the export's counts."""
    logs = Path(args.logs)
    if (logs / TRUE_STATES_FILE).is_file():
        return TrueStates.load(logs / TRUE_STATES_FILE)
    counts = json.loads((logs / "counts.json").read_text())
    practice = shipped_practice(args.practice).to_practice()
    rng = np.random.default_rng(args.gen_seed)
    records = simulate_shop_logs(
        spec, practice, args.gen_customers, args.gen_weeks, args.gen_exploration, rng
    )
    again = {
        "customers": records.n_customers,
        "orders": len(records.orders),
        "refund_lines": len(records.refunds),
        "clicks": len(records.clicks),
        "unsubscribes": len(records.optouts),
        "sends": len(records.sends),
    }
    differ = {k: (v, counts.get(k)) for k, v in again.items() if counts.get(k) != v}
    if differ:
        raise SystemExit(f"{logs}: the --gen-* arguments do not reproduce the export: {differ}")
    return records.truth


def ci95(values: np.ndarray) -> float:
    """Half-width of the normal 95 % interval of the mean of ``values`` (one per customer)."""
    return float(1.96 * values.std(ddof=1) / np.sqrt(values.shape[0]))


def optimum_share(paired: np.ndarray, exact_optimum: float) -> dict[str, float]:
    """The calibrated optimum's share of the true optimum, with its 95 % interval.

    ``paired`` holds each customer's value under the calibrated optimum minus under the true
    optimum, both run in the truth on the same draws; ``exact_optimum`` is the true optimum's
    exact (DP) expected value on the same customers. The share ``1 + mean(paired) / exact``
    uses the true optimum's simulated run as a control variate: the draws' noise common to
    both policies cancels, so its interval is the paired difference's, far narrower than
    that of ``mean(calibrated) / exact`` (the ``_exact`` figure), whose numerator carries all
    of the simulation's noise. Both estimate the same ratio.
    """
    half = ci95(paired) / exact_optimum
    share = 1.0 + float(paired.mean()) / exact_optimum
    return {
        "calibrated_optimum_share_of_true_optimum": share,
        "calibrated_optimum_share_of_true_optimum_ci95_low": share - half,
        "calibrated_optimum_share_of_true_optimum_ci95_high": share + half,
    }


def evaluate(args: argparse.Namespace) -> None:
    spec = load_shop(args.truth)
    labels = observable_world(spec).segment_names
    planned = CalibratedWorld.load(args.world)
    if args.pessimism is not None:  # instead of the one the calibration recorded
        planned = replace(planned, meta={**planned.meta, "planning": {"pessimism": args.pessimism}})
    if sorted(planned.world.segment_names) == sorted(labels):  # the acquisition channels
        planned = planned.mapped(lambda world: align_segments(world, labels))
    calibrated = planned.world
    base = calibrated.base
    if base is None:
        raise SystemExit(f"{args.world}: the world has no starting population (re-calibrate it)")
    obs = own_segments(observable_world(spec, calibrated.features), calibrated.segment_names)
    horizon, gamma = args.horizon, args.gamma
    population_seed, world_seed, policy_seed = np.random.SeedSequence(args.seed).spawn(3)
    truth = true_states(spec, args)
    pop = matched_population(
        truth.at(base.as_of),
        truth.customer_no,
        base,
        calibrated.features,
        args.customers,
        np.random.default_rng(population_seed),
    )
    first_woy = int(week_of_year(pd.Timestamp(base.as_of), 0)[0])
    practice = shipped_practice(args.practice).practice_for(obs, "practice")
    true_opt = solve_shop_optimum(spec, horizon, gamma, first_woy)
    rules = serving_rules(spec, args.rules)
    cal_weeks = cyclic_weeks_of_year(first_woy, horizon)
    # the calibrated world's optimum as the product plans it (pessimistic about its members)
    cal_opt = planned.optimum(
        horizon, gamma, cal_weeks, rules=rules.for_world(calibrated, "--rules")
    )
    unaware = planned.optimum(horizon, gamma, cal_weeks)  # the same planning, no rules

    def product(policy: Policy) -> tuple[Chooser, Chooser]:
        return (
            product_chooser(policy, obs, pop.label, np.random.default_rng(policy_seed)),
            product_chooser(policy, calibrated, pop.label, np.random.default_rng(policy_seed)),
        )

    policies: dict[str, tuple[Chooser, Chooser]] = {
        "no_contact": product(NoContact()),
        "random": product(UniformRandom()),
        "staff_rules": product(StaffPolicy(obs, practice)),
        "myopic": (myopic_chooser(spec, gamma),) * 2,
        "true_optimum": (state_chooser(true_opt.act),) * 2,
    }
    for a, name in enumerate(spec.actions.names):
        if a:
            policies[f"always_{name}"] = product(AlwaysAction(a, f"always_{name}"))
    policies["calibrated_optimum"] = product(OptimumPolicy(calibrated, cal_opt))
    policies["calibrated_optimum_without_rules"] = product(
        OptimumPolicy(calibrated, unaware, name="optimum_without_rules")
    )
    policies["calibrated_myopic"] = product(MyopicPolicy(calibrated))
    rows = []
    runs = {}
    for name, (in_truth, in_calibrated) in policies.items():
        start = time.perf_counter()
        truth_run = run_truth(
            spec, pop, in_truth, horizon, gamma, np.random.default_rng(world_seed), first_woy
        )
        cal_run = run_calibrated(
            spec,
            calibrated,
            pop,
            in_calibrated,
            horizon,
            gamma,
            np.random.default_rng(world_seed),
            first_woy,
        )
        runs[name] = truth_run
        rows.append(
            {
                "policy": name,
                "true_value": float(truth_run.value.mean()),
                "true_ci95": ci95(truth_run.value),
                "calibrated_value": float(cal_run.value.mean()),
                "contact_share_truth": float((truth_run.contacts > 0).mean()),
                **{
                    f"share_{a}": float((truth_run.contacts == k).mean())
                    for k, a in enumerate(spec.actions.names)
                    if k
                },
                "rule_violations": truth_run.violations + cal_run.violations,
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        print(rows[-1], flush=True)
    table = pd.DataFrame.from_records(rows)
    table["rel_error"] = (table["calibrated_value"] - table["true_value"]) / table[
        "true_value"
    ].abs()
    core = table[table["policy"].isin(COMPARED)]
    mare = float(core["rel_error"].abs().mean())
    spearman = float(spearmanr(core["true_value"], core["calibrated_value"]).statistic)
    by = {str(r["policy"]): r for r in table.to_dict("records")}
    exact_opt = float(true_opt.value(pop.true, 0).mean())
    cal_in_truth = runs["calibrated_optimum"].value
    paired = cal_in_truth - runs["true_optimum"].value
    summary = {
        "customers": pop.true.n,
        "base_customers": base.n_customers,
        "as_of": base.as_of,
        "start_week_of_year": first_woy,
        "horizon_weeks": horizon,
        "gamma": gamma,
        "pessimism": planned.pessimism,
        "ensemble_members": len(planned.members),
        "mare_9_policies": mare,
        "spearman_9_policies": spearman,
        "staff_rel_error": float(by["staff_rules"]["rel_error"]),
        "true_optimum_exact_dp": exact_opt,
        "true_optimum_simulated": float(by["true_optimum"]["true_value"]),
        "calibrated_optimum_in_truth": float(cal_in_truth.mean()),
        "calibrated_optimum_share_of_true_optimum_exact": float(cal_in_truth.mean() / exact_opt),
        "calibrated_optimum_minus_true_optimum_ci95": ci95(paired),
        **optimum_share(paired, exact_opt),
        "calibrated_optimum_minus_staff": float((cal_in_truth - runs["staff_rules"].value).mean()),
        "calibrated_optimum_minus_staff_ci95": ci95(cal_in_truth - runs["staff_rules"].value),
        "calibrated_optimum_value_in_calibrated_world": float(
            by["calibrated_optimum"]["calibrated_value"]
        ),
        "rule_violations": int(table["rule_violations"].sum()),
        "calibrated_optimum_rules": cal_opt.rules,
        "calibrated_optimum_unseen_rules": list(cal_opt.unseen_rules),
        "calibrated_optimum_minus_without_rules": float(
            (cal_in_truth - runs["calibrated_optimum_without_rules"].value).mean()
        ),
        "calibrated_optimum_minus_without_rules_ci95": ci95(
            cal_in_truth - runs["calibrated_optimum_without_rules"].value
        ),
        "calibrated_optimum_without_rules_share_of_true_optimum_exact": float(
            runs["calibrated_optimum_without_rules"].value.mean() / exact_opt
        ),
        **type_blind_values(spec, true_opt, pop.true, horizon, gamma, first_woy),
        "calibrated_optimum_contacts_dropped_by_the_rule": dropped_by_rule(
            spec,
            pop,
            OptimumPolicy(calibrated, cal_opt),
            obs,
            horizon,
            gamma,
            world_seed,
            first_woy,
        ),
        "calibrated_optimum_without_rules_contacts_dropped_by_the_rule": dropped_by_rule(
            spec,
            pop,
            OptimumPolicy(calibrated, unaware),
            obs,
            horizon,
            gamma,
            world_seed,
            first_woy,
        ),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "policy_values.csv", index=False)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(table.to_string(index=False))
    print(json.dumps(summary, indent=2))


def own_segments(obs: WorldSpec, names: tuple[str, ...]) -> WorldSpec:
    """``obs`` (the shop as the panel sees it) with the calibrated world's segments when they
    are not the acquisition channels (``calibration.value_tiers``: tiers of mean order value,
    from the base): the product policies then see each customer's tier as their segment, in
    the truth as in the calibrated world. The segments are neutral placeholders either way."""
    if names == obs.segment_names:
        return obs
    share = 1.0 / len(names)
    segments = tuple(replace(obs.segments[0], name=n, share=share) for n in names)
    return replace(obs, segments=segments)


def serving_rules(spec: ShopSpec, name: str) -> RulesConfig:
    """The contact rules the calibrated optimum plans under: ``shop``, the truth's own rule
    (at most ``max_contacts`` contacts over all channels in any ``history_weeks`` weeks), or a
    shipped rules file (``configs/rules/<name>.yaml``)."""
    if name != "shop":
        return shipped_rules(name)
    cap = CapConfig(max=spec.max_contacts, window_weeks=spec.history_weeks, over="all")
    return RulesConfig(caps=[cap])


def type_blind_values(
    spec: ShopSpec,
    optimum: ShopOptimum,
    state: ShopState,
    horizon: int,
    gamma: float,
    start_week_of_year: int,
) -> dict[str, float]:
    """Exact true values (mean over the customers' states) of simple policies that do not know
    the latent type: the true optimum's action for the state as if every customer were of type
    ``z`` (the rest of the true state can be computed from the logs)."""
    x = optimum.layout.encode(state)
    out = {}
    for z, name in enumerate(spec.type_names):

        def as_if(states: ShopState, t: int, z: int = z) -> IntArray:
            typed = ShopState(
                np.full(states.n, z), states.weeks, states.history, states.pending, states.optout
            )
            return optimum.act(typed, t)

        values = evaluate_state_policy(spec, as_if, horizon, gamma, start_week_of_year)
        out[f"type_blind_as_if_{name}"] = float(values[0, x].mean())
    return out


def dropped_by_rule(
    spec: ShopSpec,
    pop: Population,
    policy: Policy,
    obs: WorldSpec,
    horizon: int,
    gamma: float,
    seed: np.random.SeedSequence,
    start_week_of_year: int,
) -> float:
    """Share of the contacts ``policy`` plans in the truth (its masks without the shop's
    all-channel rule) that the rule's guard turns into no contact."""
    inner = product_chooser(policy, obs, pop.label, np.random.default_rng(0))
    counts = {"planned": 0, "dropped": 0}

    def choose(true: ShopState, panel: CustomerState, t: int, woy: int, allowed: Bool) -> IntArray:
        planned = inner(true, panel, t, woy, np.ones_like(allowed))
        kept = guard(spec, true, planned)
        counts["planned"] += int((planned > 0).sum())
        counts["dropped"] += int(((planned > 0) & (kept == 0)).sum())
        return kept

    run_truth(spec, pop, choose, horizon, gamma, np.random.default_rng(seed), start_week_of_year)
    return counts["dropped"] / max(counts["planned"], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write the roastery's raw export")
    gen.add_argument("--out", required=True)
    gen.add_argument("--world", default="roastery")
    gen.add_argument("--practice", default="roastery")
    gen.add_argument("--customers", type=int, default=20_000)
    gen.add_argument("--weeks", type=int, default=104)
    gen.add_argument("--exploration", type=float, default=0.12)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--overwrite", action="store_true")
    gen.set_defaults(run=generate)
    ev = sub.add_parser("evaluate", help="calibrated vs true policy values")
    ev.add_argument("--world", required=True, help="the calibrated world's folder")
    ev.add_argument("--logs", required=True, help="the export the world was calibrated from")
    ev.add_argument("--gen-customers", type=int, default=20_000, help="generate's --customers")
    ev.add_argument("--gen-weeks", type=int, default=104, help="generate's --weeks")
    ev.add_argument("--gen-exploration", type=float, default=0.12)
    ev.add_argument("--gen-seed", type=int, default=1, help="generate's --seed")
    ev.add_argument("--truth", default="roastery")
    ev.add_argument("--practice", default="roastery")
    ev.add_argument("--customers", type=int, default=10_000)
    ev.add_argument("--horizon", type=int, default=52)
    ev.add_argument("--gamma", type=float, default=0.995)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument(
        "--rules",
        default="shop",
        help="rules the calibrated optimum plans under: shop (the truth's own) or a rules file",
    )
    ev.add_argument(
        "--pessimism",
        type=float,
        default=None,
        help="plan the calibrated optimum with this pessimism (default: the world's recorded "
        "calibration.pessimism; 0 for worlds calibrated before it was recorded)",
    )
    ev.add_argument("--out", required=True)
    ev.set_defaults(run=evaluate)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
