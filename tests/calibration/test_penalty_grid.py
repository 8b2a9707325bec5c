"""A penalty is not chosen at the edge of its grid without saying so: when the best value of a
grid is its smallest or largest, the value a decade beyond is tried too
(``calibration.grid_extensions`` times at most), taken when it beats the edge by more than
``calibration.summary.tolerance_se`` standard errors, and a choice at an edge with a better
value possibly beyond it is marked, logged and named on the card."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp

from journeyopt.calibration.card import card_markdown
from journeyopt.calibration.config import CalibrationConfig
from journeyopt.calibration.design import Design
from journeyopt.calibration.fit import PenaltyChoice, choose_logistic, choose_penalty
from journeyopt.calibration.models import (
    FitData,
    Penalties,
    choose_penalties,
    penalty_edge_lines,
)
from journeyopt.calibration.pipeline import CalibrationResult
from journeyopt.errors import ConfigError
from journeyopt.sim.discrete import DiscreteLayout
from tests.sim.caps import caps_config

from .test_forward_split import SPEC, staggered_weeks

C_GRID = [0.003, 0.03, 0.3, 3.0, 30.0]


def peaked(best: float) -> tuple[dict[float, int], Callable[[float], float]]:
    """A held-out score peaked at ``best`` (log scale) and the count of calls per value."""
    calls: dict[float, int] = {}

    def score(p: float) -> float:
        calls[p] = calls.get(p, 0) + 1
        return -((np.log10(p) - np.log10(best)) ** 2)

    return calls, score


@pytest.mark.parametrize(
    ("best", "strong_is_small", "chosen", "edge", "tried"),
    [
        (3e-4, True, 3e-4, "", 7),  # a decade below the grid: found, the next one beaten
        (3e-5, True, 3e-5, "", 8),  # two decades below
        (0.3, True, 0.3, "", 5),  # inside: the grid as given
        (3e-12, True, 3e-6, "smallest", 8),  # beyond the 3 extensions: marked
        (300.0, False, 300.0, "", 7),  # the other direction (alpha: larger is stronger)
        (3e12, False, 3e4, "largest", 8),
    ],
)
def test_a_winning_edge_is_extended_a_decade_at_a_time(
    best: float, strong_is_small: bool, chosen: float, edge: str, tried: int
) -> None:
    calls, score = peaked(best)
    got = choose_penalty(C_GRID, score, 3, strong_is_small, fallback=C_GRID[0])
    assert got.value == pytest.approx(chosen)
    assert got.edge == edge
    assert len(got.scores) == tried and set(calls.values()) == {1}
    assert set(C_GRID) <= set(got.scores)


def test_a_value_beyond_that_does_not_beat_the_edge_is_not_taken() -> None:
    """Scoring better is not enough to leave the grid when ``beats`` says the gain is not
    clear: the edge stays, marked, the better value beyond recorded."""
    _, score = peaked(3e-5)
    got = choose_penalty(C_GRID, score, 3, True, C_GRID[0], beats=lambda new, edge: False)
    assert (got.value, got.edge, sorted(got.scores)[0]) == (0.003, "smallest", 3e-4)
    assert got.scores[3e-4] > got.scores[0.003]


def test_no_extension_without_extensions_or_with_one_value() -> None:
    _, score = peaked(3e-5)
    at_edge = choose_penalty(C_GRID, score, 0, True, fallback=C_GRID[0])
    assert (at_edge.value, at_edge.edge, len(at_edge.scores)) == (0.003, "smallest", 5)
    fixed = choose_penalty([0.3], score, 3, True, fallback=0.3)
    assert (fixed.value, fixed.edge, list(fixed.scores)) == (0.3, "", [0.3])


def weak_signal_data() -> tuple[FitData, np.ndarray]:
    """Engagement barely likelier after a recent conversion (26 % against 20 %; the best C is
    0.003: strong smoothing) and its rows scored, the weeks after week 26."""
    weeks = staggered_weeks(400, 40, seed=2)
    layout = DiscreteLayout(SPEC, 1, 1)
    recent = layout.decode(weeks.state).recency < 2
    engaged = np.random.default_rng(3).random(weeks.n) < np.where(recent, 0.26, 0.2)
    weeks = replace(weeks, engaged=engaged)
    data = FitData.of(weeks, Design(layout, 2, seasonal=False), np.ones(weeks.n))
    return data, weeks.week > 26


def test_a_logistic_choice_beyond_the_grid_is_the_wider_grids() -> None:
    """The engagement model's C on a grid from 0.3, extended, is the C a grid three decades
    wider chooses inside it; a grid whose best lies inside is not changed by the extensions."""
    data, rows = weak_signal_data()
    train, valid = data.binary("engage", (~rows).astype(float)), data.binary("engage", rows * 1.0)
    scale = data.design.penalty_scale()
    wide = choose_logistic(train, valid, [3e-4, 3e-3, 0.03, 0.3, 3.0, 30.0], scale)
    assert wide.edge == "" and wide.value == 0.003, wide
    narrow = choose_logistic(train, valid, [0.3, 3.0, 30.0], scale, extensions=3)
    assert narrow.value == wide.value and narrow.edge == ""
    assert narrow.scores[wide.value] == pytest.approx(wide.scores[wide.value], abs=1e-9)
    inside = choose_logistic(train, valid, [3e-4, 3e-3, 0.03, 0.3], scale, extensions=3)
    assert inside.value == wide.value and sorted(inside.scores) == [3e-4, 3e-3, 0.03, 0.3]


def test_the_tolerance_keeps_a_gain_within_its_standard_errors_in_the_grid(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The weak signal's steps beyond a grid from 0.3: 0.3 -> 0.03 gains more than 1 SE of the
    per-customer difference, 0.03 -> 0.003 does not (with tolerance 0 it is taken)."""
    data, rows = weak_signal_data()
    grid = [0.3, 3.0, 30.0]
    plain = choose_penalties(data, rows, grid, [1e-3], extensions=3).choices["engage"]
    assert (plain.value, plain.edge) == (0.003, "")
    with caplog.at_level(logging.WARNING, logger="journeyopt"):
        chosen = choose_penalties(data, rows, grid, [1e-3], extensions=3, tolerance_se=1.0)
    engage = chosen.choices["engage"]
    assert (engage.value, engage.edge, sorted(engage.scores)[0]) == (0.03, "smallest", 0.003)
    assert "engage C 0.03 is the smallest value of its choice: C 0.003 beyond it scored" in (
        caplog.text
    )


