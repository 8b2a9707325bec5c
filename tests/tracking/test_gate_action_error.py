"""The value tests' bias bound counts the world's error on what the candidate does: the model
check's per-action bounds weighted by the value each policy draws from each action, beside the
logging policy's bound (tracking.promotion.WorldError, bias_bound; evaluation.simulate's
PolicyRun.action_value; docs/ope.md, *The bias bound*)."""

from __future__ import annotations

import numpy as np
import pytest

from journeyopt.agents.baselines import StaffPolicy
from journeyopt.evaluation.ope.logged import LoggedTrajectories
from journeyopt.evaluation.ope.model_check import (
    ModelCheckSettings,
    action_check,
    check_every_action,
    check_model,
    gap_interval,
)
from journeyopt.evaluation.ope.model_value import ValueModel
from journeyopt.evaluation.simulate import evaluate_policies
from journeyopt.sim.behaviour import contact_rules
from journeyopt.sim.config import shipped_practice
from journeyopt.sim.world import WorldSpec, load_world
from journeyopt.tracking.promotion import (
    WorldError,
    bias_bound,
    bias_parts,
    simulation_evidence,
)
from tests.evaluation.ope.coworking_logs import logged_coworking
from tests.evaluation.ope.policies import FixedMix
from tests.evaluation.ope.wrong_world import action_lift_shifted

GAMMA = 0.995


def test_action_value_splits_each_weeks_reward_over_the_last_weeks_actions() -> None:
    """The value drawn from each action sums to the policy's value, for a one-week and a
    two-week outcome; a policy that never contacts draws all of it from ``none``."""
    world = load_world("coworking")
    staff = StaffPolicy(world, shipped_practice("coworking").to_practice())
    quiet = FixedMix({}, name="quiet")
    for weeks in (1, 2):
        result = evaluate_policies(
            world, [staff, quiet], 300, 8, GAMMA, seed=3, reference=None, outcome_weeks=weeks
        )
        for run in result.runs:
            assert run.action_value is not None
            np.testing.assert_allclose(run.action_value.sum(axis=1), run.value, atol=1e-9)
        staff_parts, quiet_parts = (np.asarray(r.action_value) for r in result.runs)
        assert (np.abs(staff_parts[:, 1:]).sum() > 0) and (quiet_parts[:, 1:] == 0).all()
    with pytest.raises(ValueError, match="outcome_weeks must be >= 1"):
        evaluate_policies(world, [quiet], 10, 2, GAMMA, reference=None, outcome_weeks=0)


def test_a_policys_error_combines_the_action_gaps_with_its_own_mix() -> None:
    """Constant replicates (no sampling error): the bound is ``|sum_a g_a U_a| / |sum U_a|``;
    opposite gaps cancel within a policy's mix; an action the logs cannot check counts at
    the logging policy's bound; a resampled gap's spread widens it."""
    reps = np.tile([0.02, 0.30, np.nan], (200, 1))
    error = WorldError(0.05, reps, 0.9)
    assert error.policy_error(np.array([80.0, 20.0, 0.0])) == pytest.approx(
        (0.02 * 80 + 0.30 * 20) / 100
    )
    assert error.policy_error(np.array([80.0, 0.0, 20.0])) == pytest.approx(
        (0.02 * 80 + 0.05 * 20) / 100
    )
    cancel = WorldError(0.05, np.tile([0.1, -0.1], (200, 1)), 0.9)
    assert cancel.policy_error(np.array([50.0, 50.0])) == pytest.approx(0.0)
    assert cancel.policy_error(np.array([50.0, 0.0])) == pytest.approx(0.1)
    noisy = WorldError(0.05, np.random.default_rng(0).normal(0.0, 0.1, (4000, 1)), 0.9)
    assert noisy.policy_error(np.array([10.0])) == pytest.approx(0.1645, abs=0.01)
    assert np.isnan(WorldError(0.05).policy_error(np.ones(3)))
    assert np.isnan(WorldError(float("nan"), np.full((5, 1), np.nan)).policy_error(np.ones(1)))
    with pytest.raises(ValueError, match="shape"):
        error.policy_error(np.ones(2))
    with pytest.raises(ValueError, match=">= 0"):
        WorldError(-0.1)
    # the bias bound: the larger of the logging policy's and the per-action bound
    assert bias_parts(0.05, 100.0, -60.0, 0.2, 0.01) == pytest.approx((8.0, 20.6))
    assert bias_bound(0.05, 100.0, -60.0, 0.2, 0.01) == pytest.approx(20.6)
    assert bias_bound(0.05, 100.0, -60.0, 0.01, 0.01) == pytest.approx(8.0)
    assert bias_bound(0.05, 100.0, -60.0) == pytest.approx(8.0)  # per action not measured
    assert np.isnan(bias_bound(float("nan"), 1.0, 1.0))


