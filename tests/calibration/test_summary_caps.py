"""Caps chosen by the data (``calibration.summary.{recency,conversions,tenure}_caps``): the
candidate grid, a purchase log whose truth buys more the more it has bought (a higher
lifetime-conversions cap must be chosen) and one where frequency stops mattering at 3 (the
smaller cap is kept), the candidates fitted and scored with the fit's own confounding weights,
and the coworking logs' world unchanged by the selection with the default grid."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from journeyopt.calibration.config import CalibrationConfig, SummaryConfig
from journeyopt.calibration.pipeline import CalibrationResult, calibrate
from journeyopt.calibration.summary import candidate_specs, select_summary
from journeyopt.calibration.weeks import segment_names
from journeyopt.errors import ConfigError
from tests.panel.windows import panel_config
from tests.sim.caps import PRACTICE_CYCLES, caps_config, discrete_spec

from .conftest import (
    assert_same_fit,
    calibration_config,
    purchase_panel,
    selection_card,
    write_purchase_log,
)

CUSTOMERS = 2000
FREQUENCY_LOGIT = 0.5
"""Purchase logit a customer gains per lifetime purchase from the 4th to the 8th."""


def test_the_default_grid_is_the_configured_caps_and_lists_multiply_it() -> None:
    caps = discrete_spec(recency_cap_weeks=20, conversions_cap=3, tenure_cap_weeks=0)
    default = candidate_specs(caps, SummaryConfig(select=True))
    assert [(s.contact_pattern_weeks, s.last_action) for s in default] == [
        (0, False),
        (0, True),
        (4, False),
        (4, True),
    ]
    assert {(s.recency_cap_weeks, s.conversions_cap, s.tenure_cap_weeks) for s in default} == {
        (20, 3, 0)
    }
    grid = SummaryConfig(
        select=True,
        recency_caps=[40, 13, 26],
        conversions_caps=[8, 3],
        tenure_caps=[0, 52],
        pattern_weeks=[0],
        last_action=[False],
    )
    specs = candidate_specs(caps, grid)
    assert len(specs) == 12
    assert (specs[0].recency_cap_weeks, specs[0].conversions_cap, specs[0].tenure_cap_weeks) == (
        13,
        3,
        0,
    )
    # lowered to a 30-week history: 40 becomes 30, no duplicate appears
    clipped = candidate_specs(caps, grid, history_weeks=30)
    assert sorted({s.recency_cap_weeks for s in clipped}) == [13, 26, 30]
    assert len(clipped) == 12
    assert candidate_specs(caps, replace(grid, select=False)) == (caps,)
    for bad in (
        {"recency_caps": [1]},
        {"conversions_caps": [0, 3]},
        {"tenure_caps": [1]},
        {"tenure_caps": [-2]},
    ):
        with pytest.raises(ConfigError, match=r"calibration\.summary"):
            SummaryConfig(**bad)  # type: ignore[arg-type]


def _purchase_file(path: Path, frequency_logit: float, seed: int) -> Path:
    """A CDNOW-format purchase log: each customer's first purchase in weeks 0..3, then each
    week a purchase with logit ``-2.8 + 0.5 min(n, 3) + frequency_logit (min(n, 8) - 3)^+``,
    ``n`` the purchases so far (at most one a week, on a random day)."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, 4, CUSTOMERS)

    def logit(t: int, n: np.ndarray, last: np.ndarray) -> np.ndarray:
        return -2.8 + 0.5 * np.minimum(n, 3) + frequency_logit * np.maximum(np.minimum(n, 8) - 3, 0)

    return write_purchase_log(path, rng, first, logit)


