"""Why a calibrated roastery world undervalues calls and mis-ranks the true optimum (README,
"Why the roastery world undervalues calls"): three measurements against the truth.

    python experiments/sim_to_real/roastery_diagnosis.py calls
    python experiments/sim_to_real/roastery_diagnosis.py proxy --logs work/roastery20k --world W
    python experiments/sim_to_real/roastery_diagnosis.py runs --logs work/roastery20k --world W

``calls``: the export's history simulated again with ``generate``'s defaults (seed 1) to know
each customer's latent type: the logged calls, explored or by today's practice, their type mix,
and what the practice sends one to three weeks after a call. ``proxy``: the truth's own optimum
acting on a type read from the panel's mean order value (``monetary``) instead of the latent
type, in the truth, on ``evaluate``'s customers and seeds. ``runs``: per-type totals over the
52 weeks (conversions, list revenue, opt-outs, reward, actions) of a few policies in the truth
and in the calibrated world ``W``, on ``evaluate``'s customers and seeds.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from roastery import own_segments, true_states  # the sibling script (run as a script)

from journeyopt.agents.baselines import NoContact, StaffPolicy
from journeyopt.calibration.calibrated import align_segments
from journeyopt.calibration.policy_fidelity import AlwaysAction
from journeyopt.panel.state import advance, state_features
from journeyopt.panel.weeks import week_of_year
from journeyopt.sim.config import shipped_practice
from journeyopt.sim.dynamics import sample_week
from journeyopt.sim.optimum import cyclic_weeks_of_year
from journeyopt.sim.shop import ShopState, allowed_actions, guard, load_shop, step
from journeyopt.sim.shop import next_state as next_true_state
from journeyopt.sim.shop_eval import (
    Chooser,
    Population,
    RefundBook,
    matched_population,
    observable_world,
    product_chooser,
    run_truth,
    state_chooser,
    week_activity,
)
from journeyopt.sim.shop_logs import simulate_shop_logs
from journeyopt.sim.shop_optimum import solve_shop_optimum
from journeyopt.sim.world import WorldSpec, load_world

HORIZON, GAMMA = 52, 0.995


def calls(args: argparse.Namespace) -> None:
    spec = load_shop("roastery")
    practice = shipped_practice("roastery").to_practice()
    rec = simulate_shop_logs(spec, practice, 20_000, 104, 0.12, np.random.default_rng(1))
    sends = rec.sends.assign(
        name=np.asarray(spec.actions.names)[rec.sends["action"].to_numpy()],
        type=np.asarray(spec.type_names)[rec.type[rec.sends["customer"].to_numpy()]],
    )
    fit_end = rec.weeks - 13
    print("sends per action, all logged weeks:", sends["name"].value_counts().to_dict())
    print("  calibration weeks:", sends[sends["week"] < fit_end]["name"].value_counts().to_dict())
    call = sends[sends["name"] == "call"]
    explored = call["propensity"] < 0.5
    print(f"calls: {len(call)}, explored (propensity < 0.5) {int(explored.sum())}")
    print("  type mix of calls:", call["type"].value_counts(normalize=True).round(3).to_dict())
    customers = pd.Series(np.asarray(spec.type_names)[rec.type])
    print("  type mix of customers:", customers.value_counts(normalize=True).round(3).to_dict())
    sent = sends.set_index(["customer", "week"])["name"]
    for k in (1, 2, 3):
        after = pd.Series(
            [
                sent.get((c, w + k), "none")
                for c, w in zip(call["customer"], call["week"], strict=True)
            ]
        )
        print(f"  {k} week(s) after a call:", after.value_counts(normalize=True).round(3).to_dict())


def _setup(args: argparse.Namespace) -> tuple[WorldSpec, WorldSpec, Population, int, tuple]:
    """The calibrated world, the shop as the panel sees it, ``evaluate``'s population, its first
    week of year and seeds (as in ``roastery.py evaluate``)."""
    spec = load_shop("roastery")
    labels = observable_world(spec).segment_names
    world = load_world(args.world)
    if sorted(world.segment_names) == sorted(labels):
        world = align_segments(world, labels)
    obs = own_segments(observable_world(spec, world.features), world.segment_names)
    assert world.base is not None
    seeds = np.random.SeedSequence(args.seed).spawn(3)
    truth = true_states(spec, args)
    pop = matched_population(
        truth.at(world.base.as_of),
        truth.customer_no,
        world.base,
        world.features,
        args.customers,
        np.random.default_rng(seeds[0]),
    )
    first_woy = int(week_of_year(pd.Timestamp(world.base.as_of), 0)[0])
    return world, obs, pop, first_woy, tuple(seeds)


def proxy(args: argparse.Namespace) -> None:
    spec = load_shop("roastery")
    world, _, pop, first_woy, seeds = _setup(args)
    optimum = solve_shop_optimum(spec, HORIZON, GAMMA, first_woy)
    names = spec.type_names
    monetary = state_features(pop.panel, world.features)["monetary"]
    for z, name in enumerate(names):
        cut = np.nanpercentile(monetary[pop.true.type == z], [10, 50, 90]).round(1)
        print(f"monetary at the start, {name}: 10/50/90th percentiles {cut}")

    def typed(thr: float | None) -> Chooser:
        def choose(true: ShopState, panel, t: int, woy: int, allowed) -> np.ndarray:  # type: ignore[no-untyped-def]
            z = np.full(true.n, names.index("regular"))
            if thr is not None:
                m = np.nan_to_num(state_features(panel, world.features)["monetary"], nan=0.0)
                z = np.where(m >= thr, names.index("bulk"), z)
            seen = ShopState(z, true.weeks, true.history, true.pending, true.optout)
            return np.asarray(optimum.act(seen, t), np.int64)

        return choose

    exact = float(optimum.value(pop.true, 0).mean())
    runs = {"true optimum (knows the type)": state_chooser(optimum.act)}
    runs["as if every customer were regular"] = typed(None)
    for thr in (38.0, 42.0, 46.0):
        runs[f"bulk when monetary >= {thr:g}, else regular"] = typed(thr)
    for label, chooser in runs.items():
        rng = np.random.default_rng(seeds[1])
        value = run_truth(spec, pop, chooser, HORIZON, GAMMA, rng, first_woy).value.mean()
        print(f"{label:45s} {value:7.2f}  {100 * value / exact:5.1f} % of the exact {exact:.2f}")


def runs(args: argparse.Namespace) -> None:
    spec = load_shop("roastery")
    world, obs, pop, first_woy, (_, world_seed, policy_seed) = _setup(args)
    practice = shipped_practice("roastery").practice_for(obs, "practice")
    optimum = solve_shop_optimum(spec, HORIZON, GAMMA, first_woy)

    def product(policy) -> tuple[Chooser, Chooser]:  # type: ignore[no-untyped-def]
        rng = np.random.default_rng
        return (
            product_chooser(policy, obs, pop.label, rng(policy_seed)),
            product_chooser(policy, world, pop.label, rng(policy_seed)),
        )

    policies = {
        "no_contact": product(NoContact()),
        "staff_rules": product(StaffPolicy(obs, practice)),
        "true_optimum": (state_chooser(optimum.act),) * 2,
        "always_call": product(AlwaysAction(spec.actions.index(["call"])[0], "always_call")),
    }
    woy = cyclic_weeks_of_year(first_woy, HORIZON)
    rows = []
    for name, pair in policies.items():
        for where, chooser in zip(("truth", "calibrated"), pair, strict=True):
            rng = np.random.default_rng(world_seed)
            true, panel = pop.true, pop.panel
            book = pop.refunds if pop.refunds is not None else RefundBook.empty(spec, true.n)
            total = np.zeros((true.n, 4 + spec.actions.n_actions))
            for t in range(HORIZON):
                acts = guard(
                    spec, true, chooser(true, panel, t, int(woy[t]), allowed_actions(spec, true))
                )
                if where == "truth":
                    true, out = step(spec, true, acts, int(woy[t]), rng, GAMMA)
                    booked, book = book.week(out)
                    panel = advance(panel, week_activity(spec, out, pop.counted, booked))
                    week = (out.purchased, out.list_value, out.opted_out, out.reward, out.actions)
                else:
                    sim = sample_week(world, panel, pop.label, acts, int(woy[t]), rng)
                    true = next_true_state(spec, true, sim.actions, sim.converted, sim.opted_out)
                    panel = advance(panel, sim.activity)
                    week = (sim.converted, sim.list_value, sim.opted_out, sim.reward, sim.actions)
                total[:, :4] += np.column_stack([np.asarray(x, np.float64) for x in week[:4]])
                total[np.arange(true.n), 4 + week[4]] += 1
            for z, type_name in enumerate(spec.type_names):
                mean = total[pop.true.type == z].mean(axis=0)
                rows.append(
                    {
                        "policy": name,
                        "world": where,
                        "type": type_name,
                        "conversions": mean[0],
                        "list_revenue": mean[1],
                        "optouts": mean[2],
                        "reward": mean[3],
                        **{f"n_{a}": mean[4 + k] for k, a in enumerate(spec.actions.names)},
                    }
                )
    print(pd.DataFrame(rows).round(3).to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("calls", help="the logged calls").set_defaults(run=calls)
    for name, run, text in (("proxy", proxy, "type proxy"), ("runs", runs, "per-type totals")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--world", required=True)
        p.add_argument("--logs", required=True)
        p.add_argument("--customers", type=int, default=10_000)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--practice", default="roastery")
        p.add_argument("--gen-customers", type=int, default=20_000)
        p.add_argument("--gen-weeks", type=int, default=104)
        p.add_argument("--gen-exploration", type=float, default=0.12)
        p.add_argument("--gen-seed", type=int, default=1)
        p.set_defaults(run=run)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