SHARES = (0.7, 0.2, 0.1)
"""The logging policy's share of each action in the closed-form world."""
MEANS = (50.0, 60.0, 58.0)
"""True outcome per decision of each action (a policy taking it every week earns it)."""


def closed_form_world(x: float, seed: int) -> tuple[WorldError, dict[str, tuple[float, ...]]]:
    """A world biased only on action 1 (it over-predicts its outcome by ``x``), the others
    exact. 20,000 logged decisions with the logging policy's shares :data:`SHARES` and true
    outcomes :data:`MEANS` (gamma noise); the model check of the logging policy's value and
    of each action (:func:`action_check`, propensity-weighted) measured from them. Returns the
    world's error and, per policy taking one action every time, the true and the world's value
    (action 1: 60 true, 60 (1 + x) in the world)."""
    rng = np.random.default_rng(seed)
    n = 20_000
    action = rng.choice(3, n, p=SHARES)
    realised = rng.gamma(4.0, np.asarray(MEANS)[action] / 4.0)
    bias = np.where(action == 1, 1.0 + x, 1.0)
    predicted = np.asarray(MEANS)[action] * bias + rng.normal(0.0, 2.0, n)
    settings = ModelCheckSettings(n_boot=200, confidence=0.9, seed=seed)
    _, low, high = gap_interval(realised, predicted, settings)
    weight = 1.0 / np.asarray(SHARES)[action]
    checks = []
    for a in range(3):
        took = np.where(action == a, weight, 0.0)
        checks.append(action_check(str(a), 1.0, int((action == a).sum()), took * realised,
                                   took * predicted, settings))  # fmt: skip
    values = {str(a): (MEANS[a], MEANS[a] * (1.0 + x * (a == 1))) for a in range(3)}
    return WorldError.of(max(abs(low), abs(high)), checks, 0.9), values


def intervals(
    error: WorldError, candidate: tuple[float, float], champion: tuple[float, float], a: int,
    seed: int,
) -> tuple[float, tuple[float, float], tuple[float, float]]:  # fmt: skip
    """The truth and the simulation test's interval from the logging policy's bound alone
    (the old bound) and with the per-action bound (the candidate taking action ``a`` every
    week, the champion action 0)."""
    rng = np.random.default_rng(seed)
    customers = rng.normal(0.0, 10.0, 1000)  # common random numbers
    cand = candidate[1] + customers + rng.normal(0.0, 3.0, 1000)
    champ = champion[1] + customers + rng.normal(0.0, 3.0, 1000)
    parts = np.zeros(3)
    parts[a] = cand.mean()
    old = simulation_evidence("world", cand, champ, 0.95, 0.0, relative_error=error.logging)
    new = simulation_evidence(
        "world", cand, champ, 0.95, 0.0, relative_error=error.logging,
        candidate_error=error.policy_error(parts),
        champion_error=error.policy_error(np.array([champ.mean(), 0.0, 0.0])),
    )  # fmt: skip
    return (
        candidate[0] - champion[0],
        (old.lower_bound, old.ci_high),
        (new.lower_bound, new.ci_high),
    )


