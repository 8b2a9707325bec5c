"""The response models of a calibrated world, fitted from customer-weeks and tabulated over
every discrete state and action (:class:`~journeyopt.sim.world.FittedResponses`).

- conversion: P(at least one conversion | state, action, week of year), logistic;
- engagement: P(at least one engagement event | state, action, week of year), logistic;
- opt-out: P(opt-out | state, action) on the contacted weeks only, logistic;
- value: E[list value | state] of a converting week, Gamma GLM with log link (a discount's
  price cut is undone before fitting, so the value is the list value the world samples),
  without the confounding weights (it has no action term).

:func:`choose_penalties` chooses each model's penalty on held-out customer-weeks (by default
every customer's last weeks, :func:`journeyopt.calibration.scoring.scored_rows`);
:func:`choose_families` decides, per binary model, whether gradient-boosted trees over the
state and action (:mod:`journeyopt.calibration.boosting`, ``calibration.response_model``) are
added to the GLM; :func:`refit_models` fits the chosen models on all customers (the point
estimate) or on a bootstrap resample of customers (an ensemble member), and :func:`tabulate`
tabulates them over every (state, action).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from journeyopt.calibration.boosting import (
    Trees,
    choose_rounds,
    choose_value_rounds,
    feature_names,
    fit_trees,
    fit_value_trees,
    state_features,
)
from journeyopt.calibration.config import LightGBMConfig
from journeyopt.calibration.design import N_WEEKS_OF_YEAR, Design
from journeyopt.calibration.fit import (
    Cells,
    LinearFit,
    PenaltyChoice,
    binary_loglik,
    choose_gamma,
    choose_logistic,
    fit_gamma,
    fit_logistic,
    gamma_deviance,
    gamma_unit_deviance,
)
from journeyopt.calibration.scoring import difference_se, inner_rows
from journeyopt.calibration.weeks import CustomerWeeks
from journeyopt.parallel import run_tasks
from journeyopt.sim.discrete import DiscreteLayout, Summary
from journeyopt.sim.world import FittedResponses

Float = NDArray[np.float64]
IntArray = NDArray[np.int64]
Bool = NDArray[np.bool_]

BINARY_MODELS: tuple[str, ...] = ("convert", "engage", "optout")

LOG = logging.getLogger("journeyopt")


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

    @cached_property
    def features(self) -> Float:
        """(c, F) tree features of the cells' (state, action)
        (:func:`~journeyopt.calibration.boosting.state_features`); computed on first use."""
        n_cells = self.cells.matrix.shape[0]
        state = np.zeros(n_cells, np.int64)
        action = np.zeros(n_cells, np.int64)
        state[self.cells.row_cell] = self.weeks.state
        action[self.cells.row_cell] = self.weeks.action
        return state_features(self.design.layout, self.design.silent_channels, state, action)

    @cached_property
    def value_features(self) -> Float:
        """(v, F) tree features of the value model's states (action ``none``)."""
        state = np.zeros(self.value_cells.matrix.shape[0], np.int64)
        state[self.value_cells.row_cell] = self.weeks.state[self.value_rows]
        action = np.zeros_like(state)
        return state_features(self.design.layout, self.design.silent_channels, state, action)

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
        rounds: Binary model name -> number of gradient-boosted trees added to its GLM
            (:func:`choose_families`); a model not listed is the GLM alone.
        choices: Model name (a binary model or ``value``) -> how its penalty was chosen: the
            held-out score of every value tried and whether the chosen one is at an edge
            (:class:`~journeyopt.calibration.fit.PenaltyChoice`); empty when the penalties
            were given, not chosen.
        action: Binary model name -> factor on the penalty of its action effects' interaction
            columns (:data:`~journeyopt.calibration.design.ACTION_INTERACTIONS`,
            ``calibration.action_penalty``); a model not listed: 1.
        action_choices: Binary model name -> how its factor was chosen
            (:func:`choose_action_penalty`: every factor's held-out score with each action
            weighing the same); empty when the factor was not chosen (one value).
    """

    binary: dict[str, float]
    value: float
    rounds: dict[str, int] = field(default_factory=dict)
    choices: dict[str, PenaltyChoice] = field(default_factory=dict)
    action: dict[str, float] = field(default_factory=dict)
    action_choices: dict[str, PenaltyChoice] = field(default_factory=dict)

    def scale(self, design: Design, name: str) -> Float:
        """(p,) factor on the penalty of each column of binary model ``name``
        (:meth:`~journeyopt.calibration.design.Design.penalty_scale` with its action factor)."""
        return design.penalty_scale(action_factor=self.action.get(name, 1.0))

    def edges(self) -> dict[str, PenaltyChoice]:
        """The models whose chosen penalty is at an edge of its choice with a better value
        possibly beyond it (:attr:`~journeyopt.calibration.fit.PenaltyChoice.edge`)."""
        return {name: c for name, c in self.choices.items() if c.edge}


@dataclass(frozen=True)
class Fits:
    """One fitted set of response models (a point estimate or an ensemble member).

    Attributes:
        binary: Model name -> its GLM.
        value: The value model.
        trees: Binary model name -> the trees boosted from its GLM (models with trees only).
    """

    binary: dict[str, LinearFit]
    value: LinearFit
    trees: dict[str, Trees] = field(default_factory=dict)


def choose_penalties(
    data: FitData,
    validation: Bool,
    c_grid: list[float],
    alpha_grid: list[float],
    workers: int = 1,
    extensions: int = 0,
    tolerance_se: float = 0.0,
    action_grid: Sequence[float] = (1.0,),
) -> Penalties:
    """Penalties by held-out likelihood: fit on the customer-weeks outside ``validation``
    (M,), score on those inside (:func:`~journeyopt.calibration.scoring.scored_rows`); each
    model's choice is one task of ``workers`` processes (:func:`journeyopt.parallel.run_tasks`).

    A grid's winning edge is extended by up to ``extensions`` decades
    (:func:`~journeyopt.calibration.fit.choose_penalty`), a value beyond the grid taken only
    when its gain over the edge exceeds ``tolerance_se`` standard errors of the per-customer
    difference (:func:`~journeyopt.calibration.scoring.difference_se`, as every other choice
    that departs from the default). A penalty at an edge with a better value possibly beyond
    it is logged (:func:`penalty_edge_lines`).

    With two or more factors in ``action_grid`` (``calibration.action_penalty``), each binary
    model's factor on its action effects' penalty is chosen after its ``C``, at that ``C``
    (:func:`choose_action_penalty`); with one, every binary model gets it unchosen (no fit
    more: ``(1.0,)`` is the calibration without the factor)."""
    train_w = (~validation).astype(np.float64)
    valid_w = validation.astype(np.float64)
    judged = np.bincount(data.weeks.customer, weights=valid_w, minlength=n_customers(data)) > 0

    def clearly(gain: Float) -> bool:
        """Per-customer gains (K,) above ``tolerance_se`` SE, over the scored customers."""
        return float(gain[judged].sum()) > tolerance_se * difference_se(gain[judged])

    def binary(name: str) -> Callable[[], tuple[PenaltyChoice, PenaltyChoice | None]]:
        def beats(new: LinearFit, edge: LinearFit) -> bool:
            def score(fit: LinearFit) -> Float:
                return binary_per_customer(data, name, fit.eta(data.cells.matrix), validation)

            return clearly(score(new) - score(edge))

        def choose() -> tuple[PenaltyChoice, PenaltyChoice | None]:
            train, valid = data.binary(name, train_w), data.binary(name, valid_w)
            scale = data.design.penalty_scale()
            if train[1].sum() <= 0:  # never happens in training: nothing to choose
                unchosen = PenaltyChoice(max(action_grid), {}) if len(action_grid) > 1 else None
                return PenaltyChoice(c_grid[0], {}), unchosen
            fits: dict[float, LinearFit] = {}
            c = choose_logistic(train, valid, c_grid, scale, extensions, beats, fits)
            if len(action_grid) < 2:
                return c, None
            chosen = fits[c.value]
            return c, choose_action_penalty(data, name, chosen, validation, action_grid, clearly)

        return choose

    def value() -> tuple[PenaltyChoice, PenaltyChoice | None]:
        """The value model's ``alpha``; no action factor (its rows' action is ``none``)."""

        def beats(new: LinearFit, edge: LinearFit) -> bool:
            def score(fit: LinearFit) -> Float:
                return value_per_customer(data, fit.eta(data.value_cells.matrix), validation)

            return clearly(score(new) - score(edge))

        value_scale = data.design.penalty_scale(data.design.n_state_action_columns)
        train, valid = data.value(train_w), data.value(valid_w, aggregate=False)
        return choose_gamma(train, valid, alpha_grid, value_scale, extensions, beats), None

    pairs = run_tasks([*(binary(name) for name in BINARY_MODELS), value], workers)
    names = (*BINARY_MODELS, "value")
    choices = {name: c for name, (c, _) in zip(names, pairs, strict=True)}
    action_choices = {name: a for name, (_, a) in zip(names, pairs, strict=True) if a is not None}
    penalties = Penalties(
        {name: choices[name].value for name in BINARY_MODELS},
        choices["value"].value,
        choices=choices,
        action={
            name: action_choices[name].value if name in action_choices else float(action_grid[0])
            for name in BINARY_MODELS
        },
        action_choices=action_choices,
    )
    edges = {name: c.as_meta() for name, c in penalties.edges().items()}
    for line in penalty_edge_lines(edges, extensions):
        LOG.warning(line.removeprefix("- "))
    return penalties


def action_balance(data: FitData, name: str, scored: Bool) -> Float:
    """(M,) factor on the weight of each of binary model ``name``'s ``scored`` (M,) rows so
    that every action among them carries the same total weight (the fit's confounding
    weights included; 0 outside those rows and for actions they do not hold; the total
    weight unchanged).

    Why: the held-out rows are the logged practice's decisions, and the policies a world is
    built to compare (always one action, the optimum, the myopic choice) take actions in
    shares far from the logs'. Weighted as logged, a score hardly sees the effect of a
    rarely logged action (one logged on under 1 % of the weeks beside another on a third of
    them), so it cannot tell when a penalty shrinks that effect too hard. With the
    stabilised confounding weights ``P(a) / pi_b(a | x)`` (``calibration.weighting``) the
    action is already independent of the state, in the logs' shares ``P(a)``; equal totals
    per action turn them into ``1 / (A pi_b(a | x))`` (up to their clip; ``A`` the actions
    among the model's rows): the weights of a policy choosing among them uniformly, which
    favours none of the compared policies' shares."""
    _, rows = data.outcome(name)
    weight = data.weight * (rows & scored)
    action = data.weeks.action
    totals = np.bincount(action, weights=weight, minlength=data.design.n_actions)
    held = totals > 0
    if not held.any():
        return np.zeros(data.weeks.n)
    per_action = np.where(held, totals.sum() / held.sum() / np.where(held, totals, 1.0), 0.0)
    return np.asarray(per_action[action] * (rows & scored), np.float64)


def choose_action_penalty(
    data: FitData,
    name: str,
    chosen: LinearFit,
    validation: Bool,
    grid: Sequence[float],
    clearly: Callable[[Float], bool],
) -> PenaltyChoice:
    """The factor of ``grid`` on the penalty of binary model ``name``'s action effects'
    interaction columns (:data:`~journeyopt.calibration.design.ACTION_INTERACTIONS`; the
    actions' main effects keep :data:`~journeyopt.calibration.design.LIGHT_PENALTY`), at
    the ``C`` already chosen (``chosen``: its fit, factor 1, on the rows outside
    ``validation`` (M,)).

    Each factor is fitted on those rows, from the strongest (largest) to the lightest, each
    started from the previous fit (the first from ``chosen``; a factor of 1 is ``chosen``
    itself), and scored by the held-out log-likelihood of the ``validation`` rows with every
    action carrying the same total weight (:func:`action_balance`: the policies compared take
    actions in shares far from the logs'). The strongest factor of the grid (1: as every
    other column) is the reference: a lighter one is taken only when its per-customer gain
    over it exceeds ``clearly`` (``summary.tolerance_se`` standard errors), the best scoring
    of those, so noise does not pick a factor."""
    train = data.binary(name, (~validation).astype(np.float64))
    balance = action_balance(data, name, validation)
    valid = data.binary(name, balance)
    fits: dict[float, LinearFit] = {}
    scores: dict[float, float] = {}
    for factor in sorted(grid, reverse=True):
        if factor == 1.0:
            fits[factor] = chosen
        else:
            warm = fits[min(fits)] if fits else chosen
            scale = data.design.penalty_scale(action_factor=factor)
            fits[factor] = fit_logistic(*train, chosen.penalty, warm=warm, scale=scale)
        scores[factor] = binary_loglik(fits[factor], *valid)
    reference = max(grid)

    def per_customer(factor: float) -> Float:
        logit = fits[factor].eta(data.cells.matrix)
        return binary_per_customer(data, name, logit, validation, balance)

    base = per_customer(reference)
    beating = [
        f
        for f in sorted(grid, reverse=True)
        if f != reference and scores[f] > scores[reference] and clearly(per_customer(f) - base)
    ]
    best = max(beating, key=lambda f: scores[f]) if beating else reference
    return PenaltyChoice(float(best), scores)


def n_customers(data: FitData) -> int:
    """``K``, the customers of the fitted customer-weeks."""
    return int(data.weeks.customer_ids.shape[0])


def binary_per_customer(
    data: FitData, name: str, logit: Float, scored: Bool, row_weight: Float | None = None
) -> Float:
    """(K,) each customer's held-out log-likelihood of binary model ``name`` (nats): the
    model's rows among the (M,) ``scored`` customer-weeks, under the (c,) ``logit`` of every
    cell, weighted by the fit's confounding weights (times (M,) ``row_weight`` when given,
    e.g. :func:`action_balance`)."""
    y, rows = data.outcome(name)
    row = logit[data.cells.row_cell]
    ll = np.where(y, -np.logaddexp(0.0, -row), -np.logaddexp(0.0, row))
    w = data.weight * (rows & scored)
    if row_weight is not None:
        w = w * row_weight
    sums = np.bincount(data.weeks.customer, weights=ll * w, minlength=n_customers(data))
    return np.asarray(sums, np.float64)


def value_per_customer(data: FitData, log_mean: Float, scored: Bool) -> Float:
    """(K,) minus each customer's held-out Gamma deviance of the value model: the converting
    weeks among the (M,) ``scored`` customer-weeks, under the (v,) ``log_mean`` of every value
    cell (row weights only, as the value model's fit)."""
    rows = data.value_rows
    y = data.weeks.list_value[rows]
    dev = gamma_unit_deviance(y, log_mean[data.value_cells.row_cell]) * scored[rows]
    sums = np.bincount(data.weeks.customer[rows], weights=dev, minlength=n_customers(data))
    return -np.asarray(sums, np.float64)


def penalty_edge_lines(choices: Mapping[str, Mapping[str, Any]], extensions: int) -> list[str]:
    """The card's and the log's line on each model whose chosen penalty is at an edge of the
    values it was chosen from with a better value possibly beyond it (``choices``: model name
    -> :meth:`PenaltyChoice.as_meta`, as the world's ``penalty_choices``; ``extensions``:
    ``calibration.grid_extensions``)."""
    lines = []
    for name, choice in choices.items():
        if not choice.get("edge"):
            continue
        penalty, grid = ("alpha", "alpha_grid") if name == "value" else ("C", "c_grid")
        chosen = float(choice["chosen"])
        tried = [float(p) for p in choice["scores"]]
        beyond = [p for p in tried if (p < chosen if choice["edge"] == "smallest" else p > chosen)]
        head = f"- **penalty at the edge of its grid**: {name} {penalty} {chosen:g}"
        if beyond:
            lines.append(
                f"{head} is the {choice['edge']} value of its choice: {penalty} {beyond[0]:g} "
                "beyond it scored better, by no more than `calibration.summary.tolerance_se` "
                "standard errors, and was not taken"
            )
            continue
        how = (
            f"the grid extended by up to {extensions} decades, `calibration.grid_extensions`"
            if extensions
            else "the grid as given, `calibration.grid_extensions: 0`"
        )
        lines.append(
            f"{head} is the {choice['edge']} of the {len(tried)} values tried ({how}): a value "
            f"beyond it may score better; widen `calibration.{grid}`"
        )
    return lines


def refit_model(
    data: FitData,
    penalties: Penalties,
    name: str,
    row_weight: Float,
    warm: Fits | None = None,
    boost: LightGBMConfig | None = None,
    seed: int = 0,
) -> tuple[LinearFit, Trees | None]:
    """Fit model ``name`` (one of :data:`BINARY_MODELS` or ``value``) with its fixed penalty
    and per-row weights (M,); a binary model starts from ``warm``'s fit when given. A model
    with trees in ``penalties.rounds`` gets that many trees boosted from this GLM's logit
    (settings ``boost``, seed ``seed``); others get None."""
    names = feature_names(data.design.layout)
    if name == "value":
        value_scale = data.design.penalty_scale(data.design.n_state_action_columns)
        v_matrix, mean, total = data.value(row_weight)
        value = fit_gamma(v_matrix, mean, total, penalties.value, value_scale)
        if not penalties.rounds.get("value", 0):
            return value, None
        cells = (mean, total, value.eta(v_matrix))
        rounds = penalties.rounds["value"]
        return value, fit_value_trees(
            data.value_features, cells, rounds, names, boost or LightGBMConfig(), seed
        )
    matrix, positive, negative = data.binary(name, row_weight)
    glm = fit_logistic(
        matrix,
        positive,
        negative,
        penalties.binary[name],
        warm.binary[name] if warm is not None else None,
        penalties.scale(data.design, name),
    )
    rounds = penalties.rounds.get(name, 0)
    if not rounds:
        return glm, None
    trees = fit_trees(
        data.features,
        positive,
        negative,
        glm.eta(matrix),
        rounds,
        names,
        boost or LightGBMConfig(),
        seed,
    )
    return glm, trees


def refit_models(
    data: FitData,
    penalties: Penalties,
    row_weights: list[Float],
    warm: Fits | None = None,
    workers: int = 1,
    boost: LightGBMConfig | None = None,
    seed: int = 0,
) -> list[Fits]:
    """Fit every model with fixed penalties (and trees, ``penalties.rounds``), once per (M,)
    per-row weights of ``row_weights`` (1 for the point estimate, a customer's bootstrap
    multiplicity for an ensemble member: a member refits the same family as the point
    estimate): one task per fit on ``workers`` processes
    (:func:`journeyopt.parallel.run_tasks`)."""
    models = (*BINARY_MODELS, "value")
    if penalties.rounds:
        _ = data.features, data.value_features  # once, before the workers fork

    def task(weight: Float, name: str) -> Callable[[], tuple[LinearFit, Trees | None]]:
        return lambda: refit_model(data, penalties, name, weight, warm, boost, seed)

    fits = run_tasks([task(w, name) for w in row_weights for name in models], workers)
    out = []
    for k in range(len(row_weights)):
        one = dict(zip(models, fits[k * len(models) : (k + 1) * len(models)], strict=True))
        trees = {n: t for n, (_, t) in one.items() if t is not None}
        value, _ = one.pop("value")
        out.append(Fits({n: glm for n, (glm, _) in one.items()}, value, trees))
    return out


@dataclass(frozen=True)
class FamilyChoice:
    """One response model's choice between its GLM and the GLM with trees.

    Attributes:
        family: ``glm`` or ``lightgbm``.
        rounds: Trees chosen on the inner split (0: none beat the GLM there).
        glm_loglik, lightgbm_loglik: Held-out log-likelihood per unit weight of the scored
            customer-weeks (nats), each family fitted on the training customers; for the
            value model minus the mean Gamma deviance of the scored converting weeks (the
            Gamma log-likelihood at a fixed shape, up to scale and a constant).
        se: Standard error of the difference, same units.
    """

    family: str
    rounds: int
    glm_loglik: float
    lightgbm_loglik: float
    se: float

    def as_meta(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "rounds": self.rounds,
            "glm_loglik": self.glm_loglik,
            "lightgbm_loglik": self.lightgbm_loglik,
            "se": self.se,
        }


def family_lines(families: Mapping[str, FamilyChoice]) -> list[str]:
    """The card's line on each binary model's family (none with ``response_model: glm``)."""
    if not families:
        return []

    def one(name: str, f: FamilyChoice) -> str:
        if f.glm_loglik != f.glm_loglik:  # NaN: the model's outcome never happens in training
            return f"{name} glm (not compared)"
        return (
            f"{name} {f.family} ({f.rounds} trees; held-out log-lik. {f.lightgbm_loglik:.5f} "
            f"with trees vs {f.glm_loglik:.5f} GLM, SE {f.se:.5f})"
        )

    parts = "; ".join(one(name, f) for name, f in families.items())
    return [f"- response models (GLM, or GLM + LightGBM trees where chosen): {parts}"]


def choose_families(
    data: FitData,
    penalties: Penalties,
    scored: Bool,
    judged: Bool,
    forward_weeks: int,
    mode: str,
    tolerance_se: float,
    boost: LightGBMConfig,
    seed: int,
    workers: int = 1,
) -> tuple[Penalties, dict[str, FamilyChoice]]:
    """Per model, the GLM or the GLM plus trees, by held-out log-likelihood (the value model:
    by held-out Gamma deviance, with its row weights only).

    Both are fitted on the customer-weeks outside ``scored`` (M,) with the fit's confounding
    weights (the GLM with its chosen penalty) and scored on ``scored`` per customer (the
    (K,) ``judged`` customers: :func:`~journeyopt.calibration.scoring.scored_rows` with
    ``forward_weeks``). The number of trees is chosen by early stopping on an inner split of
    the training rows, never on the scored ones, split by the same rule
    (:func:`~journeyopt.calibration.scoring.inner_rows`: forward, the training rows' own last
    weeks; with ``forward_weeks`` 0 a random ``boost.inner_share`` of the training customers),
    the trees boosted from the GLM fitted on the rest. ``mode`` ``lightgbm`` keeps the trees
    whenever some were chosen; ``auto`` only when their gain exceeds ``tolerance_se`` standard
    errors of the per-customer difference
    (:func:`~journeyopt.calibration.scoring.difference_se`). One task per model on ``workers``
    processes.

    Returns:
        ``penalties`` with the kept models' rounds, and each model's :class:`FamilyChoice`.
    """
    weeks = data.weeks
    training = np.bincount(weeks.customer, weights=~scored, minlength=judged.shape[0]) > 0
    rng = np.random.default_rng([seed, 16])
    inner_customers = np.zeros(judged.shape[0], bool)
    pool = np.flatnonzero(training)
    inner_customers[rng.permutation(pool)[: max(1, round(boost.inner_share * pool.shape[0]))]] = (
        True
    )
    inner = inner_rows(weeks, scored, inner_customers, forward_weeks)
    names = feature_names(data.design.layout)
    _ = data.features, data.value_features  # once, before the workers fork

    def choose(name: str) -> Callable[[], FamilyChoice]:
        def run() -> FamilyChoice:
            c = penalties.binary[name]
            scale = penalties.scale(data.design, name)
            matrix, pos, neg = data.binary(name, (~scored).astype(np.float64))
            _, s_pos, s_neg = data.binary(name, scored.astype(np.float64))
            if pos.sum() <= 0 or neg.sum() <= 0:
                return FamilyChoice("glm", 0, float("nan"), float("nan"), float("nan"))
            _, f_pos, f_neg = data.binary(name, (~scored & ~inner).astype(np.float64))
            _, i_pos, i_neg = data.binary(name, inner.astype(np.float64))
            inner_glm = fit_logistic(matrix, f_pos, f_neg, c, scale=scale)
            offset = inner_glm.eta(matrix)
            rounds = choose_rounds(
                data.features, (f_pos, f_neg, offset), (i_pos, i_neg, offset), names, boost, seed
            )
            glm = fit_logistic(matrix, pos, neg, c, scale=scale)
            eta = glm.eta(matrix)
            trees = fit_trees(data.features, pos, neg, eta, rounds, names, boost, seed)
            boosted = eta + trees.logit(data.features)
            _, rows = data.outcome(name)
            total = max(float((data.weight * (rows & scored)).sum()), 1e-300)  # scored weight
            glm_loglik = binary_loglik(glm, matrix, s_pos, s_neg)
            gain = binary_per_customer(data, name, boosted, scored)
            diff = (gain - binary_per_customer(data, name, eta, scored))[judged]
            return family_choice(diff, rounds, glm_loglik, total)

        return run

    def family_choice(diff: Float, rounds: int, glm_score: float, weight: float) -> FamilyChoice:
        """Trees or GLM from (judged customers,) per-customer score gains of the trees:
        ``lightgbm`` forced, or ``auto`` and the gain above ``tolerance_se`` SE; the scores per
        unit of the scored ``weight``."""
        se = difference_se(diff)
        keep = rounds > 0 and (mode == "lightgbm" or float(diff.sum()) > tolerance_se * se)
        return FamilyChoice(
            "lightgbm" if keep else "glm",
            rounds,
            glm_score,
            glm_score + float(diff.sum()) / weight,
            se / weight,
        )

    def choose_value() -> FamilyChoice:
        """The value model: Gamma deviance instead of the log-likelihood, row weights only
        (no confounding weights, as its fit)."""
        value_scale = data.design.penalty_scale(data.design.n_state_action_columns)
        alpha = penalties.value
        v_matrix, mean, total = data.value((~scored).astype(np.float64))
        rows = data.value_rows
        s_weight = scored[rows].astype(np.float64)
        if not ((total > 0) & (mean > 0)).any() or s_weight.sum() <= 0:
            return FamilyChoice("glm", 0, float("nan"), float("nan"), float("nan"))
        _, f_mean, f_total = data.value((~scored & ~inner).astype(np.float64))
        _, i_mean, i_total = data.value(inner.astype(np.float64))
        if ((f_total > 0) & (f_mean > 0)).any():
            inner_glm = fit_gamma(v_matrix, f_mean, f_total, alpha, value_scale)
            offset = inner_glm.eta(v_matrix)
            train, held = (f_mean, f_total, offset), (i_mean, i_total, offset)
            rounds = choose_value_rounds(data.value_features, train, held, names, boost, seed)
        else:
            rounds = 0
        glm = fit_gamma(v_matrix, mean, total, alpha, value_scale)
        eta = glm.eta(v_matrix)
        trees = fit_value_trees(data.value_features, (mean, total, eta), rounds, names, boost, seed)
        boosted = eta + trees.logit(data.value_features)
        y = weeks.list_value[rows]
        glm_score = -gamma_deviance(y, eta[data.value_cells.row_cell], s_weight)
        gain = value_per_customer(data, boosted, scored)
        diff = (gain - value_per_customer(data, eta, scored))[judged]
        return family_choice(diff, rounds, glm_score, float(s_weight.sum()))

    chosen = run_tasks([*(choose(name) for name in BINARY_MODELS), choose_value], workers)
    families = dict(zip((*BINARY_MODELS, "value"), chosen, strict=True))
    rounds = {n: f.rounds for n, f in families.items() if f.family == "lightgbm"}
    return replace(penalties, rounds=rounds), families


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


def table_features(design: Design) -> NDArray[np.float32]:
    """(n_states * A, F) tree features of every (state, action), row ``state * A + action``
    (the layout of the world's tables; float32 to halve their memory)."""
    n, a = design.layout.n_states, design.n_actions
    state = np.repeat(np.arange(n, dtype=np.int64), a)
    action = np.tile(np.arange(a, dtype=np.int64), n)
    features = state_features(design.layout, design.silent_channels, state, action)
    return features.astype(np.float32)


TABLE_BLOCK_STATES = 32_768
"""States whose (state, action) design rows are built at once when tabulating: the design of
every (state, action) is never held whole (1.4 M states x 5 actions: about 1.7 GB as CSR and
several GB while it was built), only one block of it (about 40 MB)."""


def state_action_blocks(
    design: Design, block_states: int = TABLE_BLOCK_STATES
) -> Iterator[tuple[int, int, sp.csr_matrix]]:
    """``(first, stop, matrix)`` for consecutive blocks of at most ``block_states`` states:
    ``matrix`` ((stop - first) * A, n_state_action_columns) the design of states
    ``first..stop - 1`` x every action, row ``(state - first) * A + action``: the rows of
    :meth:`Design.all_state_actions` ``first * A .. stop * A - 1``, entry for entry."""
    if block_states < 1:
        raise ValueError(f"block_states must be >= 1, got {block_states}")
    n, a = design.layout.n_states, design.n_actions
    for first in range(0, n, block_states):
        stop = min(first + block_states, n)
        states = design.layout.decode(np.arange(first, stop, dtype=np.int64))
        rep = Summary(*(np.repeat(x, a) for x in states))
        actions = np.tile(np.arange(a, dtype=np.int64), stop - first)
        yield first, stop, design.matrix(rep, actions)


def tabulate(
    fits: Sequence[Fits],
    design: Design,
    weeks_of_year: IntArray,
    identified: bool,
    features: NDArray[np.float32] | None = None,
    block_states: int = TABLE_BLOCK_STATES,
) -> list[FittedResponses]:
    """The fitted models over every (state, action): one :class:`FittedResponses` per fit of
    ``fits`` (the point fit and the ensemble's refits: one pass over the design, built in
    blocks of ``block_states`` states, :func:`state_action_blocks`; each row's linear
    predictor is the same product whatever the block, so the tables do not depend on it).
    A model with trees gets their logit added to its GLM's in every (state, action); the
    season stays the GLM's additive shift (the trees do not read the week).

    Args:
        fits: The fitted models, each tabulated.
        design: Column layout.
        weeks_of_year: (M,) weeks of year of the fitted customer-weeks (to centre the season).
        identified: Whether the logs identify the effects of contacts.
        features: :func:`table_features` (computed once per calibration); required when a
            fit has trees.
        block_states: States per block of the design.
    """
    layout: DiscreteLayout = design.layout
    shape = (layout.n_states, design.n_actions)
    a = design.n_actions
    if features is None and any(f.trees for f in fits):
        raise ValueError("tabulating trees needs the table's features")
    etas = [{name: np.empty(shape[0] * a) for name in BINARY_MODELS} for _ in fits]
    log_values = [np.empty(shape[0]) for _ in fits]
    for first, stop, block in state_action_blocks(design, block_states):
        none_rows = block[::a]
        for fit, eta, log_value in zip(fits, etas, log_values, strict=True):
            for name in BINARY_MODELS:
                eta[name][first * a : stop * a] = fit.binary[name].eta(block)
            log_value[first:stop] = fit.value.eta(none_rows)
    out = []
    for fit, eta, log_value in zip(fits, etas, log_values, strict=True):
        out.append(_responses(fit, design, eta, log_value, weeks_of_year, identified, features))
    return out


def _responses(
    fits: Fits,
    design: Design,
    eta: dict[str, Float],
    log_value: Float,
    weeks_of_year: IntArray,
    identified: bool,
    features: NDArray[np.float32] | None,
) -> FittedResponses:
    """One fit's tables from its GLMs' linear predictors over every (state, action) ``eta``
    (n_states * A,) per binary model and ``log_value`` (n_states,) (see :func:`tabulate`)."""
    shape = (design.layout.n_states, design.n_actions)
    table = features if features is not None else np.zeros((0, 0), np.float32)  # no trees

    def logit(name: str) -> Float:
        out = eta.pop(name)  # the flat predictor is not kept: the table replaces it
        if name in fits.trees:
            out = out + fits.trees[name].logit(table)
        return out.reshape(shape)

    convert, engage = fits.binary["convert"], fits.binary["engage"]
    convert_logit = logit("convert") + _season_mean(convert, design, weeks_of_year)
    engage_logit = logit("engage") + _season_mean(engage, design, weeks_of_year)
    optout = 1.0 / (1.0 + np.exp(-logit("optout")))
    optout[:, 0] = 0.0
    if not identified:
        optout[:, 1:] = 0.0
    if "value" in fits.trees:
        log_value = log_value + fits.trees["value"].logit(table[:: design.n_actions])
    value = np.exp(log_value)
    return FittedResponses(
        convert_logit=convert_logit,
        convert_season=_season(convert, design, weeks_of_year),
        value=value,
        engage_logit=engage_logit,
        engage_season=_season(engage, design, weeks_of_year),
        optout=optout,
        actions_identified=identified,
    )
