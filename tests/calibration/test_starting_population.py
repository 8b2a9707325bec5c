"""A calibrated world's simulations start from the logs' own customers at the as-of date (their
panel state: opted out, fatigued, lapsed) plus new customers at the logs' arrival rate; a
ground-truth world keeps its synthetic population."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from journeyopt.calibration.calibrated import CalibratedWorld, align_segments
from journeyopt.calibration.pipeline import CalibrationResult
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.schema import CanonicalLogs
from journeyopt.panel.build import build_panel, state_at
from journeyopt.panel.state import LIFECYCLE_STAGES, CustomerState, state_features
from journeyopt.sim.env import InitialPool
from journeyopt.sim.population import initial_population, starting_population
from journeyopt.sim.starting import StartingBase
from journeyopt.sim.world import WorldSpec, load_world
from tests.calibration.conftest import source_config
from tests.panel.windows import panel_config


@pytest.fixture(scope="module")
def world(small_calibration: CalibrationResult) -> WorldSpec:
    return load_world(small_calibration.output_dir)


@pytest.fixture(scope="module")
def logs(small_logs: Path) -> tuple[CanonicalLogs, tuple[str, ...]]:
    """The calibration's logs, ingested, and their contact channels."""
    data = source_config("coworking", [f"data.path={small_logs}"])
    return ingest_to_logs(data)[0], tuple(data.contact_channels)


@pytest.fixture(scope="module")
def last_week(logs: tuple[CanonicalLogs, tuple[str, ...]]) -> pd.DataFrame:
    """The panel's last week of the calibration's logs (built as the calibration builds it)."""
    panel = build_panel(logs[0], panel_config(), logs[1])
    return panel[panel["week"] == panel["week"].max()]


def _stage_shares(stage: np.ndarray) -> np.ndarray:
    return np.bincount(np.asarray(stage, np.int64), minlength=len(LIFECYCLE_STAGES)) / stage.size


def test_the_base_is_the_panel_at_as_of(
    world: WorldSpec, last_week: pd.DataFrame, logs: tuple[CanonicalLogs, tuple[str, ...]]
) -> None:
    base = world.base
    assert base is not None
    # every customer of the panel's last week, with the features the panel gives them
    assert base.n_customers == last_week.shape[0]
    rows = last_week.set_index(last_week["customer_id"].astype(str)).loc[base.customer_id]
    features = state_features(base.state, world.features)
    # the logs end inside a week (no panel rows: it is not complete); the base is the state
    # at the start of the week after it: the last row, that row's outcome and the logged
    # activity of the logs' last week, none of it lost
    week_start = pd.Timestamp(last_week["week_start"].iloc[0])
    assert pd.Timestamp(base.as_of) == week_start + pd.Timedelta(weeks=2)
    assert base.state.week == int(last_week["week"].iloc[0]) + 2
    assert (features["tenure_weeks"] == rows["tenure_weeks"].to_numpy() + 2).all()
    after_row = rows["n_conversions"].to_numpy() + rows["conversions"].to_numpy()
    assert (features["n_conversions"] >= after_row).all()
    assert (features["n_conversions"] > after_row).sum() > 10  # the last week's orders
    ids, everyone = state_at(logs[0], panel_config(), logs[1], base.as_of)
    at = pd.Index(ids.astype(str)).get_indexer(base.customer_id)
    want = state_features(everyone.take(at), world.features)
    for name in ("n_conversions", "recency_weeks", "weeks_since_contact", "tenure_weeks"):
        np.testing.assert_array_equal(features[name], want[name], err_msg=name)
    opted = np.column_stack([features[f"opted_out_{c}"] for c in world.channels]).any(axis=1)
    before = np.column_stack([rows[f"opted_out_{c}"].to_numpy(bool) for c in world.channels])
    assert (opted >= (before.any(axis=1) | rows["opted_out_in_week"].to_numpy(bool))).all()
    assert opted.mean() > 0.02  # the logs do hold opted-out customers


def test_simulations_start_from_the_base_shares(world: WorldSpec) -> None:
    base = world.base
    assert base is not None
    n = 4 * base.n_customers
    state, segment = starting_population(world, n, np.random.default_rng(3), horizon_weeks=0)
    assert state.n_customers == n  # no arrivals over no weeks: the base four times over
    want = state_features(base.state, world.features)
    got = state_features(state, world.features)
    np.testing.assert_allclose(
        _stage_shares(got["lifecycle"]), _stage_shares(want["lifecycle"]), atol=1e-12
    )
    fw = world.features.fatigue_weeks
    assert got[f"contacts_{fw}w"].mean() == pytest.approx(want[f"contacts_{fw}w"].mean())
    np.testing.assert_array_equal(np.bincount(segment), 4 * np.bincount(base.segment))