def test_a_world_biased_on_one_action_covers_a_candidate_using_it_and_keeps_the_rest() -> None:
    """Closed form: the world over-predicts action 1's outcome by 30 %, which the logging
    policy takes in 20 % of its decisions: its value is over-predicted by about 7 %, a bound
    of about 8 %. A candidate taking action 1 every week (true 60 against the champion's 50,
    +10) is predicted +28; the old bound (8 % of 128) leaves +18 or more: it misses in every
    seed, the per-action bound (30 % of 78) covers in every seed. A candidate taking action 2
    (exact in the world) keeps the old interval: its per-action bound is below the logging
    policy's."""
    old_covered = new_covered = kept = 0
    for seed in range(10):
        error, values = closed_form_world(0.3, seed)
        one, two = (error.policy_error(np.eye(3)[a]) for a in (1, 2))
        assert one > 0.25 and 0.05 < error.logging < 0.12 and two < min(0.06, error.logging)
        truth, old, new = intervals(error, values["1"], values["0"], 1, seed)
        old_covered += old[0] <= truth <= old[1]
        new_covered += new[0] <= truth <= new[1]
        truth, old, new = intervals(error, values["2"], values["0"], 2, seed)
        kept += old == pytest.approx(new) and old[0] <= truth <= old[1]
    assert (old_covered, new_covered, kept) == (0, 10, 10)


WEEKS = 10


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> LoggedTrajectories:
    """3,000 customers of the coworking world over 10 weeks under the demo's practice with
    10 % exploration, through ingestion and the panel (as test_model_check)."""
    return logged_coworking(tmp_path_factory.mktemp("logs"), WEEKS, seed=7)


def simulated(world: WorldSpec, policies: list[FixedMix | StaffPolicy]) -> list[np.ndarray]:
    """Per policy, (N,) values and the (A,) mean value drawn from each action in ``world``
    over 26 weeks under the world's rules (the same customers and random numbers)."""
    result = evaluate_policies(
        world, policies, 2000, 26, GAMMA, seed=5, rules=contact_rules(world), reference=None,
        outcome_weeks=2,
    )  # fmt: skip
    out = []
    for run in result.runs:
        out += [run.value, np.asarray(run.action_value).mean(axis=0)]
    return out


def test_the_real_check_covers_a_candidate_leaning_on_the_over_predicted_action(
    logged: LoggedTrajectories,
) -> None:
    """The coworking world as the truth; as the model, the same world over-predicting the
    response to ``discount_offer`` (lift +1.5 logits), which today's practice rarely takes.
    The bounds come from the real checks on the logs (the logging policy's value and every
    action's outcome). A candidate sending the discount wherever allowed: the model's uplift
    over today's practice misses the truth with the logging policy's bound alone and covers it
    with the per-action bound. A candidate sending the newsletter (the model exact on it): a
    per-action bound less than half the voucher's and an interval that covers (on logs this
    small the per-action checks' own sampling error still puts it above the logging policy's
    bound: the price of the bound, measured in experiments/rollout)."""
    truth = load_world("coworking")
    wrong = action_lift_shifted(truth, "discount_offer", 1.5)
    settings = ModelCheckSettings(n_boot=200, confidence=0.9)
    check = check_model(logged, ValueModel(wrong), GAMMA, settings)
    shares = np.zeros(truth.actions.n_actions)
    every = check_every_action(logged, wrong, GAMMA, shares, settings)
    error = WorldError.of(check.error_bound, every, 0.9)
    voucher = every[truth.actions.names.index("discount_offer")]
    assert voucher.gap > 3 * check.gap > 0  # today's mix hides the action's error

    staff = StaffPolicy(truth, shipped_practice("coworking").to_practice())
    policies = [
        FixedMix({"discount_offer": 1.0}, "voucher"),
        FixedMix({"newsletter": 1.0}, "news"),
        staff,
    ]
    true = simulated(truth, policies)
    model = simulated(wrong, policies)
    staff_error = error.policy_error(model[5])
    widths = {}
    for k, name in ((0, "voucher"), (2, "news")):
        true_uplift = float((true[k] - true[4]).mean())
        kwargs = {"relative_error": error.logging}
        old = simulation_evidence(name, model[k], model[4], 0.95, 0.0, **kwargs)
        new = simulation_evidence(
            name, model[k], model[4], 0.95, 0.0, **kwargs,
            candidate_error=error.policy_error(model[k + 1]), champion_error=staff_error,
        )  # fmt: skip
        widths[name] = new.bias_actions
        if name == "voucher":
            assert not old.lower_bound <= true_uplift <= old.ci_high
            assert new.lower_bound <= true_uplift <= new.ci_high
            assert new.bias == new.bias_actions > new.bias_logging
        else:
            assert new.lower_bound <= true_uplift <= new.ci_high
    assert widths["news"] < widths["voucher"] / 2
