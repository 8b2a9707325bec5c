"""The action effects' own penalty (``calibration.action_penalty``): a factor on the penalty of
the actions' interactions with the state, chosen per binary model after its ``C`` by the
held-out log-likelihood with every action carrying the same weight. One factor (the default)
is the calibration without it; a rare action's strong effect, shrunk at the ``C`` the logged
decisions choose, is kept by a lighter factor; the choice is recorded; bad factors are
refused."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from journeyopt.calibration.card import card_markdown
from journeyopt.calibration.config import CalibrationConfig
from journeyopt.calibration.design import ACTION_INTERACTIONS, LIGHT_PENALTY, Design
from journeyopt.calibration.fit import PenaltyChoice
from journeyopt.calibration.models import (
    FitData,
    Penalties,
    action_balance,
    choose_penalties,
    refit_models,
)
from journeyopt.calibration.pipeline import CalibrationResult, penalty_params
from journeyopt.errors import ConfigError
from journeyopt.sim.discrete import DiscreteLayout
from tests.sim.caps import caps_config

from .test_forward_split import SPEC, one_segment_weeks, staggered_weeks
from .test_penalty_grid import weak_signal_data

RARE_OPTOUT = (0.25, 0.01)
"""The rare action's opt-out probability for a recent customer, and for anyone else."""


def rare_action_data(seed: int = 2) -> tuple[FitData, np.ndarray]:
    """600 customers over 30 weeks; a common contact (38 % of the weeks, 3 % opt out whoever
    gets it) and a rare one (2 % of the weeks) that a recent customer opts out of 25 times as
    often as anyone else (:data:`RARE_OPTOUT`); the last 10 weeks scored."""
    rng = np.random.default_rng(seed)
    n_customers, n_weeks = 600, 30
    customer = np.repeat(np.arange(n_customers), n_weeks)
    week = np.tile(np.arange(n_weeks), n_customers)
    n = customer.shape[0]
    layout = DiscreteLayout(SPEC, 1, 1)
    state = rng.integers(layout.n_states, size=n)
    summary = layout.decode(state)
    recent = (summary.conversions > 0) & (summary.recency < SPEC.recency_cap_weeks)
    u = rng.random(n)
    action = np.where(u < 0.02, 2, np.where(u < 0.4, 1, 0))
    rare = np.where(recent, *RARE_OPTOUT)
    optout = np.where(action == 2, rare, np.where(action == 1, 0.03, 0.0))
    converted = rng.random(n) < 0.1
    actions = ("none", "common", "rare")
    weeks = one_segment_weeks(customer, week, state, action, converted, optout, actions, rng)
    data = FitData.of(weeks, Design(layout, 3, seasonal=False), np.ones(n))
    return data, week >= 20


def rare_gap(data: FitData, penalties: Penalties) -> float:
    """The fitted opt-out log-odds ratio of a recent customer against a prospect under the rare
    action, the same state otherwise (the truth: log(0.25/0.75) - log(0.01/0.99) = 3.5)."""
    (fits,) = refit_models(data, penalties, [np.ones(data.weeks.n)])
    layout = data.design.layout
    states = layout.decode(np.arange(layout.n_states))
    base = dict(segment=0, contact=1, engagement=1, optout=0)
    recent = np.flatnonzero(
        (states.conversions == 1)
        & (states.recency == 1)
        & np.all([getattr(states, k) == v for k, v in base.items()], axis=0)
    )[0]
    prospect = np.flatnonzero(
        (states.conversions == 0)
        & np.all([getattr(states, k) == v for k, v in base.items()], axis=0)
    )[0]
    rows = layout.decode(np.array([recent, prospect]))
    eta = fits.binary["optout"].eta(data.design.matrix(rows, np.array([2, 2])))
    return float(eta[0] - eta[1])


def test_the_factor_scales_only_the_action_interactions() -> None:
    design = Design(DiscreteLayout(SPEC, 2, 1), 3, seasonal=True)
    default = design.penalty_scale()
    assert set(np.unique(default)) == {LIGHT_PENALTY, 1.0}  # as before the factor existed
    np.testing.assert_array_equal(design.penalty_scale(action_factor=1.0), default)
    light = design.penalty_scale(action_factor=0.1)
    changed = light != default
    assert changed.any() and (light[changed] == 0.1).all() and (default[changed] == 1.0).all()
    blocks = design._blocks
    widths = sum(blocks[name] for name in ACTION_INTERACTIONS)
    assert int(changed.sum()) == widths
    np.testing.assert_array_equal(
        design.penalty_scale(design.n_state_action_columns, 0.1), light[:-53]
    )


