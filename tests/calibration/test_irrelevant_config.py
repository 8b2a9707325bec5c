"""Configuration that says nothing about the customers leaves the calibrated world alone: adding
channels no action uses, actions nobody took, or renaming the segments leaves every policy's
value unchanged (property test over small generated logs)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from journeyopt.agents.baselines import MyopicPolicy, NoContact
from journeyopt.calibration.pipeline import calibrate
from journeyopt.calibration.policy_fidelity import AlwaysAction
from journeyopt.data.source import ActionSpec
from journeyopt.evaluation.simulate import evaluate_policies
from journeyopt.sim.config import GenerateConfig
from journeyopt.sim.logs import generate_logs, write_logs
from journeyopt.sim.optimum import solve_optimum
from journeyopt.sim.world import load_world, world_path
from tests.calibration.conftest import CAPS, SMALL_PRACTICE, calibration_config, source_config

ACTIONS = ("newsletter", "personal_email", "discount_offer", "personal_call")
CHANNELS = ["email", "phone"]
HORIZON, GAMMA = 12, 0.99


@pytest.fixture(scope="module")
def two_type_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Logs of 600 customers of two types over 36 weeks; half the unsubscribes name no channel
    (an opt-out of all marketing, which applies to every declared channel)."""
    raw = yaml.safe_load(world_path("coworking").read_text())
    segments = {k: raw["segments"][k] for k in ("freelancer", "startup_team")}
    for seg in segments.values():
        seg["share"] = 0.5
    discrete = {
        k: getattr(CAPS, k) for k in ("recency_cap_weeks", "conversions_cap", "contact_cap_weeks")
    }
    raw.update(name="two", segments=segments, discrete={**discrete, "engagement_cap_weeks": 4})
    folder = tmp_path_factory.mktemp("two")
    (folder / "world.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    world = load_world(folder / "world.yaml")
    out = tmp_path_factory.mktemp("two_logs")
    cfg = GenerateConfig(
        staff=SMALL_PRACTICE, output_dir=str(out), n_customers=600, weeks=36, exploration=0.3
    )
    write_logs(generate_logs(world, cfg, np.random.default_rng(4)), out, overwrite=True)
    events = pd.read_csv(out / "events.csv", dtype=str, keep_default_na=False)
    unsubscribe = np.flatnonzero(events["event_type"].to_numpy() == "unsubscribe")
    assert unsubscribe.size > 20
    events.loc[unsubscribe[::2], "channel"] = ""
    events.to_csv(out / "events.csv", index=False)
    return out


def policy_values(
    logs: Path,
    out: Path,
    channels: list[str],
    extra_actions: dict[str, ActionSpec],
    response_model: str = "glm",
) -> dict[str, Any]:
    """Calibrate ``logs`` declaring ``channels`` and the coworking actions plus
    ``extra_actions`` (the response models' family ``response_model``); the mean discounted
    value of no contact, always-X for the logged actions, the myopic policy and the DP optimum
    in that world; ``unsupported``: the world's unsupported actions; ``trees``: the number of
    trees of each model that has them; ``card``: its card's text."""
    cfg = calibration_config(logs, out)
    source = source_config("coworking", [f"data.path={logs}"])
    source = replace(source, contact_channels=channels, actions={**source.actions, **extra_actions})
    cfg = replace(
        cfg,
        data=source,
        calibration=replace(
            cfg.calibration,
            ensemble_size=0,
            holdout_weeks=4,
            holdout_runs=1,
            response_model=response_model,
        ),
    )
    fitted = calibrate(cfg).estimate
    world = fitted.calibrated.world
    policies = [NoContact(), MyopicPolicy(world)]
    policies += [AlwaysAction(world.actions.names.index(a), f"always_{a}") for a in ACTIONS]
    optimum = solve_optimum(world, HORIZON, GAMMA)
    result = evaluate_policies(
        world,
        policies,
        n_customers=1500,
        horizon_weeks=HORIZON,
        gamma=GAMMA,
        seed=0,
        optimum=optimum,
        reference=None,
    )
    values: dict[str, Any] = {run.name: float(np.mean(run.value)) for run in result.runs}
    values["optimum"] = float(np.mean(result.optimum_value))
    values["unsupported"] = list(world.unsupported_actions)
    values["trees"] = dict(fitted.penalties.rounds)
    assert load_world(out / "world.yaml").unsupported_actions == world.unsupported_actions
    values["card"] = (out / "card.md").read_text()
    return values


@pytest.fixture(scope="module")
def reference(two_type_logs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return policy_values(two_type_logs, tmp_path_factory.mktemp("reference"), CHANNELS, {})


def renamed_copy(logs: Path, folder: Path) -> Path:
    """``logs`` with the segments renamed so that their sorted order flips."""
    shutil.copytree(logs, folder, dirs_exist_ok=True)
    customers = pd.read_csv(folder / "customers.csv", dtype=str, keep_default_na=False)
    names = {"freelancer": "zeta_solo", "startup_team": "alpha_team"}
    customers["customer_type"] = customers["customer_type"].replace(names)
    customers.to_csv(folder / "customers.csv", index=False)
    return folder


@settings(
    max_examples=2,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # each example is a calibration: no shrinking
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(unused_channels=st.integers(0, 2), rename=st.booleans())
@example(unused_channels=2, rename=True)
def test_unused_channels_and_segment_names_leave_every_policy_value_unchanged(
    two_type_logs: Path,
    reference: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
    unused_channels: int,
    rename: bool,
) -> None:
    logs = two_type_logs
    if rename:
        logs = renamed_copy(logs, tmp_path_factory.mktemp("renamed"))
    channels = [*CHANNELS, *(f"unused_{k}" for k in range(unused_channels))]
    values = policy_values(logs, tmp_path_factory.mktemp("variant"), channels, {})
    assert values.keys() == reference.keys()
    for name, value in reference.items():
        if name == "card":
            continue
        assert values[name] == pytest.approx(value, rel=1e-6, abs=1e-9), name


def test_unused_channels_and_segment_names_leave_a_world_with_trees_unchanged(
    two_type_logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The same with LightGBM trees boosted from the GLMs: the trees never read an unused
    channel's opt-out bit, and renamed segments only renumber a category."""
    mine = policy_values(two_type_logs, tmp_path_factory.mktemp("trees"), CHANNELS, {}, "lightgbm")
    assert mine["trees"], "no model got trees: the test would show nothing"
    renamed = renamed_copy(two_type_logs, tmp_path_factory.mktemp("trees_renamed"))
    channels = [*CHANNELS, "unused_0", "unused_1"]
    variant = policy_values(
        renamed, tmp_path_factory.mktemp("trees_variant"), channels, {}, "lightgbm"
    )
    for name, value in mine.items():
        if name != "card":
            assert variant[name] == pytest.approx(value, rel=1e-6, abs=1e-9), name


@pytest.fixture(scope="module")
def with_untaken_action(
    two_type_logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The values with an action declared that the logs never took."""
    extra = {"never_sent": ActionSpec(channel="email", cost=0.4)}
    return policy_values(two_type_logs, tmp_path_factory.mktemp("untaken"), CHANNELS, extra)


def test_an_action_nobody_took_leaves_the_logged_policies_values_unchanged(
    reference: dict[str, Any], with_untaken_action: dict[str, Any]
) -> None:
    for name, value in reference.items():
        if name not in ("optimum", "unsupported", "card"):
            assert with_untaken_action[name] == pytest.approx(value, rel=1e-6, abs=1e-9), name


def test_an_action_nobody_took_leaves_the_optimum_unchanged(
    reference: dict[str, Any], with_untaken_action: dict[str, Any]
) -> None:
    """The action has no logged support: the calibrated world lists it as unsupported and
    every mask (the DP optimum's included) forbids it, so the optimum is the one without it
    (before: 299.6 vs 295.3)."""
    assert with_untaken_action["unsupported"] == ["never_sent"]
    assert reference["unsupported"] == []
    assert "**Unsupported actions**" in with_untaken_action["card"]
    assert "never_sent (0 decisions)" in with_untaken_action["card"]
    assert "Unsupported actions" not in reference["card"]
    assert with_untaken_action["optimum"] == pytest.approx(reference["optimum"], rel=1e-6)
