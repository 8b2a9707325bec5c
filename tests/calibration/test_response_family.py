"""The response models' family (``calibration.response_model``): gradient-boosted trees are
kept where they beat the GLM on held-out customers, and a world with trees is tabulated so that
the simulator reads the fitted model's own probabilities."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from omegaconf import OmegaConf

from journeyopt.calibration.boosting import state_features
from journeyopt.calibration.calibrated import CalibratedWorld
from journeyopt.calibration.config import CalibrationConfig, LightGBMConfig
from journeyopt.calibration.design import Design
from journeyopt.calibration.estimate import Estimate, Structure, estimate, validation_customers
from journeyopt.calibration.fit import bootstrap_multiplicity
from journeyopt.calibration.models import (
    FamilyChoice,
    FitData,
    choose_families,
    choose_penalties,
    family_lines,
    refit_models,
)
from journeyopt.calibration.pipeline import penalty_params
from journeyopt.calibration.scoring import scored_rows
from journeyopt.calibration.weeks import CustomerWeeks, customer_weeks, segment_names
from journeyopt.cli.entry import to_object
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.source import SourceConfig
from journeyopt.errors import ConfigError
from journeyopt.panel.build import build_panel
from journeyopt.panel.config import PanelConfig, feature_spec
from journeyopt.sim.config import GenerateConfig, shipped_practice
from journeyopt.sim.discrete import DiscreteLayout
from journeyopt.sim.dynamics import response_probabilities
from journeyopt.sim.logs import generate_logs, write_logs
from journeyopt.sim.rules import ActionCatalog
from journeyopt.sim.world import WORLDS_DIR, FittedResponses, WorldSpec, load_world
from tests.sim.caps import caps_config

INTERACTION = 1.5
"""Conversion logit added where a customer's recency (<= 3 weeks) and engagement (<= 2 weeks)
agree, subtracted where they disagree: a product of two state components, which the GLM's
design (one-hot columns of each, added) cannot express."""

VALUE_INTERACTION = 0.8
"""Log list value added where recency and engagement agree as above, subtracted where not."""

C_GRID = [0.003, 0.03, 0.3, 3.0, 30.0]
PANEL = PanelConfig(lapse_weeks=26, frequency_weeks=52, fatigue_weeks=4, engagement_weeks=4)
"""The coworking demo's panel windows."""


def assert_same_fit(mine: CalibratedWorld, theirs: CalibratedWorld) -> None:
    """Bit-identical response tables of the world and every member."""
    for a, b in zip((mine.world, *mine.members), (theirs.world, *theirs.members), strict=True):
        assert a.responses is not None and b.responses is not None
        for name in FittedResponses.ARRAYS:
            np.testing.assert_array_equal(getattr(a.responses, name), getattr(b.responses, name))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.asarray(np.log(p / (1 - p)), np.float64)


def interaction_truth() -> WorldSpec:
    """The coworking world with small caps as fitted tables, the conversion logit of customers
    shifted by :data:`INTERACTION` and their log list value by :data:`VALUE_INTERACTION` as
    described there."""
    base = load_world("coworking")
    caps = replace(
        base.discrete,
        recency_cap_weeks=10,
        conversions_cap=2,
        contact_cap_weeks=3,
        engagement_cap_weeks=4,
    )
    world = replace(base, discrete=caps)
    layout = DiscreteLayout.of(world)
    states = layout.all_states()
    n, n_actions = layout.n_states, world.actions.n_actions
    season = float(world.params.season[1])
    agree = (states.recency <= 3) == (states.engagement <= 2)
    shift = INTERACTION * np.where(agree, 1.0, -1.0) * (states.conversions > 0)
    convert, engage, optout = (np.empty((n, n_actions)) for _ in range(3))
    value = np.ones(n)
    for a in range(n_actions):
        r = response_probabilities(world, states, np.full(n, a), 1)
        convert[:, a] = _logit(r.convert) - season + shift
        engage[:, a] = _logit(1 - (1 - r.inquiry) * (1 - r.engage_contact)) - season
        optout[:, a] = r.optout
        value = np.asarray(r.value, np.float64) * np.exp(VALUE_INTERACTION / INTERACTION * shift)
    season_shift = np.asarray(world.params.season, np.float64)
    tables = FittedResponses(convert, season_shift, value, engage, season_shift, optout, True)
    return replace(world, responses=tables)


