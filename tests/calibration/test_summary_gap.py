"""The previous gap between conversions chosen by the data (``calibration.summary.gap_caps``):
a purchase log whose customers re-buy on a cycle set by a type that is not on record (every 3
or every 8 weeks) makes the selection keep the gap; the same log with one cycle for everybody
keeps the smaller summary."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from journeyopt.calibration.config import CalibrationConfig, SummaryConfig
from journeyopt.calibration.pipeline import CalibrationResult, calibrate
from journeyopt.calibration.summary import (
    candidate_specs,
    select_summary,
    summary_panel_config,
)
from journeyopt.calibration.weeks import segment_names
from journeyopt.errors import ConfigError
from journeyopt.sim.discrete import DiscreteLayout
from journeyopt.sim.world import load_world
from tests.panel.windows import panel_config
from tests.sim.caps import PRACTICE_CYCLES, caps_config, discrete_spec

from .conftest import CAPS as SMALL_CAPS
from .conftest import (
    assert_same_fit,
    calibration_config,
    purchase_panel,
    selection_card,
    write_purchase_log,
)

CUSTOMERS = 2000
CAPS = discrete_spec(
    recency_cap_weeks=10,
    conversions_cap=3,
    contact_cap_weeks=2,
    engagement_cap_weeks=2,
    gap_bin_weeks=2,
)


def test_gap_candidates_multiply_the_grid_and_fit_under_the_recency_cap() -> None:
    grid = SummaryConfig(
        select=True, recency_caps=[4, 10], pattern_weeks=[0], last_action=[False], gap_caps=[0, 9]
    )
    specs = candidate_specs(CAPS, grid)
    assert [(s.recency_cap_weeks, s.gap_cap_weeks, s.gap_bin_weeks) for s in specs] == [
        (4, 0, 2),
        (4, 3, 2),  # 9 lowered under the recency cap 4: bins 1-2 and "3 or more"
        (10, 0, 2),
        (10, 9, 2),
    ]
    assert candidate_specs(CAPS, replace(grid, gap_caps=[]))[-1].gap_cap_weeks == 0
    panel = summary_panel_config(panel_config(), specs, ("none",))
    assert panel.conversion_gap and not panel.recent_contacts
    assert not summary_panel_config(panel_config(), specs[:1], ("none",)).conversion_gap
    with pytest.raises(ConfigError, match=r"calibration\.summary\.gap_caps"):
        SummaryConfig(gap_caps=[1])
    with pytest.raises(ConfigError, match=r"multiple of gap_bin_weeks"):
        caps_config(gap_cap_weeks=10, gap_bin_weeks=2)
    with pytest.raises(ConfigError, match=r"<= recency_cap_weeks"):
        caps_config(gap_cap_weeks=29)


def _purchase_file(path: Path, cycles: tuple[int, int], seed: int) -> Path:
    """A CDNOW-format purchase log: each customer's first purchase in weeks 0..3, then each
    week a purchase with logit ``-3.5 + 3.5 exp(-(w - k)^2 / 2)``, ``w`` the weeks since the
    last purchase and ``k`` the customer's cycle, ``cycles[0]`` or ``cycles[1]`` by a type
    drawn half and half and never written (at most one purchase a week, on a random day)."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, 4, CUSTOMERS)
    cycle = np.where(rng.random(CUSTOMERS) < 0.5, cycles[0], cycles[1])

    def logit(t: int, n: np.ndarray, last: np.ndarray) -> np.ndarray:
        return -3.5 + 3.5 * np.exp(-0.5 * (t - last - cycle) ** 2)

    return write_purchase_log(path, rng, first, logit)


