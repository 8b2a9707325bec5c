"""The design's sparse matrix is laid out row by row directly: array for array the sorted CSR
that a COO ``(values, (rows, columns))`` of the same parts converts to."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from journeyopt.calibration.design import _by_rows


def _coo(parts: list, m: int, width: int) -> sp.csr_matrix:
    rows = np.concatenate([np.flatnonzero(keep) for _, _, keep in parts])
    cols = np.concatenate([col[keep] for col, _, keep in parts])
    vals = np.concatenate([val[keep] for _, val, keep in parts])
    return sp.csr_matrix((vals, (rows, cols)), shape=(m, width))


def _assert_same(one: sp.csr_matrix, other: sp.csr_matrix) -> None:
    for name in ("indptr", "indices", "data"):
        a, b = getattr(one, name), getattr(other, name)
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b)


def test_rows_laid_out_directly_equal_the_coo_conversion() -> None:
    rng = np.random.default_rng(3)
    m, starts, widths = 500, [40, 0, 90, 10, 60, 95], [20, 10, 5, 30, 30, 1]
    parts = []
    for start, width in zip(starts, widths, strict=True):  # blocks out of column order
        col = start + rng.integers(0, width, m)
        val = np.where(rng.random(m) < 0.1, 0.0, rng.normal(size=m))  # explicit zeros kept
        parts.append((col, val, rng.random(m) < 0.6))
    parts.append((np.full(m, 35), np.ones(m), np.zeros(m, bool)))  # keeps no row
    _assert_same(_by_rows(parts, m, 100), _coo(parts, m, 100))


def test_parts_sharing_a_column_are_summed_as_coo_sums_them() -> None:
    m = 4
    keep = np.ones(m, bool)
    parts = [(np.arange(m), np.ones(m), keep), (np.arange(m), np.full(m, 2.0), keep)]
    _assert_same(_by_rows(parts, m, m), _coo(parts, m, m))