@dataclass(frozen=True)
class Logs:
    """The truth's logs as the calibration reads them."""

    truth: WorldSpec
    panel: pd.DataFrame
    source: SourceConfig


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Logs:
    """1,500 customers over 40 weeks of the interaction truth, 30 % exploration."""
    truth = interaction_truth()
    out = tmp_path_factory.mktemp("interaction_logs")
    cfg = GenerateConfig(
        output_dir=str(out),
        n_customers=1500,
        weeks=40,
        seed=3,
        exploration=0.3,
        staff=shipped_practice("coworking"),
    )
    write_logs(generate_logs(truth, cfg, np.random.default_rng(cfg.seed)), out, overwrite=True)
    raw = OmegaConf.load(WORLDS_DIR.parent / "configs" / "data" / "coworking.yaml")
    source = replace(to_object(raw, SourceConfig), path=str(out))
    ingested, _ = ingest_to_logs(source)
    panel = build_panel(ingested, PANEL, truth.channels)
    return Logs(truth, panel[panel["week"] >= 4], source)


def _fit_data(logs: Logs) -> tuple[CustomerWeeks, Design, FitData]:
    world = logs.truth
    segments = segment_names(logs.panel)
    layout = DiscreteLayout(world.discrete, len(segments), len(world.channels), 5)
    weeks = customer_weeks(logs.panel, layout, world.channels, world.actions.names, segments, None)
    design = Design(layout, world.actions.n_actions, False)
    return weeks, design, FitData.of(weeks, design, np.ones(weeks.n))


def _families(weeks: CustomerWeeks, data: FitData, mode: str) -> dict[str, FamilyChoice]:
    """Each binary model's family, as the calibration chooses it (seed 0's split)."""
    held = validation_customers(weeks.customer_ids.shape[0], 0.2, np.random.default_rng(0))
    penalties = choose_penalties(data, held[weeks.customer], C_GRID, [1e-3])
    scored, judged = scored_rows(weeks, held, 0)
    _, families = choose_families(
        data, penalties, scored, judged, 0, mode, 1.0, LightGBMConfig(), seed=0
    )
    return families


def test_auto_keeps_the_trees_where_the_truth_has_an_interaction(logs: Logs) -> None:
    weeks, _, data = _fit_data(logs)
    families = _families(weeks, data, "auto")
    convert = families["convert"]
    assert convert.family == "lightgbm", families
    assert convert.rounds > 0
    # measured: +0.022 nats per customer-week, about 8 SE
    assert convert.lightgbm_loglik - convert.glm_loglik > 3 * convert.se, convert
    # the opt-outs have no interaction: the trees do not beat the GLM there
    assert families["optout"].family == "glm", families
    value = families["value"]  # scored by minus the Gamma deviance
    assert value.family == "lightgbm", families
    # measured: +0.052 per converting week, 3.0 SE (list values are noisy: Gamma, shape ~1)
    assert value.lightgbm_loglik - value.glm_loglik > 2 * value.se, value


