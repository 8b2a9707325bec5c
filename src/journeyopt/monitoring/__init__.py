"""Measuring the served policy: real uplift from the A/B holdout, drift between the
calibration window and the newest weeks, and the decision log read back as contacts."""
