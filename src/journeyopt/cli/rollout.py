"""``journeyopt-rollout status|advance|rollback``: the staged rollout of the champion, for users
without the weekly cycle (which runs ``advance`` itself every week).

    journeyopt-rollout status data=<source> panel=<windows> data.path=logs/new decisions=d/
    journeyopt-rollout advance data=<source> panel=<windows> data.path=logs/new decisions=d/ \
        output_dir=out/r
    journeyopt-rollout rollback reason="complaints about the new offer"

``status`` and ``advance`` measure the canary on the logs (``data`` and ``panel`` required);
a ``rollback`` acts on the registry alone and needs neither.

A thin shell over :func:`journeyopt.monitoring.rollout_job.run_rollout`. Exit codes: 0 done, 2
bad input (one line naming the problem).
"""

from __future__ import annotations

import sys

from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from journeyopt.cli.entry import command, console, report_errors, to_object
from journeyopt.monitoring.config import ROLLOUT_COMMANDS, RolloutJobConfig, register_configs
from journeyopt.monitoring.rollout import exposure_stage
from journeyopt.monitoring.rollout_job import RolloutReport, run_rollout
from journeyopt.outputs import refuse_inputs
from journeyopt.serving.config import RolloutConfig

register_configs()


def describe(report: RolloutReport, settings: RolloutConfig | None = None) -> list[str]:
    """The lines printed: the state, each comparison with its confidence sequence (and, given
    ``serve.rollout``, which decisions its exposure allows), the verdict and what was done."""
    before, after = report.before, report.after
    lines = [
        f"champion version {before.champion}: stage {before.stage}"
        + (
            f", canary on {before.canary_share:.0%} of treatment, previous version "
            f"{before.previous}"
            if before.previous
            else ""
        )
    ]
    verdict = report.verdict
    if verdict is not None:
        for c in (verdict.vs_previous, verdict.vs_control):
            if c is not None:
                lines.append(
                    f"  canary - {c.against:8s} {c.estimate:+10.4f} per customer-week, "
                    f"always-valid [{c.low:+.4f}, {c.high:+.4f}]; {c.canary_customers} vs "
                    f"{c.other_customers} customers, {c.exposure:.0f} customer-weeks"
                )
                if settings is not None:
                    lines.append(f"    {exposure_stage(c, settings)}")
        lines.append(f"verdict: {verdict.decision} ({'; '.join(verdict.reasons)})")
    if report.command != "status":
        lines.append(
            f"done: {report.acted}; champion version {after.champion} ({after.stage}); "
            f"MLflow run {report.run_id or '-'}"
        )
    return lines


def run(cfg: DictConfig) -> RolloutReport:
    """Validate the composed config, run the command, print what it found and did."""
    settings = to_object(cfg, RolloutJobConfig)
    if settings.data is not None and settings.data.path:
        settings.data.path = to_absolute_path(settings.data.path)
    if settings.decisions:
        settings.decisions = to_absolute_path(settings.decisions)
    if settings.output_dir:
        settings.output_dir = to_absolute_path(settings.output_dir)
        refuse_inputs(
            {"output_dir": settings.output_dir},
            {
                "data.path": settings.data.path if settings.data is not None else "",
                "decisions": settings.decisions,
            },
        )
    report = run_rollout(settings)
    out = console()
    for line in describe(report, settings.serve.rollout):
        out.print(line, highlight=False)
    return report


@command("rollout")
def hydra_main(cfg: DictConfig) -> None:
    """Hydra's entry point (the command as ``command=<status|advance|rollback>``)."""
    report_errors(lambda: run(cfg))


def main() -> None:
    """Entry point of ``journeyopt-rollout``: a first word ``status``, ``advance`` or
    ``rollback`` is the command."""
    if len(sys.argv) > 1 and sys.argv[1] in ROLLOUT_COMMANDS:
        sys.argv[1] = f"command={sys.argv[1]}"
    hydra_main()


if __name__ == "__main__":
    main()