def test_one_factor_is_the_calibration_without_it() -> None:
    """``[1.0]`` (the default) fits nothing more and leaves every fit identical; a grid
    whose lighter factors do not beat 1 gives the same fits as well."""
    data, rows = weak_signal_data()
    plain = choose_penalties(data, rows, [0.03, 0.3], [1e-3])
    assert plain.action == dict.fromkeys(("convert", "engage", "optout"), 1.0)
    assert plain.action_choices == {}
    ones = [np.ones(data.weeks.n)]
    (before,) = refit_models(data, replace(plain, action={}), ones)
    (after,) = refit_models(data, plain, ones)
    for name, fit in before.binary.items():
        np.testing.assert_array_equal(after.binary[name].coef, fit.coef)
        assert after.binary[name].intercept == fit.intercept


def test_actions_weigh_the_same_in_the_score() -> None:
    data, rows = rare_action_data()
    for name, actions in (("optout", (1, 2)), ("convert", (0, 1, 2))):
        balance = action_balance(data, name, rows)
        _, model_rows = data.outcome(name)
        assert (balance[~(rows & model_rows)] == 0).all()
        totals = np.bincount(data.weeks.action, weights=balance, minlength=3)
        np.testing.assert_allclose(totals[list(actions)], totals[list(actions)][0])
        assert totals.sum() == pytest.approx(float((rows & model_rows).sum()))


def test_a_rare_actions_strong_effect_shrunk_by_the_logged_choice_is_kept() -> None:
    """At the ``C`` the logged decisions' score chooses, the rare action's 25-fold opt-out
    risk for recent customers is shrunk to less than a quarter of its log-odds ratio; scored
    with each action weighing the same, a lighter factor beats 1 by more than one standard
    error and more than triples the effect (still below the truth)."""
    data, rows = rare_action_data()
    truth = np.log(0.25 / 0.75) - np.log(0.01 / 0.99)
    fixed = choose_penalties(data, rows, [0.003, 0.03, 0.3, 3.0], [1e-3], tolerance_se=1.0)
    chosen = choose_penalties(
        data, rows, [0.003, 0.03, 0.3, 3.0], [1e-3], tolerance_se=1.0, action_grid=[1, 0.1, 0.01]
    )
    assert chosen.binary == fixed.binary and chosen.choices == fixed.choices  # C as before
    optout = chosen.action_choices["optout"]
    assert sorted(optout.scores) == [0.01, 0.1, 1.0]
    assert chosen.action["optout"] == optout.value < 1.0
    assert optout.scores[optout.value] > optout.scores[1.0]
    shrunk, kept = rare_gap(data, fixed), rare_gap(data, chosen)
    assert shrunk < truth / 4  # 0.45 of 3.5
    assert 3 * shrunk < kept < truth  # 1.48


def test_noise_does_not_pick_a_factor() -> None:
    """Without a rare action's effect (the contact does nothing), a lighter factor is not
    taken within ``tolerance_se`` standard errors."""
    weeks = staggered_weeks(400, 40, seed=5)
    layout = DiscreteLayout(SPEC, 1, 1)
    data = FitData.of(weeks, Design(layout, 2, seasonal=False), np.ones(weeks.n))
    chosen = choose_penalties(
        data, weeks.week > 26, [0.03, 0.3], [1e-3], tolerance_se=1.0, action_grid=[1, 0.1, 0.01]
    )
    assert chosen.action == dict.fromkeys(("convert", "engage", "optout"), 1.0)


def test_the_choice_is_recorded(small_calibration: CalibrationResult) -> None:
    est = small_calibration.estimate
    meta = est.calibrated.meta
    assert meta["penalties"]["action"] == dict.fromkeys(("convert", "engage", "optout"), 1.0)
    assert meta["action_penalty_choices"] == {}
    params = penalty_params(est)
    assert {k: v for k, v in params.items() if ".action." in k} == {
        f"calibration.penalty.action.{name}": 1.0 for name in ("convert", "engage", "optout")
    }
    card = (small_calibration.output_dir / "card.md").read_text()
    assert "action effects' penalty factor" not in card  # one factor: nothing chosen
    choice = PenaltyChoice(0.1, {1.0: -0.2, 0.1: -0.19, 0.01: -0.195})
    chosen = {**meta, "action_penalty_choices": {"optout": choice.as_meta()}}
    penalties = replace(est.penalties, action={"optout": 0.1}, action_choices={"optout": choice})
    text = card_markdown(
        replace(est, penalties=penalties, calibrated=replace(est.calibrated, meta=chosen)),
        None,
        None,
    )
    assert (
        "action effects' penalty factor (held-out log-lik. with each action weighing the same) "
        "optout 0.1 (0.01 -0.19500, 0.1 -0.19000, 1 -0.20000)" in text
    )


@pytest.mark.parametrize("factors", [[], [0.0], [1.0, -0.1]])
def test_bad_factors_are_refused(factors: list[float]) -> None:
    with pytest.raises(ConfigError, match=r"calibration\.action_penalty must hold one or more"):
        CalibrationConfig(caps=caps_config(), action_penalty=factors)
