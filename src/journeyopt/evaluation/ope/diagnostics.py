"""Can the logs tell the target policy's value? Overlap diagnostics of importance weights.

- effective sample size ``ESS = (sum w)^2 / sum w^2`` of the customers' trajectory weights
  (cumulative ratio at the horizon), as a share of the ``K`` customers;
- share of logged decisions the target policy would never take (target probability 0): those
  trajectories carry no weight, the policy's value there rests on the others;
- weight distribution: mean (1 in expectation: a check on the propensities), median, 99th
  percentile and maximum;
- the same per customer segment (overlap can fail for one segment only);
- support per action: for every action the target policy puts a material share of its
  probability on (``min_action_share`` of all its decisions), the logged decisions that took
  that action where the target would take it too. A policy that moves decisions to an action
  the logs rarely explored (a few dozen calls among thousands of decisions) can pass the
  overall ESS, because most of its weights are the ones of ``none``, while the value it adds
  rests on a handful of logged contacts: its importance-weighted value is then noise.

The weights are those of the estimator's importance-weighted window: the whole horizon of
``data`` (pass a long-term estimator's ``H``-week window, not the value horizon).

A diagnosis *fails* (``passed`` False, with reasons) when the ESS share is below
``min_ess_share``, the mean trajectory weight is further than ``max_mean_weight_error`` from 1
by more than three standard errors (a few large weights of a rarely logged action move the
mean of a small sample without anything being wrong), or a segment's ESS share is below
``min_ess_share``, or an action the target uses materially is supported by fewer than
``min_action_support`` logged decisions — then only model-based estimates (direct method,
fitted-Q) remain, and they are only as good as the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.evaluation.ope.sequential import Trajectories

Float = NDArray[np.float64]


def effective_sample_size(weights: Float) -> float:
    """``(sum w)^2 / sum w^2`` of (n,) non-negative weights (0 when all are 0)."""
    total_sq = float(np.sum(weights**2))
    return float(np.sum(weights)) ** 2 / total_sq if total_sq > 0 else 0.0


@dataclass(frozen=True)
class OverlapThresholds:
    """When a diagnosis fails.

    Attributes:
        min_ess_share: Smallest acceptable ESS / K (overall and per segment), in (0, 1].
        max_mean_weight_error: Largest acceptable ``|mean weight - 1|``.
        min_segment_customers: Segments with fewer customers are reported, not judged.
        min_action_support: Fewest logged decisions that took an action the target would
            take too (target probability > 0) for the action to count as supported.
        min_action_share: Actions with at least this share of the target policy's
            probability mass (over all logged decisions) are judged for support.
    """

    min_ess_share: float = 0.01
    max_mean_weight_error: float = 0.5
    min_segment_customers: int = 50
    min_action_support: int = 30
    min_action_share: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 < self.min_ess_share <= 1.0:
            raise ValueError(f"min_ess_share must be in (0, 1], got {self.min_ess_share}")
        if not self.max_mean_weight_error > 0:
            raise ValueError(f"max_mean_weight_error must be > 0, got {self.max_mean_weight_error}")
        if self.min_segment_customers < 1:
            raise ValueError(
                f"min_segment_customers must be >= 1, got {self.min_segment_customers}"
            )
        if self.min_action_support < 0:
            raise ValueError(f"min_action_support must be >= 0, got {self.min_action_support}")
        if not 0.0 < self.min_action_share <= 1.0:
            raise ValueError(f"min_action_share must be in (0, 1], got {self.min_action_share}")


@dataclass(frozen=True)
class Diagnostics:
    """Overlap diagnostics of one target policy on one set of trajectories.

    Attributes:
        table: One row per segment (``all`` first): ``segment``, ``customers``, ``ess``,
            ``ess_share``, ``zero_target_share`` (share of logged decisions with target
            probability 0), ``weight_mean``, ``weight_median``, ``weight_p99``, ``weight_max``.
        passed: Whether every check passed.
        reasons: Why it failed (empty when it passed).
        actions: One row per action (index order): ``action`` (index), ``target_share``
            (share of the target's probability mass), ``logged`` (logged decisions that took
            it), ``supporting`` (of those, where the target's probability is > 0),
            ``judged`` (its target share reaches ``min_action_share``).
    """

    table: pd.DataFrame
    passed: bool
    reasons: tuple[str, ...]
    actions: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def overall(self) -> dict[str, float]:
        """The ``all`` row as numbers (ESS share, zero-target share, weight summary)."""
        row = self.table.iloc[0]
        return {k: float(row[k]) for k in self.table.columns if k not in ("segment",)}


def _row(name: str, big_r: Float, zero: NDArray[np.bool_]) -> dict[str, float | str]:
    w = big_r[:, -1]
    ess = effective_sample_size(w)
    return {
        "segment": name,
        "customers": float(w.shape[0]),
        "ess": ess,
        "ess_share": ess / w.shape[0],
        "zero_target_share": float(zero.mean()),
        "weight_mean": float(w.mean()),
        "weight_median": float(np.median(w)),
        "weight_p99": float(np.quantile(w, 0.99)),
        "weight_max": float(w.max()),
    }


def diagnose(
    data: Trajectories,
    segment: NDArray[np.integer],
    segment_names: Sequence[str],
    thresholds: OverlapThresholds | None = None,
    action_names: Sequence[str] = (),
) -> Diagnostics:
    """Overlap diagnostics of ``data`` (see the module docstring).

    Args:
        data: Trajectories with the target policy's probabilities.
        segment: (K,) customer segment index into ``segment_names``.
        segment_names: Segment names.
        thresholds: When the diagnosis fails; defaults of :class:`OverlapThresholds`.
        action_names: (A,) action names for the reasons (indices when empty).
    """
    limits = thresholds if thresholds is not None else OverlapThresholds()
    if segment.shape != (data.n_customers,):
        raise ValueError(f"segment must have shape ({data.n_customers},), got {segment.shape}")
    big_r = data.cumulative_ratio
    zero = data.ratio == 0
    rows = [_row("all", big_r, zero)]
    for k, name in enumerate(segment_names):
        members = segment == k
        if members.any():
            rows.append(_row(name, big_r[members], zero[members]))
    table = pd.DataFrame.from_records(rows)
    reasons = []
    overall = rows[0]
    if float(overall["ess_share"]) < limits.min_ess_share:
        reasons.append(
            f"effective sample size {float(overall['ess']):.1f} of {data.n_customers} customers "
            f"({100 * float(overall['ess_share']):.2f} %) is below {100 * limits.min_ess_share:g} %"
        )
    mean_error = abs(float(overall["weight_mean"]) - 1.0)
    final = big_r[:, -1]
    standard_error = (
        float(final.std(ddof=1)) / np.sqrt(final.shape[0]) if final.shape[0] > 1 else 0.0
    )
    if mean_error > limits.max_mean_weight_error and mean_error > 3.0 * standard_error:
        reasons.append(
            f"mean trajectory weight {float(overall['weight_mean']):.3f} is not close to 1: "
            "propensities or target probabilities are off, or the ESS is too small"
        )
    for row in rows[1:]:
        judged = float(row["customers"]) >= limits.min_segment_customers
        if judged and float(row["ess_share"]) < limits.min_ess_share:
            reasons.append(
                f"segment {row['segment']}: effective sample size share "
                f"{100 * float(row['ess_share']):.2f} % is below {100 * limits.min_ess_share:g} %"
            )
    actions = action_support(data, limits.min_action_share)
    short = actions["judged"].to_numpy(bool) & (
        actions["supporting"].to_numpy() < limits.min_action_support
    )
    for a in np.flatnonzero(short):
        reasons.append(
            f"action {_name(action_names, int(a))}: the target policy puts "
            f"{100 * float(actions['target_share'].iloc[a]):.1f} % of its decisions on it, but "
            f"only {int(actions['supporting'].iloc[a])} logged decisions took it where the "
            f"target would too (at least {limits.min_action_support} needed)"
        )
    return Diagnostics(table, not reasons, tuple(reasons), actions)


def _name(names: Sequence[str], index: int) -> str:
    return repr(names[index]) if index < len(names) else str(index)


def action_support(data: Trajectories, min_action_share: float) -> pd.DataFrame:
    """Per action: the target's share of probability mass, the logged decisions that took the
    action, and those among them the target supports (see :class:`Diagnostics.actions`)."""
    n_actions = data.target.shape[2]
    target_share = data.target.reshape(-1, n_actions).mean(axis=0)
    taken = data.action.reshape(-1)
    target_of_taken = np.take_along_axis(data.target, data.action[..., None], axis=2).reshape(-1)
    logged = np.bincount(taken, minlength=n_actions)
    supporting = np.bincount(taken, weights=target_of_taken > 0, minlength=n_actions)
    return pd.DataFrame(
        {
            "action": np.arange(n_actions),
            "target_share": target_share,
            "logged": logged.astype(np.int64),
            "supporting": supporting.astype(np.int64),
            "judged": target_share >= min_action_share,
        }
    )
