"""Simulation evaluation: common random numbers, the optimum on top, table and CI sanity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from journeyopt.agents.baselines import BASELINES, make_baseline
from journeyopt.errors import OutputExistsError
from journeyopt.evaluation.report import write_evaluation
from journeyopt.evaluation.simulate import EvaluationResult, evaluate_policies, mean_ci
from journeyopt.panel.state import state_features
from journeyopt.sim.config import shipped_practice
from journeyopt.sim.discrete import summarise
from journeyopt.sim.dynamics import sample_outcome
from journeyopt.sim.env import InitialPool
from journeyopt.sim.optimum import cyclic_weeks_of_year, solve_optimum
from journeyopt.sim.world import WorldSpec, load_world

HORIZON, GAMMA = 10, 0.99


@pytest.fixture(scope="module")
def world() -> WorldSpec:
    return load_world("coworking")


@pytest.fixture(scope="module")
def result(world: WorldSpec) -> EvaluationResult:
    optimum = solve_optimum(world, HORIZON, GAMMA, cyclic_weeks_of_year(1, HORIZON))
    demo = shipped_practice("coworking").to_practice()
    policies = [make_baseline(n, world, demo, optimum) for n in BASELINES]
    return evaluate_policies(world, policies, 3000, HORIZON, GAMMA, seed=4, optimum=optimum)


def test_dynamics_draw_the_same_numbers_whatever_the_actions(world: WorldSpec) -> None:
    pool = InitialPool.draw(world, 300, seed=0, horizon_weeks=52)
    summary = summarise(state_features(pool.state, world.features), pool.segment, world)
    states = []
    for a in range(world.actions.n_actions):
        rng = np.random.default_rng(9)
        sample_outcome(world, summary, np.full(300, a), 1, rng)
        states.append(rng.bit_generator.state["state"]["state"])
    assert len(set(states)) == 1


def test_optimum_beats_every_baseline_on_the_same_customers(result: EvaluationResult) -> None:
    table = result.table[result.table["segment"] == "all"].set_index("policy")
    # paired with common random numbers: the optimum's uplift over each baseline is positive
    best = next(r for r in result.runs if r.name == "optimum")
    for run in result.runs:
        if run.name != "optimum":
            _, low, _ = mean_ci(best.value - run.value)
            assert low > -1e-9, run.name
    # the simulated optimum agrees with its exact expected value
    exact = float(np.mean(result.optimum_value))
    assert table.loc["optimum", "value_ci_low"] <= exact <= table.loc["optimum", "value_ci_high"]


def test_table_structure_and_ci_sanity(result: EvaluationResult) -> None:
    table = result.table
    assert list(table["policy"].unique()) == list(BASELINES)
    assert list(table["segment"].unique()) == ["all", *result.segment_names]
    assert (table["value_ci_low"] < table["value"]).all()
    assert (table["value"] < table["value_ci_high"]).all()
    all_rows = table[table["segment"] == "all"].set_index("policy")
    assert (all_rows["customers"] == 3000).all()
    staff = all_rows.loc["staff_rules"]
    assert staff["uplift"] == 0.0 and staff["uplift_ci_low"] == 0.0
    # the paired interval is narrower than the difference of two independent intervals
    myopic = all_rows.loc["myopic"]
    paired = myopic["uplift_ci_high"] - myopic["uplift_ci_low"]
    assert paired < (myopic["value_ci_high"] - myopic["value_ci_low"]) * 1.0
    assert all_rows.loc["no_contact", "contacts_per_customer_week"] == 0.0
    assert all_rows.loc["no_contact", "optout_rate"] == 0.0
    by_segment = table[table["segment"] != "all"].groupby("policy")["customers"].sum()
    assert (by_segment == 3000).all()


def test_write_refuses_non_empty_folder(result: EvaluationResult, tmp_path: Path) -> None:
    out = write_evaluation(result, tmp_path / "eval", currency="USD")
    assert sorted(p.name for p in out.iterdir()) == [
        "evaluation.csv",
        "evaluation.md",
        "evaluation.png",
    ]
    text = (out / "evaluation.md").read_text()
    assert "| optimum |" in text and "value per customer (USD" in text and "EUR" not in text
    with pytest.raises(OutputExistsError, match="overwrite=true"):
        write_evaluation(result, out, currency="USD")
    write_evaluation(result, out, overwrite=True, currency="USD")


def test_invalid_inputs(world: WorldSpec) -> None:
    with pytest.raises(ValueError, match="distinct"):
        evaluate_policies(world, [make_baseline("random", world)] * 2, 10, 2)
    other = solve_optimum(world, 3, GAMMA, cyclic_weeks_of_year(1, 3))
    with pytest.raises(ValueError, match="another horizon"):
        evaluate_policies(world, [make_baseline("random", world)], 10, 2, GAMMA, optimum=other)