def test_a_penalty_still_at_an_edge_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    data, rows = weak_signal_data()
    with caplog.at_level(logging.WARNING, logger="journeyopt"):
        chosen = choose_penalties(data, rows, [30.0, 300.0], [1e-3], extensions=1)
    engage = chosen.choices["engage"]
    assert (engage.value, engage.edge, sorted(engage.scores)) == (3.0, "smallest", [3.0, 30, 300])
    assert chosen.edges()["engage"] == engage
    assert chosen.choices["value"].edge == ""  # a one-value grid is a fixed penalty
    assert "engage C 3 is the smallest of the 3 values tried (the grid extended by up to 1" in (
        caplog.text
    )


def test_the_card_names_a_penalty_at_an_edge(small_calibration: CalibrationResult) -> None:
    est = small_calibration.estimate
    meta = est.calibrated.meta
    assert set(meta["penalty_choices"]) == {"convert", "engage", "optout", "value"}
    at_edge = PenaltyChoice(3e-6, {3e-6: -0.1, 3e-5: -0.2, 0.03: -0.3}, "smallest")
    edged = {**meta, "penalty_choices": {"optout": at_edge.as_meta()}}
    card = card_markdown(replace(est, calibrated=replace(est.calibrated, meta=edged)), None, None)
    (line,) = penalty_edge_lines(edged["penalty_choices"], 3)
    assert line.startswith("- **penalty at the edge of its grid**: optout C 3e-06 is the smallest")
    assert "of the 3 values tried (the grid extended by up to 3 decades" in line
    assert line in card
    inside = {**meta, "penalty_choices": {"optout": replace(at_edge, edge="").as_meta()}}
    plain = card_markdown(replace(est, calibrated=replace(est.calibrated, meta=inside)), None, None)
    assert "edge of its grid" not in plain


def test_bad_grids_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"calibration\.grid_extensions must be >= 0"):
        CalibrationConfig(caps=caps_config(), grid_extensions=-1)
    with pytest.raises(ConfigError, match=r"must hold values > 0"):
        CalibrationConfig(caps=caps_config(), c_grid=[0.0, 1.0])


def test_choices_with_a_penalty_that_could_not_be_scored_compare_equal() -> None:
    """A penalty without held-out weight scores NaN, and NaN != NaN: two choices of the same
    data (the same seed with one worker or two) must still compare equal, and differ when a
    score, the chosen value or the edge differs."""
    rng = np.random.default_rng(0)
    matrix = sp.random(200, 4, density=0.5, random_state=0, format="csr")
    train, unscored = (matrix, rng.random(200), rng.random(200)), (matrix, *np.zeros((2, 200)))

    def chosen() -> Penalties:
        choice = choose_logistic(train, unscored, C_GRID)
        return Penalties({"optout": choice.value}, 1e-3, choices={"optout": choice})

    first, again = chosen(), chosen()
    assert np.isnan(list(first.choices["optout"].scores.values())).all()
    assert first == again
    choice = first.choices["optout"]
    for other in (
        replace(choice, scores={**choice.scores, 0.3: -1.0}),
        replace(choice, value=0.3),
        replace(choice, edge="smallest"),
    ):
        assert replace(first, choices={"optout": other}) != again
