"""The response models of a calibrated world, fitted from customer-weeks and tabulated over
every discrete state and action (:class:`~journeyopt.sim.world.FittedResponses`).

- conversion: P(at least one conversion | state, action, week of year), logistic;
- engagement: P(at least one engagement event | state, action, week of year), logistic;
- opt-out: P(opt-out | state, action) on the contacted weeks only, logistic;
- value: E[list value | state] of a converting week, Gamma GLM with log link (a discount's
  price cut is undone before fitting, so the value is the list value the world samples),
  without the confounding weights (it has no action term).

:func:`fit_models` chooses each model's penalty on held-out customers and fits it on all
customers (the point estimate); :func:`refit_models` refits with the chosen penalties on a
bootstrap resample of customers (an ensemble member).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from journeyopt.calibration.design import N_WEEKS_OF_YEAR, Design
from journeyopt.calibration.fit import (
    Cells,
    LinearFit,
    choose_gamma,
    choose_logistic,
    fit_gamma,
    fit_logistic,
)
from journeyopt.calibration.weeks import CustomerWeeks
from journeyopt.parallel import run_tasks
from journeyopt.sim.discrete import DiscreteLayout
from journeyopt.sim.world import FittedResponses

Float = NDArray[np.float64]
IntArray = NDArray[np.int64]
Bool = NDArray[np.bool_]

BINARY_MODELS: tuple[str, ...] = ("convert", "engage", "optout")


@dataclass(frozen=True)
class FitData:
    """Everything the fits need, computed once from the customer-weeks.

    Attributes:
        design: Column layout.
        cells: Unique (state, action, week of year) design rows of all customer-weeks.
        contacted: (M,) the week's action is a contact (the opt-out model's rows).
        value_matrix: (V, p) design of the converting weeks (action ``none``: the value does
            not depend on the contact).
        value_rows: (V,) their customer-week indices.
        value_cells: Unique discrete states of the converting weeks (the value model's rows).
        weeks: The customer-weeks.
        weight: (M,) confounding weights (of the binary models; not of the value model).
    """

    design: Design
    cells: Cells
    contacted: Bool
    value_matrix: sp.csr_matrix
    value_rows: IntArray
    value_cells: Cells
    weeks: CustomerWeeks
    weight: Float

    @staticmethod
    def of(weeks: CustomerWeeks, design: Design, weight: Float) -> FitData:
        layout = design.layout
        woy = np.clip(weeks.week_of_year, 1, N_WEEKS_OF_YEAR) if design.seasonal else 0 * weeks.week
        keys = (weeks.state * design.n_actions + weeks.action) * (N_WEEKS_OF_YEAR + 1) + woy

        def build(first: IntArray) -> sp.csr_matrix:
            summary = layout.decode(weeks.state[first])
            return design.matrix(summary, weeks.action[first], weeks.week_of_year[first])

        cells = Cells.of(keys, build)
        value_rows = np.flatnonzero(weeks.converted & (weeks.list_value > 0))
        value_matrix = design.matrix(
            layout.decode(weeks.state[value_rows]), np.zeros(value_rows.shape[0], np.int64)
        )
        value_cells = Cells.of(
            weeks.state[value_rows],
            lambda first: value_matrix[first],
        )
        return FitData(
            design, cells, weeks.action > 0, value_matrix, value_rows, value_cells, weeks, weight
        )

    def outcome(self, name: str) -> tuple[Bool, Bool]:
        """(M,) outcome and (M,) rows a binary model is fitted on."""
        w = self.weeks
        if name == "convert":
            return w.converted, np.ones(w.n, bool)
        if name == "engage":
            return w.engaged, np.ones(w.n, bool)
        return w.opted_out, self.contacted

    def binary(self, name: str, row_weight: Float) -> tuple[sp.csr_matrix, Float, Float]:
        """Cell designs and the summed (success, failure) weights of model ``name`` with
        per-row weights ``row_weight`` (M,) (times the confounding weights)."""
        y, rows = self.outcome(name)
        w = row_weight * self.weight * rows
        return self.cells.matrix, self.cells.sums(w * y), self.cells.sums(w * ~y)

    def value(
        self, row_weight: Float, aggregate: bool = True
    ) -> tuple[sp.csr_matrix, Float, Float]:
        """Value design, list values and weights of the converting weeks; aggregated per
        state (weighted mean value, summed weight: the Gamma GLM's log-link score equations
        are linear in the response, so the fit is the same) unless ``aggregate`` is False.

        Only ``row_weight`` (M,) weighs the rows, never the confounding weights: the value
        model has no action term, so weights that balance each contact across states have
        nothing to correct in it; they would only hand the few explored weeks (weights up
        to ``max_weight``) a large share of the fit of E[value | state] (on 130 customers'
        logs, 88 of 5,427 customer-weeks carried a quarter of the total weight).
        """
        rows = self.value_rows
        w = row_weight[rows]
        y = self.weeks.list_value[rows]
        if not aggregate:
            return self.value_matrix, y, w
        total = self.value_cells.sums(w)
        mean = self.value_cells.sums(w * y) / np.maximum(total, 1e-300)
        return self.value_cells.matrix, mean, total


@dataclass(frozen=True)
class Penalties:
    """Chosen penalties: ``C`` of each binary model, ``alpha`` of the value model.

    Attributes:
        binary: Model name -> ``C``.
        value: Gamma ``alpha``.
    """

    binary: dict[str, float]
    value: float


@dataclass(frozen=True)
class Fits:
    """One fitted set of response models (a point estimate or an ensemble member)."""

    binary: dict[str, LinearFit]
    value: LinearFit


def choose_penalties(
    data: FitData,
    validation: Bool,
    c_grid: list[float],
    alpha_grid: list[float],
    workers: int = 1,
) -> Penalties:
    """Penalties by held-out likelihood: fit on customers outside ``validation`` (M,), score
    on those inside; each model's choice is one task of ``workers`` processes
    (:func:`journeyopt.parallel.run_tasks`)."""
    train_w = (~validation).astype(np.float64)
    valid_w = validation.astype(np.float64)

    def binary(name: str) -> Callable[[], float]:
        def choose() -> float:
            train, valid = data.binary(name, train_w), data.binary(name, valid_w)
            scale = data.design.penalty_scale()
            if train[1].sum() <= 0:
                return c_grid[0]
            return choose_logistic(train, valid, c_grid, scale)

        return choose

    def value() -> float:
        value_scale = data.design.penalty_scale(data.design.n_state_action_columns)
        return choose_gamma(
            data.value(train_w), data.value(valid_w, aggregate=False), alpha_grid, value_scale
        )

    chosen = run_tasks([*(binary(name) for name in BINARY_MODELS), value], workers)
    return Penalties(dict(zip(BINARY_MODELS, chosen[:-1], strict=True)), chosen[-1])


def refit_model(
    data: FitData,
    penalties: Penalties,
    name: str,
    row_weight: Float,
    warm: Fits | None = None,
) -> LinearFit:
    """Fit model ``name`` (one of :data:`BINARY_MODELS` or ``value``) with its fixed penalty
    and per-row weights (M,); a binary model starts from ``warm``'s fit when given."""
    if name == "value":
        value_scale = data.design.penalty_scale(data.design.n_state_action_columns)
        return fit_gamma(*data.value(row_weight), penalties.value, value_scale)
    return fit_logistic(
        *data.binary(name, row_weight),
        penalties.binary[name],
        warm.binary[name] if warm is not None else None,
        data.design.penalty_scale(),
    )


def refit_models(
    data: FitData,
    penalties: Penalties,
    row_weights: list[Float],
    warm: Fits | None = None,
    workers: int = 1,
) -> list[Fits]:
    """Fit every model with fixed penalties, once per (M,) per-row weights of ``row_weights``
    (1 for the point estimate, a customer's bootstrap multiplicity for an ensemble member):
    one task per fit on ``workers`` processes (:func:`journeyopt.parallel.run_tasks`)."""
    models = (*BINARY_MODELS, "value")

    def task(weight: Float, name: str) -> Callable[[], LinearFit]:
        return lambda: refit_model(data, penalties, name, weight, warm)

    fits = run_tasks([task(w, name) for w in row_weights for name in models], workers)
    out = []
    for k in range(len(row_weights)):
        one = dict(zip(models, fits[k * len(models) : (k + 1) * len(models)], strict=True))
        value = one.pop("value")
        out.append(Fits(one, value))
    return out


def _season(fit: LinearFit, design: Design, weeks_of_year: IntArray) -> Float:
    """(54,) seasonal logit shifts centred on the logged weeks (weeks never logged: 0)."""
    season = np.zeros(N_WEEKS_OF_YEAR + 1)
    if not design.seasonal:
        return season
    coef = fit.coef[design.n_state_action_columns :]
    seen = np.bincount(np.clip(weeks_of_year, 1, N_WEEKS_OF_YEAR) - 1, minlength=N_WEEKS_OF_YEAR)
    mean = float(np.average(coef, weights=seen)) if seen.sum() else 0.0
    season[1:] = np.where(seen > 0, coef - mean, 0.0)
    return season


def _season_mean(fit: LinearFit, design: Design, weeks_of_year: IntArray) -> float:
    """The seasonal coefficients' data-weighted mean, moved into the tables' intercept."""
    if not design.seasonal:
        return 0.0
    coef = fit.coef[design.n_state_action_columns :]
    seen = np.bincount(np.clip(weeks_of_year, 1, N_WEEKS_OF_YEAR) - 1, minlength=N_WEEKS_OF_YEAR)
    return float(np.average(coef, weights=seen)) if seen.sum() else 0.0


def tabulate(
    fits: Fits,
    design: Design,
    table_matrix: sp.csr_matrix,
    weeks_of_year: IntArray,
    identified: bool,
) -> FittedResponses:
    """The fitted models over every (state, action): :class:`FittedResponses`.

    Args:
        fits: The fitted models.
        design: Column layout.
        table_matrix: ``design.all_state_actions()`` (computed once per calibration).
        weeks_of_year: (M,) weeks of year of the fitted customer-weeks (to centre the season).
        identified: Whether the logs identify the effects of contacts.
    """
    layout: DiscreteLayout = design.layout
    shape = (layout.n_states, design.n_actions)
    convert, engage = fits.binary["convert"], fits.binary["engage"]
    convert_logit = convert.eta(table_matrix).reshape(shape) + _season_mean(
        convert, design, weeks_of_year
    )
    engage_logit = engage.eta(table_matrix).reshape(shape) + _season_mean(
        engage, design, weeks_of_year
    )
    optout = 1.0 / (1.0 + np.exp(-fits.binary["optout"].eta(table_matrix).reshape(shape)))
    optout[:, 0] = 0.0
    if not identified:
        optout[:, 1:] = 0.0
    none_rows = table_matrix[:: design.n_actions]
    value = np.exp(fits.value.eta(none_rows))
    return FittedResponses(
        convert_logit=convert_logit,
        convert_season=_season(convert, design, weeks_of_year),
        value=value,
        engage_logit=engage_logit,
        engage_season=_season(engage, design, weeks_of_year),
        optout=optout,
        actions_identified=identified,
    )
