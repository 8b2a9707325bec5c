"""Model-free evidence first: the importance-weighted value over the longest window the logs'
exploration supports, against the model world's value of the same weeks.

A long-term estimate (``lt_dr``) is a short importance-weighted window plus the model world's
value-to-go, so it inherits the model's error; its interval, a bootstrap over customers with
the model held fixed, does not show it. The logs can still say something without the model:

1. **the window**: the target policy's cumulative importance weights over the first ``h``
   logged weeks, ``h = 1, 2, ...``, judged by the overlap diagnostics
   (:func:`~journeyopt.evaluation.ope.diagnostics.diagnose`: effective sample size overall
   and per segment, mean weight); the window is the longest ``h`` for which the diagnostics
   of every window up to it pass (0 when even one week fails);
2. **the model-free value**: weighted per-decision importance sampling (``wpdis``) of the
   target policy's discounted reward over those ``h`` weeks, with its bootstrap interval
   over customers — no model in it;
3. **the model's value of the same weeks**: the direct method (``dm``) with the model world,
   from the same logged states, with its interval;
4. **agreement**: the check passes when the two intervals overlap. When they do not, the
   model world disagrees with the logs about the very policy it is asked to value beyond the
   window, and its value-to-go is not evidence either.

The check is necessary, not sufficient: a window of a few weeks can agree while the model's
long-term dynamics (opt-outs, lapsing) are wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from journeyopt.agents.policy import Policy
from journeyopt.evaluation.ope.bootstrap import Interval
from journeyopt.evaluation.ope.diagnostics import Diagnostics, OverlapThresholds, diagnose
from journeyopt.evaluation.ope.evaluate import OPESettings, evaluate_on_logs, trajectories
from journeyopt.evaluation.ope.logged import (
    LoggedTrajectories,
    first_weeks,
    target_probabilities,
)
from journeyopt.evaluation.ope.sequential import Trajectories
from journeyopt.sim.world import WorldSpec

Float = NDArray[np.float64]

MODEL_FREE_ESTIMATOR = "wpdis"
"""The importance-weighted estimator of the model-free value."""


@dataclass(frozen=True)
class SupportedWindow:
    """The longest window the logs' exploration supports for one target policy.

    Attributes:
        weeks: ``h``, the longest window whose diagnostics (and those of every shorter one)
            pass; 0 when the first week already fails.
        ess_share: ESS share of the cumulative weights after each week, ``(h_max,)``.
        diagnostics: Diagnostics of the chosen window (of week 1 when ``weeks`` is 0).
    """

    weeks: int
    ess_share: tuple[float, ...]
    diagnostics: Diagnostics


def supported_window(
    data: Trajectories,
    segment: NDArray[np.integer],
    segment_names: tuple[str, ...],
    thresholds: OverlapThresholds,
    action_names: tuple[str, ...] = (),
) -> SupportedWindow:
    """The longest prefix of ``data``'s weeks whose overlap diagnostics pass (see the module
    docstring)."""
    shares: list[float] = []
    chosen: Diagnostics | None = None
    first: Diagnostics | None = None
    weeks = 0
    for h in range(1, data.horizon_weeks + 1):
        prefix = Trajectories(
            data.action[:, :h],
            data.reward[:, :h],
            data.propensity[:, :h],
            data.target[:, :h],
            data.gamma,
        )
        found = diagnose(prefix, segment, segment_names, thresholds, action_names)
        shares.append(float(found.overall["ess_share"]))
        first = first if first is not None else found
        if found.passed and weeks == h - 1:
            weeks, chosen = h, found
    picked = chosen if chosen is not None else first
    assert picked is not None  # data has at least one week
    return SupportedWindow(weeks, tuple(shares), picked)


@dataclass(frozen=True)
class ModelFreeCheck:
    """The model-free value of a policy against the model's value of the same weeks.

    Attributes:
        policy: The policy's name.
        window: The window the logs support.
        importance: ``wpdis`` over the window, currency per customer (None without a window).
        model: The model world's ``dm`` over the window (None without a window).
        passed: Whether a window exists and the two intervals overlap.
    """

    policy: str
    window: SupportedWindow
    importance: Interval | None
    model: Interval | None
    passed: bool

    @property
    def reason(self) -> str:
        """Why the check failed (empty when it passed)."""
        if self.passed:
            return ""
        if self.importance is None or self.model is None:
            return (
                "the logs' exploration supports no importance-weighted window for "
                f"{self.policy}: " + "; ".join(self.window.diagnostics.reasons)
            )
        side = "above" if self.model.value > self.importance.value else "below"
        return (
            f"over the first {self.window.weeks} logged weeks the model world values "
            f"{self.policy} at {_interval(self.model)}, {side} what the logs say without the "
            f"model: {_interval(self.importance)} (importance-weighted, "
            f"ESS {100 * self.window.ess_share[self.window.weeks - 1]:.1f} % of customers)"
        )


def _interval(iv: Interval) -> str:
    return f"{iv.value:,.2f} ({100 * iv.confidence:g} % CI {iv.ci_low:,.2f} to {iv.ci_high:,.2f})"


def intervals_overlap(first: Interval, second: Interval) -> bool:
    """Whether the two-sided intervals share a point."""
    return first.ci_low <= second.ci_high and second.ci_low <= first.ci_high


def check_model_free(
    policy: Policy,
    logged: LoggedTrajectories,
    model_world: WorldSpec,
    settings: OPESettings,
) -> ModelFreeCheck:
    """The model-free evidence of ``policy`` on ``logged`` (see the module docstring).

    Args:
        policy: The target policy; its probabilities are masked by the logs' contact rules.
        logged: Logged trajectories; the window is a prefix of their weeks (at most all).
        model_world: The model world whose value of the window is compared.
        settings: Discount, bootstrap and the overlap thresholds that choose the window.
    """
    target = target_probabilities(policy, logged, settings.seed)
    data = trajectories(logged, target, settings.gamma)
    window = supported_window(
        data,
        logged.segment,
        logged.segment_names,
        settings.thresholds,
        model_world.actions.names,
    )
    if window.weeks == 0:
        return ModelFreeCheck(policy.name, window, None, None, False)
    evaluated = evaluate_on_logs(
        policy,
        first_weeks(logged, window.weeks),
        model_world,
        settings,
        (MODEL_FREE_ESTIMATOR, "dm"),
    )
    importance = evaluated.intervals[MODEL_FREE_ESTIMATOR]
    model = evaluated.intervals["dm"]
    return ModelFreeCheck(
        policy.name, window, importance, model, intervals_overlap(importance, model)
    )
