"""Calibration: fit a world's response models from a source's logs (through the weekly panel)
and check the fit: ``calibrate(cfg) -> CalibrationResult``
(:mod:`journeyopt.calibration.pipeline`)."""
