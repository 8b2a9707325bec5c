"""The gate tells "evidence against" (refuse, exit 3) from "inconclusive: not enough evidence"
(exit 4, with how much more data would settle it), and on an inconclusive gate promotes a
canary only when the user opts in (``gate.inconclusive=canary``) and a staged rollout can
follow — on a real MLflow sqlite registry."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from journeyopt.cli.entry import report_errors
from journeyopt.cli.promote import GateConfig, PromoteConfig, promote
from journeyopt.errors import ConfigError
from journeyopt.evaluation.ope.diagnostics import Diagnostics
from journeyopt.evaluation.ope.model_check import ActionCheck, ModelCheck
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.promotion import (
    INCONCLUSIVE_EXIT_CODE,
    REFUSED_EXIT_CODE,
    Evidence,
    PromotionInconclusive,
    PromotionRefused,
    data_factor,
    decide,
    model_check_evidence,
    simulation_evidence,
    support_shortfall,
)
from journeyopt.tracking.registry import CHAMPION, PolicyRegistry
from journeyopt.tracking.rollout import CANARY, read_rollout
from tests.tracking.test_promotion import (
    cloned_myopic,
    fixed_action,
    gate_config,
    recent_logs,  # noqa: F401  (the module's fixture)
    register,
)


def action_check(gap: float, low: float, high: float, decisions: int = 200) -> ActionCheck:
    """A failed strict per-action model check with tolerance 10 %."""
    return ActionCheck("call", 0.3, decisions, 100.0, 100.0 * (1 + gap), gap, low, high, 0.1,
                       True, 0.9, False)  # fmt: skip


def test_data_factor_is_the_multiple_of_data_that_fits_the_interval() -> None:
    # symmetric: half-width 0.1 around 0.05 must shrink to 0.05: four times the data
    assert data_factor(0.05, -0.05, 0.15, 0.1) == pytest.approx(4.0)
    # asymmetric: the lower side binds, (0.1 - 0.02) / 0.16 = 0.5
    assert data_factor(-0.02, -0.18, 0.04, 0.1) == pytest.approx(4.0)
    assert data_factor(0.0, -0.05, 0.05, 0.1) == 1.0
    assert math.isinf(data_factor(0.12, 0.05, 0.2, 0.1))  # the estimate itself is beyond


@pytest.mark.parametrize(
    ("gap", "low", "high", "decisions", "inconclusive", "more"),
    [
        (-0.071, -0.13, 0.005, 717, True, "about 4.1 times the 717 logged decisions of 'call'"),
        (-0.195, -0.373, 0.049, 717, True, "would show the model wrong, not right"),
        (0.3, 0.2, 0.4, 717, False, ""),  # the whole interval beyond: shown wrong
        (float("nan"), float("nan"), float("nan"), 0, True, "no logged decisions of 'call'"),
    ],
)
def test_a_model_check_is_inconclusive_when_its_interval_straddles_the_tolerance(
    gap: float, low: float, high: float, decisions: int, inconclusive: bool, more: str
) -> None:
    row = model_check_evidence(action_check(gap, low, high, decisions), "call", True)
    assert not row.passed
    assert row.inconclusive is inconclusive
    assert more in row.more_data and (more or not row.more_data)


def test_overlap_failing_only_on_support_is_inconclusive_with_the_decisions_needed() -> None:
    actions = pd.DataFrame(
        {"action": [0, 1, 2], "target_share": [0.6, 0.3, 0.1], "logged": [900, 40, 30],
         "supporting": [900, 24, 30], "judged": [True, True, True]}
    )  # fmt: skip
    short = Diagnostics(pd.DataFrame(), False, ("action 'call': only 24 ...",), actions)
    more = support_shortfall(short, 30, ("none", "call", "mail"))
    assert more == (
        "6 more logged decisions of 'call' where the candidate takes it (24 of 30; about "
        "1.2 times the logs)"
    )
    also_ess = Diagnostics(pd.DataFrame(), False, ("ess below 1 %", "action 'call' ..."), actions)
    assert support_shortfall(also_ess, 30, ("none", "call", "mail")) == ""  # not data alone


def failed(test: str, inconclusive: bool) -> Evidence:
    more = "more" if inconclusive else ""
    return Evidence(test, "s", 1.0, 1.0, 0.0, -1.0, 0.1, False, "why", True,
                    inconclusive=inconclusive, more_data=more)  # fmt: skip


def test_decide_separates_inconclusive_from_against_and_canaries_only_on_opt_in() -> None:
    good = simulation_evidence("world", np.array([2.0, 3.0, 4.0]), np.zeros(3), 0.95, 0.0)
    bad = simulation_evidence("world", np.array([-2.0, -3.0, -4.0]), np.zeros(3), 0.95, 0.0)
    shy = failed("model_check", inconclusive=True)
    wrong = failed("model_check", inconclusive=False)

    decision = decide([good, shy])
    assert (decision.promote, decision.inconclusive, decision.verdict) == (
        False, True, "inconclusive")  # fmt: skip
    assert decision.reasons == ("model_check test inconclusive (s): why",)
    assert decision.more_data == ("model_check (s): more",)
    assert not decide([good, shy], "canary", canary_possible=False).promote  # no rollout
    canary = decide([good, shy], "canary", canary_possible=True)
    assert canary.promote and canary.canary_only and canary.verdict == "canary (inconclusive)"
    assert canary.metrics()["gate/canary_only"] == 1.0

    for evidence in ([good, shy, wrong], [bad, shy]):  # evidence against refuses either way
        against = decide(evidence, "canary", canary_possible=True)
        assert not against.promote and not against.inconclusive
        assert against.verdict == "refused"
    with pytest.raises(ValueError, match="inconclusive must be one of"):
        decide([good], "maybe")
    with pytest.raises(ConfigError, match=r"gate\.inconclusive must be one of"):
        GateConfig(inconclusive="maybe")


def inconclusive_config(candidate: str, logs: Path, settings: TrackingConfig) -> PromoteConfig:
    """The default gate on 1,500 customers' 6 logged weeks with the true world as the model:
    the model check's intervals straddle the tolerance and the candidate's actions rest on
    fewer than 30 supporting logged decisions — no evidence against it, not enough for it."""
    return gate_config(candidate, logs, settings)


def test_an_inconclusive_gate_refuses_with_exit_4_or_promotes_a_canary_on_opt_in(
    mlflow_sqlite: TrackingConfig,
    recent_logs: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry = PolicyRegistry(mlflow_sqlite)
    better = register(mlflow_sqlite, cloned_myopic(recent_logs), "myopic_clone")
    uri = f"models:/{registry.name}/{better}"

    # 1. default (refuse): exit code 4, "inconclusive", how much more data, no alias
    with pytest.raises(SystemExit) as exited:
        report_errors(lambda: promote(inconclusive_config(uri, recent_logs, mlflow_sqlite)))
    assert exited.value.code == INCONCLUSIVE_EXIT_CODE
    printed = capsys.readouterr()
    message = printed.err.strip().splitlines()[-1]
    assert message.startswith(f"error: inconclusive, not enough evidence: {uri} not promoted")
    assert "simulation test failed" not in message and "test inconclusive" in message
    shown = printed.out
    assert f"promotion gate: {uri} inconclusive" in shown
    assert "more data needed:" in shown and "more logged decisions of" in shown
    assert "gate.inconclusive=canary" in shown
    with pytest.raises(MlflowException):
        registry.alias(CHAMPION)

    # 2. a champion (silence, put there by hand) and the opt-in: a canary only
    quiet = register(mlflow_sqlite, fixed_action(0), "no_contact")
    registry.promote(quiet, CHAMPION, reason="test: the business's cautious start")
    cfg = inconclusive_config(uri, recent_logs, mlflow_sqlite)
    cfg.gate.inconclusive = "canary"
    decision = promote(cfg)
    assert decision.canary_only and decision.promote and decision.inconclusive
    state = read_rollout(registry)
    assert state is not None and state.stage == CANARY
    assert (state.champion, state.previous) == (better, quiet)
    tags = registry.version_tags(better)
    assert tags["journeyopt.promotion.champion.reason"].startswith("canary only: the gate was "
                                                                   "inconclusive")  # fmt: skip
    assert "always-valid test is the evidence" in tags["journeyopt.promotion.champion.reason"]
    client = registry.client
    experiment = client.get_experiment_by_name(mlflow_sqlite.experiment)
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id],
        "tags.`journeyopt.promotion.decision` = 'canary (inconclusive)'",
    )
    assert len(runs) == 1
    assert runs[0].data.metrics["gate/canary_only"] == 1.0
    recorded = pd.read_json(
        client.download_artifacts(runs[0].info.run_id, "promotion/decision.json"), typ="series"
    )
    assert recorded["canary_only"] and recorded["more_data"]

    # 3. evidence against still refuses with the opt-in: silence against the canary
    cfg = inconclusive_config(f"models:/{registry.name}/{quiet}", recent_logs, mlflow_sqlite)
    cfg.gate.inconclusive = "canary"
    with pytest.raises(PromotionRefused, match="simulation test failed") as refused:
        promote(cfg)
    assert not isinstance(refused.value, PromotionInconclusive)
    assert refused.value.exit_code == REFUSED_EXIT_CODE
    assert registry.alias(CHAMPION).version == better


def test_the_logging_policy_check_counts_its_customers() -> None:
    table = pd.DataFrame({"segment": ["all"], "customers": [1793]})
    check = ModelCheck(13, 361.95, 336.36, -0.071, -0.13, 0.005, 0.1, True, False, table, 0.9)
    row = model_check_evidence(check, "logging policy", True)
    assert row.inconclusive
    assert row.more_data.startswith("about 4.1 times the 1,793 logged customers (7,422)")
