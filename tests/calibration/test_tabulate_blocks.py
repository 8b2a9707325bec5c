"""The response tables are tabulated over the design of every (state, action) in blocks of
states (the design is never held whole: the calibration's memory peak on a million states);
the tables are the same, bit for bit, as from the whole design, whatever the block size."""

from __future__ import annotations

import numpy as np
import pytest

from journeyopt.calibration.design import N_WEEKS_OF_YEAR, Design
from journeyopt.calibration.fit import LinearFit
from journeyopt.calibration.models import (
    BINARY_MODELS,
    Fits,
    _season_mean,
    state_action_blocks,
    tabulate,
)
from journeyopt.sim.discrete import DiscreteLayout
from journeyopt.sim.world import DiscreteSpec, FittedResponses

SPEC = DiscreteSpec(
    recency_cap_weeks=5,
    conversions_cap=3,
    contact_cap_weeks=4,
    engagement_cap_weeks=3,
    contact_pattern_weeks=2,
    last_action=True,
    lasting_actions=("b", "c"),
    gap_cap_weeks=5,
    gap_bin_weeks=2,
)
"""Every optional component the roastery's worlds use: pattern, last lasting action, gap."""


def _design() -> Design:
    return Design(DiscreteLayout(SPEC, 2, 3, 4), 4, seasonal=True, silent_channels=(2,))


def _fits(design: Design, seed: int) -> Fits:
    """Random GLMs of the design's width (seeded)."""
    rng = np.random.default_rng(seed)

    def glm() -> LinearFit:
        return LinearFit(rng.normal(0, 0.5, design.n_columns), float(rng.normal()), 1.0)

    return Fits({name: glm() for name in BINARY_MODELS}, glm())


def test_blocks_are_the_whole_design_entry_for_entry() -> None:
    design = _design()
    whole = design.all_state_actions()
    blocks = list(state_action_blocks(design, 97))
    assert [b[0] for b in blocks] == list(range(0, design.layout.n_states, 97))
    assert blocks[-1][1] == design.layout.n_states
    a = design.n_actions
    for first, stop, block in blocks:
        part = whole[first * a : stop * a]
        np.testing.assert_array_equal(block.indptr, part.indptr)
        np.testing.assert_array_equal(block.indices, part.indices)
        np.testing.assert_array_equal(block.data, part.data)
    with pytest.raises(ValueError, match="block_states"):
        next(state_action_blocks(design, 0))


def test_tables_match_the_whole_design_bit_for_bit_whatever_the_block() -> None:
    design = _design()
    n, a = design.layout.n_states, design.n_actions
    assert n > 1_000  # several blocks of 97, one of n
    fits = [_fits(design, seed) for seed in (0, 1, 2)]
    woy = np.random.default_rng(3).integers(1, N_WEEKS_OF_YEAR + 1, 500)
    small = tabulate(fits, design, woy, identified=True, block_states=97)
    single = tabulate(fits, design, woy, identified=True, block_states=n)
    whole = design.all_state_actions()  # the reference: the whole design at once
    for fit, mine, one in zip(fits, small, single, strict=True):
        for name in FittedResponses.ARRAYS:
            np.testing.assert_array_equal(getattr(mine, name), getattr(one, name))
        conv = fit.binary["convert"]
        expected = conv.eta(whole).reshape(n, a) + _season_mean(conv, design, woy)
        np.testing.assert_array_equal(mine.convert_logit, expected)
        optout = 1.0 / (1.0 + np.exp(-fit.binary["optout"].eta(whole).reshape(n, a)))
        optout[:, 0] = 0.0
        np.testing.assert_array_equal(mine.optout, optout)
        np.testing.assert_array_equal(mine.value, np.exp(fit.value.eta(whole[::a])))
    # the fits differ, so their tables do (each fit gets its own, not the first's)
    assert not np.array_equal(small[0].convert_logit, small[1].convert_logit)


def test_unidentified_contacts_never_opt_out() -> None:
    design = _design()
    (table,) = tabulate([_fits(design, 4)], design, np.array([1, 2]), identified=False)
    assert float(np.abs(table.optout).max()) == 0.0
