"""Gradient-boosted trees (LightGBM) over the discrete state and the action: the flexible
candidate of a binary response model (``calibration.response_model``).

The trees are boosted from the GLM's logit: the GLM fitted on the same weights is each row's
initial score, so the trees learn what the GLM's design cannot express (interactions of state
components it keeps apart, non-additive effects), and a tree-free model is the GLM itself.
The season stays the GLM's (an additive week-of-year shift): the trees read only the state
and the action, so the fitted model is ``GLM(state, action, week) + trees(state, action)`` and
tabulates exactly into the world's (state, action) tables plus the GLM's season vector
(:class:`~journeyopt.sim.world.FittedResponses`). The simulator, the DP optimum, off-policy
evaluation and the scorer read those tables, so they all read the same probabilities; the
trees themselves are not stored (their LightGBM text is kept in memory only while tabulating).

Training rows are the aggregated cells of :class:`~journeyopt.calibration.fit.Cells`: each
(state, action, week of year) cell gives one success row (weight: the summed weights of its
successes) and one failure row, so the weighted log-likelihood is the customer-weeks' own.
Fits are deterministic: one thread, no row or feature sampling, ``deterministic=True``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray

from journeyopt.calibration.config import LightGBMConfig
from journeyopt.calibration.fit import gamma_deviance, logit_loglik
from journeyopt.sim.discrete import DiscreteLayout, pattern_weeks

Float = NDArray[np.float64]
IntArray = NDArray[np.int64]

CATEGORICAL = ("segment", "optout", "last_action", "action")
"""Features without an order (LightGBM's categorical splits)."""

PREDICT_CHUNK = 1_000_000
"""Rows per prediction call when tabulating (bounds the feature matrix's memory)."""


def feature_names(layout: DiscreteLayout) -> tuple[str, ...]:
    """Column names of :func:`state_features`: the state's digits, the pattern's weeks one by
    one, and the action."""
    pattern = tuple(f"pattern_{k + 1}" for k in range(layout.spec.contact_pattern_weeks))
    digits = ("segment", "conversions", "recency", "contact", "engagement", "optout", "tenure")
    return (*digits, *pattern, "last_action", "gap", "lasting", "action")


def state_features(
    layout: DiscreteLayout, silent_channels: tuple[int, ...], state: IntArray, action: IntArray
) -> Float:
    """(m, F) features of ``m`` (state, action) pairs (states (m,) in ``layout``'s numbering):
    the decoded summary (:meth:`DiscreteLayout.decode`), the contact pattern's weeks as
    columns (0/1; by channel 0 or ``1 +`` the channel) and the action index. Opt-out bits of
    ``silent_channels`` (no action uses them) are cleared, as the GLM design leaves them out:
    declaring such a channel must not change the world. Components a layout does not keep are
    constant 0 (never split on)."""
    summary = layout.decode(state)
    m = state.shape[0]
    silent = sum(1 << j for j in silent_channels)

    def column(x: IntArray | int) -> Float:
        return np.broadcast_to(np.asarray(x, np.float64), (m,))

    pattern = np.broadcast_to(np.asarray(summary.pattern, np.int64), (m,))
    held = pattern_weeks(pattern, layout.spec, layout.n_channels).astype(np.float64)
    bits = [held[:, k] for k in range(layout.spec.contact_pattern_weeks)]
    columns = [
        column(summary.segment),
        column(summary.conversions),
        column(summary.recency),
        column(summary.contact),
        column(summary.engagement),
        column(np.asarray(summary.optout, np.int64) & ~silent),
        column(summary.tenure),
        *bits,
        column(summary.last_action),
        column(summary.gap),
        column(summary.lasting),  # weeks since the last lasting contact (0 without one)
        column(action),
    ]
    return np.ascontiguousarray(np.stack(columns, axis=1))


def _params(cfg: LightGBMConfig, seed: int) -> dict[str, object]:
    return {
        "objective": "binary",
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_data_in_leaf": cfg.min_data_in_leaf,
        "min_sum_hessian_in_leaf": cfg.min_sum_hessian_in_leaf,
        "lambda_l2": cfg.lambda_l2,
        "max_bin": cfg.max_bin,
        "min_data_per_group": cfg.min_data_in_leaf,
        "cat_l2": cfg.lambda_l2,
        "boost_from_average": False,  # the GLM's logit is the start
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": 1,  # the calibration's workers run fits side by side
        "seed": seed,
        "verbosity": -1,
    }


def _rows_dataset(
    x: Float, label: Float, weight: Float, offset: Float, names: tuple[str, ...]
) -> lgb.Dataset:
    """LightGBM's dataset of rows ``x`` (n, F) named ``names`` (the :data:`CATEGORICAL` ones
    declared categorical), with (n,) labels, weights and initial scores."""
    return lgb.Dataset(
        x,
        label=label,
        weight=weight,
        init_score=offset,
        feature_name=list(names),
        categorical_feature=[n for n in names if n in CATEGORICAL],
        free_raw_data=True,
    )


def _dataset(
    features: Float, positive: Float, negative: Float, offset: Float, names: tuple[str, ...]
) -> lgb.Dataset:
    """One success row and one failure row per cell with positive weight."""
    pos, neg = positive > 0, negative > 0
    x = np.concatenate([features[pos], features[neg]])
    y = np.concatenate([np.ones(int(pos.sum())), np.zeros(int(neg.sum()))])
    w = np.concatenate([positive[pos], negative[neg]])
    init = np.concatenate([offset[pos], offset[neg]])
    return _rows_dataset(x, y, w, init, names)


@dataclass(frozen=True)
class Trees:
    """Fitted trees: the logit added to the GLM's.

    Attributes:
        model: LightGBM's text format of the booster (in memory only; the world stores the
            tabulated probabilities).
        rounds: Number of trees.
    """

    model: str
    rounds: int

    def logit(self, features: NDArray[np.floating[Any]]) -> Float:
        """(m,) the trees' logit of (m, F) :func:`state_features` rows (0 without trees)."""
        out = np.zeros(features.shape[0])
        if self.rounds == 0:
            return out
        booster = lgb.Booster(model_str=self.model)
        for lo in range(0, features.shape[0], PREDICT_CHUNK):
            chunk = features[lo : lo + PREDICT_CHUNK]
            out[lo : lo + chunk.shape[0]] = booster.predict(chunk, raw_score=True, num_threads=1)
        return out


def fit_trees(
    features: Float,
    positive: Float,
    negative: Float,
    offset: Float,
    rounds: int,
    names: tuple[str, ...],
    cfg: LightGBMConfig,
    seed: int,
) -> Trees:
    """``rounds`` trees on cells: (c, F) features, (c,) summed success and failure weights,
    (c,) the GLM's logit of each cell (the initial score)."""
    if rounds == 0 or positive.sum() <= 0 or negative.sum() <= 0:
        return Trees("", 0)
    train = _dataset(features, positive, negative, offset, names)
    booster = lgb.train(_params(cfg, seed), train, num_boost_round=rounds)
    return Trees(booster.model_to_string(), rounds)


def choose_rounds(
    features: Float,
    train: tuple[Float, Float, Float],
    inner: tuple[Float, Float, Float],
    names: tuple[str, ...],
    cfg: LightGBMConfig,
    seed: int,
) -> int:
    """Trees by early stopping on an inner split: fitted on ``train`` cells' (positive,
    negative, GLM logit), the log-loss of ``inner`` cells' followed round by round until it
    has not improved for ``cfg.patience`` rounds; 0 when no round beats the GLM alone."""
    pos, neg, offset = train
    if pos.sum() <= 0 or neg.sum() <= 0 or inner[0].sum() + inner[1].sum() <= 0:
        return 0
    i_pos, i_neg, i_off = inner
    glm = -logit_loglik(i_off, i_pos, i_neg)  # the GLM alone: its log-loss per unit weight
    return _early_stopped_rounds(
        {**_params(cfg, seed), "metric": "binary_logloss"},
        _dataset(features, pos, neg, offset, names),
        _dataset(features, *inner, names),
        "binary_logloss",
        glm,
        cfg,
    )


def _early_stopped_rounds(
    params: dict[str, Any],
    train_set: lgb.Dataset,
    valid_set: lgb.Dataset,
    metric: str,
    glm_loss: float,
    cfg: LightGBMConfig,
    feval: Any = None,
) -> int:
    """Rounds with the least ``metric`` on ``valid_set`` (early stopping after
    ``cfg.patience`` rounds without improvement); 0 when none is below ``glm_loss``, the GLM
    alone's loss on the same cells."""
    history: dict[str, dict[str, list[float]]] = {}
    lgb.train(
        params,
        train_set,
        num_boost_round=cfg.max_rounds,
        valid_sets=[valid_set],
        valid_names=["inner"],
        feval=feval,
        callbacks=[
            lgb.early_stopping(cfg.patience, verbose=False),
            lgb.record_evaluation(history),
        ],
    )
    losses = np.asarray(history["inner"][metric], np.float64)
    best = int(np.argmin(losses))
    return best + 1 if losses[best] < glm_loss else 0


def _value_dataset(
    features: Float, mean: Float, weight: Float, offset: Float, names: tuple[str, ...]
) -> lgb.Dataset:
    """One row per state with positive weight: its weighted mean list value (the Gamma
    log-link gradient and Hessian are linear in the value, so this is the rows' own fit)."""
    keep = (weight > 0) & (mean > 0)
    return _rows_dataset(features[keep], mean[keep], weight[keep], offset[keep], names)


def fit_value_trees(
    features: Float,
    value: tuple[Float, Float, Float],
    rounds: int,
    names: tuple[str, ...],
    cfg: LightGBMConfig,
    seed: int,
) -> Trees:
    """``rounds`` trees of the log mean list value (Gamma deviance) on states' (features (c,
    F); mean value, summed weight and the GLM's log mean, each (c,))."""
    mean, weight, offset = value
    if rounds == 0 or not ((weight > 0) & (mean > 0)).any():
        return Trees("", 0)
    train = _value_dataset(features, mean, weight, offset, names)
    params = {**_params(cfg, seed), "objective": "gamma"}
    return Trees(lgb.train(params, train, num_boost_round=rounds).model_to_string(), rounds)


def choose_value_rounds(
    features: Float,
    train: tuple[Float, Float, Float],
    inner: tuple[Float, Float, Float],
    names: tuple[str, ...],
    cfg: LightGBMConfig,
    seed: int,
) -> int:
    """Trees of the value model by early stopping on an inner split's Gamma deviance (as
    :func:`choose_rounds`); 0 when no round beats the GLM alone."""
    mean, weight, offset = inner
    keep = (weight > 0) & (mean > 0)
    if not keep.any() or not ((train[1] > 0) & (train[0] > 0)).any():
        return 0

    def deviance(mu: Float, data: lgb.Dataset) -> tuple[str, float, bool]:
        """The weighted mean deviance (``mu``: the predicted means, initial score included)."""
        y, w = np.asarray(data.get_label()), np.asarray(data.get_weight())
        return "deviance", gamma_deviance(y, np.log(mu), w), False

    return _early_stopped_rounds(
        {**_params(cfg, seed), "objective": "gamma", "metric": "None"},
        _value_dataset(features, *train, names),
        _value_dataset(features, *inner, names),
        "deviance",
        gamma_deviance(mean[keep], offset[keep], weight[keep]),
        cfg,
        feval=deviance,
    )
