"""What a training run reports: final ``eval/`` metrics, the learning curve, the action mix
by lifecycle stage.

Plots are matplotlib figures; the caller logs or saves them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from numpy.typing import NDArray

from journeyopt.agents.callbacks import EvalPoint
from journeyopt.agents.policy import Bool, Float, IntArray, Observation, Policy
from journeyopt.evaluation.simulate import EvaluationResult, mean_ci
from journeyopt.panel.state import LIFECYCLE_STAGES


@dataclass
class ActionMixRecorder:
    """A :class:`~journeyopt.agents.policy.Policy` that passes ``inner``'s choices through and
    counts the carried-out actions (a forbidden choice counts as ``none``) per lifecycle stage.

    Attributes:
        inner: The recorded policy.
        n_actions: ``A``.
        counts: (stages, A) customer-weeks per lifecycle stage and carried-out action.
    """

    inner: Policy
    n_actions: int
    counts: NDArray[np.int64] = field(init=False)

    def __post_init__(self) -> None:
        self.counts = np.zeros((len(LIFECYCLE_STAGES), self.n_actions), np.int64)

    @property
    def name(self) -> str:
        return self.inner.name

    def act(
        self, observation: Observation, masks: Bool, rng: np.random.Generator
    ) -> tuple[IntArray, Float]:
        actions, probabilities = self.inner.act(observation, masks, rng)
        carried = np.where(masks[np.arange(actions.shape[0]), actions], actions, 0)
        stage = np.asarray(observation.features["lifecycle"], np.int64)
        np.add.at(self.counts, (stage, carried), 1)
        return actions, probabilities


def _row(result: EvaluationResult, policy: str) -> dict[str, float]:
    table = result.table
    rows = table[(table["policy"] == policy) & (table["segment"] == "all")]
    if rows.empty:
        raise ValueError(f"no evaluation of policy {policy!r}")
    record = rows.iloc[0].to_dict()
    return {str(k): float(v) for k, v in record.items() if k not in ("policy", "segment")}


def paired_uplift(result: EvaluationResult, policy: str, reference: str) -> tuple[float, ...]:
    """Mean paired value difference ``policy - reference`` per customer, currency, with its
    95 % confidence interval: ``(mean, low, high)``."""
    runs = {r.name: r for r in result.runs}
    return mean_ci(runs[policy].value - runs[reference].value)


def final_metrics(result: EvaluationResult, policy: str) -> dict[str, float]:
    """The final ``eval/`` metrics of ``policy`` over all customers.

    ``value_*`` and ``uplift_*`` are discounted currency per customer; ``revenue`` and
    ``cost`` (contact plus discount cost) undiscounted currency per customer over the horizon;
    rates per customer-week (contacts, forbidden actions) or per customer (opt-out).
    Uplifts are paired (same customers, same random numbers) against ``staff_rules`` (today's
    practice, ``evaluation.staff``: estimated from the logs or hand-written),
    ``myopic`` and ``optimum`` when they were evaluated (``uplift_vs_optimum`` is the gap to
    the simulated optimum, without the sampling noise of ``pct_of_optimum``).
    """
    row = _row(result, policy)
    metrics = {
        "eval/value_mean": row["value"],
        "eval/value_ci_low": row["value_ci_low"],
        "eval/value_ci_high": row["value_ci_high"],
        "eval/pct_of_optimum": row["pct_of_optimum"],
        "eval/contacts_per_customer_week": row["contacts_per_customer_week"],
        "eval/opt_out_rate": row["optout_rate"],
        "eval/revenue": row["revenue"],
        "eval/cost": row["contact_cost"] + row["discount_cost"],
        "eval/contact_cost": row["contact_cost"],
        "eval/discount_cost": row["discount_cost"],
        "eval/forbidden_action_rate": row["forbidden_per_customer"] / result.horizon_weeks,
    }
    names = {r.name for r in result.runs}
    for reference, key in (("staff_rules", "staff"), ("myopic", "myopic"), ("optimum", "optimum")):
        if reference in names and reference != policy:
            mean, low, high = paired_uplift(result, policy, reference)
            metrics[f"eval/uplift_vs_{key}"] = mean
            metrics[f"eval/uplift_vs_{key}_ci_low"] = low
            metrics[f"eval/uplift_vs_{key}_ci_high"] = high
    return metrics


def learning_curve_figure(points: Sequence[EvalPoint], title: str) -> Figure:
    """% of the exact optimum against wall-clock seconds of training."""
    fig, ax = plt.subplots(figsize=(6, 4))
    seconds = [p.wall_seconds for p in points]
    ax.plot(seconds, [p.pct_of_optimum for p in points], marker="o", markersize=3)
    ax.axhline(100.0, color="tab:red", linestyle="--", label="exact optimum")
    ax.set_xlabel("wall-clock seconds of training")
    ax.set_ylabel("% of optimum (evaluation population)")
    ax.set_title(title)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def action_mix_figure(counts: NDArray[np.int64], action_names: Sequence[str], title: str) -> Figure:
    """Stacked bars: share of each carried-out action per lifecycle stage."""
    fig, ax = plt.subplots(figsize=(6, 4))
    totals = counts.sum(axis=1, keepdims=True)
    shares = counts / np.where(totals > 0, totals, 1)
    bottom = np.zeros(counts.shape[0])
    for a, name in enumerate(action_names):
        ax.bar(LIFECYCLE_STAGES, shares[:, a], bottom=bottom, label=name)
        bottom += shares[:, a]
    ax.set_ylabel("share of customer-weeks")
    ax.set_title(title)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig
