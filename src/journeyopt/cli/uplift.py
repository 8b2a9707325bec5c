"""``journeyopt-uplift``: the champion's real uplift over the A/B holdout, from new logs and the
decision log.

    journeyopt-uplift data=coworking data.path=logs/new decisions=serving/decisions \
        since=2024-03-04 output_dir=out/uplift
    journeyopt-uplift ... prediction.run_id=<champion's MLflow run id>

A thin shell over :func:`journeyopt.monitoring.jobs.measure_uplift`.
"""

from __future__ import annotations

from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from journeyopt.cli.entry import command, console, outputs_line, report_errors, to_object
from journeyopt.monitoring.config import UpliftJobConfig, register_configs
from journeyopt.monitoring.jobs import UpliftResult, measure_uplift
from journeyopt.outputs import refuse_inputs

register_configs()


def run(cfg: DictConfig) -> UpliftResult:
    """Validate the composed config, measure, print the overall uplift."""
    settings = to_object(cfg, UpliftJobConfig)
    if settings.data.path:
        settings.data.path = to_absolute_path(settings.data.path)
    settings.decisions = to_absolute_path(settings.decisions)
    settings.output_dir = to_absolute_path(settings.output_dir)
    refuse_inputs(
        {"output_dir": settings.output_dir},
        {"data.path": settings.data.path, "decisions": settings.decisions},
    )
    result = measure_uplift(settings)
    out = console()
    overall = result.table[result.table["grouping"] == "all"]
    out.print("uplift per customer-week, treatment minus control (95 % CI):")
    for row in overall.itertuples():
        out.print(
            f"  {row.outcome:12s} {row.uplift:+10.4f}  [{row.ci_low:+.4f}, {row.ci_high:+.4f}]"
        )
    for key, value in result.prediction.items():
        out.print(f"  {key:28s} {value:+.4f}")
    out.print(
        outputs_line(
            "report", result.output_dir, "uplift.md, uplift.png, uplift.csv", result.run_id
        )
    )
    return result


@command("uplift")
def main(cfg: DictConfig) -> None:
    """Entry point of ``journeyopt-uplift``."""
    report_errors(lambda: run(cfg))


if __name__ == "__main__":
    main()
