"""The tenure component of the discrete state: off by default (numbering unchanged), Markov
when on, and the same digit from features, panel rows and the fast path."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from journeyopt.calibration.design import Design
from journeyopt.calibration.weeks import panel_summary
from journeyopt.errors import ConfigError
from journeyopt.sim.discrete import (
    DiscreteLayout,
    Summary,
    discrete_state,
    next_summary,
    summarise,
)
from journeyopt.sim.world import WorldSpec, load_world
from tests.sim.caps import caps_config, discrete_spec


@pytest.fixture(scope="module")
def coworking() -> WorldSpec:
    return load_world("coworking")


def features(n: int, rng: np.random.Generator, channels: tuple[str, ...]) -> dict[str, np.ndarray]:
    out = {
        "n_conversions": rng.integers(0, 6, n),
        "recency_weeks": np.where(rng.random(n) < 0.2, np.nan, rng.integers(1, 60, n)),
        "weeks_since_contact": np.where(rng.random(n) < 0.3, np.nan, rng.integers(1, 12, n)),
        "weeks_since_engagement": np.where(rng.random(n) < 0.3, np.nan, rng.integers(1, 15, n)),
        "tenure_weeks": rng.integers(0, 150, n),
    }
    out.update({f"opted_out_{c}": rng.random(n) < 0.2 for c in channels})
    return out


def test_tenure_is_off_by_default_and_the_numbering_unchanged(coworking: WorldSpec) -> None:
    layout = DiscreteLayout.of(coworking)
    assert coworking.discrete.tenure_cap_weeks == 0 and layout.dims[-1] == 1
    assert layout.n_states == int(np.prod(layout.dims[:5]))
    x = features(300, np.random.default_rng(0), coworking.channels)
    seg = np.zeros(300, np.int64)
    del x["tenure_weeks"]  # not needed when tenure is off
    np.testing.assert_array_equal(
        discrete_state(x, seg, coworking), layout.encode(summarise(x, seg, coworking))
    )


def test_tracked_tenure_encodes_decodes_and_ages_by_one_week(coworking: WorldSpec) -> None:
    world = replace(coworking, discrete=replace(coworking.discrete, tenure_cap_weeks=52))
    layout = DiscreteLayout.of(world)
    assert layout.n_states == DiscreteLayout.of(coworking).n_states * 53
    rng = np.random.default_rng(1)
    x = features(500, rng, world.channels)
    seg = rng.integers(0, len(world.segments), 500)
    summary = summarise(x, seg, world)
    np.testing.assert_array_equal(summary.tenure, np.minimum(x["tenure_weeks"], 52))
    index = discrete_state(x, seg, world)
    np.testing.assert_array_equal(index, layout.encode(summary))
    for a, b in zip(layout.decode(index), summary, strict=True):
        np.testing.assert_array_equal(a, b)
    no = np.zeros(500, bool)
    nxt = next_summary(summary, world.discrete, no, no, no, np.zeros(500, np.int64))
    np.testing.assert_array_equal(nxt.tenure, np.minimum(summary.tenure + 1, 52))
    panel = pd.DataFrame(x)
    ours = panel_summary(panel, seg, world.discrete, world.channels)
    np.testing.assert_array_equal(ours.tenure, summary.tenure)


def test_tenure_enters_the_design_as_two_smooth_terms(coworking: WorldSpec) -> None:
    spec = replace(coworking.discrete, tenure_cap_weeks=100)
    layout = DiscreteLayout(spec, 1, len(coworking.channels))
    design = Design(layout, 5, seasonal=False)
    base = Design(DiscreteLayout(coworking.discrete, 1, len(coworking.channels)), 5, False)
    assert design.n_columns == base.n_columns + 2 * (spec.conversions_cap + 1)

    def row(tenure: int) -> np.ndarray:
        values = (0, 2, 5, spec.contact_cap_weeks, spec.engagement_cap_weeks, 0, tenure)
        summary = Summary(*(np.array([v], np.int64) for v in values))
        return design.matrix(summary, np.zeros(1, np.int64)).toarray()[0]

    diff = row(60) - row(20)  # same customer, 40 weeks older
    changed = np.flatnonzero(np.abs(diff) > 1e-12)
    assert changed.size == 2
    expected = {
        np.log1p(60) - np.log1p(20),
        (np.log1p(60) - np.log1p(55)) - (np.log1p(20) - np.log1p(15)),
    }
    assert sorted(diff[changed]) == pytest.approx(sorted(expected))


@pytest.mark.parametrize("cap", [1, -3])
def test_tenure_cap_must_be_off_or_at_least_two(cap: int) -> None:
    with pytest.raises(ConfigError, match="tenure_cap_weeks must be 0"):
        discrete_spec(tenure_cap_weeks=cap)


def test_calibration_caps_name_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"calibration\.caps\.tenure_cap_weeks"):
        caps_config(tenure_cap_weeks=1)
    with pytest.raises(ConfigError, match=r"calibration\.caps\.recency_cap_weeks"):
        caps_config(recency_cap_weeks=0)