def test_auto_keeps_the_glm_on_outcomes_drawn_from_a_glm(logs: Logs) -> None:
    """The same customer-weeks, their outcomes redrawn (seed 0) from the GLMs fitted to them:
    data of the GLM's own family (list values: Gamma, shape 2, around the value GLM's mean).
    (Over seeds 0-5, 2 of 18 binary model choices took trees, by 1.0 and 2.2 SE: the rate a
    1-SE rule allows.)"""
    weeks, design, data = _fit_data(logs)
    held = validation_customers(weeks.customer_ids.shape[0], 0.2, np.random.default_rng(0))
    penalties = choose_penalties(data, held[weeks.customer], C_GRID, [1e-3])
    (glm,) = refit_models(data, penalties, [np.ones(weeks.n)])
    rng = np.random.default_rng(0)
    drawn = {}
    for name, field in (("convert", "converted"), ("engage", "engaged"), ("optout", "opted_out")):
        eta = glm.binary[name].eta(data.cells.matrix)[data.cells.row_cell]
        drawn[field] = rng.random(weeks.n) < 1.0 / (1.0 + np.exp(-eta))
    drawn["opted_out"] &= data.contacted
    everyone = design.matrix(design.layout.decode(weeks.state), np.zeros(weeks.n, np.int64))
    mean = np.exp(glm.value.eta(everyone))
    shape = 2.0
    list_value = np.where(drawn["converted"], rng.gamma(shape, mean / shape), 0.0)
    redrawn = replace(weeks, list_value=list_value, **drawn)
    families = _families(redrawn, FitData.of(redrawn, design, np.ones(weeks.n)), "auto")
    assert {n: f.family for n, f in families.items()} == dict.fromkeys(families, "glm"), families
    # with "lightgbm" the trees are kept wherever the inner split chose any
    forced = _families(redrawn, FitData.of(redrawn, design, np.ones(weeks.n)), "lightgbm")
    assert all((f.family == "lightgbm") == (f.rounds > 0) for f in forced.values()), forced


def _estimate(logs: Logs, workers: int = 1, **overrides: object) -> Estimate:
    """A calibration's estimate of the logs with ``response_model: lightgbm``, seasonal
    (``overrides``: other ``CalibrationConfig`` fields)."""
    world = logs.truth
    panel = logs.panel
    segments = segment_names(panel)
    layout = DiscreteLayout(world.discrete, len(segments), len(world.channels), 5)
    actions = ActionCatalog.from_source(logs.source)
    features = feature_spec(PANEL, world.channels)
    structure = Structure("interaction", actions, features, layout, segments, "EUR", 0.7)
    weeks = customer_weeks(panel, layout, world.channels, world.actions.names, segments, None)
    cfg = CalibrationConfig(
        caps=caps_config(
            recency_cap_weeks=10, conversions_cap=2, contact_cap_weeks=3, engagement_cap_weeks=4
        ),
        response_model="lightgbm",
        weighting="none",  # the test refits the point estimate with unit weights
        practice_cycles_weeks=[2, 4, 13],
        ensemble_size=2,
        c_grid=C_GRID,
        alpha_grid=[1e-3],
        workers=workers,
    )
    last = panel[panel["week"] == panel["week"].max()]
    return estimate(weeks, structure, replace(cfg, **overrides), last, {})


@pytest.fixture(scope="module")
def fitted(logs: Logs) -> Estimate:
    return _estimate(logs)


def test_the_simulator_reads_the_fitted_models_probabilities(logs: Logs, fitted: Estimate) -> None:
    """Every fitted (state, action, week of year) cell: the simulator's one-step conversion,
    engagement and opt-out probabilities are the GLM's plus the trees' (the model as fitted),
    through the world's stored tables."""
    world = fitted.calibrated.world
    assert fitted.penalties.rounds.get("convert", 0) > 0, fitted.families
    assert world.responses is not None
    weeks, _, _ = _fit_data(logs)
    design = Design(DiscreteLayout.of(world), world.actions.n_actions, True)
    data = FitData.of(weeks, design, np.ones(weeks.n))
    (point,) = refit_models(
        data, fitted.penalties, [np.ones(weeks.n)], boost=LightGBMConfig(), seed=0
    )
    assert set(point.trees) == set(fitted.penalties.rounds)
    layout = design.layout
    cells = np.unique(np.stack([weeks.state, weeks.action, weeks.week_of_year], axis=1), axis=0)
    checked = 0
    for woy in np.unique(cells[:, 2])[:6]:
        state, action = cells[cells[:, 2] == woy, 0], cells[cells[:, 2] == woy, 1]
        summary = layout.decode(state)
        seasonal = design.matrix(summary, action, np.full(state.shape[0], woy))
        features = state_features(layout, (), state, action)

        def model(name: str, matrix: sp.csr_matrix, features: np.ndarray = features) -> np.ndarray:
            eta = point.binary[name].eta(matrix)
            if name in point.trees:
                eta = eta + point.trees[name].logit(features)
            return np.asarray(1.0 / (1.0 + np.exp(-eta)), np.float64)

        sim = response_probabilities(world, summary, action, int(woy))
        log_value = point.value.eta(design.matrix(summary, np.zeros_like(action)))
        if "value" in point.trees:
            none_features = state_features(layout, (), state, np.zeros_like(action))
            log_value = log_value + point.trees["value"].logit(none_features)
        np.testing.assert_allclose(sim.value, np.exp(log_value), rtol=1e-9)
        np.testing.assert_allclose(sim.convert, model("convert", seasonal), rtol=1e-9)
        none = action == 0  # the spontaneous engagement (contacts add to it at season 0)
        np.testing.assert_allclose(sim.inquiry[none], model("engage", seasonal)[none], rtol=1e-9)
        # the opt-out table, as the GLM's, leaves the season out
        contacted = ~none
        unseasonal = design.matrix(summary, action)
        np.testing.assert_allclose(
            sim.optout[contacted], model("optout", unseasonal)[contacted], rtol=1e-9
        )
        checked += state.shape[0]
    assert checked > 100


