"""Weekly capacity per action in serving (``serve.rules.capacity``): no action is given to
more customers than its capacity, the ones it goes to are those where it is worth most, and
the others get their next-best allowed action with the reason ``capacity``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.source import SourceConfig
from journeyopt.serving.batch import score_logs
from journeyopt.serving.config import HoldoutConfig, ServingConfig
from journeyopt.serving.features import batch_from_logs
from journeyopt.serving.guards import apply_capacity
from journeyopt.serving.responses import masked_columns
from journeyopt.serving.scorer import Scorer
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.config import RulesConfig, shipped_practice, shipped_rules
from journeyopt.sim.rules import ALLOWED, CAPACITY
from journeyopt.sim.world import WorldSpec
from tests.serving.conftest import AS_OF, linear_policy
from tests.serving.test_guards_holdout import N, RoguePolicy, random_batch


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(1, 40),
    limits=st.lists(st.integers(-1, 6), min_size=4, max_size=4),
)
def test_capacity_is_never_exceeded_and_goes_where_it_is_worth_most(
    seed: int, n: int, limits: list[int]
) -> None:
    rng = np.random.default_rng(seed)
    a_count = 5
    allowed = rng.random((n, a_count)) < 0.7
    allowed[:, 0] = True
    values = rng.normal(size=(n, a_count))
    chosen = np.array([rng.choice(np.flatnonzero(row)) for row in allowed])
    caps = np.array([-1, *limits])
    done = apply_capacity(chosen, values, allowed, caps)
    counts = np.bincount(done.actions, minlength=a_count)
    limited = caps >= 0
    assert (counts[limited] <= caps[limited]).all()
    assert allowed[np.arange(n), done.actions].all()
    same = ~done.demoted
    np.testing.assert_array_equal(done.actions[same], chosen[same])
    assert (caps[done.lost[done.demoted]] >= 0).all()  # only a capacity demotes
    if int(limited.sum()) == 1:  # one limited action: exactly the top gains keep it
        a = int(np.flatnonzero(limited)[0])
        kept = np.flatnonzero((chosen == a) & same)
        moved = np.flatnonzero(done.lost == a)
        if kept.size and moved.size:
            options = np.where(allowed & (np.arange(a_count) != a), values, -np.inf)
            best_other = options.max(axis=1)
            gain = values[:, a] - best_other
            assert gain[kept].min() >= gain[moved].max() - 1e-12


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**31),
    policy_seed=st.integers(0, 2**31),
    capacity=st.dictionaries(
        st.sampled_from(["newsletter", "personal_email", "discount_offer", "personal_call"]),
        st.integers(0, 8),
        min_size=1,
    ),
    share=st.floats(0.0, 0.9),
    rogue=st.booleans(),
    explore=st.sampled_from([0.0, 0.5]),
)
def test_the_scorer_never_exceeds_a_capacity(
    served: ServedModel, world: WorldSpec, seed: int, policy_seed: int,
    capacity: dict[str, int], share: float, rogue: bool, explore: float,
) -> None:  # fmt: skip
    cfg = ServingConfig(
        rules=shipped_rules("coworking"), holdout=HoldoutConfig(staff=shipped_practice("coworking"))
    )
    cfg.rules.capacity = capacity
    cfg.holdout.control_share = share
    cfg.exploration.share = explore
    policy = RoguePolicy(world, policy_seed) if rogue else linear_policy(world, policy_seed, 10.0)
    model = ServedModel(policy, "t", "t", "1", "t", "", "")  # type: ignore[arg-type]
    scorer = Scorer(model, cfg, world)
    batch = random_batch(world, seed)
    decisions = scorer.score(batch)
    counts = np.bincount(decisions.actions, minlength=world.actions.n_actions)
    for action, k in capacity.items():
        assert counts[world.actions.names.index(action)] <= k
    rows = np.arange(N)
    allowed = (decisions.reasons == ALLOWED) | (np.arange(world.actions.n_actions) == 0)
    assert allowed[rows, decisions.actions].all()  # never a forbidden action
    assert (decisions.probabilities[rows, decisions.actions] > 0).all()
    np.testing.assert_allclose(decisions.probabilities.sum(axis=1), 1.0)
    demoted = (decisions.reasons == CAPACITY).any(axis=1)
    assert decisions.overridden[demoted].all()
    assert (decisions.reasons[demoted, decisions.actions[demoted]] != CAPACITY).all()
    # single requests are scored without the capacity: the same rows otherwise
    alone = scorer.score(batch, capacity=False)
    assert not (alone.reasons == CAPACITY).any()
    np.testing.assert_array_equal(alone.actions[~demoted], decisions.actions[~demoted])


def test_the_contact_list_holds_at_most_k_of_a_capacity_limited_action(
    served: ServedModel, demo_source: SourceConfig, tmp_path: Path
) -> None:
    """With a capacity of k of an action a week, the served contact list never holds more;
    without it the same policy gives the action to more customers (the test can fail)."""
    action = "newsletter"
    free = ServingConfig(world="coworking", rules=RulesConfig())
    score_logs(demo_source, AS_OF, served, free, tmp_path / "free" / "actions.csv")
    listed = pd.read_csv(tmp_path / "free" / "actions.csv")
    unconstrained = int((listed["action"] == action).sum())
    k = unconstrained // 3
    assert k >= 1
    capped = ServingConfig(world="coworking", rules=RulesConfig(capacity={action: k}))
    score_logs(demo_source, AS_OF, served, capped, tmp_path / "capped" / "actions.csv")
    served_list = pd.read_csv(tmp_path / "capped" / "actions.csv")
    given = int((served_list["action"] == action).sum())
    assert k - 1 <= given <= k  # an arm's unused share (here control's unit) stays unused
    summary = json.loads((tmp_path / "capped" / "summary.json").read_text())["scoring"]
    assert summary["refused"][action]["capacity"] == unconstrained - given  # the summary says why
    # the API's answer names the reason for every customer the action was taken from
    scorer = Scorer(served, capped)
    logs, _ = ingest_to_logs(demo_source)
    decisions = scorer.score(batch_from_logs(logs, scorer.world, pd.Timestamp(AS_OF, tz="UTC")))
    masked = masked_columns(decisions, scorer.action_names)
    assert masked[action].count("capacity") == unconstrained - given
