"""What was predicted for the champion when it was promoted, read from its MLflow run, in the
units of the realised uplift.

Training and promotion runs log the champion's simulated uplift over the staff rules as a
discounted value per customer over a horizon (``eval/uplift_vs_staff``, currency; see
:func:`journeyopt.agents.report.final_metrics`). Spread evenly over the horizon it is a margin
per customer-week: ``value / sum_{t < H} gamma^t``, comparable with the realised uplift of
``margin`` per customer-week measured on the holdout.
"""

from __future__ import annotations

import pandas as pd
from mlflow.exceptions import MlflowException

from journeyopt.errors import JourneyoptError
from journeyopt.monitoring.config import PredictionConfig
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.run import open_client


def discounted_weeks(horizon_weeks: int, gamma: float) -> float:
    """``sum_{t < H} gamma^t``: the weight of one unit per week over the horizon, weeks."""
    if gamma == 1.0:
        return float(horizon_weeks)
    return float((1.0 - gamma**horizon_weeks) / (1.0 - gamma))


def predicted_margin_uplift(
    tracking: TrackingConfig, prediction: PredictionConfig, realised: pd.Series
) -> dict[str, float]:
    """Predicted vs realised margin uplift per customer-week.

    Args:
        tracking: Where the prediction run lives.
        prediction: The run, metric, and (or else the run's params) horizon and discount.
        realised: The overall ``margin`` row of the uplift table (``uplift``, ``ci_low``,
            ``ci_high``).

    Returns:
        ``predicted_margin``, ``predicted_margin_ci_low`` / ``_ci_high`` (when the run logged
        them), ``realised_margin``, ``realised_minus_predicted``, and
        ``prediction_within_ci`` (1.0 if the prediction lies in the realised interval).

    Raises:
        JourneyoptError: The run or metric does not exist, or the horizon is unknown.
    """
    if not tracking.enabled:
        raise JourneyoptError("prediction.run_id needs tracking: it is read from MLflow")
    client = open_client(tracking)
    try:
        run = client.get_run(prediction.run_id)
    except MlflowException as err:
        raise JourneyoptError(
            f"prediction.run_id {prediction.run_id!r}: no such run in "
            f"{tracking.resolved_tracking_uri()}"
        ) from err
    metrics, params = run.data.metrics, run.data.params
    if prediction.metric not in metrics:
        known = sorted(k for k in metrics if k.startswith("eval/"))
        raise JourneyoptError(
            f"run {prediction.run_id} has no metric {prediction.metric!r}; its eval/ metrics: "
            f"{known}"
        )
    horizon = prediction.horizon_weeks or int(params.get("simulator.horizon_weeks", 0))
    gamma = prediction.gamma or float(params.get("simulator.gamma", 0.0))
    if horizon < 1 or not 0.0 < gamma <= 1.0:
        raise JourneyoptError(
            f"run {prediction.run_id} records no simulator.horizon_weeks / simulator.gamma: "
            "set prediction.horizon_weeks and prediction.gamma"
        )
    scale = discounted_weeks(horizon, gamma)
    result = {"predicted_margin": metrics[prediction.metric] / scale}
    for end in ("ci_low", "ci_high"):
        key = f"{prediction.metric}_{end}"
        if key in metrics:
            result[f"predicted_margin_{end}"] = metrics[key] / scale
    value = float(realised["uplift"])
    low, high = float(realised["ci_low"]), float(realised["ci_high"])
    result["realised_margin"] = value
    result["realised_minus_predicted"] = value - result["predicted_margin"]
    result["prediction_within_ci"] = float(low <= result["predicted_margin"] <= high)
    return result
