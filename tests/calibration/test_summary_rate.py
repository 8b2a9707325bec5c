"""The purchase-rate terms chosen by the data (``calibration.summary.rate_levels``): a
purchase log whose customers buy at a rate set by a type that is not on record (fast or slow)
makes the selection keep them; the same log with one rate for everybody keeps the base
summary. The terms read only the summary's lifetime conversions and tenure (no new state), so
they are the same from rendered logs as in the simulator."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from journeyopt.calibration.config import CalibrationConfig, SummaryConfig, register_configs
from journeyopt.calibration.design import Design
from journeyopt.calibration.pipeline import CalibrationResult, calibrate
from journeyopt.calibration.summary import (
    candidate_specs,
    select_summary,
    summary_panel_config,
)
from journeyopt.calibration.weeks import segment_names
from journeyopt.cli.entry import to_object
from journeyopt.errors import ConfigError
from journeyopt.panel.config import PanelConfig
from journeyopt.panel.state import state_features
from journeyopt.sim.discrete import DiscreteLayout, Summary, summarise_with
from journeyopt.sim.world import DiscreteSpec, load_world
from tests.sim.caps import PRACTICE_CYCLES
from tests.sim.rendered import rendered_states

from .conftest import (
    CONFIGS,
    assert_same_fit,
    calibration_config,
    purchase_panel,
    selection_card,
    write_purchase_log,
)

CUSTOMERS = 1000
PANEL = PanelConfig(lapse_weeks=26, frequency_weeks=52, fatigue_weeks=4, engagement_weeks=4)
CAPS = DiscreteSpec(
    recency_cap_weeks=10,
    conversions_cap=40,
    contact_cap_weeks=2,
    engagement_cap_weeks=2,
    tenure_cap_weeks=60,
)


def test_rate_candidates_multiply_the_grid_with_the_same_states() -> None:
    grid = SummaryConfig(
        select=True,
        conversions_caps=[3, 40],
        pattern_weeks=[0],
        last_action=[False],
        rate_levels=[8, 0, 3],
    )
    specs = candidate_specs(CAPS, grid)
    assert [(s.conversions_cap, s.rate_levels) for s in specs] == [
        (3, 0),
        (3, 3),  # 8 lowered to the cap: the same candidate as 3, dropped
        (40, 0),
        (40, 3),
        (40, 8),
    ]
    layouts = [DiscreteLayout(s, 1, 0) for s in specs]
    assert layouts[0].n_states == layouts[1].n_states
    assert candidate_specs(CAPS, SummaryConfig(select=True))[0].rate_levels == 0
    with pytest.raises(ConfigError, match=r"calibration\.summary\.rate_levels"):
        SummaryConfig(rate_levels=[])
    with pytest.raises(ConfigError, match=r"rate_levels must be 0 \(off\) or 1\.\.conversions_cap"):
        replace(CAPS, rate_levels=41)


def test_design_columns_exist_only_when_the_rate_is_on() -> None:
    """Off: the design is the base design (same width, same values); on: three columns per
    segment after the base ones, ``log n``, ``log(n / (1 + tenure))`` and ``log n *
    log(recency)`` for customers, nothing for prospects; with ``L`` levels a count above
    ``L`` takes level ``L``'s per-level columns."""
    on = replace(CAPS, rate_levels=CAPS.conversions_cap)
    summary = Summary(
        segment=np.array([0, 0, 0]),
        conversions=np.array([0, 1, 4]),
        recency=np.array([0, 3, 2]),
        contact=np.array([2, 2, 2]),
        engagement=np.array([2, 2, 2]),
        optout=np.array([0, 0, 0]),
        tenure=np.array([1, 5, 9]),
    )
    actions = np.zeros(3, np.int64)
    base = Design(DiscreteLayout(CAPS, 1, 0), 1, seasonal=False).matrix(summary, actions)
    rate = Design(DiscreteLayout(on, 1, 0), 1, seasonal=False).matrix(summary, actions)
    assert rate.shape[1] == base.shape[1] + 3
    np.testing.assert_array_equal(rate[:, : base.shape[1]].toarray(), base.toarray())
    np.testing.assert_allclose(
        rate[:, base.shape[1] :].toarray(),
        [[0, 0, 0], [0, -np.log(6), 0], [np.log(4), np.log(4 / 10), np.log(4) * np.log(2)]],
    )
    two = Design(DiscreteLayout(replace(CAPS, rate_levels=2), 1, 0), 1, seasonal=False)
    shared = two.matrix(summary, actions)
    # the conversions one-hot follows the segment intercept (column 0): with 2 levels the
    # customer with 4 conversions sits at level 2, the one with 1 conversion at its own
    assert shared[2, 1 + 2] == 1 and shared[2, 1 + 4] == 0 and rate[2, 1 + 4] == 1
    assert shared[1, 1 + 1] == 1 and shared.shape[1] == rate.shape[1]


