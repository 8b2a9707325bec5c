"""The never-ending loop: the weekly cycle (measure, detect drift, re-calibrate, re-train,
promote on evidence) and the closed-loop harness that tests it against a known truth."""
