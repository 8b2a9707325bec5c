r"""``journeyopt-compare``: trained policies from MLflow and the baselines, side by side.

    journeyopt-compare runs=[3f2a9c...,81be04...]                  # training runs' policies
    journeyopt-compare models=[models:/journey-policy@champion]    # registered versions
    journeyopt-compare "search=\"tags.journeyopt.agent = 'MaskablePPO'\""

A thin shell over :func:`journeyopt.evaluation.compare.compare`: every policy meets the same
customers and random numbers; one parent run with a child run per policy is logged (same
``eval/`` metric names as training runs), with the comparison table and chart.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from rich.table import Table

from journeyopt.cli.entry import command, console, report_errors, to_object, value_cells
from journeyopt.evaluation.compare import CompareConfig, Comparison, compare, register_configs
from journeyopt.outputs import check_simulation_output

register_configs()


def summary(result: Comparison) -> Table:
    """Value, % of optimum and paired uplift vs today's practice of every policy, as a rich
    table."""
    table = Table(title="comparison on common random numbers (value per customer)")
    columns = ("policy", "kind", "value", "95 % CI", "% of optimum", "uplift vs today's practice")
    for column in columns:
        table.add_column(column, justify="left" if column in ("policy", "kind") else "right")
    for rec in result.table.to_dict("records"):
        cells = value_cells(
            float(rec["eval/value_mean"]),
            float(rec["eval/value_ci_low"]),
            float(rec["eval/value_ci_high"]),
            float(rec["eval/pct_of_optimum"]),
            float(rec.get("eval/uplift_vs_staff", float("nan"))),
        )
        table.add_row(str(rec["policy"]), str(rec["kind"]), *cells)
    return table


def run(cfg: DictConfig) -> Comparison:
    """Compare with the composed config; print the summary."""
    settings = to_object(cfg, CompareConfig)
    if not settings.output_dir:
        settings.output_dir = str(Path(HydraConfig.get().runtime.output_dir) / "comparison")
    check_simulation_output(settings.output_dir, settings.overwrite, settings.simulator.world)
    result = compare(settings)
    out = console()
    out.print(summary(result))
    parent = result.parent_run_id or "(tracking off)"
    out.print(f"outputs in {result.output_dir}; MLflow parent run {parent}")
    return result


@command("compare")
def main(cfg: DictConfig) -> None:
    report_errors(lambda: run(cfg))
