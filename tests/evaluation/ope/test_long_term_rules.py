"""The long-term estimators value a policy as served: under the contact rules that masked the
logged window (serving's), after the window as well (the rollout that projects the target
policy, :func:`journeyopt.evaluation.ope.model_value.visited_states`).

The truth is known exactly: the logs come from the coworking world itself, which is also the
model, so the only thing between the estimate and the truth is the estimator. Before the fix the
value-to-go followed the world's own rules (opt-outs only): a candidate asking for a call every
week was valued with a call every week where serving allows one in four, and ``lt_dr``
overstated its improvement over no contact more than twofold, its 95 % interval far from the
truth (issue 17's OPE misses of the closed loops).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from journeyopt.evaluation.ope.evaluate import OPESettings, evaluate_long_term, paired_improvement
from journeyopt.evaluation.ope.logged import LoggedTrajectories
from journeyopt.evaluation.ope.model_value import ValueModel, visited_states
from journeyopt.evaluation.simulate import evaluate_policies
from journeyopt.serving.guards import serving_rules
from journeyopt.sim.config import shipped_rules
from journeyopt.sim.optimum import cyclic_weeks_of_year
from journeyopt.sim.world import WorldSpec, load_world
from tests.evaluation.ope.coworking_logs import logged_coworking
from tests.evaluation.ope.policies import FixedMix

VALUE_WEEKS = 8
GAMMA = 0.995


def costliest(world: WorldSpec) -> FixedMix:
    """Asks for the catalogue's costliest action in every week (``none`` where forbidden)."""
    name = world.actions.names[int(np.argmax(world.actions.costs))]
    return FixedMix({name: 1.0}, name="costliest")


def logged_under_serving_rules(out: Path, n_customers: int, seed: int) -> LoggedTrajectories:
    """Coworking logs (today's practice, 10 % exploration, everyone present from the start)
    over a one-week window plus the next week, masked by the demo's serving rules."""
    rules = serving_rules(load_world("coworking"), shipped_rules("coworking"))
    return logged_coworking(out, 2, seed, n_customers, rules=rules)


def test_the_rollout_after_the_window_follows_the_logs_rules() -> None:
    """The projection's rollout carries out what the serving rules allow: the demo's rules
    allow one phone contact per customer in any 4 weeks, so a policy asking for a call every
    week gets at most ``ceil(W / 4)`` of ``W`` weeks (the world's own rules gave all ``W``)."""
    world = load_world("coworking")
    rules = serving_rules(world, shipped_rules("coworking"))
    model = ValueModel(world)
    policy = costliest(world)
    call = int(np.argmax(world.actions.costs))
    weeks = cyclic_weeks_of_year(10, 12)
    _, probs = visited_states(model, policy, rules, 300, weeks, seed=0)
    calls_per_customer = probs[:, :, call].sum(axis=0)  # (N,) one-hot: weeks with a call
    assert calls_per_customer.max() <= np.ceil(12 / 4)
    assert calls_per_customer.mean() > 1.0  # the cap, not a policy that never calls


@pytest.mark.slow
def test_long_term_dr_covers_the_true_improvement_under_the_serving_rules(
    tmp_path: Path,
) -> None:
    world = load_world("coworking")
    logged = logged_under_serving_rules(tmp_path / "logs", 1200, seed=5)
    rules = serving_rules(world, shipped_rules("coworking"))
    candidate, nobody = costliest(world), FixedMix({}, name="none")
    settings = OPESettings(gamma=GAMMA, n_boot=100, rollout_customers=1000)
    model = ValueModel(world)
    cand = evaluate_long_term(candidate, logged, model, settings, VALUE_WEEKS)
    base = evaluate_long_term(nobody, logged, model, settings, VALUE_WEEKS)
    estimate = paired_improvement(cand, base, "lt_dr", settings)
    # the truth: the same two policies served under the same rules in the same world, from the
    # same starting population (everyone present at the logs' start), common random numbers
    truth = evaluate_policies(
        world,
        [candidate, nobody],
        n_customers=20_000,
        horizon_weeks=VALUE_WEEKS,
        gamma=GAMMA,
        seed=1,
        start_week_of_year=int(logged.week_of_year[0]),
        rules=rules,
        reference=None,
    )
    true_uplift = float((truth.runs[0].value - truth.runs[1].value).mean())
    assert estimate.ci_low <= true_uplift <= estimate.ci_high
    # far from the value with the world's own rules (a call every week): about 2.3 times
    assert estimate.ci_high < 2.0 * true_uplift