def test_same_seed_same_world_whatever_the_workers(logs: Logs, fitted: Estimate) -> None:
    again = _estimate(logs, workers=2)
    assert again.penalties == fitted.penalties
    assert_same_fit(again.calibrated, fitted.calibrated)


def test_members_refit_the_chosen_family(logs: Logs, fitted: Estimate) -> None:
    """A bootstrap member refits trees of its own for every model the point estimate has
    them for (the same number of trees), and its tables differ from the point's."""
    weeks, _, _ = _fit_data(logs)
    world = fitted.calibrated.world
    design = Design(DiscreteLayout.of(world), world.actions.n_actions, True)
    data = FitData.of(weeks, design, np.ones(weeks.n))
    resample = bootstrap_multiplicity(weeks.customer_ids.shape[0], np.random.default_rng(1))
    point, member = refit_models(
        data, fitted.penalties, [np.ones(weeks.n), resample[weeks.customer]], seed=0
    )
    assert set(member.trees) == set(point.trees) == set(fitted.penalties.rounds)
    for name, trees in member.trees.items():
        assert trees.rounds == point.trees[name].rounds == fitted.penalties.rounds[name]
        assert trees.model != point.trees[name].model
    assert world.responses is not None
    for tables in fitted.calibrated.members:
        assert tables.responses is not None
        gap = tables.responses.convert_logit - world.responses.convert_logit
        assert 0 < np.abs(gap).mean() < 1.0


def test_the_value_glm_is_scored_by_one_gamma_deviance(fitted: Estimate) -> None:
    """The value GLM at its chosen alpha, fitted on the same rows and scored on the same
    held-out rows when the penalty is chosen and when it is compared with the trees, gets the
    same score to the last digit: one Gamma deviance scores both choices."""
    choice = fitted.penalties.choices["value"]
    assert fitted.families["value"].glm_loglik == choice.scores[choice.value]


def test_a_world_with_trees_round_trips(fitted: Estimate, tmp_path: Path) -> None:
    fitted.calibrated.save(tmp_path)
    loaded = CalibratedWorld.load(tmp_path)
    assert_same_fit(loaded, fitted.calibrated)
    families = loaded.meta["response_families"]
    assert families["convert"]["family"] == "lightgbm"
    assert loaded.meta["response_model"] == "lightgbm"
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.txt"))


def test_mlflow_params_carry_each_models_trees(fitted: Estimate) -> None:
    params = penalty_params(fitted)
    for name in ("convert", "engage", "optout", "value"):
        assert params[f"calibration.trees.{name}"] == fitted.penalties.rounds.get(name, 0)
    assert params["calibration.trees.convert"] > 0


def test_the_card_names_each_models_family(fitted: Estimate) -> None:
    (line,) = family_lines(fitted.families)
    rounds = fitted.penalties.rounds["convert"]
    assert f"convert lightgbm ({rounds} trees; held-out log-lik." in line
    assert family_lines({}) == []


def test_an_unknown_response_model_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"calibration\.response_model must be"):
        CalibrationConfig(caps=caps_config(), response_model="xgboost")
    with pytest.raises(ConfigError, match=r"calibration\.lightgbm\.num_leaves"):
        LightGBMConfig(num_leaves=1)
