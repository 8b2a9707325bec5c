"""Today's practice estimated from the logs (behaviour cloning, tabulated as a LoggedPractice):
it recovers a known stochastic logging policy, reports its held-out calibration, travels with
the calibrated world and acts as the ``staff_rules`` baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from journeyopt.agents.baselines import StaffPolicy
from journeyopt.agents.policy import Observation
from journeyopt.calibration.design import Design
from journeyopt.calibration.pipeline import CalibrationResult
from journeyopt.calibration.propensity import logged_practice, practice_matrix, propensities
from journeyopt.calibration.weeks import CustomerWeeks
from journeyopt.errors import ConfigError
from journeyopt.panel.state import CustomerState, state_features
from journeyopt.sim.behaviour import contact_rules
from journeyopt.sim.config import StaffRulesConfig
from journeyopt.sim.discrete import DiscreteLayout, Summary
from journeyopt.sim.population import initial_population
from journeyopt.sim.practice import LoggedPractice, Practice
from journeyopt.sim.world import WorldSpec, load_world
from tests.calibration.conftest import SMALL_PRACTICE
from tests.sim.caps import discrete_spec

SPEC = discrete_spec(
    recency_cap_weeks=4, conversions_cap=2, contact_cap_weeks=3, engagement_cap_weeks=3
)
LAYOUT = DiscreteLayout(SPEC, n_segments=2, n_channels=1)
ACTIONS = ("none", "a_call", "a_mail", "a_offer")
CYCLE = 4


def true_logits(summary: Summary, week: np.ndarray) -> np.ndarray:
    """(m, 4) logits of a known stochastic staff policy: calls after an engagement (more to
    segment 1), a mailing in week 0 of every 4-week cycle, offers to lapsed customers."""
    m = summary.segment.shape[0]
    z = np.zeros((m, 4))
    z[:, 1] = -3.0 + 3.5 * (summary.engagement == 1) + 0.7 * (summary.segment == 1)
    z[:, 2] = -2.5 + 3.5 * (week % CYCLE == 0)
    lapsed = (summary.conversions > 0) & (summary.recency == SPEC.recency_cap_weeks)
    z[:, 3] = -3.5 + 2.5 * lapsed
    return z


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def synthetic_weeks(m: int, seed: int) -> tuple[CustomerWeeks, np.ndarray]:
    """``m`` customer-weeks in uniformly drawn states and weeks, with actions drawn from the
    known policy; returns them and the true (m, 4) probabilities."""
    rng = np.random.default_rng(seed)
    state = rng.integers(0, LAYOUT.n_states, m)
    week = rng.integers(0, 52, m)
    summary = LAYOUT.decode(state)
    truth = softmax(true_logits(summary, week))
    action = (rng.random((m, 1)) > np.cumsum(truth, axis=1)).sum(axis=1)
    n_customers = m // 10
    weeks = CustomerWeeks(
        customer=rng.integers(0, n_customers, m),
        week=week,
        week_of_year=week % 52 + 1,
        state=state,
        lifecycle=np.zeros(m, np.int64),
        segment=summary.segment,
        action=action.astype(np.int64),
        propensity=np.full(m, np.nan),
        converted=np.zeros(m, bool),
        conversions=np.zeros(m, np.int64),
        list_value=np.zeros(m),
        engaged=np.zeros(m, bool),
        opted_out=np.zeros(m, bool),
        customer_ids=np.array([f"c{k}" for k in range(n_customers)], object),
        segments=("s0", "s1"),
        actions=ACTIONS,
    )
    return weeks, truth


def fit(weeks: CustomerWeeks) -> LoggedPractice:
    design = Design(LAYOUT, len(ACTIONS), seasonal=False)
    validation = (np.arange(weeks.customer_ids.shape[0]) % 5 == 0)[weeks.customer]
    props = propensities(weeks, practice_matrix(design, weeks, (CYCLE,)), validation)
    assert props.source == "estimated" and props.cloning is not None
    return logged_practice(props.cloning, design, (CYCLE,), ACTIONS, ("s0", "s1"), ("email",))


def probabilities_at(practice: LoggedPractice, state: np.ndarray, week: int) -> np.ndarray:
    """(n, 4) the practice's probabilities at discrete ``state`` indices in ``week``."""
    s = LAYOUT.decode(state)
    features = {
        "n_conversions": s.conversions,
        "recency_weeks": np.where(s.conversions > 0, s.recency, np.nan).astype(np.float64),
        "weeks_since_contact": s.contact.astype(np.float64),
        "weeks_since_engagement": s.engagement.astype(np.float64),
        "opted_out_email": s.optout == 1,
    }
    masks = np.ones((state.shape[0], len(ACTIONS)), bool)
    return practice.probabilities(features, s.segment, ("s0", "s1"), 1, week, masks)


