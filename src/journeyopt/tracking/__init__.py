"""Experiment tracking with MLflow: one metrics logger, runs that never stay RUNNING, the
policy as a pyfunc model, and the policy registry.

Training code uses :func:`tracked_run` and the :class:`RunLogger` it yields; with
``tracking=off`` the same calls write nothing.
"""

from __future__ import annotations

from journeyopt.tracking.config import TrackingConfig, register_configs
from journeyopt.tracking.logger import NAMESPACES, RunLogger
from journeyopt.tracking.model import (
    LinearSoftmaxPolicy,
    PolicySpec,
    ServablePolicy,
    load_policy_model,
    log_policy_model,
)
from journeyopt.tracking.registry import CHALLENGER, CHAMPION, PolicyRegistry, ResolvedVersion
from journeyopt.tracking.run import RunTerminated, child_runs_of, tracked_run
from journeyopt.tracking.tags import fingerprint_files, run_tags

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "NAMESPACES",
    "LinearSoftmaxPolicy",
    "PolicyRegistry",
    "PolicySpec",
    "ResolvedVersion",
    "RunLogger",
    "RunTerminated",
    "ServablePolicy",
    "TrackingConfig",
    "child_runs_of",
    "fingerprint_files",
    "load_policy_model",
    "log_policy_model",
    "register_configs",
    "run_tags",
    "tracked_run",
]
