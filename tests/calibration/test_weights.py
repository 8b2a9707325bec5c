"""Which fits the confounding (stabilised inverse-propensity) weights enter: the binary
response models, whose action effects they balance across states, and not the value model,
which has no action term (a regression test: weighting it let the few explored weeks of a
130-customer export pull the world's booking values down). Whether the logs identify contact
effects at all is read off the same customer-weeks as the support table."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from journeyopt.calibration.card import weights_line
from journeyopt.calibration.design import Design
from journeyopt.calibration.fit import fit_gamma
from journeyopt.calibration.models import FitData
from journeyopt.calibration.propensity import (
    contacts_identified,
    effective_sample_share,
    support_table,
)
from journeyopt.calibration.weeks import CustomerWeeks
from journeyopt.sim.discrete import DiscreteLayout
from tests.sim.caps import discrete_spec

N_WEEKS, N_CUSTOMERS = 600, 60


def synthetic_weeks(layout: DiscreteLayout, rng: np.random.Generator) -> CustomerWeeks:
    """``N_WEEKS`` customer-weeks in random states, a third converting with Gamma values."""
    converted = rng.random(N_WEEKS) < 0.3
    zeros = np.zeros(N_WEEKS, np.int64)
    return CustomerWeeks(
        customer=np.arange(N_WEEKS) % N_CUSTOMERS,
        week=np.arange(N_WEEKS) // N_CUSTOMERS,
        week_of_year=np.full(N_WEEKS, 10),
        state=rng.integers(layout.n_states, size=N_WEEKS),
        lifecycle=zeros,
        segment=zeros,
        action=rng.integers(2, size=N_WEEKS),
        propensity=np.full(N_WEEKS, 0.5),
        converted=converted,
        conversions=converted.astype(np.int64),
        list_value=np.where(converted, rng.gamma(2.0, 50.0, N_WEEKS), 0.0),
        engaged=np.zeros(N_WEEKS, bool),
        opted_out=np.zeros(N_WEEKS, bool),
        customer_ids=np.array([f"c{k}" for k in range(N_CUSTOMERS)], dtype=object),
        segments=("all",),
        actions=("none", "newsletter"),
    )


def test_value_model_ignores_the_confounding_weights_binary_models_use_them() -> None:
    spec = discrete_spec(
        recency_cap_weeks=4, conversions_cap=2, contact_cap_weeks=2, engagement_cap_weeks=2
    )
    layout = DiscreteLayout(spec, 1, 1)
    design = Design(layout, 2, seasonal=False)
    rng = np.random.default_rng(0)
    weeks = synthetic_weeks(layout, rng)
    ones = np.ones(N_WEEKS)
    skewed = np.where(rng.random(N_WEEKS) < 0.02, 20.0, 0.75)  # a few explored weeks weigh 20
    weighted, plain = FitData.of(weeks, design, skewed), FitData.of(weeks, design, ones)

    for aggregate in (True, False):
        (xw, yw, ww), (xp, yp, wp) = weighted.value(ones, aggregate), plain.value(ones, aggregate)
        np.testing.assert_array_equal(xw.toarray(), xp.toarray())
        np.testing.assert_array_equal(yw, yp)
        np.testing.assert_array_equal(ww, wp)
    fit_w, fit_p = fit_gamma(*weighted.value(ones), 1e-3), fit_gamma(*plain.value(ones), 1e-3)
    np.testing.assert_allclose(fit_w.coef, fit_p.coef)
    assert fit_w.intercept == fit_p.intercept

    # a bootstrap member's multiplicities still weigh the value rows
    multiplicity = rng.integers(0, 3, N_WEEKS).astype(np.float64)
    _, _, w = weighted.value(multiplicity, aggregate=False)
    np.testing.assert_array_equal(w, multiplicity[weighted.value_rows])

    # the binary models keep the weights
    _, success_w, _ = weighted.binary("convert", ones)
    _, success_p, _ = plain.binary("convert", ones)
    assert not np.allclose(success_w, success_p)


def test_effective_sample_share_and_the_card_line() -> None:
    """Kish's share: 1 for equal weights; a few heavy rows make it small, and the card says
    so."""
    assert effective_sample_share(np.ones(10)) == 1.0
    assert effective_sample_share(np.full(10, 0.3)) == pytest.approx(1.0)
    # 88 of 5,427 weeks at weight 20, the rest at 0.75: about a fifth (the example export)
    skewed = np.r_[np.full(88, 20.0), np.full(5339, 0.75)]
    share = effective_sample_share(skewed)
    assert 0.15 < share < 0.3
    assert "none" in weights_line(1.0)
    assert "effective sample size 99%" in weights_line(0.99) and "—" not in weights_line(0.99)
    assert f"{share:.0%}" in weights_line(share) and "rarely explored" in weights_line(share)


def test_contacts_identified_from_the_support_tables_contacted_weeks() -> None:
    layout = DiscreteLayout(discrete_spec(), 1, 1, 2)
    weeks = synthetic_weeks(layout, np.random.default_rng(0))
    contacted = int((weeks.action == 1).sum())
    table = support_table(weeks, 1)
    assert int(table.loc[table["action"] != "none", "weeks"].sum()) == contacted > 0
    assert contacts_identified(weeks, contacted)
    assert not contacts_identified(weeks, contacted + 1)
    silent = replace(weeks, action=np.zeros(weeks.n, np.int64))
    assert not contacts_identified(silent, 1)  # no contacted week
    assert not contacts_identified(replace(weeks, actions=("none",)), 0)  # no contact action


def test_support_table_counts_each_segment_lifecycle_and_action() -> None:
    layout = DiscreteLayout(discrete_spec(), 2, 1, 3)
    rng = np.random.default_rng(1)
    weeks = synthetic_weeks(layout, rng)
    weeks = replace(
        weeks,
        segment=rng.integers(2, size=weeks.n),
        lifecycle=rng.integers(3, size=weeks.n),  # lapsed customers count as customers
        action=rng.integers(3, size=weeks.n),
        segments=("a", "b"),
        actions=("none", "email", "call"),
    )
    table = support_table(weeks, 60).set_index(["segment", "lifecycle", "action"])
    assert len(table) == 2 * 2 * 3 and int(table["weeks"].sum()) == weeks.n
    for (s, stage, a), row in table.iterrows():
        took = (
            (weeks.segment == weeks.segments.index(s))
            & ((weeks.lifecycle != 0) == (stage == "customer"))
            & (weeks.action == weeks.actions.index(a))
        )
        assert row["weeks"] == took.sum() and row["conversions"] == weeks.converted[took].sum()
        assert row["flagged"] == (took.sum() < 60)
