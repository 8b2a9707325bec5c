"""The customer-weeks' label codes: a categorical panel column (as the panel's are) is read once
per category and gives the codes its text gives, missing values and unknown labels included."""

from __future__ import annotations

import numpy as np
import pandas as pd

from journeyopt.calibration.weeks import UNKNOWN_SEGMENT, codes_of


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
