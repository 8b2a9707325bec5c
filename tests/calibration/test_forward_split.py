"""The split every choice by held-out likelihood is made on (the point fit's penalties, the
response family, the value tiers, the state summary; :func:`journeyopt.calibration.scoring.
scored_rows`) is forward in time by default: no scored week of a customer precedes a fitted
week of theirs, and the split does not depend on the calibration's seed. ``forward_weeks`` 0
keeps the seed's random validation customers."""

from __future__ import annotations

import numpy as np
import pytest

from journeyopt.calibration.card import penalty_split
from journeyopt.calibration.config import CalibrationConfig, SummaryConfig
from journeyopt.calibration.design import Design
from journeyopt.calibration.estimate import validation_customers
from journeyopt.calibration.models import FitData, Penalties, choose_penalties
from journeyopt.calibration.scoring import forward_window, inner_rows, scored_rows
from journeyopt.calibration.weeks import CustomerWeeks
from journeyopt.sim.discrete import DiscreteLayout
from tests.sim.caps import caps_config, discrete_spec

CAPS = {"recency_cap_weeks": 4, "conversions_cap": 2, "contact_cap_weeks": 2}
SPEC = discrete_spec(**CAPS, engagement_cap_weeks=2)


def staggered_weeks(n_customers: int, n_weeks: int, seed: int) -> CustomerWeeks:
    """Customers arriving in a random week of ``n_weeks`` and present every week after: a
    week's conversion is likelier in a state with a recent conversion (a signal to fit)."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, n_weeks - 1, n_customers)
    customer = np.concatenate([np.full(n_weeks - f, k) for k, f in enumerate(first)])
    week = np.concatenate([np.arange(f, n_weeks) for f in first])
    n = customer.shape[0]
    layout = DiscreteLayout(SPEC, 1, 1)
    state = rng.integers(layout.n_states, size=n)
    recency = layout.decode(state).recency
    converted = rng.random(n) < np.where(recency < 2, 0.4, 0.1)
    action = rng.integers(2, size=n)
    return one_segment_weeks(
        customer, week, state, action, converted, np.zeros(n), ("none", "contact"), rng
    )


def one_segment_weeks(
    customer: np.ndarray,
    week: np.ndarray,
    state: np.ndarray,
    action: np.ndarray,
    converted: np.ndarray,
    optout_probability: np.ndarray,
    actions: tuple[str, ...],
    rng: np.random.Generator,
) -> CustomerWeeks:
    """Customer-weeks of one segment, logged with propensity 0.5, week of year from the week:
    a conversion's value, an engagement (20 %) and an opt-out (``optout_probability``) drawn
    from ``rng`` in that order."""
    n = customer.shape[0]
    zeros = np.zeros(n, np.int64)
    return CustomerWeeks(
        customer=customer,
        week=week,
        week_of_year=1 + week % 52,
        state=state,
        lifecycle=zeros,
        segment=zeros,
        action=action,
        propensity=np.full(n, 0.5),
        converted=converted,
        conversions=converted.astype(np.int64),
        list_value=np.where(converted, rng.gamma(2.0, 50.0, n), 0.0),
        engaged=rng.random(n) < 0.2,
        opted_out=rng.random(n) < optout_probability,
        customer_ids=np.array([f"c{k}" for k in range(int(customer.max()) + 1)], dtype=object),
        segments=("all",),
        actions=actions,
    )


def test_the_default_split_is_forward_in_time_and_does_not_depend_on_the_seed() -> None:
    weeks = staggered_weeks(300, 60, seed=0)
    forward = SummaryConfig().forward_weeks
    assert forward == CalibrationConfig(caps=caps_config(**CAPS)).summary.forward_weeks == 13
    splits = []
    for seed in (0, 1, 2):
        held = validation_customers(300, 0.2, np.random.default_rng(seed))
        rows, judged = scored_rows(weeks, held, forward)
        # every scored week of every customer comes after every fitted week of theirs
        last_fitted = np.full(300, -1)
        np.maximum.at(last_fitted, weeks.customer[~rows], weeks.week[~rows])
        first_scored = np.full(300, 10**9)
        np.minimum.at(first_scored, weeks.customer[rows], weeks.week[rows])
        assert (last_fitted < first_scored).all()
        assert set(np.unique(weeks.week[rows])) == set(range(47, 60))  # the last 13 weeks
        assert (judged == np.isin(np.arange(300), weeks.customer[rows])).all()
        splits.append((rows, judged))
    for rows, judged in splits[1:]:
        np.testing.assert_array_equal(rows, splits[0][0])
        np.testing.assert_array_equal(judged, splits[0][1])


def test_forward_zero_keeps_the_seeds_validation_customers() -> None:
    weeks = staggered_weeks(300, 60, seed=0)
    rows = []
    for seed in (0, 1):
        held = validation_customers(300, 0.2, np.random.default_rng(seed))
        scored, judged = scored_rows(weeks, held, 0)
        np.testing.assert_array_equal(scored, held[weeks.customer])
        np.testing.assert_array_equal(judged, held & np.isin(np.arange(300), weeks.customer))
        rows.append(scored)
    assert (rows[0] != rows[1]).any()


@pytest.mark.parametrize(
    ("n_weeks", "forward", "window"),
    [(60, 13, 13), (26, 13, 13), (20, 13, 10), (3, 13, 1), (1, 13, 0), (60, 0, 0)],
)
def test_the_window_scores_at_most_half_the_fitted_weeks(
    n_weeks: int, forward: int, window: int
) -> None:
    """A short history is scored on its last half; a single week (or 0) on the validation
    customers."""
    weeks = staggered_weeks(50, max(n_weeks, 2), seed=1)
    weeks = weeks.take(weeks.week >= max(n_weeks, 2) - n_weeks)
    assert forward_window(weeks, forward) == window
    held = validation_customers(50, 0.2, np.random.default_rng(0))
    rows, _ = scored_rows(weeks, held, forward)
    if window:
        assert rows.any() and (~rows).any()
        assert int(weeks.week[~rows].max()) < int(weeks.week[rows].min())
    else:
        np.testing.assert_array_equal(rows, held[weeks.customer])


def test_penalties_chosen_forward_are_the_same_for_every_seed() -> None:
    """The penalty choice on the default split: seeds 0, 1, 2 choose the same penalties; on
    the seeds' validation customers they differ (measured: conversion C 30, 30, 0.3; value
    alpha 0.1, 1e-5, 0.1)."""
    weeks = staggered_weeks(400, 40, seed=2)
    layout = DiscreteLayout(SPEC, 1, 1)
    data = FitData.of(weeks, Design(layout, 2, seasonal=False), np.ones(weeks.n))
    grid, alphas = [0.003, 0.03, 0.3, 3.0, 30.0], [1e-5, 1e-3, 1e-1]
    chosen: dict[int, list[Penalties]] = {SummaryConfig().forward_weeks: [], 0: []}
    for forward, choices in chosen.items():
        for seed in (0, 1, 2):
            held = validation_customers(400, 0.2, np.random.default_rng(seed))
            rows, _ = scored_rows(weeks, held, forward)
            choices.append(choose_penalties(data, rows, grid, alphas))
    ahead, random = chosen[SummaryConfig().forward_weeks], chosen[0]
    assert ahead[1] == ahead[0] and ahead[2] == ahead[0], ahead
    assert random[1] != random[0] or random[2] != random[0], random


@pytest.mark.parametrize(
    ("meta", "line"),
    [
        ({"validation_forward_weeks": 13}, "every customer's last 13 fitted weeks"),
        ({"validation_forward_weeks": 0}, "the seed's validation customers"),
        ({}, "split not recorded"),
    ],
)
def test_the_card_says_which_rows_chose_the_penalties(meta: dict[str, int], line: str) -> None:
    assert line in penalty_split(meta)


def test_the_trees_inner_split_is_forward_inside_the_training_rows() -> None:
    """Forward, the inner split that early-stops the trees' count is the training rows' own
    last weeks: inside the training rows, every inner row of a customer after every inner-fit
    row of theirs, the training span's last 13 weeks, the same whatever the inner customers
    drawn (the seed)."""
    weeks = staggered_weeks(300, 60, seed=0)
    forward = SummaryConfig().forward_weeks
    held = validation_customers(300, 0.2, np.random.default_rng(0))
    scored, _ = scored_rows(weeks, held, forward)
    splits = []
    for seed in (0, 1):
        customers = validation_customers(300, 0.25, np.random.default_rng(seed))
        inner = inner_rows(weeks, scored, customers, forward)
        fit = ~scored & ~inner
        assert not (inner & scored).any() and inner.any() and fit.any()
        last_fit = np.full(300, -1)
        np.maximum.at(last_fit, weeks.customer[fit], weeks.week[fit])
        first_inner = np.full(300, 10**9)
        np.minimum.at(first_inner, weeks.customer[inner], weeks.week[inner])
        assert (last_fit < first_inner).all()
        # training weeks 0..46: the inner split scores their last 13, 34..46
        assert set(np.unique(weeks.week[inner])) == set(range(34, 47))
        splits.append(inner)
    np.testing.assert_array_equal(splits[0], splits[1])


def test_the_trees_inner_split_at_forward_zero_is_the_random_inner_customers() -> None:
    weeks = staggered_weeks(300, 60, seed=0)
    held = validation_customers(300, 0.2, np.random.default_rng(0))
    scored, _ = scored_rows(weeks, held, 0)
    customers = validation_customers(300, 0.25, np.random.default_rng(1))
    inner = inner_rows(weeks, scored, customers, 0)
    np.testing.assert_array_equal(inner, customers[weeks.customer] & ~scored)
