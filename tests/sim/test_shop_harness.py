"""The roastery's sim-to-real harness sees what the export and the panel see: in the truth run,
the product policies' panel books each refund in the week the export has its line (net
revenue, like the calibrated world's base), and the calibrated world's base counts the export's
last logged week (the truth at the base's as-of date is the truth after the last week)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from journeyopt.calibration.base import starting_base
from journeyopt.calibration.weeks import segment_names
from journeyopt.cli.entry import to_object
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.source import SourceConfig
from journeyopt.panel.build import walk_panel
from journeyopt.panel.state import CustomerState
from journeyopt.panel.state import state_features as panel_features
from journeyopt.sim.config import shipped_practice
from journeyopt.sim.optimum import cyclic_weeks_of_year
from journeyopt.sim.shop import ShopSpec, ShopState, popcount, step
from journeyopt.sim.shop_eval import (
    Bool,
    IntArray,
    RefundBook,
    evaluation_population,
    matched_population,
    run_truth,
)
from journeyopt.sim.shop_logs import (
    TRUE_STATES_FILE,
    TrueStates,
    render_shop_logs,
    simulate_shop_logs,
    write_shop_logs,
)
from journeyopt.sim.world import WORLDS_DIR
from tests.panel.windows import feature_windows, panel_config

GAMMA = 0.995


def test_the_truth_runs_panel_books_refunds_in_the_exports_week(shop: ShopSpec) -> None:
    """Week by week, the lifetime revenue of the panel a product policy sees in the truth grows
    by the amounts paid minus the refunds the export books that week: those of the orders
    before the run (the population's book) and of the run's own orders, ``refund_lag`` weeks
    after each."""
    n, weeks, woy0 = 3000, 10, 20
    pop = evaluation_population(shop, n, 8, np.random.default_rng(3))
    assert pop.refunds is not None and pop.refunds.due.sum() > 0  # refunds due at the start
    seen: list[np.ndarray] = []

    def silent(true: ShopState, panel: CustomerState, t: int, woy: int, allowed: Bool) -> IntArray:
        seen.append(panel.revenue.copy())
        return np.zeros(true.n, np.int64)

    run_truth(shop, pop, silent, weeks, GAMMA, np.random.default_rng(5), woy0)
    # the same weeks once more from the same seed (the chooser draws nothing), counted as the
    # export counts them: an order's amount paid in its week, its refund lag weeks later
    woy = cyclic_weeks_of_year(woy0, weeks)
    rng, true = np.random.default_rng(5), pop.true
    paid = np.zeros((weeks, n))
    booked = np.zeros((weeks + 3, n))
    booked[: pop.refunds.due.shape[0]] = pop.refunds.due
    for t in range(weeks):
        true, out = step(shop, true, np.zeros(n, np.int64), int(woy[t]), rng, GAMMA)
        paid[t] = out.paid
        rows = np.flatnonzero(out.refunded)
        booked[t + out.refund_lag[rows], rows] += out.paid[rows]
    grew = np.diff(np.stack(seen), axis=0)  # (weeks - 1, n): what weeks 0 .. weeks-2 added
    np.testing.assert_allclose(grew, paid[:-1] - booked[: weeks - 1], atol=1e-9)
    assert booked[: weeks - 1].sum() > 0.01 * paid[:-1].sum()  # refunds do move the panel


def test_the_refund_book_keeps_each_refund_until_its_week(shop: ShopSpec) -> None:
    """Lags 1 and 2 with their amounts; the book's horizon is the longest lag."""
    book = RefundBook.empty(shop, 3)
    assert book.due.shape == (max(shop.refund_lag_weeks), 3)
    true = ShopState(*(np.zeros(3, np.int64) for _ in range(5)))
    _, out = step(shop, true, np.zeros(3, np.int64), 10, np.random.default_rng(0), GAMMA)
    out = replace(
        out,
        refunded=np.array([True, True, False]),
        refund_lag=np.array([1, 2, 0]),
        paid=np.array([10.0, 20.0, 30.0]),
    )
    now, book = book.week(out)
    assert (now == 0).all()
    quiet = replace(out, refunded=np.zeros(3, bool))
    first, book = book.week(quiet)
    second, book = book.week(quiet)
    np.testing.assert_array_equal(first, [10.0, 0.0, 0.0])
    np.testing.assert_array_equal(second, [0.0, 20.0, 0.0])
    assert book.due.sum() == 0


def test_the_base_counts_the_exports_last_week(shop: ShopSpec, tmp_path: Path) -> None:
    """The export's last logged week is not lost to the calibrated world's base: the base is
    as of the Monday after it, its customers' state agrees there with the truth (weeks since
    purchase, opt-out, last week's contact), and the panel's rows are those without the fold
    (only complete weeks)."""
    rng = np.random.default_rng(12)
    practice = shipped_practice("roastery").to_practice()
    records = simulate_shop_logs(shop, practice, 400, 30, 0.12, rng)
    write_shop_logs(render_shop_logs(shop, records, rng), tmp_path / "logs", truth=records.truth)
    truth = TrueStates.load(tmp_path / "logs" / TRUE_STATES_FILE)
    cfg = OmegaConf.load(WORLDS_DIR.parent / "configs" / "data" / "roastery.yaml")
    cfg.path = str(tmp_path / "logs")
    logs, _ = ingest_to_logs(to_object(cfg, SourceConfig))

    panel, walk = walk_panel(logs, panel_config(), shop.channels, through_as_of=True)
    ids, end = walk.ids(), walk.state
    rows_only, walk_to_as_of = walk_panel(logs, panel_config(), shop.channels)
    before = walk_to_as_of.state
    pd.testing.assert_frame_equal(panel, rows_only)
    assert end.week == before.week + 1
    base, _ = starting_base(panel, ids, end, segment_names(panel))
    after_last_week = records.history_start + pd.Timedelta(weeks=records.weeks)
    assert pd.Timestamp(base.as_of) == after_last_week  # was a week earlier

    features = feature_windows(contact_channels=shop.channels)
    pop = matched_population(
        truth.at(base.as_of), truth.customer_no, base, features, 10_000, np.random.default_rng(0)
    )
    seen = panel_features(pop.panel, features)
    recency = seen["recency_weeks"]
    bought = np.isfinite(recency) & (recency < shop.recency_cap_weeks)
    assert (pop.true.weeks[bought] == recency[bought]).all()
    assert (pop.true.optout == seen["opted_out_email"]).all()
    contacted = np.isfinite(seen["weeks_since_contact"]) & (seen["weeks_since_contact"] <= 1)
    assert ((pop.true.history & 1) == contacted).all()
    assert popcount(pop.true.history).sum() > 0
    # the last logged week's orders are in: its buyers are one week since purchase in the base
    last = records.orders[records.orders["week"] == records.weeks - 1]["customer"].unique()
    buyer = np.isin(base.customer_id, np.asarray(truth.customer_no, str)[last])
    assert buyer.sum() > 10
    assert (panel_features(base.conformed(features), features)["recency_weeks"][buyer] == 1).all()
