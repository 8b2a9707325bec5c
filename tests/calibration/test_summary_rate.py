"""The purchase-rate terms chosen by the data (``calibration.summary.purchase_rate``): a
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
from journeyopt.calibration.summary import (
    candidate_specs,
    select_summary,
    summary_panel_config,
)
from journeyopt.calibration.weeks import segment_names
from journeyopt.cli.entry import to_object
from journeyopt.errors import ConfigError
from journeyopt.panel.config import PanelConfig
from journeyopt.sim.discrete import DiscreteLayout, Summary
from journeyopt.sim.world import DiscreteSpec

from .conftest import CONFIGS, purchase_panel, selection_card, write_purchase_log

CUSTOMERS = 1000
PANEL = PanelConfig(lapse_weeks=26, frequency_weeks=52, fatigue_weeks=4, engagement_weeks=4)
CAPS = DiscreteSpec(
    recency_cap_weeks=10,
    conversions_cap=40,
    contact_cap_weeks=2,
    engagement_cap_weeks=2,
    tenure_cap_weeks=60,
)


def test_rate_candidates_double_the_grid_with_the_same_states() -> None:
    grid = SummaryConfig(
        select=True,
        conversions_caps=[3, 40],
        pattern_weeks=[0],
        last_action=[False],
        purchase_rate=[True, False],
    )
    specs = candidate_specs(CAPS, grid)
    assert [(s.conversions_cap, s.purchase_rate) for s in specs] == [
        (3, False),
        (3, True),
        (40, False),
        (40, True),
    ]
    layouts = [DiscreteLayout(s, 1, 0) for s in specs]
    assert layouts[0].n_states == layouts[1].n_states
    assert not candidate_specs(CAPS, SummaryConfig(select=True))[0].purchase_rate
    with pytest.raises(ConfigError, match=r"calibration\.summary\.purchase_rate"):
        SummaryConfig(purchase_rate=[])


def test_design_columns_exist_only_when_the_rate_is_on() -> None:
    """Off: the design is the base design (same width, same values); on: three columns per
    segment after the base ones, ``log n``, ``log(n / (1 + tenure))`` and ``log n *
    log(recency)`` for customers, nothing for prospects."""
    on = replace(CAPS, purchase_rate=True)
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


def _panel() -> PanelConfig:
    """The panel settings ``journeyopt-calibrate data=cdnow`` composes (the shipped windows)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("calibrate", overrides=["data=cdnow", "output_dir=x"])
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
            select=True, pattern_weeks=[0], last_action=[False], purchase_rate=[False, True]
        ),
        seasonal=False,
        c_grid=[0.3, 3.0, 30.0],
    )
    specs = candidate_specs(CAPS, cal.summary)
    panel = purchase_panel(path, summary_panel_config(_panel(), specs, ("none",)))
    selection = select_summary(panel, specs, cal, (), ("none",), segment_names(panel), None, ())
    by_rate = {c.spec.purchase_rate: c for c in selection.candidates}
    gain = by_rate[True].loglik - by_rate[False].loglik
    assert selection.chosen.spec.purchase_rate is chosen, (gain, by_rate)
    assert by_rate[True].n_states == by_rate[False].n_states
    card = selection_card(selection, n_actions=1, dp_seconds=0.1)
    label = "tenure 60w + purchase rate" if chosen else "tenure 60w"
    assert any(line.startswith(f"| {label} |") and "**yes**" in line for line in card), card
