"""Segments from the logs' own order values (``calibration.value_tiers``): tiers of the
customers' mean conversion value, which reveal a customer type the customers file does not
record, chosen over the customers file's segments by held-out likelihood.

On the roastery truth, whose latent types order 62 (bulk), 28 (regular) and 21 (deal) EUR on
average and respond differently to contacts, the tiers recover the types (the top tier is the
bulk buyers) and the calibrated world values a top-tier order like a bulk order; with the
customers file's weakly informative acquisition channel as the segment it cannot tell them
apart. On a roastery whose types all order alike (one value distribution, one refund rate) the
tiers are scored and not kept: the world is the one calibrated without them. The tier reads the
calibration weeks only.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from journeyopt.calibration.config import CalibrationConfig
from journeyopt.calibration.pipeline import CalibrationResult
from journeyopt.cli.entry import to_object
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.source import SourceConfig
from journeyopt.errors import ConfigError
from journeyopt.panel.segments import (
    NO_PURCHASE_TIER,
    segment_by_value,
    value_tier_cuts,
    value_tier_labels,
)
from journeyopt.serving.features import batch_from_logs
from journeyopt.sim.config import shipped_practice
from journeyopt.sim.shop import ShopSpec, load_shop
from journeyopt.sim.shop_logs import (
    ShopRecords,
    customer_numbers,
    render_shop_logs,
    simulate_shop_logs,
    write_shop_logs,
)
from journeyopt.sim.world import WORLDS_DIR, WorldSpec, load_world
from tests.calibration.roastery_calibration import calibrate_roastery
from tests.sim.caps import caps_config


def test_tiers_cut_the_buyers_into_equal_counts_and_leave_non_buyers_out() -> None:
    values = np.array([10.0, 20.0, np.nan, 30.0, 40.0, 50.0, 60.0])
    cuts = value_tier_cuts(values, 3)
    labels = value_tier_labels(values, cuts)
    assert labels[2] == NO_PURCHASE_TIER
    buyers = labels[np.isfinite(values)]
    assert list(pd.Series(buyers).value_counts().sort_index()) == [2, 2, 2]
    assert list(buyers) == ["value 1/3"] * 2 + ["value 2/3"] * 2 + ["value 3/3"] * 2
    with pytest.raises(ValueError, match="n_tiers"):
        value_tier_cuts(values, 1)
    with pytest.raises(ValueError, match="no customer"):
        value_tier_cuts(np.array([np.nan]), 2)


@pytest.mark.parametrize("tiers", [1, -2])
def test_value_tiers_must_be_off_or_at_least_two(tiers: int) -> None:
    with pytest.raises(ConfigError, match="value_tiers"):
        CalibrationConfig(caps=caps_config(), value_tiers=tiers)


def test_the_cuts_read_the_calibration_weeks_only() -> None:
    """The cut points are the tiers of each customer's mean value at their last week before the
    hold-out: what customers spend in the hold-out does not move them. A hold-out row is read
    with those cuts, from its own state."""
    panel = pd.DataFrame(
        {
            "customer_id": ["a"] * 3 + ["b"] * 3 + ["c"] * 3 + ["d"],
            "week": [0, 1, 2] * 3 + [2],
            "monetary": [10, 10, 99, 20, 30, 30, 50, 50, 1, np.nan],
            "segment": ["x"] * 10,
        }
    )
    tiered, cuts = segment_by_value(panel, end_week=2, n_tiers=3)
    np.testing.assert_allclose(cuts, np.quantile([10.0, 30.0, 50.0], [1 / 3, 2 / 3]))
    again, same_cuts = segment_by_value(
        panel.assign(monetary=panel["monetary"].where(panel["week"] < 2, 500.0)), 2, 3
    )
    np.testing.assert_array_equal(same_cuts, cuts)
    before = panel["week"] < 2
    assert (again["segment"][before] == tiered["segment"][before]).all()
    assert tiered["segment"].tolist()[2] == "value 3/3"  # a's hold-out week: 99 EUR
    assert tiered["segment"].tolist()[-1] == NO_PURCHASE_TIER  # d: no order yet
    assert (panel["segment"] == "x").all()  # the input is not modified


def test_a_weeks_tier_does_not_read_the_customers_later_weeks() -> None:
    """A customer whose mean order value rises later keeps, in their early weeks, the tier of
    what they had bought by then: the fit sees a week as serving sees it, not with the
    orders the customer was yet to place."""
    panel = pd.DataFrame(
        {
            "customer_id": ["rises"] * 4 + ["low", "mid", "high"],
            "week": [0, 1, 2, 3, 3, 3, 3],
            "monetary": [np.nan, 10.0, 10.0, 80.0, 10.0, 40.0, 90.0],
            "segment": [""] * 7,
        }
    )
    tiered, cuts = segment_by_value(panel, end_week=4, n_tiers=3)
    rises = tiered.loc[tiered["customer_id"] == "rises", "segment"].tolist()
    low, top = value_tier_labels(np.array([10.0, 80.0]), cuts)
    assert rises == [NO_PURCHASE_TIER, low, low, top]
    assert low != top


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.floats(1.0, 200.0)), min_size=8, max_size=40).map(
        lambda xs: [np.nan if x is None else x for x in xs]
    ),
    st.integers(2, 4),
    st.integers(1, 6),
)
def test_every_rows_tier_is_its_own_value_against_the_fitted_cuts(
    values: list[float], n_tiers: int, end_week: int
) -> None:
    """Point-in-time: each row's tier is the tier of that row's own ``monetary`` under the cut
    points, so truncating the panel after any week leaves every earlier row's tier as it was
    (for the same cuts)."""
    n = len(values)
    panel = pd.DataFrame(
        {
            "customer_id": [f"c{i % 3}" for i in range(n)],
            "week": [i // 3 for i in range(n)],
            "monetary": values,
            "segment": [""] * n,
        }
    )
    fitted = panel.loc[panel["week"] < end_week].groupby("customer_id").tail(1)["monetary"]
    assume(bool(np.isfinite(fitted.to_numpy(np.float64)).any()))  # someone bought by then
    tiered, cuts = segment_by_value(panel, end_week, n_tiers)
    want = value_tier_labels(panel["monetary"].to_numpy(np.float64), cuts)
    assert tiered["segment"].tolist() == want.tolist()


def _roastery_logs(out: Path, shop: ShopSpec | None = None) -> ShopRecords:
    shop = shop if shop is not None else load_shop("roastery")
    rng = np.random.default_rng(3)
    practice = shipped_practice("roastery").to_practice()
    records = simulate_shop_logs(shop, practice, 1500, 60, 0.12, rng)
    write_shop_logs(render_shop_logs(shop, records, rng), out)
    return records


def _calibrate(logs: Path, out: Path, tiers: int) -> CalibrationResult:
    calibration = CalibrationConfig(
        name="roastery_tiers",
        caps=caps_config(
            recency_cap_weeks=12, conversions_cap=3, contact_cap_weeks=4, engagement_cap_weeks=4
        ),
        value_tiers=tiers,
        holdout_weeks=8,
        ensemble_size=0,
        holdout_runs=1,
        c_grid=[0.3],
        alpha_grid=[1e-3],
        workers=1,
    )
    return calibrate_roastery(logs, out, calibration)


def _order_value(world: WorldSpec) -> dict[str, float]:
    """Each segment's fitted list value of a conversion at its reference state."""
    return {s.name: s.kinds["conversion"][1] for s in world.segments}


