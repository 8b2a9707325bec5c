"""``journeyopt-calibrate``: logs -> a calibrated world and its fidelity card.

    journeyopt-calibrate data=coworking data.path=logs/cw output_dir=out/cw_world
    journeyopt-calibrate data=cdnow_sample calibration=cdnow output_dir=out/cdnow_world

A thin shell over :func:`journeyopt.calibration.pipeline.calibrate`.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from journeyopt.calibration.config import CalibrateConfig, register_configs
from journeyopt.calibration.cycles import found_line
from journeyopt.calibration.export import export_target
from journeyopt.calibration.pipeline import CalibrationResult, calibrate
from journeyopt.cli.entry import console, report_errors, to_object
from journeyopt.outputs import path_like, refuse_inputs

register_configs()


def run(cfg: DictConfig) -> CalibrationResult:
    """Validate the composed config, calibrate, print the fidelity numbers."""
    settings = to_object(cfg, CalibrateConfig)
    if settings.data.path:
        settings.data.path = to_absolute_path(settings.data.path)
    settings.output_dir = str(Path(to_absolute_path(settings.output_dir)))
    exported = export_target(settings.export, settings.export_dir) if settings.export else None
    refuse_inputs(
        {"output_dir": settings.output_dir, "export": exported},
        {
            "data.path": settings.data.path,
            "calibration.truth_world": path_like(settings.calibration.truth_world),
        },
    )
    result = calibrate(settings)
    out = console()
    for key, value in sorted(result.metrics.items()):
        out.print(f"{key:45s} {value:10.4f}")
    if cycles := found_line(result.estimate.calibrated.meta.get("practice_cycles", {})):
        out.print(cycles)  # calibration.practice_cycles_weeks: null, read off the logs
    out.print(
        f"calibrated world in {result.output_dir} (card.md, card.png); "
        f"MLflow run {result.run_id or '(tracking off)'}"
    )
    if result.exported is not None:
        out.print(f"exported to {result.exported}: simulator.world={result.exported.name}")
    return result


@hydra.main(version_base="1.3", config_path="../configs", config_name="calibrate")
def main(cfg: DictConfig) -> None:
    """Entry point of ``journeyopt-calibrate``."""
    report_errors(lambda: run(cfg))


if __name__ == "__main__":
    main()
