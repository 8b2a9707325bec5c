"""The customer-weeks' label codes, the panel's segment names and its first logged week: a
categorical panel column (as the panel's are) is read once per category and gives what its text
gives, missing values and unknown labels included."""

from __future__ import annotations

import numpy as np
import pandas as pd

from journeyopt.calibration.pipeline import logging_start
from journeyopt.calibration.weeks import UNKNOWN_SEGMENT, codes_of, segment_names


def test_a_categorical_column_gets_the_codes_of_its_text() -> None:
    values = ["b", "", "a", None, "z", "a", "", "b"]
    column = pd.Series(pd.Categorical(values, categories=["z", "", "a", "b", "unused"]))
    text = column.astype(str)  # what the codes were read from before
    for names, empty in [(("a", "b"), ""), (("b", UNKNOWN_SEGMENT, "a", "nan"), UNKNOWN_SEGMENT)]:
        expected = codes_of(text.replace("", empty) if empty else text, names)
        got = codes_of(column, names, empty)
        np.testing.assert_array_equal(got, expected)
        assert got.dtype == np.int64
    np.testing.assert_array_equal(codes_of(column, ("a", "b")), [1, -1, 0, -1, -1, 0, -1, 1])


def test_segment_names_and_the_first_logged_week_read_categorical_columns_as_text() -> None:
    segment = pd.Categorical(["b", "", "b", "a"], categories=["a", "b", "", "unused"])
    action = pd.Categorical(["none", "none", "email", "none"], categories=["email", "none"])
    panel = pd.DataFrame(
        {
            "week": [3, 4, 5, 6],
            "segment": segment,
            "action": action,
            "propensity": [np.nan, 0.5, np.nan, np.nan],
        }
    )
    as_text = panel.astype({"segment": str, "action": str})
    assert (
        segment_names(panel) == segment_names(as_text) == tuple(sorted(("a", "b", UNKNOWN_SEGMENT)))
    )
    assert logging_start(panel) == logging_start(as_text) == 4  # a logged none
    silent = panel.assign(propensity=np.nan)
    assert logging_start(silent) == logging_start(silent.astype({"action": str})) == 5