def test_recovers_a_known_stochastic_staff_policy() -> None:
    """60,000 logged customer-weeks (~185 per discrete state): every action probability in
    every state and week of the cycle within 0.08 of the truth, and within 0.01 on average
    (measured: max 0.051, mean below; an L2-regularised fit of finite data)."""
    weeks, _ = synthetic_weeks(60_000, seed=0)
    practice = fit(weeks)
    states = np.arange(LAYOUT.n_states)
    gaps = []
    for week in range(CYCLE):
        truth = softmax(true_logits(LAYOUT.decode(states), np.full(states.shape[0], week)))
        gaps.append(np.abs(probabilities_at(practice, states, week) - truth))
    gap = np.stack(gaps)
    assert gap.max() < 0.08, gap.max()
    print(f"max gap {gap.max():.4f}, mean gap {gap.mean():.4f}")
    assert gap.mean() < 0.01, gap.mean()


def test_held_out_calibration_is_reported_and_beats_constant_rates() -> None:
    weeks, truth = synthetic_weeks(60_000, seed=1)
    d = fit(weeks).diagnostics
    assert d["n_validation"] > 5_000
    assert d["log_loss"] < d["constant_log_loss"] - 0.1
    # the best possible log-loss is the truth's own entropy on those rows
    entropy = float(np.mean(-(truth * np.log(truth)).sum(axis=1)))
    assert d["log_loss"] == pytest.approx(entropy, abs=0.02)
    assert d["ece"] < 0.02
    assert d["agreement"] >= d["constant_agreement"]


def test_masks_renormalise_and_never_give_a_forbidden_action() -> None:
    weeks, _ = synthetic_weeks(20_000, seed=2)
    practice = fit(weeks)
    states = np.arange(LAYOUT.n_states)
    s = LAYOUT.decode(states)
    features = {
        "n_conversions": s.conversions,
        "recency_weeks": np.where(s.conversions > 0, s.recency, np.nan).astype(np.float64),
        "weeks_since_contact": s.contact.astype(np.float64),
        "weeks_since_engagement": s.engagement.astype(np.float64),
        "opted_out_email": s.optout == 1,
    }
    masks = np.ones((states.shape[0], 4), bool)
    masks[:, 1] = False  # calls forbidden
    free = practice.probabilities(features, s.segment, ("s0", "s1"), 1, 0, np.ones_like(masks))
    held = practice.probabilities(features, s.segment, ("s0", "s1"), 1, 0, masks)
    assert np.all(held[:, 1] == 0.0)
    np.testing.assert_allclose(held.sum(axis=1), 1.0)
    expected = free * masks / (free * masks).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(held, expected, atol=1e-12)
    # segments are matched by name: the acting world may list them in another order
    swapped = practice.probabilities(features, 1 - s.segment, ("s1", "s0"), 1, 0, masks)
    np.testing.assert_allclose(swapped, held)


def test_round_trip(tmp_path: Path) -> None:
    weeks, _ = synthetic_weeks(10_000, seed=3)
    practice = fit(weeks)
    loaded = LoggedPractice.load(practice.save(tmp_path / "practice.npz"))
    states = np.arange(LAYOUT.n_states)
    for week in range(CYCLE):
        np.testing.assert_array_equal(
            probabilities_at(loaded, states, week), probabilities_at(practice, states, week)
        )
    assert loaded.diagnostics == practice.diagnostics


# --- the calibration of logs generated under the hand-written staff rules ----------------


def test_calibrated_world_carries_the_logs_practice(small_calibration: CalibrationResult) -> None:
    out = small_calibration.output_dir
    assert (out / "practice.npz").is_file()
    world = load_world(out)
    assert world.logged_practice is not None
    d = world.logged_practice.diagnostics
    assert d["log_loss"] < d["constant_log_loss"]
    card = (out / "card.md").read_text()
    assert "## Today's practice, estimated from the logs" in card
    assert "propensity_gap" in d  # the small logs carry their propensities


