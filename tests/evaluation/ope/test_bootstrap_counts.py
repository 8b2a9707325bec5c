"""Remembered bootstrap resamples: a second statistic of the same customers, resamples and
seed gets exactly the counts a fresh draw would give; other arguments draw anew."""

from __future__ import annotations

import numpy as np
import pytest

from journeyopt.evaluation.ope import bootstrap
from journeyopt.evaluation.ope.bootstrap import Statistic, bootstrap_replicates, resample_counts


def fresh_replicates(statistic: Statistic, n_boot: int, seed: int) -> np.ndarray:
    """The replicates drawn without any remembered counts (the reference)."""
    bootstrap._remembered = None
    return bootstrap_replicates(statistic, n_boot, seed)


def test_remembered_counts_equal_a_fresh_draw() -> None:
    rng = np.random.default_rng(3)
    k = 500
    first = Statistic(rng.random((k, 1)), np.ones((k, 1)))
    second = Statistic(rng.random((k, 2)), rng.random((k, 2)) + 0.5)
    expected = {
        (name, seed, n): fresh_replicates(stat, n, seed)
        for name, stat in (("first", first), ("second", second))
        for seed in (0, 1)
        for n in (100, 130)
    }
    bootstrap._remembered = None
    for _ in range(2):  # the second pass reads remembered counts where the key repeats
        for (name, seed, n), want in expected.items():
            stat = first if name == "first" else second
            np.testing.assert_array_equal(bootstrap_replicates(stat, n, seed), want)
            np.testing.assert_array_equal(bootstrap_replicates(stat, n, seed), want)
    assert not np.array_equal(expected["first", 0, 100], expected["first", 1, 100])


def test_counts_are_read_only_and_chunked() -> None:
    bootstrap._remembered = None
    chunks = list(resample_counts(50, 150, 7))
    assert [c.shape for c in chunks] == [(64, 50), (64, 50), (22, 50)]
    again = list(resample_counts(50, 150, 7))
    assert all(a is b for a, b in zip(chunks, again, strict=True))  # remembered, not redrawn
    assert all(not c.flags.writeable for c in again)
    assert all(c.sum(axis=1).tolist() == [50.0] * c.shape[0] for c in again)


def test_large_matrices_are_not_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bootstrap, "_REMEMBERED_COUNTS", 1000)
    bootstrap._remembered = None
    list(resample_counts(50, 30, 0))  # 1,500 entries: over the limit
    assert bootstrap._remembered is None
    list(resample_counts(10, 30, 0))
    assert bootstrap._remembered is not None and bootstrap._remembered[0] == (10, 30, 0)
