"""``journeyopt-drift``: has the population, the action mix or the customers' response changed
between the calibration window and the newest weeks?

    journeyopt-drift data=coworking data.path=logs/new world=out/cw_world output_dir=out/drift
    journeyopt-drift ... reference.start=2023-01-02 reference.end=2023-07-03 current_weeks=4

A thin shell over :func:`journeyopt.monitoring.jobs.detect_drift`; exits 0 either way (the
verdict is in ``drift.json`` and the MLflow run's ``drift/detected``).
"""

from __future__ import annotations

from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from journeyopt.cli.entry import command, console, outputs_line, report_errors, to_object
from journeyopt.monitoring.config import DriftJobConfig, register_configs
from journeyopt.monitoring.drift import DriftFindings
from journeyopt.monitoring.jobs import detect_drift
from journeyopt.outputs import path_like, refuse_inputs

register_configs()


def run(cfg: DictConfig) -> DriftFindings:
    """Validate the composed config, check for drift, print the verdict and its reasons."""
    settings = to_object(cfg, DriftJobConfig)
    if settings.data.path:
        settings.data.path = to_absolute_path(settings.data.path)
    if settings.world and ("/" in settings.world or settings.world.endswith((".yaml", ".yml"))):
        settings.world = to_absolute_path(settings.world)
    settings.output_dir = to_absolute_path(settings.output_dir)
    refuse_inputs(
        {"output_dir": settings.output_dir},
        {"data.path": settings.data.path, "world": path_like(settings.world)},
    )
    findings, run_id = detect_drift(settings)
    out = console()
    out.print("drift detected" if findings.drift_detected else "no drift detected")
    for reason in findings.reasons:
        out.print(f"  - {reason}")
    out.print(
        outputs_line("report", settings.output_dir, "drift.md, drift.png, drift.json", run_id)
    )
    return findings


@command("drift")
def main(cfg: DictConfig) -> None:
    """Entry point of ``journeyopt-drift``."""
    report_errors(lambda: run(cfg))


if __name__ == "__main__":
    main()