def _panel() -> PanelConfig:
    """The panel settings ``journeyopt-calibrate data=cdnow panel=cdnow`` composes."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("calibrate", overrides=["data=cdnow", "panel=cdnow", "output_dir=x"])
    return to_object(cfg.panel, PanelConfig)


def _purchase_file(path: Path, shape: float, seed: int) -> Path:
    """A CDNOW-format purchase log of :data:`CUSTOMERS`: each customer's first purchase in
    weeks 0..3, then each week a purchase with odds ``rate``, the customer's own rate drawn
    from a gamma distribution of ``shape`` and mean 0.3 and never written (memoryless: the rate
    is all there is to know, the NBD part of BG/NBD); ``shape`` 0: one rate 0.3 for
    everybody."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, 4, CUSTOMERS)
    rate = rng.gamma(shape, 0.3 / shape, CUSTOMERS) if shape else np.full(CUSTOMERS, 0.3)
    level = np.log(rate)

    def logit(t: int, n: np.ndarray, last: np.ndarray) -> np.ndarray:
        return level

    return write_purchase_log(path, rng, first, logit)


@pytest.mark.parametrize(("shape", "chosen"), [(0.3, True), (0.0, False)])
def test_the_rate_is_chosen_only_when_customers_differ_in_a_latent_purchase_rate(
    tmp_path: Path, shape: float, chosen: bool
) -> None:
    path = _purchase_file(tmp_path / "purchases.txt", shape, seed=5)
    cal = CalibrationConfig(
        summary=SummaryConfig(
            select=True, pattern_weeks=[0], last_action=[False], rate_levels=[0, 40]
        ),
        seasonal=False,
        c_grid=[0.3, 3.0, 30.0],
        practice_cycles_weeks=PRACTICE_CYCLES,
    )
    specs = candidate_specs(CAPS, cal.summary)
    panel = purchase_panel(path, summary_panel_config(_panel(), specs, ("none",)))
    selection = select_summary(panel, specs, cal, (), ("none",), segment_names(panel), None, ())
    by_rate = {c.spec.rate_levels > 0: c for c in selection.candidates}
    gain = by_rate[True].loglik - by_rate[False].loglik
    assert (selection.chosen.spec.rate_levels > 0) is chosen, (gain, by_rate)
    assert by_rate[True].n_states == by_rate[False].n_states
    card = selection_card(selection, n_actions=1, dp_seconds=0.1)
    label = "tenure 60w + purchase rate (40 levels)" if chosen else "tenure 60w"
    assert any(line.startswith(f"| {label} |") and "**yes**" in line for line in card), card


