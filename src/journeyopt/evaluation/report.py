"""Write an :class:`~journeyopt.evaluation.simulate.EvaluationResult`: CSV, Markdown, PNG chart."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

from journeyopt.outputs import staged_output_dir

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from journeyopt.evaluation.simulate import EvaluationResult

CSV_NAME, MARKDOWN_NAME, CHART_NAME = "evaluation.csv", "evaluation.md", "evaluation.png"


def _ci(mean: float, low: float, high: float, digits: int = 0) -> str:
    if math.isnan(mean):
        return "–"
    half = (high - low) / 2
    return f"{mean:,.{digits}f} ± {half:,.{digits}f}"


def markdown_table(table: pd.DataFrame, currency: str) -> str:
    """A Markdown table of the evaluation: one line per policy and customer type."""
    header = (
        f"| policy | customers | value per customer ({currency}, 95 % CI) | % of optimum "
        f"| uplift vs today's practice ({currency}, paired 95 % CI) | contacts per customer-week "
        f"| opt-out rate | revenue ({currency}) | contact cost ({currency}) "
        f"| discount cost ({currency}) |"
    )
    lines = [header, "|" + "---|" * 10]
    for segment, rows in table.groupby("segment", sort=False):
        if segment != "all":
            lines.append(f"| ***{segment}*** | | | | | | | | | |")
        for rec in rows.to_dict("records"):
            r = {k: v for k, v in rec.items() if k not in ("policy", "segment")}
            f = {k: float(v) for k, v in r.items()}
            lines.append(
                f"| {rec['policy']} | {int(f['customers']):,} "
                f"| {_ci(f['value'], f['value_ci_low'], f['value_ci_high'])} "
                f"| {f['pct_of_optimum']:.1f} % "
                f"| {_ci(f['uplift'], f['uplift_ci_low'], f['uplift_ci_high'])} "
                f"| {f['contacts_per_customer_week']:.3f} | {100 * f['optout_rate']:.1f} % "
                f"| {f['revenue']:,.0f} | {f['contact_cost']:,.1f} | {f['discount_cost']:,.1f} |"
            )
    return "\n".join(lines) + "\n"


def chart(result: EvaluationResult, path: Path) -> None:
    """Bar chart of the value per customer (95 % CI) by policy, all customers and by type,
    with the exact optimum as a marker."""
    table = result.table
    segments = list(dict.fromkeys(table["segment"]))
    policies = list(dict.fromkeys(table["policy"]))
    fig, axes = plt.subplots(1, len(segments), figsize=(3.2 * len(segments), 4), squeeze=False)
    for ax, segment in zip(axes[0], segments, strict=True):
        rows = table[table["segment"] == segment].set_index("policy").loc[policies]
        err = [rows["value"] - rows["value_ci_low"], rows["value_ci_high"] - rows["value"]]
        ax.bar(range(len(policies)), rows["value"], yerr=err, color="tab:blue", capsize=3)
        exact = rows["value"] / rows["pct_of_optimum"] * 100.0
        ax.axhline(float(exact.iloc[0]), color="tab:red", linestyle="--", label="exact optimum")
        ax.set_xticks(range(len(policies)), policies, rotation=45, ha="right")
        ax.set_title(str(segment))
    axes[0][0].set_ylabel("discounted value per customer")
    axes[0][0].legend(loc="upper left", fontsize="small")
    fig.suptitle(
        f"{result.horizon_weeks} weeks, gamma {result.gamma}, "
        f"{result.segment.shape[0]:,} customers, seed {result.seed}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def optimum_note(result: EvaluationResult) -> str:
    """The contact rules the exact optimum planned under and those it did not see (applied to
    its actions by the guard only), as Markdown lines after the table."""
    lines = [f"\nThe exact optimum planned under the contact rules: {result.optimum_rules}.\n"]
    if result.optimum_unseen_rules:
        lines.append(
            "It could not plan under (the discrete summary cannot evaluate them; the guard "
            "applies them to its actions, and % of optimum ignores them):\n"
        )
        lines += [f"- {line}\n" for line in result.optimum_unseen_rules]
    return "".join(lines)


def write_evaluation(
    result: EvaluationResult, output_dir: Path | str, overwrite: bool = False, *, currency: str
) -> Path:
    """Write ``evaluation.csv``, ``evaluation.md`` and ``evaluation.png`` into ``output_dir``;
    refuses a non-empty folder unless ``overwrite``. ``currency``: the world's
    (``WorldSpec.currency``), for the table's headers."""
    with staged_output_dir(output_dir, overwrite) as out:
        result.table.to_csv(out / CSV_NAME, index=False)
        text = markdown_table(result.table, currency) + optimum_note(result)
        (out / MARKDOWN_NAME).write_text(text, encoding="utf-8")
        chart(result, out / CHART_NAME)
    return Path(output_dir)
