"""Every config of every group and every top-level config composes with Hydra's compose API
and converts to its typed dataclass (the schemas' validation included)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

import journeyopt.cli.compare
import journeyopt.cli.demo as demo
import journeyopt.cli.evaluate
import journeyopt.cli.generate
import journeyopt.cli.ingest as ingest
import journeyopt.cli.panel as panel
import journeyopt.cli.promote as promote
import journeyopt.cli.train
from journeyopt.agents.config import TrainConfig, train_config
from journeyopt.calibration.config import CalibrateConfig
from journeyopt.calibration.config import register_configs as register_calibration
from journeyopt.cli.entry import to_object
from journeyopt.errors import ConfigError
from journeyopt.evaluation.compare import CompareConfig
from journeyopt.evaluation.config import EvaluateConfig
from journeyopt.loop.config import CycleConfig
from journeyopt.loop.config import register_configs as register_cycle
from journeyopt.monitoring.config import DriftJobConfig, RolloutJobConfig, UpliftJobConfig
from journeyopt.monitoring.config import register_configs as register_monitoring
from journeyopt.serving.config import ScoreJobConfig, ServeJobConfig
from journeyopt.serving.config import register_configs as register_serving
from journeyopt.serving.practice import RegisterPracticeConfig
from journeyopt.serving.practice import register_configs as register_practice
from journeyopt.sim.config import GenerateConfig
from tests.commands import DEMO_WORLD

assert journeyopt.cli.evaluate and journeyopt.cli.generate and journeyopt.cli.train  # schemas
assert journeyopt.cli.compare
register_calibration()
register_serving()
register_monitoring()
register_cycle()
register_practice()

CONFIGS = files("journeyopt").joinpath("configs")
REQUIRED = ["output_dir=out"]
# the shipped top-level configs read the coworking demo's logs (data=coworking); its business
# settings are its own files, chosen as a user chooses theirs (the generic defaults have none)
DEMO_DATA = ["data=coworking"]  # every command reading logs is told their source (no default)
DEMO_PANEL = [*DEMO_DATA, "panel=coworking"]
DEMO_CALIBRATION = [*DEMO_PANEL, "calibration=coworking"]
GENERIC = {
    ("panel", "default"): "panel.frequency_weeks",
    ("calibration", "default"): "calibration.caps.recency_cap_weeks",
    ("simulator", "default"): "simulator.world",
}
"""Generic default options, which leave the business's settings to the user: composing them
alone stops on the first one, named."""
TOP_LEVEL: dict[str, tuple[list[str], Callable[[DictConfig], Any]]] = {
    "ingest": ([*REQUIRED, *DEMO_DATA], lambda c: to_object(c, ingest.IngestConfig)),
    "panel": (
        ["input_dir=in", *REQUIRED, "panel=coworking"],
        lambda c: to_object(c, panel.PanelJobConfig),
    ),
    "generate": (
        [*REQUIRED, "simulator=coworking", "practice@staff=coworking"],
        lambda c: to_object(c, GenerateConfig),
    ),
    "demo": ([], lambda c: to_object(c, demo.DemoConfig)),
    "evaluate": ([*REQUIRED, *DEMO_WORLD], lambda c: to_object(c, EvaluateConfig)),
    "train": (list(DEMO_WORLD), train_config),
    "calibrate": ([*REQUIRED, *DEMO_CALIBRATION], lambda c: to_object(c, CalibrateConfig)),
    "serve": ([*DEMO_DATA, "serve.world=coworking"], lambda c: to_object(c, ServeJobConfig)),
    "score": (
        ["as_of=2024-06-03", "out=a.csv", *DEMO_DATA, "serve.world=coworking"],
        lambda c: to_object(c, ScoreJobConfig),
    ),
    "compare": (list(DEMO_WORLD), lambda c: to_object(c, CompareConfig)),
    "uplift": (
        ["decisions=d", "since=2024-01-01", *REQUIRED, *DEMO_PANEL],
        lambda c: to_object(c, UpliftJobConfig),
    ),
    "drift": ([*REQUIRED, *DEMO_PANEL], lambda c: to_object(c, DriftJobConfig)),
    "promote": (
        ["candidate=models:/journey-policy/1", "simulator=coworking", *DEMO_PANEL],
        lambda c: to_object(c, promote.PromoteConfig),
    ),
    "cycle": (
        ["week=2024-03-11", "work_dir=w", *DEMO_CALIBRATION],
        lambda c: to_object(c, CycleConfig),
    ),
    "rollout": (["decisions=d", *DEMO_PANEL], lambda c: to_object(c, RolloutJobConfig)),
    "register_practice": (
        ["serve.world=coworking"],
        lambda c: to_object(c, RegisterPracticeConfig),
    ),
}
GROUP_USERS = {  # group -> the top-level config that composes it
    "data": "ingest",
    "serve": "serve",
    "calibration": "calibrate",
    "panel": "panel",
    "simulator": "evaluate",
    "evaluation": "evaluate",
    "agent": "train",
    "train": "train",
    "tracking": "train",
    "experiment": "train",
    "practice": "evaluate",
    "rules": "evaluate",
}
PACKAGES = {
    "experiment": "+experiment",
    "practice": "practice@evaluation.staff",
    "rules": "rules@simulator.rules",
}
"""How a group option is chosen on the command line, where it is not ``<group>=<option>``."""
EXPERIMENT_USERS = {"small_cycle": "cycle"}
"""Experiments overriding another command's config than ``train``'s (the closed-loop studies'
budget of ``journeyopt-cycle``)."""


def _options(group: str) -> list[str]:
    folder = CONFIGS.joinpath(group)
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


@pytest.fixture(autouse=True)
def hydra_configs() -> Iterator[None]:
    GlobalHydra.instance().clear()
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        yield


def _compose_raw(name: str) -> DictConfig:
    """The top-level config ``name`` with its required values only (the world, the source)
    except the practice, not converted."""
    required = [r for r in TOP_LEVEL[name][0] if not r.startswith("practice@")]
    return compose(name, overrides=required)


def _compose(name: str, overrides: list[str]) -> Any:
    """The top-level config ``name`` with its required values, ``overrides`` replacing any
    of them (the same key)."""
    required, convert = TOP_LEVEL[name]
    given = {o.split("=", 1)[0] for o in overrides}
    kept = [r for r in required if r.split("=", 1)[0] not in given]
    return convert(compose(name, overrides=[*kept, *overrides]))


def test_every_config_is_covered() -> None:
    """A new top-level config or group must be added to the tables above."""
    groups = sorted(p.name for p in CONFIGS.iterdir() if p.is_dir() and not p.name.startswith("_"))
    assert groups == sorted(GROUP_USERS)
    assert all(_options(g) for g in groups)
    top = sorted(
        p.name.removesuffix(".yaml") for p in CONFIGS.iterdir() if p.name.endswith(".yaml")
    )
    assert top == sorted(TOP_LEVEL)


@pytest.mark.parametrize("name", sorted(TOP_LEVEL))
def test_top_level_config_composes(name: str) -> None:
    assert _compose(name, []) is not None


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in sorted(GROUP_USERS) for o in _options(g)]
)
def test_group_option_composes(group: str, option: str) -> None:
    override = f"{PACKAGES.get(group, group)}={option}"
    user = EXPERIMENT_USERS.get(option) if group == "experiment" else None
    if (group, option) in GENERIC:
        with pytest.raises(
            ConfigError, match=rf"^missing mandatory value: {GENERIC[group, option]}: "
        ):
            _compose(user or GROUP_USERS[group], [override])
        return
    obj = _compose(user or GROUP_USERS[group], [override])
    if group == "agent":
        assert isinstance(obj, TrainConfig)
        assert obj.agent.algorithm == {"ppo": "PPO", "a2c": "A2C", "dqn": "DQN"}.get(
            option, "MaskablePPO"
        )


def test_experiments_hold_overrides_only() -> None:
    for option in _options("experiment"):
        text = CONFIGS.joinpath("experiment", f"{option}.yaml").read_text()
        assert text.splitlines()[0].strip() == "# @package _global_", option


def test_train_defaults_follow_the_issue() -> None:
    cfg = _compose("train", [])
    assert cfg.train.torch_threads == 1 and cfg.gamma == cfg.simulator.gamma


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("agent.algorithm=SAC", "unknown 'SAC'"),
        ("agent.n_steps=0", "n_steps"),
        ("train.torch_threads=0", "torch_threads"),
        ("agent.activation=sigmoid", "activation"),
    ],
)
def test_invalid_train_configs_are_refused(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _compose("train", [override])


def test_warm_start_refuses_dqn() -> None:
    with pytest.raises(ConfigError, match="actor-critic"):
        _compose("train", ["agent=dqn", "train.warm_start.enabled=true"])


def test_configuration_reference_names_every_command_group_and_option() -> None:
    """docs/configuration.md lists every top-level config (as its command), every group and
    every option, so the reference cannot silently fall behind the configs."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    commands = [f"journeyopt-{name.replace('_', '-')}" for name in TOP_LEVEL]
    missing = [command for command in commands if f"`{command}`" not in page]
    for group in GROUP_USERS:
        if f"| `{group}` |" not in page:
            missing.append(f"group {group}")
        missing += [f"{group}/{o}" for o in _options(group) if f"`{o}`" not in page]
    assert not missing, f"docs/configuration.md does not mention {missing}"