@pytest.mark.slow
def test_coworking_logs_keep_their_world_with_the_rate_among_the_candidates(
    small_logs: Path, small_calibration: CalibrationResult, tmp_path: Path
) -> None:
    """Coworking logs (no latent purchase rate): with the purchase-rate terms over every
    count among the candidates the selection keeps the configured summary, and the world's
    response tables and every ensemble member are bit-identical to the calibration without
    the selection. (With one level, ``rate_levels=[0, 1, 2]``, the rate is chosen on these
    logs by 1.2 SE, +0.00004 nats per customer-week: with a conversions cap of 2 it is the
    same information in fewer columns.)"""
    grid = SummaryConfig(select=True, pattern_weeks=[0], last_action=[False], rate_levels=[0, 2])
    result = calibrate(calibration_config(small_logs, tmp_path / "sel", summary=grid))
    meta = result.estimate.calibrated.meta["summary_selection"]
    scores = [(c["rate_levels"], c["loglik"], c["se"]) for c in meta["candidates"]]
    assert [c["rate_levels"] for c in meta["candidates"]] == [0, 2]
    assert [c["rate_levels"] for c in meta["candidates"] if c["chosen"]] == [0], scores
    assert_same_fit(result.estimate.calibrated, small_calibration.estimate.calibrated)


def test_the_rate_terms_from_rendered_logs_equal_the_simulators(tmp_path: Path) -> None:
    """Simulate the coworking world, render its raw logs, ingest them and build the state at
    the end: the purchase-rate columns of the design (read from the summary's conversions and
    tenure) are the same from the panel's state as from the simulator's."""
    world = load_world("coworking")
    rendered = rendered_states(world, tmp_path, _panel(), weeks=30)
    ids, panel_state, final, segment = (
        rendered.ids,
        rendered.panel,
        rendered.simulator,
        rendered.segment,
    )
    spec = replace(world.discrete, conversions_cap=8, tenure_cap_weeks=52, rate_levels=2)
    design = Design(DiscreteLayout(spec, len(world.segments), len(world.channels)), 1, False)
    columns = slice(design.n_state_action_columns - 3 * len(world.segments), None)
    rows = []
    for state in (final, panel_state):
        summary = summarise_with(
            state_features(state, world.features), segment, spec, world.channels
        )
        rows.append(design.matrix(summary, np.zeros(len(ids), np.int64))[:, columns].toarray())
    assert (rows[0][:, 0::3] > np.log(2)).any()  # some customers above the shared levels
    np.testing.assert_array_equal(rows[1], rows[0])


def test_forward_in_time_scores_every_customers_last_weeks(tmp_path: Path) -> None:
    """``forward_weeks``: the candidates are fitted on the weeks before every customer's last
    ``V`` fitted weeks and scored on those; the latent rate is still chosen, and the scored
    customer-weeks are exactly the panel's rows of the last ``V`` weeks."""
    path = _purchase_file(tmp_path / "purchases.txt", 0.3, seed=5)
    grid = SummaryConfig(
        select=True, pattern_weeks=[0], last_action=[False], rate_levels=[0, 40], forward_weeks=13
    )
    cal = CalibrationConfig(
        summary=grid, seasonal=False, c_grid=[0.3, 3.0, 30.0], practice_cycles_weeks=PRACTICE_CYCLES
    )
    specs = candidate_specs(CAPS, cal.summary)
    panel = purchase_panel(path, summary_panel_config(_panel(), specs, ("none",)))
    selection = select_summary(panel, specs, cal, (), ("none",), segment_names(panel), None, ())
    last = np.sort(panel["week_start"].unique())[-13:]
    assert selection.n_validation_weeks == int(panel["week_start"].isin(last).sum())
    assert selection.chosen.spec.rate_levels == 40, selection.candidates
    card = selection_card(selection, n_actions=1, dp_seconds=0.1)
    assert any("every customer's last 13 fitted weeks" in line for line in card), card
    with pytest.raises(ConfigError, match=r"calibration\.summary\.forward_weeks"):
        SummaryConfig(forward_weeks=-1)


def test_a_world_keeps_its_rate_levels_in_world_yaml() -> None:
    """The calibrated world's file records ``rate_levels`` when on (and the spec reads it
    back), and nothing when off: the file of a world without it is unchanged."""
    from journeyopt.calibration.calibrated import world_to_dict

    world = load_world("coworking")
    assert "rate_levels" not in world_to_dict(world)["discrete"]
    rated = replace(world, discrete=replace(world.discrete, rate_levels=2))
    written = world_to_dict(rated)["discrete"]
    assert written["rate_levels"] == 2
    assert DiscreteSpec(**written) == rated.discrete
