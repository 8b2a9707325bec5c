"""The closed loop on the roastery (:class:`journeyopt.loop.truth.ShopTruth`): served weeks
through the serving scorer, raw logs the roastery's own source config ingests without a
reject, and a counterfactual twin that, given the same actions, lives exactly the served
weeks (common random numbers)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from journeyopt.cli.entry import to_object
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.source import SourceConfig
from journeyopt.errors import ConfigError
from journeyopt.loop.closed_loop import ClosedLoop
from journeyopt.loop.truth import ShopHistory, ShopTruth, replay_shop_records
from journeyopt.loop.twin import served_by
from journeyopt.serving.features import batch_from_logs
from journeyopt.serving.scorer import Scorer
from journeyopt.sim.config import shipped_practice
from journeyopt.sim.shop import load_shop
from journeyopt.sim.world import WORLDS_DIR, WorldSpec

from .scorers import random_scorer

WEEKS = 4


def truth(seed: int = 0) -> ClosedLoop:
    history = ShopHistory(
        practice=shipped_practice("roastery").to_practice(),
        n_customers=400,
        weeks=30,
        burn_in_weeks=4,
    )
    return ClosedLoop(ShopTruth(load_shop("roastery"), history), seed=seed)


def scorer(world: WorldSpec, seed: int = 1) -> Scorer:
    return random_scorer(world, "roastery", seed)


def test_the_replayed_history_is_the_simulated_state() -> None:
    """The state the loop starts from (replayed from the record) is the state the simulation
    reached: the same customers, once more drawn from the same seed, respond alike."""
    loop = truth()
    spec = loop.world.spec  # type: ignore[attr-defined]
    records = loop.world.records  # type: ignore[attr-defined]
    again = replay_shop_records(spec, records, loop.world.world.features)  # type: ignore[attr-defined]
    assert np.array_equal(again.true.weeks, loop.state.true.weeks)
    last = records.orders.groupby("customer")["week"].max()
    weeks_since = np.full(records.n_customers, spec.recency_cap_weeks)
    weeks_since[last.index] = np.minimum(records.weeks - last.to_numpy(), spec.recency_cap_weeks)
    assert np.array_equal(loop.state.true.weeks, weeks_since)
    sent = records.sends[records.sends["week"] == records.weeks - 1]["customer"].to_numpy()
    assert np.array_equal(np.flatnonzero(loop.state.true.history & 1), np.sort(sent))


def test_served_weeks_ingest_without_rejects_and_the_twin_repeats_them(tmp_path: Path) -> None:
    loop = truth()
    served = scorer(loop.world_now())
    first = loop.monday
    truths = [loop.step(served, served_by(served)) for _ in range(WEEKS)]
    # the twin deciding like the scorer lives exactly the served weeks (common random numbers)
    assert [t.true_itt_uplift for t in truths] == [0.0] * WEEKS
    assert [t.control_twin_gap for t in truths] == [0.0] * WEEKS
    assert all(t.contacts > 0 for t in truths)
    loop.write(str(tmp_path / "logs"), str(tmp_path / "decisions"))
    assert len(list((tmp_path / "decisions").glob("decisions-*.csv"))) == 1

    cfg = OmegaConf.load(WORLDS_DIR.parent / "configs" / "data" / "roastery.yaml")
    cfg.path = str(tmp_path / "logs")
    cfg.as_of = loop.monday.isoformat()
    logs, result = ingest_to_logs(to_object(cfg, SourceConfig))
    assert result.events.rejected == 0 and result.contacts.rejected == 0
    assert result.customers.rejected == 0
    ts = pd.to_datetime(logs.contacts["ts"], utc=True)
    served_contacts = logs.contacts[(ts >= first) & (ts < loop.monday)]
    records = loop.world.records_until(loop.week)  # type: ignore[attr-defined]
    in_loop = records.sends[records.sends["week"] >= loop.history_weeks]
    assert len(served_contacts) == len(in_loop) > 0
    conversions = logs.events[logs.events["role"] == "conversion"]
    served_orders = conversions[pd.to_datetime(conversions["ts"], utc=True) >= first]
    assert len(served_orders) == (records.orders["week"] >= loop.history_weeks).sum() > 0


def test_the_default_twin_keeps_the_control_group_and_is_seeded() -> None:
    """Under the default twin (everyone on today's practice) the control group lives its
    real life (gap exactly 0); the same seed gives the same truth."""
    a, b = truth(seed=3), truth(seed=3)
    served = scorer(a.world_now())
    ta = [a.step(served) for _ in range(WEEKS)]
    tb = [b.step(served) for _ in range(WEEKS)]
    assert ta == tb
    assert [t.control_twin_gap for t in ta] == [0.0] * WEEKS
    assert any(t.true_itt_uplift != 0.0 for t in ta)


@pytest.mark.parametrize("weeks", [1, 3])
def test_the_logs_cover_exactly_the_weeks_asked(weeks: int, tmp_path: Path) -> None:
    loop = truth()
    served = scorer(loop.world_now())
    for _ in range(weeks):
        loop.step(served)
    records = loop.world.records_until(loop.week)  # type: ignore[attr-defined]
    assert records.weeks == loop.week
    for frame in (records.orders, records.refunds, records.sends, records.clicks):
        assert frame["week"].max() < loop.week


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"n_customers": 0}, "n_customers and weeks must be >= 1"),
        ({"burn_in_weeks": -1}, "burn_in_weeks >= 0"),
        ({"exploration": 1.5}, "exploration must be in"),
    ],
)
def test_a_shop_history_refuses_what_cannot_be_simulated(
    changes: dict[str, float], match: str
) -> None:
    practice = shipped_practice("roastery").to_practice()
    with pytest.raises(ConfigError, match=match):
        ShopHistory(practice=practice, **changes)  # type: ignore[arg-type]


def test_a_scorer_of_value_tiers_sees_each_customers_tier_as_it_reads_the_logs(
    tmp_path: Path,
) -> None:
    """A world whose segments are value tiers (``segment_value_cuts``, a calibration with
    ``calibration.value_tiers``): the loop shows its scorer each customer's tier of mean
    conversion value, the same tier the serving features compute from the written logs, not
    the truth's acquisition label (unknown to that world); the loop's mean order values are
    the export's (seed orders at their amounts paid, net of refunds booked later)."""
    loop = truth()
    for _ in range(WEEKS):  # refunds of served orders booked one or two weeks later
        loop.step(scorer(loop.world_now()))
    loop.write(str(tmp_path / "logs"), str(tmp_path / "decisions"))
    world = loop.world_now()
    monetary = np.asarray(loop.world.features(loop.state)["monetary"], np.float64)
    cuts = tuple(float(c) for c in np.nanquantile(monetary, [1 / 3, 2 / 3]))
    names = [f"value {k}/3" for k in (1, 2, 3)]
    tiered = replace(
        world,
        segments=tuple(replace(s, name=n) for s, n in zip(world.segments, names, strict=True)),
        segment_value_cuts=cuts,
    )
    served = scorer(tiered)
    batch = loop.batch(served)
    assert set(np.unique(batch.segment[np.isfinite(monetary)])) == {0, 1, 2}
    assert (batch.segment[~np.isfinite(monetary)] == -1).all()  # no order yet: no tier here

    cfg = OmegaConf.load(WORLDS_DIR.parent / "configs" / "data" / "roastery.yaml")
    cfg.path = str(tmp_path / "logs")
    cfg.as_of = loop.monday.isoformat()
    logs, _ = ingest_to_logs(to_object(cfg, SourceConfig))
    read = batch_from_logs(logs, tiered, loop.monday, list(batch.customer_ids))
    assert np.allclose(read.features["monetary"], monetary, equal_nan=True)
    assert np.array_equal(read.segment, batch.segment)
    served.score(batch)  # the scorer serves them
