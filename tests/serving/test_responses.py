"""Response texts: numbers written with six decimals read back to the rounded values."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from journeyopt.serving.decisions import probabilities_json
from journeyopt.serving.responses import shares_json

NAMES = ["none", 'e"mail', "call"]
EDGES = [0.0, 1.0, 5e-7, 1.5e-6, 0.9999995, 0.1234565, 1e-300, 2.0**-30, 1 + 2e-16, -1e-12]


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 40), st.just(len(NAMES))),
        elements=st.one_of(st.floats(0.0, 1.0), st.sampled_from(EDGES)),  # 1 + eps: a softmax
    )
)
def test_shares_read_back_to_the_values_rounded_to_six_decimals(values: np.ndarray) -> None:
    texts = shares_json(values, NAMES).to_pylist()
    expected = [dict(zip(NAMES, row, strict=True)) for row in np.round(values, 6).tolist()]
    assert [json.loads(t) for t in texts] == expected
    assert len({len(t) for t in texts}) == 1  # one width: built as a byte matrix


def test_values_outside_the_unit_interval_are_formatted_one_by_one() -> None:
    values = np.array([[0.5, 1.5, 0.0], [-0.25, 0.0, np.nan]])
    assert shares_json(values, NAMES).to_pylist() == probabilities_json(values, NAMES).to_pylist()
