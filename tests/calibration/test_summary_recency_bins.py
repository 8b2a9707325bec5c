"""The recency remembered beyond the response models' own recency columns
(``DiscreteSpec.recency_bins_weeks``): recencies of ``B`` or more share column ``B`` and enter
through the smooth terms, the recency cap is not lowered to the fitted history (the columns
are), and a customer who ages past the columns keeps a recency consistent with its tenure. A
purchase log whose customers buy at a latent rate (a type not on record) makes the forward
score prefer the remembered recency to one frozen at the cap; one rate for everybody keeps the
smaller summary. No new feature: the design's columns are the same from rendered logs as in
the simulator."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from journeyopt.calibration.config import CalibrationConfig, SummaryConfig
from journeyopt.calibration.design import Design
from journeyopt.calibration.summary import candidate_specs, select_summary, summary_panel_config
from journeyopt.calibration.weeks import segment_names
from journeyopt.errors import ConfigError
from journeyopt.panel.state import state_features
from journeyopt.sim.discrete import DiscreteLayout, Summary, summarise_with
from journeyopt.sim.world import DiscreteSpec, load_world
from tests.sim.caps import PRACTICE_CYCLES
from tests.sim.rendered import rendered_states

from .conftest import purchase_panel, selection_card, write_purchase_log
from .test_summary_rate import _panel

CUSTOMERS = 1000
CAPS = DiscreteSpec(
    recency_cap_weeks=46,
    conversions_cap=8,
    contact_cap_weeks=2,
    engagement_cap_weeks=2,
    tenure_cap_weeks=60,
)


def _summary(recency: list[int], tenure: list[int]) -> Summary:
    m = len(recency)
    return Summary(
        segment=np.zeros(m, np.int64),
        conversions=np.where(np.asarray(recency) > 0, 2, 0),
        recency=np.asarray(recency, np.int64),
        contact=np.full(m, 2),
        engagement=np.full(m, 2),
        optout=np.zeros(m, np.int64),
        tenure=np.asarray(tenure, np.int64),
    )


def test_recencies_beyond_the_bins_share_the_last_column_and_keep_their_smooth_terms() -> None:
    """Without bins the design is unchanged; with ``B`` bins the recency one-hot has ``B``
    columns, recencies ``>= B`` sit in the last, and ``log(recency)`` and the relative recency
    read the recency itself (two recencies beyond ``B`` differ only there)."""
    spec = replace(CAPS, recency_cap_weeks=60)
    binned = replace(spec, recency_bins_weeks=4)
    summary = _summary([0, 2, 4, 30, 50], [3, 5, 10, 40, 55])
    actions = np.zeros(5, np.int64)
    plain = Design(DiscreteLayout(spec, 1, 0), 1, seasonal=False)
    short = Design(DiscreteLayout(binned, 1, 0), 1, seasonal=False)
    assert short.n_columns == plain.n_columns - (60 - 4)
    a, b = plain.matrix(summary, actions).toarray(), short.matrix(summary, actions).toarray()
    recency = slice(1 + spec.conversions_cap + 1, 1 + spec.conversions_cap + 1 + 4)
    np.testing.assert_array_equal(
        b[:, recency], [[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1]]
    )
    # the rows beyond the bins differ from each other only in the smooth terms
    smooth = np.flatnonzero(b[3] != b[4])
    assert smooth.size == 3, smooth  # log(recency), log(1 + tenure), relative recency
    one_hot = np.isin(a[3], (0.0, 1.0))  # the plain design also moves a one-hot column
    np.testing.assert_allclose(sorted(b[3, smooth]), sorted(a[3][(a[3] != a[4]) & ~one_hot]))
    # B = 0 (the default) is the recency cap: bit-identical to a spec without the field
    zero = Design(DiscreteLayout(replace(spec, recency_bins_weeks=0), 1, 0), 1, seasonal=False)
    np.testing.assert_array_equal(zero.matrix(summary, actions).toarray(), a)


def test_the_history_lowers_the_bins_and_leaves_the_remembered_recency() -> None:
    spec, clipped = replace(CAPS, recency_cap_weeks=104, recency_bins_weeks=40).within_history(38)
    assert (spec.recency_cap_weeks, spec.recency_bins_weeks) == (104, 38)
    assert clipped == {"recency_bins_weeks": (40, 38)}
    spec, clipped = replace(CAPS, recency_cap_weeks=104).within_history(38)
    assert (spec.recency_cap_weeks, spec.recency_bins_weeks) == (38, 0)
    assert clipped == {"recency_cap_weeks": (104, 38)}
    with pytest.raises(ConfigError, match=r"recency_bins_weeks must be 0 \(the recency cap\)"):
        replace(CAPS, recency_bins_weeks=47)
    with pytest.raises(ConfigError, match=r"calibration\.summary\.recency_bins"):
        SummaryConfig(recency_bins=[1])


def test_bins_at_or_above_a_candidates_cap_are_the_plain_candidate() -> None:
    grid = SummaryConfig(
        select=True, recency_caps=[8, 60], recency_bins=[0, 8, 13], pattern_weeks=[0]
    )
    specs = candidate_specs(CAPS, replace(grid, last_action=[False]))
    assert [(s.recency_cap_weeks, s.recency_bins_weeks) for s in specs] == [
        (8, 0),  # 8 and 13 columns of an 8-week cap: the plain candidate, dropped
        (60, 0),
        (60, 8),
        (60, 13),
    ]
    layouts = [DiscreteLayout(s, 1, 0).n_states for s in specs]
    assert layouts[1] == layouts[2] == layouts[3] > layouts[0]


def _latent_rate_file(path: Path, shape: float, seed: int) -> Path:
    """A purchase log of :data:`CUSTOMERS` (first purchase in weeks 0..3, then a purchase a
    week with odds ``rate``): each customer's own rate drawn from a gamma distribution of
    ``shape`` and mean 0.15, never written; ``shape`` 0: one rate for everybody (recency and
    age then say nothing)."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, 4, CUSTOMERS)
    rate = rng.gamma(shape, 0.15 / shape, CUSTOMERS) if shape else np.full(CUSTOMERS, 0.15)
    level = np.log(rate)
    return write_purchase_log(path, rng, first, lambda t, n, last: level)


