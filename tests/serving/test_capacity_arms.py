"""One weekly capacity for every arm (``serve.rules.capacity``): each arm of the batch (control,
treatment; canary and previous during a rollout) gets the capacity in proportion to its
customers, so today's practice served as the champion and today's practice in the control
group get the same share of a full action, in a real batch scoring run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyopt.data.source import SourceConfig
from journeyopt.loop.twin import control_actions
from journeyopt.serving.batch import score_logs
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.decisions import read_decision_log
from journeyopt.serving.guards import arm_capacities
from journeyopt.serving.practice import register_practice
from journeyopt.serving.scorer import Scorer
from journeyopt.serving.served_model import ServedModel, load_served_model
from journeyopt.sim.world import WorldSpec
from journeyopt.tracking.config import TrackingConfig
from tests.serving.conftest import AS_OF, linear_policy
from tests.serving.test_guards_holdout import random_batch

CHAMPION_URI = "models:/journey-policy@champion"


@settings(max_examples=200, deadline=None)
@given(
    limits=st.lists(st.integers(-1, 50), min_size=1, max_size=5),
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=4),
)
def test_arm_capacities_sum_to_the_capacity_in_proportion_to_the_arms(
    limits: list[int], sizes: list[int]
) -> None:
    shares = arm_capacities(np.array(limits), np.array(sizes))
    assert shares.shape == (len(sizes), len(limits))
    total = sum(sizes)
    for a, limit in enumerate(limits):
        if limit < 0:
            assert (shares[:, a] == -1).all()
            continue
        assert (shares[:, a] >= 0).all()
        if total == 0:
            continue
        assert shares[:, a].sum() == limit
        exact = limit * np.array(sizes) / total
        assert (np.abs(shares[:, a] - exact) < 1.0).all()  # the same per customer up to a unit


def test_served_practice_and_control_get_the_same_share_of_a_full_action(
    mlflow_sqlite: TrackingConfig,
    settings: ServingConfig,
    demo_source: SourceConfig,
    tmp_path: Path,
) -> None:
    """Today's practice registered as the champion, a capacity below what it asks for: the
    control group and the treatment group (the same practice) each keep the action for their
    share of the capacity. The control group used to keep all its contacts first and the
    treatment's practice customers alone were demoted (the test fails on that rule)."""
    register_practice(settings, mlflow_sqlite, champion=True)
    model = load_served_model(CHAMPION_URI, mlflow_sqlite)
    free = tmp_path / "free" / "actions.csv"
    score_logs(demo_source, AS_OF, model, settings, free)
    log = read_decision_log(free.with_name("decisions.csv"))
    contacts = log[log["action"] != "none"]
    action = str(contacts["action"].value_counts().index[0])  # the practice's most given
    asked = log["action"] == action
    control = (log["group"] == "control").to_numpy()
    asked_control, asked_treatment = int((asked & control).sum()), int((asked & ~control).sum())
    n_control, n_treatment = int(control.sum()), int((~control).sum())
    k = (asked_control + asked_treatment) // 2
    budget = arm_capacities(np.array([k]), np.array([n_control, n_treatment]))[:, 0]
    assert 2 <= budget[0] < asked_control and 2 <= budget[1] < asked_treatment  # both full

    capped = replace(settings, rules=replace(settings.rules, capacity={action: k}))
    out = tmp_path / "capped" / "actions.csv"
    result = score_logs(demo_source, AS_OF, model, capped, out)
    served = read_decision_log(out.with_name("decisions.csv"))
    pd.testing.assert_series_equal(
        served["customer_id"].reset_index(drop=True), log["customer_id"].reset_index(drop=True)
    )
    given_action = (served["action"] == action).to_numpy()
    assert given_action.sum() == k
    assert int((given_action & control).sum()) == budget[0]  # the control group is held too
    assert int((given_action & ~control).sum()) == budget[1]
    rates = given_action[control].mean(), given_action[~control].mean()
    assert abs(rates[0] - rates[1]) <= 1.0 / min(n_control, n_treatment)
    # the summary says each arm's share and use (summary.json, printed by journeyopt-score)
    assert result.capacity == {
        action: {
            "control": {"share": int(budget[0]), "given": int(budget[0])},
            "full": {"share": int(budget[1]), "given": int(budget[1])},
        }
    }


def test_the_twins_control_path_holds_the_capacity_as_the_served_batch(
    world: WorldSpec, settings: ServingConfig
) -> None:
    """The closed loop's counterfactual twin (every customer on the control path) holds the
    weekly capacity with the batch's own arms: a control customer gets exactly its served
    decision, and no action exceeds its capacity; without the capacity the control path asks
    for more (the test can fail)."""
    policy = linear_policy(world, 3, 10.0)
    model = ServedModel(policy, "t", "t", "1", "t", "", "")  # type: ignore[arg-type]
    batch = random_batch(world, 100)  # the control path contacts some (not every seed)
    free = control_actions(Scorer(model, settings, world), batch, capacity=False)
    action = int(np.bincount(free[free > 0]).argmax())
    k = int((free == action).sum()) // 2
    assert k >= 2
    name = world.actions.names[action]
    capped = replace(settings, rules=replace(settings.rules, capacity={name: k}))
    scorer = Scorer(model, capped, world)
    decided = scorer.score(batch)
    twin = control_actions(scorer, batch)
    np.testing.assert_array_equal(twin[decided.control], decided.actions[decided.control])
    assert (twin == action).sum() <= k < (free == action).sum()
