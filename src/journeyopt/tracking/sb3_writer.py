"""Stable-baselines3's logger writing into a :class:`~journeyopt.tracking.logger.RunLogger`.

Kept apart from the logger so that importing tracking does not import SB3 and torch.
"""

from __future__ import annotations

from typing import Any

from stable_baselines3.common import logger as sb3_logger

from journeyopt.tracking.logger import RunLogger, is_number, sb3_metric_key

SB3_FORMAT = "mlflow"
"""Name of the SB3 output format: ``logger.record(key, value, exclude="mlflow")`` keeps a
value out of MLflow."""


class MlflowKVWriter(sb3_logger.KVWriter):
    """Stable-baselines3 output format (``KVWriter``) that hands SB3's values to a
    :class:`RunLogger`.

    Numbers become metrics at SB3's step (environment steps so far), named by
    :func:`sb3_metric_key`; an SB3 ``Figure`` becomes ``figures/<key>_<step>.png``; text,
    videos, images and hyperparameter records are skipped, as are values excluded with
    ``exclude="mlflow"``.
    """

    def __init__(self, run: RunLogger) -> None:
        self._run = run

    def write(
        self,
        key_values: dict[str, Any],
        key_excluded: dict[str, tuple[str, ...]],
        step: int = 0,
    ) -> None:
        metrics: dict[str, float] = {}
        for key, value in key_values.items():
            if SB3_FORMAT in (key_excluded.get(key) or ()):
                continue
            if isinstance(value, sb3_logger.Figure):
                self._write_figure(key, value, step)
            elif is_number(value):
                metrics[sb3_metric_key(key)] = float(value)
        self._run.log_metrics(metrics, step)

    def _write_figure(self, key: str, value: sb3_logger.Figure, step: int) -> None:
        name = key.replace("/", "_")
        self._run.log_figure(value.figure, f"figures/{name}_{step}.png")
        if value.close:
            import matplotlib.pyplot as plt

            plt.close(value.figure)

    def close(self) -> None:
        """Write what is buffered (SB3 calls this when its logger closes)."""
        self._run.flush()