@pytest.mark.parametrize("name", ["serve", "score", "promote", "cycle"])
def test_a_removed_cap_stays_removed(name: str) -> None:
    """``'~serve.rules.frequency_caps.email'`` (what docs/serving.md and the guard's message
    tell a user whose world has no such channel) removes the cap; the schema's defaults are not
    merged back in."""
    obj = _compose(
        name,
        [
            "rules@serve.rules=coworking",  # the demo's caps (the generic default has none)
            "~serve.rules.frequency_caps.email",
            "~serve.rules.frequency_caps.phone",
        ],
    )
    assert dict(obj.serve.rules.frequency_caps) == {}


def test_a_map_given_in_a_config_replaces_the_schema_default() -> None:
    obj = _compose(
        "serve",
        [
            "rules@serve.rules=coworking",
            "~serve.rules.frequency_caps.email",
            "serve.rules.frequency_caps.phone=3",
            "practice@serve.holdout.staff=coworking",
        ],
    )
    assert dict(obj.serve.rules.frequency_caps) == {"phone": 3}
    assert obj.serve.holdout.staff.rules  # nested dataclasses keep their configured values


def test_the_demo_practice_is_one_file_used_by_every_stage() -> None:
    """The logs' behaviour policy, the staff_rules baseline and the control group all read
    ``configs/practice/coworking.yaml`` in the ground-truth world; where the world is a
    calibrated one (the gate, the demo after its calibration) they read the practice estimated
    from the logs (``configs/practice/logged.yaml``). The schemas carry no practice."""
    from journeyopt.sim.config import StaffRulesConfig, shipped_practice

    demo = shipped_practice("coworking")
    logged = shipped_practice("logged")
    assert logged.source == "logged" and logged.rules == []
    assert StaffRulesConfig().rules == [] and StaffRulesConfig().source == "rules"
    assert _compose("generate", []).staff == demo
    assert _compose("evaluate", []).evaluation.staff == demo
    served = _compose("serve", ["practice@serve.holdout.staff=coworking"])
    assert served.serve.holdout.staff == demo
    # without a choice, every command's baseline and control group is the logs' practice
    for name, staff in (("evaluate", "evaluation"), ("serve", "serve.holdout")):
        assert OmegaConf.select(_compose_raw(name), f"{staff}.staff.source") == "logged"
    assert _compose("promote", []).evaluation.staff == logged
    demo_run = _compose("demo", [])
    assert demo_run.generate.staff == demo
    assert demo_run.evaluation.staff == logged and demo_run.serve.holdout.staff == logged
    hand = _compose("promote", ["practice@evaluation.staff=coworking"])
    assert hand.evaluation.staff == demo
    own = _compose("evaluate", ["practice@evaluation.staff=none"])
    assert own.evaluation.staff.rules == []
