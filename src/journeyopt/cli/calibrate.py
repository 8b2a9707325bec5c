"""``journeyopt-calibrate``: logs -> a calibrated world and its fidelity card.

    journeyopt-calibrate data=coworking data.path=logs/cw output_dir=out/cw_world
    journeyopt-calibrate data=cdnow_sample calibration=cdnow output_dir=out/cdnow_world

A thin shell over :func:`journeyopt.calibration.pipeline.calibrate`.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from journeyopt.calibration.config import CalibrateConfig, register_configs
from journeyopt.calibration.cycles import found_line
from journeyopt.calibration.export import export_target
from journeyopt.calibration.pipeline import CalibrationResult, calibrate
from journeyopt.cli.entry import command, console, outputs_line, report_errors, to_object
from journeyopt.outputs import path_like, refuse_inputs
from journeyopt.panel.suggest import LapseSuggestion, derived_line

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
    lapse = result.estimate.calibrated.meta.get("lapse_weeks", {})
    if lapse.get("from_logs"):  # panel.lapse_weeks: null, read off the logs
        found = {f.name: lapse[f.name] for f in fields(LapseSuggestion)}
        out.print(derived_line(LapseSuggestion(**found)), highlight=False, soft_wrap=True)
    out.print(
        outputs_line("calibrated world", result.output_dir, "card.md, card.png", result.run_id)
    )
    if result.exported is not None:
        out.print(f"exported to {result.exported}: simulator.world={result.exported.name}")
    return result


@command("calibrate")
def main(cfg: DictConfig) -> None:
    """Entry point of ``journeyopt-calibrate``."""
    report_errors(lambda: run(cfg))


if __name__ == "__main__":
    main()