@pytest.mark.parametrize(("frequency_logit", "chosen_cap"), [(FREQUENCY_LOGIT, 8), (0.0, 3)])
def test_a_higher_conversions_cap_is_chosen_only_when_frequency_drives_purchase(
    tmp_path: Path, frequency_logit: float, chosen_cap: int
) -> None:
    path = _purchase_file(tmp_path / "purchases.txt", frequency_logit, seed=4)
    panel = purchase_panel(path, panel_config())
    caps = discrete_spec(
        recency_cap_weeks=10, conversions_cap=3, contact_cap_weeks=2, engagement_cap_weeks=2
    )
    cal = CalibrationConfig(
        caps=caps_config(),
        summary=SummaryConfig(
            select=True, conversions_caps=[3, 8], pattern_weeks=[0], last_action=[False]
        ),
        seasonal=False,
        c_grid=[0.3, 3.0, 30.0],
        practice_cycles_weeks=PRACTICE_CYCLES,
    )
    specs = candidate_specs(caps, cal.summary)
    selection = select_summary(panel, specs, cal, (), ("none",), segment_names(panel), None, ())
    by_cap = {c.spec.conversions_cap: c for c in selection.candidates}
    assert selection.chosen.spec.conversions_cap == chosen_cap, by_cap
    assert by_cap[8].n_states > by_cap[3].n_states
    if frequency_logit:
        assert by_cap[8].loglik - by_cap[3].loglik > 3 * by_cap[3].se
    assert selection.weight_ess_share == 1.0  # purchases only: nothing to weigh
    assert selection.seconds >= max(c.seconds for c in selection.candidates) > 0
    card = selection_card(selection, n_actions=1, dp_seconds=0.1)
    row = f"| base | 10 / {chosen_cap} / 0 | {selection.chosen.n_states:,} |"
    assert any(line.startswith(row) and "**yes**" in line for line in card), card
    # the scoring's timings: calibration.json only; the one DP solve's: on the card (issue 16)
    assert [line for line in card if "took" in line] == [
        f"The world has {selection.chosen.n_states:,} discrete states x 1 actions; planning its "
        "exact optimum (the DP, with one backup per ensemble member when pessimistic) over 52 "
        "weeks took 0.1 s (how far the exact optimum scales: `docs/calibration.md`)."
        " The times of each candidate's scoring and of the whole choice are in "
        "`calibration.json` (`summary_selection`: `seconds`), not on the card: they change from "
        "run to run, the rest of the card does not."
    ]


def test_a_rerun_of_the_selection_prints_the_same_card(tmp_path: Path) -> None:
    """The same config and seed give the same card: the scoring's timings (each candidate's,
    the whole choice's) stay in ``calibration.json``; only the one DP solve's time is printed
    (a purchase-only world makes none and prints none)."""
    rng = np.random.default_rng(5)
    path = write_purchase_log(
        tmp_path / "purchases.txt",
        rng,
        rng.integers(0, 4, 300),
        lambda t, n, last: np.full(n.shape, -2.0),
    )
    panel = purchase_panel(path, panel_config())
    caps = discrete_spec(recency_cap_weeks=6, conversions_cap=2)
    cal = CalibrationConfig(
        caps=caps_config(),
        summary=SummaryConfig(
            select=True, conversions_caps=[2, 3], pattern_weeks=[0], last_action=[False]
        ),
        seasonal=False,
        c_grid=[1.0],
        practice_cycles_weeks=PRACTICE_CYCLES,
    )
    specs = candidate_specs(caps, cal.summary)
    cards, records = [], []
    for _ in range(2):
        selection = select_summary(panel, specs, cal, (), ("none",), segment_names(panel), None, ())
        records.append(selection.as_meta())
        cards.append("\n".join(selection_card(selection, 1, dp_seconds=3.0)))
    assert all(c["seconds"] > 0 for r in records for c in r["candidates"])
    assert records[0]["seconds"] != records[1]["seconds"]  # two runs, two timings ...
    assert cards[0].encode() == cards[1].encode()  # ... one card
    later = tuple(replace(c, seconds=c.seconds + 7.0) for c in selection.candidates)
    slower = replace(selection, seconds=99.0, candidates=later)
    assert "\n".join(selection_card(slower, 1, dp_seconds=3.0)) == cards[0]
    solved = "\n".join(selection_card(slower, 1, dp_seconds=42.0))
    assert solved == cards[0].replace("took 3.0 s", "took 42.0 s") != cards[0]
    unsolved = "\n".join(selection_card(slower, 1, dp_seconds=float("nan")))
    assert "DP solve" not in unsolved and "nan" not in unsolved


@pytest.mark.slow
def test_the_default_selection_keeps_the_coworking_world_and_weighs_as_the_fit(
    small_logs: Path, small_calibration: CalibrationResult, tmp_path: Path
) -> None:
    """Coworking logs (inside the model's family): the selection over the default grid keeps
    the configured summary, and the world's response tables and every ensemble member are
    bit-identical to the calibration without the selection; the candidates were fitted and
    scored with the fit's confounding weights (the same effective sample share, below 1)."""
    cfg = calibration_config(small_logs, tmp_path / "out", summary=SummaryConfig(select=True))
    result = calibrate(cfg)
    meta = result.estimate.calibrated.meta["summary_selection"]
    chosen = [c for c in meta["candidates"] if c["chosen"]]
    assert [(c["contact_pattern_weeks"], c["last_action"]) for c in chosen] == [(0, False)]
    assert len(meta["candidates"]) == 4
    assert meta["weight_ess_share"] == pytest.approx(result.estimate.weight_ess_share, rel=1e-12)
    assert meta["weight_ess_share"] < 0.99  # the logged exploration is weighted
    assert_same_fit(result.estimate.calibrated, small_calibration.estimate.calibrated)
