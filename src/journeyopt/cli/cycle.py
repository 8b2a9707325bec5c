"""``journeyopt-cycle``: the weekly job a scheduler (cron, Airflow) calls.

    journeyopt-cycle week=2024-03-11 data.path=work/logs decisions=work/decisions \
        work_dir=work/cycles

See :mod:`journeyopt.loop.cycle` and ``docs/cycle.md``. Exit codes: 0 done (or already done
for this week and data), 2 a step failed or bad input (the message names the step; the
champion is unchanged).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from journeyopt.cli.entry import command, log, report_errors, to_object
from journeyopt.loop.config import CycleConfig, register_configs
from journeyopt.loop.cycle import CycleResult, run_cycle
from journeyopt.outputs import check_writable, output_errors, refuse_inputs


def describe(result: CycleResult) -> str:
    """One line on what the cycle did."""
    r = result.record
    if result.already_done:
        return (
            f"cycle {r.week} already done for this data (fingerprint {r.fingerprint[:12]}, "
            f"run {r.run_id or '-'}): nothing changed"
        )
    what = "re-trained" if r.retrained else "no re-training"
    promotion = (
        f"; version {r.candidate} {'promoted' if r.promoted else 'refused by the gate'}"
        if r.candidate
        else ""
    )
    rollout = f"; staged rollout: {r.rollout}" if r.rollout else ""
    return (
        f"cycle {r.week}{rollout}; drift "
        f"{'detected' if r.drift_detected else 'not detected'}; {what} "
        f"({'; '.join(r.reasons)}){promotion}; champion {r.champion or 'none'}; "
        f"run {r.run_id or '-'}; outputs in {result.folder}"
    )


def run(cfg: DictConfig) -> CycleResult:
    """Validate the composed config and run the cycle."""
    settings = to_object(cfg, CycleConfig)
    refuse_inputs(
        {"work_dir": settings.work_dir},
        {"data.path": settings.data.path, "decisions": settings.decisions},
    )
    check_writable(settings.work_dir, label="work_dir")
    with output_errors(Path(settings.work_dir), label="work_dir"):
        result = run_cycle(settings)
    log.info("%s", describe(result))
    print(describe(result))
    return result


@command("cycle")
def main(cfg: DictConfig) -> None:
    """Entry point of ``journeyopt-cycle``."""
    report_errors(lambda: run(cfg))


register_configs()