def test_arrivals_match_the_logs_rate(world: WorldSpec, last_week: pd.DataFrame) -> None:
    base = world.base
    assert base is not None
    # customers whose first activity lies in the 52 complete weeks before the logs' last
    # (incomplete) week, the base's state a week later
    first = base.state.first_week
    end = base.state.week - 1
    window = min(52, end - int(first.min()))
    expected_rate = np.sum((first >= end - window) & (first < end)) / window
    assert base.arrivals_per_week == pytest.approx(expected_rate)
    assert base.arrivals_per_week > 0
    horizon, n = 20, 6000
    state, _ = starting_population(world, n, np.random.default_rng(0), horizon)
    new = state.first_week == base.state.week
    n_new, n_old = int(new.sum()), int((~new).sum())
    # arrivals per simulated week, scaled back to the base's size, are the logs' rate
    assert n_new / horizon * base.n_customers / n_old == pytest.approx(
        base.arrivals_per_week, rel=0.02
    )
    assert (state_features(state, world.features)["n_conversions"][new] == 0).all()


def test_seeds_reproduce(world: WorldSpec) -> None:
    a = starting_population(world, 777, np.random.default_rng(5), 30)
    b = starting_population(world, 777, np.random.default_rng(5), 30)
    c = starting_population(world, 777, np.random.default_rng(6), 30)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0].first_week, b[0].first_week)
    np.testing.assert_array_equal(a[0].contacts_ring, b[0].contacts_ring)
    assert not np.array_equal(a[0].first_week, c[0].first_week)


def test_the_base_travels_with_the_world(small_calibration: CalibrationResult) -> None:
    out = small_calibration.output_dir
    assert (out / "base.parquet").is_file()
    loaded = CalibratedWorld.load(out)
    original = small_calibration.estimate.calibrated.world.base
    assert original is not None and loaded.world.base is not None
    for member in loaded.members:
        assert member.base is loaded.world.base
    for name in ("first_week", "conversions_ring", "contacts_ring", "opted_out", "revenue"):
        np.testing.assert_array_equal(
            getattr(loaded.world.base.state, name), getattr(original.state, name)
        )
    np.testing.assert_array_equal(loaded.world.base.segment, original.segment)
    assert loaded.world.base.state.week == original.state.week


def test_training_and_evaluation_pools_draw_from_the_base(world: WorldSpec) -> None:
    pool = InitialPool.draw(world, 500, seed=0, horizon_weeks=10)
    base = world.base
    assert base is not None
    assert pool.state.week == base.state.week
    old = pool.state.first_week < base.state.week  # arrivals start without history
    assert 0 < old.mean() < 1
    opted = pool.state.opted_out[old].any(axis=1).mean()
    assert opted == pytest.approx(base.state.opted_out.any(axis=1).mean(), abs=0.05)


def _base_with_opt_outs(world: WorldSpec, n: int, share: float, seed: int) -> StartingBase:
    """A base of ``n`` customers of ``world`` of whom ``share`` opted out of every channel."""
    state, customers, _ = initial_population(world, n, np.random.default_rng(seed))
    out = np.zeros((n, len(world.channels)), bool)
    out[: round(share * n)] = True
    state = replace(state, opted_out=out)
    return StartingBase(
        state=state,
        segment=customers.segment.astype(np.int64),
        customer_id=np.array([f"c{i}" for i in range(n)]),
        arrivals_per_week=0.0,
        arrival_shares=np.array([s.share for s in world.segments]),
        arrival_weeks=52,
        as_of="2026-01-05T00:00:00+00:00",
    )


def test_a_base_with_18_percent_opted_out_starts_with_18_percent(world: WorldSpec) -> None:
    base = _base_with_opt_outs(world, 1000, 0.18, 1)
    with_base = replace(world, base=base)
    state, _ = starting_population(with_base, 3000, np.random.default_rng(2), 52)
    stage = state_features(state, world.features)["lifecycle"]
    assert np.mean(stage == LIFECYCLE_STAGES.index("opted_out")) == pytest.approx(0.18)
    # the synthetic population of the same world has nobody opted out
    synthetic, _ = starting_population(
        replace(world, base=None), 3000, np.random.default_rng(2), 52
    )
    assert not synthetic.opted_out.any()


def test_align_segments_renumbers_the_base(world: WorldSpec) -> None:
    base = world.base
    assert base is not None
    aligned = align_segments(world, list(reversed(world.segment_names)))
    assert aligned.base is not None
    names = np.array(world.segment_names)[base.segment]
    np.testing.assert_array_equal(np.array(aligned.segment_names)[aligned.base.segment], names)


def test_a_ground_truth_world_keeps_its_synthetic_population(small_world: WorldSpec) -> None:
    assert small_world.base is None
    state, segment = starting_population(small_world, 200, np.random.default_rng(0), 52)
    ref, customers, _ = initial_population(small_world, 200, np.random.default_rng(0))
    np.testing.assert_array_equal(state.first_week, ref.first_week)
    np.testing.assert_array_equal(segment, customers.segment)
    assert isinstance(state, CustomerState)


def test_rule_windows_chosen_later_are_filled_from_the_contact_history(world: WorldSpec) -> None:
    base = world.base
    assert base is not None
    spec = world.features.with_rule_features((3,), ())
    state, _ = starting_population(
        replace(world, features=spec), base.n_customers, np.random.default_rng(0), 0
    )
    features = state_features(state, spec)
    t, ring = base.state.week, base.state.contacts_ring
    last_three = sum(ring[(t - k) % ring.shape[0]] for k in (1, 2, 3)).sum(axis=1)
    np.testing.assert_array_equal(features["contacts_3w"], last_three)
    assert features["contacts_3w"].sum() > 0
