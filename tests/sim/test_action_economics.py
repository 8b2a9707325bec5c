"""Actions are data: what an action gives away is declared on it, never read off its name.

Regression tests for a coworking assumption in the machinery: the discount used to belong to an
action that had to be called ``discount_offer`` (a world-wide ``discount_rate``), so a business
with a ``voucher`` got no discount cost and a ``discount_offer`` that gives nothing away was
charged 25 %.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyopt.calibration.calibrated import world_to_dict
from journeyopt.data.source import ActionSpec, SourceConfig
from journeyopt.errors import ConfigError
from journeyopt.sim.dynamics import sample_week
from journeyopt.sim.population import initial_population
from journeyopt.sim.rules import ActionCatalog
from journeyopt.sim.world import WorldSpec, world_from_dict
from tests.sim.worlds import raw_coworking, renamed


def _week(world: WorldSpec, seed: int = 3) -> Any:
    rng = np.random.default_rng(seed)
    state, customers, _ = initial_population(world, 4000, rng)
    segment = customers.segment
    actions = rng.integers(0, world.actions.n_actions, 4000)
    return sample_week(world, state, segment, actions, 10, np.random.default_rng(seed + 1))


def test_renaming_the_discounting_action_changes_nothing() -> None:
    raw = raw_coworking()
    original = world_from_dict(raw)
    voucher = world_from_dict(renamed(raw, {"discount_offer": "voucher"}))
    assert "voucher" in voucher.actions.names and "discount_offer" not in voucher.actions.names
    a, b = _week(original), _week(voucher)
    np.testing.assert_array_equal(a.reward, b.reward)
    np.testing.assert_array_equal(a.paid, b.paid)
    assert float(b.discount_cost.sum()) > 0


def test_a_discount_offer_that_gives_nothing_away_costs_nothing() -> None:
    raw = raw_coworking()
    raw["actions"]["discount_offer"]["discount"] = 0.0
    out = _week(world_from_dict(raw))
    assert float(out.discount_cost.sum()) == 0.0
    np.testing.assert_allclose(out.paid, out.list_value)


def test_any_action_may_discount_by_its_own_rate() -> None:
    raw = raw_coworking()
    raw["actions"]["personal_call"]["discount"] = 0.1
    world = world_from_dict(raw)
    out = _week(world)
    rate = world.actions.discount_rates[out.actions]
    np.testing.assert_allclose(out.discount_cost, rate * out.list_value)
    call = out.actions == world.actions.names.index("personal_call")
    bought = call & (out.list_value > 0)
    assert bought.any()
    np.testing.assert_allclose(out.paid[bought], np.round(0.9 * out.list_value[bought], 2))


def test_the_old_world_wide_discount_rate_is_refused_with_a_way_out() -> None:
    raw = raw_coworking()
    raw["discount_rate"] = 0.25
    with pytest.raises(ConfigError, match=r"actions\.<name>\.discount"):
        world_from_dict(raw)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_an_impossible_discount_is_refused(rate: float) -> None:
    raw = raw_coworking()
    raw["actions"]["newsletter"]["discount"] = rate
    with pytest.raises(ConfigError, match="newsletter"):
        world_from_dict(raw)


CATALOG = ActionCatalog(
    names=("none", "mailing", "voucher"),
    channels=("", "post", "post"),
    costs=(0.0, 0.5, 1.0),
    discounts=(0.0, 0.0, 0.2),
)


@settings(max_examples=50, deadline=None)
@given(
    revenue=st.lists(st.floats(-500, 5000, allow_nan=False), min_size=1, max_size=20),
    seed=st.integers(0, 2**16),
)
def test_list_values_undo_the_discount_only_for_paid_prices(
    revenue: list[float], seed: int
) -> None:
    rev = np.asarray(revenue)
    actions = np.random.default_rng(seed).integers(0, 3, rev.shape[0])
    np.testing.assert_array_equal(CATALOG.list_values(rev, actions, "list"), rev)
    paid = CATALOG.list_values(rev, actions, "paid")
    np.testing.assert_allclose(paid, np.where(actions == 2, rev / 0.8, rev))


def test_an_unknown_price_basis_is_refused() -> None:
    with pytest.raises(ValueError, match="prices"):
        CATALOG.list_divisors("gross")


def _source(**kwargs: Any) -> SourceConfig:
    actions = {"none": ActionSpec(), "voucher": ActionSpec(channel="post", cost=1.0, **kwargs)}
    return SourceConfig(contact_channels=["post"], actions=actions)


def test_the_source_declares_discounts_and_the_price_basis() -> None:
    catalog = ActionCatalog.from_source(_source(discount=0.2))
    assert catalog.discounts == (0.0, 0.2)
    with pytest.raises(ConfigError, match=r"data\.actions\.voucher\.discount"):
        _source(discount=1.2)
    with pytest.raises(ConfigError, match=r"data\.amounts"):
        SourceConfig(amounts="gross")


def test_a_calibrated_world_file_keeps_the_discounts() -> None:
    raw = renamed(raw_coworking(), {"discount_offer": "voucher"})
    world = world_from_dict(raw)
    written = {k: v for k, v in world_to_dict(world).items() if k != "responses"}
    again = world_from_dict(written)
    assert again.actions == world.actions