@pytest.mark.parametrize(("shape", "remembered"), [(0.3, True), (0.0, False)])
def test_forward_score_prefers_the_remembered_recency_only_for_a_latent_rate(
    tmp_path: Path, shape: float, remembered: bool
) -> None:
    """Forward in time (fitted on the weeks before the last 13, scored on those), customers
    age past the recency columns (46 weeks) in the scored weeks. A recency frozen at a cap of
    46 breaks the smooth terms' relation between recency and tenure there; remembered to 60
    with the same 46 columns it does not. With a latent purchase rate (recency and age tell
    the slow buyers apart) the remembered recency scores better by more than 1 SE and is
    chosen although it has more states; with one rate for everybody the smaller one is."""
    path = _latent_rate_file(tmp_path / "purchases.txt", shape, seed=3)
    grid = SummaryConfig(
        select=True,
        recency_caps=[46, 60],
        recency_bins=[46],
        pattern_weeks=[0],
        last_action=[False],
        forward_weeks=13,
    )
    cal = CalibrationConfig(
        summary=grid, seasonal=False, c_grid=[0.3, 3.0, 30.0], practice_cycles_weeks=PRACTICE_CYCLES
    )
    specs = candidate_specs(CAPS, grid, history_weeks=59)
    assert [(s.recency_cap_weeks, s.recency_bins_weeks) for s in specs] == [(46, 0), (60, 46)]
    panel = purchase_panel(path, summary_panel_config(_panel(), specs, ("none",)))
    selection = select_summary(panel, specs, cal, (), ("none",), segment_names(panel), None, ())
    frozen, kept = selection.candidates
    gain = kept.loglik - frozen.loglik
    assert (selection.chosen is kept) is remembered, (gain, kept.se, frozen.se)
    if remembered:
        assert gain > 0
        card = selection_card(selection, n_actions=1, dp_seconds=0.1)
        label = "| tenure 60w + recency columns to 46w | 60 / 8 / 60 |"
        assert any(line.startswith(label) and "**yes**" in line for line in card), card


def test_the_binned_design_from_rendered_logs_equals_the_simulators(tmp_path: Path) -> None:
    """Simulate the coworking world, render its raw logs, ingest them and build the state at
    the end: with the recency remembered beyond its columns (cap 52, 4 columns) the design's
    rows are the same from the panel's state as from the simulator's."""
    world = load_world("coworking")
    rendered = rendered_states(world, tmp_path, _panel(), weeks=30)
    spec = replace(
        world.discrete,
        recency_cap_weeks=52,
        recency_bins_weeks=4,
        conversions_cap=8,
        tenure_cap_weeks=52,
        rate_levels=2,
    )
    design = Design(DiscreteLayout(spec, len(world.segments), len(world.channels)), 1, False)
    rows = []
    for state in (rendered.simulator, rendered.panel):
        summary = summarise_with(
            state_features(state, world.features), rendered.segment, spec, world.channels
        )
        assert (summary.recency > 4).any()  # some customers beyond the columns
        rows.append(design.matrix(summary, np.zeros(len(rendered.ids), np.int64)).toarray())
    np.testing.assert_array_equal(rows[1], rows[0])


def test_a_world_keeps_its_recency_bins_in_world_yaml() -> None:
    from journeyopt.calibration.calibrated import world_to_dict

    world = load_world("coworking")
    assert "recency_bins_weeks" not in world_to_dict(world)["discrete"]
    binned = replace(world, discrete=replace(world.discrete, recency_bins_weeks=3))
    written = world_to_dict(binned)["discrete"]
    assert written["recency_bins_weeks"] == 3
    assert DiscreteSpec(**written) == binned.discrete