def simulate_logging(
    world: WorldSpec, n: int, weeks: int, exploration: float, seed: int
) -> tuple[list[dict[str, np.ndarray]], np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Features, segments, staff actions and the logging policy's true (N, A) probabilities
    of ``weeks`` weeks of the staff rules with ``exploration`` (as ``journeyopt-generate``),
    customers moving under the staff's own choices."""
    from journeyopt.panel.state import advance
    from journeyopt.sim.discrete import summarise
    from journeyopt.sim.dynamics import sample_outcome

    rng = np.random.default_rng(seed)
    state, customers, _ = initial_population(world, n, rng)
    assert isinstance(state, CustomerState)
    practice = SMALL_PRACTICE.to_practice().check(world, "staff")
    rules = contact_rules(world)
    out_features, out_actions, out_truth = [], [], []
    for t in range(weeks):
        features = state_features(state, world.features)
        masks = rules.masks(features)
        staff = practice.actions(world, features, customers.segment, t)
        truth = exploration * masks / masks.sum(axis=1, keepdims=True)
        truth[np.arange(n), staff] += 1.0 - exploration
        out_features.append(features)
        out_actions.append(staff)
        out_truth.append(truth)
        summary = summarise(features, customers.segment, world)
        outcome = sample_outcome(world, summary, staff, t % 52 + 1, rng)
        state = advance(state, outcome.activity)
    return out_features, customers.segment, out_actions, out_truth


def test_the_estimate_reproduces_the_logging_policy_of_the_small_world(
    small_calibration: CalibrationResult, small_world: WorldSpec
) -> None:
    """The small world's logs were made by the staff rules with 30 % uniform exploration. On
    26 weeks of that world, the practice estimated from its logs gives the logged action a
    probability close to the logging policy's (mean total-variation distance below 0.08;
    measured 0.055) and its most probable action is the staff's in at least 95 % of
    customer-weeks (measured 97.7 %)."""
    estimated = load_world(small_calibration.output_dir).logged_practice
    assert estimated is not None
    estimated.check(small_world, "test")
    feats, segment, staff, truth = simulate_logging(small_world, 3000, 26, 0.3, seed=5)
    tv, agree = [], []
    for t, (features, actions, p_true) in enumerate(zip(feats, staff, truth, strict=True)):
        masks = p_true > 0
        p = estimated.probabilities(
            features, segment, small_world.segment_names, t % 52 + 1, t, masks
        )
        tv.append(0.5 * np.abs(p - p_true).sum(axis=1))
        agree.append(p.argmax(axis=1) == actions)
    mean_tv, agreement = float(np.concatenate(tv).mean()), float(np.concatenate(agree).mean())
    print(f"mean TV {mean_tv:.4f}, agreement {agreement:.4f}")
    assert mean_tv < 0.08
    assert agreement > 0.95


def test_the_staff_baseline_can_be_the_logged_practice(
    small_calibration: CalibrationResult, small_world: WorldSpec
) -> None:
    """``source: logged`` resolves to the calibrated world's practice, also when acting in
    the ground truth (``staff.world``); a world without one is refused with a hint."""
    logged = StaffRulesConfig(source="logged", world=str(small_calibration.output_dir))
    practice = logged.practice_for(small_world, "evaluation.staff")
    assert isinstance(practice, LoggedPractice)
    policy = StaffPolicy(small_world, practice)
    state, customers, _ = initial_population(small_world, 500, np.random.default_rng(0))
    features = state_features(state, small_world.features)
    masks = contact_rules(small_world).masks(features)
    obs = Observation(features, customers.segment, 1, 0)
    a1, p1 = policy.act(obs, masks, np.random.default_rng(7))
    a2, _ = policy.act(obs, masks, np.random.default_rng(7))
    np.testing.assert_array_equal(a1, a2)  # seeded
    np.testing.assert_allclose(p1.sum(axis=1), 1.0)
    assert np.all(masks[np.arange(500), a1]) and np.all(p1[~masks] == 0)
    assert np.unique(a1).shape[0] > 1  # stochastic, not a constant
    with pytest.raises(ConfigError, match="carries no practice estimated from logs"):
        StaffRulesConfig(source="logged").practice_for(small_world, "evaluation.staff")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "estimated"}, "staff.source must be one of 'rules', 'logged', 'auto'"),
        ({"source": "logged", "rules": SMALL_PRACTICE.rules}, r"remove staff\.rules"),
    ],
)
def test_invalid_practice_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        StaffRulesConfig(**kwargs)  # type: ignore[arg-type]


def test_logs_cannot_be_generated_by_an_estimated_practice() -> None:
    with pytest.raises(ConfigError, match="cannot generate logs"):
        StaffRulesConfig(source="logged").to_practice()


def test_auto_is_the_logs_practice_in_a_calibrated_world_and_the_rules_elsewhere(
    small_calibration: CalibrationResult, small_world: WorldSpec
) -> None:
    """``source: auto`` (the shipped demo practice): a calibrated world's estimate wherever
    there is one, so a user's world never meets the demo's hand-written rules; the rules in a
    ground-truth world and for generating logs."""
    auto = StaffRulesConfig(source="auto", rules=SMALL_PRACTICE.rules)
    calibrated = load_world(small_calibration.output_dir)
    assert isinstance(auto.practice_for(calibrated, "evaluation.staff"), LoggedPractice)
    assert isinstance(auto.practice_for(small_world, "evaluation.staff"), Practice)
    assert auto.to_practice() == SMALL_PRACTICE.to_practice()
    pinned = StaffRulesConfig(source="rules", rules=SMALL_PRACTICE.rules)
    assert isinstance(pinned.practice_for(calibrated, "evaluation.staff"), Practice)
