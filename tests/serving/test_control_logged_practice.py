"""The control group under today's practice estimated from the logs (``serve.holdout.staff``
with ``source: logged``): the batch scorer draws each control customer's action from the
estimated probabilities, reproducibly, within the contact rules, and logs the true propensity."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from journeyopt.data.source import SourceConfig
from journeyopt.serving.batch import score_logs
from journeyopt.serving.config import HoldoutConfig, ServingConfig
from journeyopt.serving.decisions import read_decision_log
from journeyopt.serving.scorer import Scorer
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.config import StaffRulesConfig
from journeyopt.sim.practice import LoggedPractice
from tests.serving.conftest import AS_OF
from tests.tracking.test_gate_logged_practice import coworking_with_practice


def test_batch_control_group_follows_the_logs_practice(
    tmp_path: Path,
    demo_logs: Path,
    demo_source: SourceConfig,
    served: ServedModel,
    settings: ServingConfig,
) -> None:
    folder = coworking_with_practice(demo_logs, tmp_path / "world")
    logged = replace(
        settings,
        world=str(folder),
        holdout=HoldoutConfig(staff=StaffRulesConfig(source="logged"), control_share=0.3),
    )
    scorer = Scorer(served, logged)
    assert isinstance(scorer.staff.practice, LoggedPractice)  # the control group's policy

    first = score_logs(demo_source, AS_OF, served, logged, tmp_path / "a" / "actions.csv")
    again = score_logs(demo_source, AS_OF, served, logged, tmp_path / "b" / "actions.csv")
    assert first.customers == again.customers > 100
    a = read_decision_log(tmp_path / "a" / "decisions.csv")
    b = read_decision_log(tmp_path / "b" / "decisions.csv")
    pd.testing.assert_series_equal(a["action"], b["action"])  # hashed draws: reproducible

    control = a[a["group"] == "control"]
    assert len(control) > 30
    names = list(scorer.action_names)
    rows = control["probabilities"].map(json.loads)  # action name -> probability
    probabilities = np.array([[p.get(name, 0.0) for name in names] for p in rows])
    chosen = np.array([names.index(x) for x in control["action"]])
    np.testing.assert_allclose(
        probabilities[np.arange(len(control)), chosen], control["propensity"], atol=1e-6
    )
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    # stochastic, as the logs' practice: not one-hot, and more than one action drawn
    assert (probabilities.max(axis=1) < 0.999).mean() > 0.5
    assert control["action"].nunique() > 1
    # the estimated practice, not the hand-written rules: their decisions differ somewhere
    written = read_decision_log(_score_with(settings, demo_source, served, tmp_path / "c"))
    hand = written["group"] == "control"
    assert (written.loc[hand, "propensity"] == 1.0).all()  # the rules are deterministic
    assert control["propensity"].mean() < 0.95


def _score_with(
    settings: ServingConfig, source: SourceConfig, served: ServedModel, folder: Path
) -> Path:
    """The decision log of the same week under the hand-written control rules."""
    control = replace(settings.holdout, control_share=0.3)
    score_logs(source, AS_OF, served, replace(settings, holdout=control), folder / "actions.csv")
    return folder / "decisions.csv"