@pytest.mark.parametrize(("cycles", "chosen_gap"), [((3, 8), 9), ((5, 5), 0)])
def test_the_gap_is_chosen_only_when_a_latent_type_sets_the_purchase_cycle(
    tmp_path: Path, cycles: tuple[int, int], chosen_gap: int
) -> None:
    path = _purchase_file(tmp_path / "purchases.txt", cycles, seed=7)
    cal = CalibrationConfig(
        caps=caps_config(),
        summary=SummaryConfig(select=True, pattern_weeks=[0], last_action=[False], gap_caps=[0, 9]),
        seasonal=False,
        c_grid=[0.3, 3.0, 30.0],
        practice_cycles_weeks=PRACTICE_CYCLES,
    )
    specs = candidate_specs(CAPS, cal.summary)
    panel = purchase_panel(path, summary_panel_config(panel_config(), specs, ("none",)))
    assert "conversion_gap_weeks" in panel.columns
    selection = select_summary(panel, specs, cal, (), ("none",), segment_names(panel), None, ())
    by_gap = {c.spec.gap_cap_weeks: c for c in selection.candidates}
    assert selection.chosen.spec.gap_cap_weeks == chosen_gap, by_gap
    base = DiscreteLayout(CAPS, 1, 0)
    # 1 + R + 2 * 5 bins * R history values instead of 1 + 3 R
    assert by_gap[9].n_states == base.n_states // 31 * (1 + 10 + 2 * 5 * 10)
    if chosen_gap:
        assert by_gap[9].loglik - by_gap[0].loglik > 3 * by_gap[0].se
    card = selection_card(selection, n_actions=1, dp_seconds=0.1)
    label = "gap 9w, 2w bins" if chosen_gap else "base"
    assert any(line.startswith(f"| {label} |") and "**yes**" in line for line in card), card


@pytest.mark.slow
def test_coworking_logs_keep_their_world_and_a_world_with_the_gap_calibrates_end_to_end(
    small_logs: Path,
    small_world_path: Path,
    small_calibration: CalibrationResult,
    tmp_path: Path,
) -> None:
    """Coworking logs (no purchase cycles): with the gap among the candidates the selection
    keeps the configured summary and the world's response tables and every ensemble member
    are bit-identical to the calibration without the selection. A calibration told to keep
    the gap runs end to end: the world written and read back keeps it, the panel feature and
    the state count, and its DP, hold-out and policy fidelity run (the exact ratio is NaN, the
    truth's summary has no gap)."""
    grid = SummaryConfig(select=True, pattern_weeks=[0], last_action=[False], gap_caps=[0, 9])
    cfg = calibration_config(small_logs, tmp_path / "sel", summary=grid)
    result = calibrate(cfg)
    meta = result.estimate.calibrated.meta["summary_selection"]
    assert [c["gap_cap_weeks"] for c in meta["candidates"]] == [0, 9]
    assert [c["gap_cap_weeks"] for c in meta["candidates"] if c["chosen"]] == [0]
    assert_same_fit(result.estimate.calibrated, small_calibration.estimate.calibrated)

    caps = replace(SMALL_CAPS, gap_cap_weeks=9, gap_bin_weeks=2)
    gap_cfg = calibration_config(small_logs, tmp_path / "gap", truth=str(small_world_path))
    kept = calibrate(replace(gap_cfg, calibration=replace(gap_cfg.calibration, caps=caps)))
    assert kept.policies is not None and len(kept.policies.table) == 9
    assert np.isfinite(kept.policies.table["calibrated_value"]).all()
    assert np.isnan(kept.policies.metrics["sim/sim_to_real_pct_of_optimum"])
    world = load_world(kept.output_dir)
    assert (world.discrete.gap_cap_weeks, world.discrete.gap_bin_weeks) == (9, 2)
    assert world.features.conversion_gap
    layout = DiscreteLayout.of(world)
    assert layout.dims[1] == 1 + 10 + (2 - 1) * 5 * 10
    assert world.responses is not None
    assert world.responses.convert_logit.shape == (layout.n_states, world.actions.n_actions)
    assert world.base is not None and int(world.base.state.conversion_gap.max()) > 0