@pytest.mark.slow
def test_value_tiers_recover_the_roasterys_latent_types(tmp_path: Path) -> None:
    records = _roastery_logs(tmp_path / "logs")
    shop = load_shop("roastery")
    bulk = shop.type_names.index("bulk")

    result = _calibrate(tmp_path / "logs", tmp_path / "tiers", 3)
    choice = result.estimate.calibrated.meta["value_tiers"]
    assert choice["n"] == 3  # chosen: better held-out likelihood than the acquisition channel
    assert choice["loglik"]["3"] - choice["loglik"]["0"] > choice["se"]
    tiers = result.estimate.calibrated.world
    assert tiers.segment_names == ("value 1/3", "value 2/3", "value 3/3")
    assert "3 value tiers" in (tmp_path / "tiers" / "card.md").read_text()
    base = tiers.base
    assert base is not None
    index = pd.Index(customer_numbers(records.n_customers)).get_indexer(base.customer_id)
    is_bulk = records.type[index] == bulk
    top = base.segment == tiers.segment_names.index("value 3/3")
    assert is_bulk[top].mean() > 0.8  # the top third is the bulk buyers (30 % of customers)
    assert top[is_bulk].mean() > 0.8
    # the scorer reads each customer's tier from their logs with the world's cut points
    loaded = load_world(tmp_path / "tiers")
    assert loaded.segment_value_cuts == tuple(choice["cuts"]) == tiers.segment_value_cuts
    source = OmegaConf.load(WORLDS_DIR.parent / "configs" / "data" / "roastery.yaml")
    source.path = str(tmp_path / "logs")
    logs, _ = ingest_to_logs(to_object(source, SourceConfig))
    batch = batch_from_logs(logs, loaded, pd.Timestamp(base.as_of), list(base.customer_id))
    assert batch.known.all()
    assert (batch.segment == base.segment).mean() > 0.9  # the same tiers, a few moved since
    value = _order_value(tiers)
    assert value["value 3/3"] > 1.8 * value["value 1/3"]
    assert abs(value["value 3/3"] / shop.types[bulk].order_value - 1) < 0.3

    acquisition = _calibrate(tmp_path / "logs", tmp_path / "acq", 0).estimate.calibrated.world
    assert sorted(acquisition.segment_names) == sorted(shop.acquisition_labels)
    plain = _order_value(acquisition)
    assert max(plain.values()) < 1.3 * min(plain.values())  # the channel cannot tell


@pytest.mark.slow
def test_a_truth_whose_order_values_reveal_nothing_keeps_its_segments(tmp_path: Path) -> None:
    """The roastery with one order value distribution and one refund rate for every type:
    the tiers are noise, they are scored and not kept, and the world is the one calibrated
    without them (bit-identical tables)."""
    shop = load_shop("roastery")
    alike = replace(
        shop,
        types=tuple(
            replace(t, order_value=30.0, value_shape=6.0, refund_rate=0.05) for t in shop.types
        ),
    )
    _roastery_logs(tmp_path / "logs", alike)
    plain = _calibrate(tmp_path / "logs", tmp_path / "plain", 0)
    tiered = _calibrate(tmp_path / "logs", tmp_path / "tiers", 3)
    choice = tiered.estimate.calibrated.meta["value_tiers"]
    assert choice["n"] == 0
    a, b = plain.estimate.calibrated.world, tiered.estimate.calibrated.world
    assert a.segment_names == b.segment_names
    assert a.responses is not None and b.responses is not None
    for name in ("convert_logit", "engage_logit", "optout", "value"):
        np.testing.assert_array_equal(getattr(a.responses, name), getattr(b.responses, name))
    assert "kept over 3 value tiers" in (tmp_path / "tiers" / "card.md").read_text()
