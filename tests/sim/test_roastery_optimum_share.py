"""The roastery experiment's headline share (calibrated optimum / true optimum, both run in the
truth) is estimated with the true optimum's simulated run as a control variate: unbiased for
the ratio, and its interval much narrower than the plain ratio's when the two runs share draws."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

ROASTERY = Path(__file__).parents[2] / "experiments" / "sim_to_real" / "roastery.py"


def _roastery() -> ModuleType:
    spec = importlib.util.spec_from_file_location("roastery_experiment", ROASTERY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["roastery_experiment"] = module
    spec.loader.exec_module(module)
    return module


def _paired_runs(seed: int, n: int, exact: float, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer values of the true and the calibrated optimum on shared draws: a large
    common noise (the customer's draws) and a small policy-specific one."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0.0, 20.0, n)
    true_run = exact + common + rng.normal(0.0, 2.0, n)
    calibrated_run = share * exact + common + rng.normal(0.0, 2.0, n)
    return true_run, calibrated_run


def test_the_share_covers_the_true_ratio_and_is_narrower_than_the_plain_ratio() -> None:
    optimum_share = _roastery().optimum_share
    exact, share, n = 48.0, 0.95, 2_000
    covered, widths = 0, []
    for seed in range(100):
        true_run, calibrated_run = _paired_runs(seed, n, exact, share)
        got = optimum_share(calibrated_run - true_run, exact)
        low = got["calibrated_optimum_share_of_true_optimum_ci95_low"]
        high = got["calibrated_optimum_share_of_true_optimum_ci95_high"]
        assert low < got["calibrated_optimum_share_of_true_optimum"] < high
        covered += low <= share <= high
        widths.append(high - low)
        plain_half = 1.96 * calibrated_run.std(ddof=1) / np.sqrt(n) / exact
        assert high - low < 0.25 * 2 * plain_half
    assert 0.90 <= covered / 100 <= 1.0
    assert np.median(widths) < 0.02
