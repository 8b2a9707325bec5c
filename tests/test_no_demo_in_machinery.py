"""No demo in the machinery: the generic modules of ``src/journeyopt`` (everything outside the
worlds' data ``simulators/`` and the shipped ``configs/``) name no action, customer type or world
of the demos and default to none of them; the demos' choices live in config files. A missing
world is a one-line ``ConfigError`` (exit 2 at the command line), never the coworking demo."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import omegaconf
import pytest
import yaml
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from journeyopt.calibration.config import CalibrateConfig, CalibrationConfig, CapsConfig
from journeyopt.cli.entry import to_object
from journeyopt.errors import ConfigError
from journeyopt.panel.config import PanelConfig
from journeyopt.panel.state import FeatureSpec
from journeyopt.serving.config import ServingConfig
from journeyopt.sim.config import GenerateConfig, SimulatorConfig
from journeyopt.sim.shop import ShopSpec
from journeyopt.sim.world import DiscreteSpec, PopulationSpec, load_world, world_from_dict
from tests.commands import error_line

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "journeyopt"
NOT_MACHINERY = ("simulators", "configs")
# the coworking demo's actions and customer types (configs/data/coworking.yaml,
# simulators/coworking/world.yaml): never named by a generic module, not even in a docstring
DEMO_NAMES = (
    "newsletter",
    "personal_email",
    "discount_offer",
    "personal_call",
    "startup_team",
    "corporate_team",
    "freelancer",
)
WORLDS = tuple(sorted(p.parent.name for p in (PACKAGE / "simulators").glob("*/world.yaml")))
# the demo's own entry point may say which world it runs (its console headline)
DEMO_ENTRY = Path("cli", "demo.py")


def _modules() -> list[Path]:
    return [
        p
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.relative_to(PACKAGE).parts[0] not in NOT_MACHINERY
    ]


def _docstrings(tree: ast.AST) -> set[int]:
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, kinds)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }


def _defaults(tree: ast.AST) -> list[ast.expr]:
    """Every default value: of function parameters and of class attributes (dataclass
    fields, including ``field(default=...)``)."""
    found: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arguments):
            found += [d for d in (*node.defaults, *node.kw_defaults) if d is not None]
        elif isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign | ast.Assign) and stmt.value is not None:
                    found.append(stmt.value)
    return found


def _strings(node: ast.AST) -> list[str]:
    return [
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def test_the_scan_sees_the_package() -> None:
    assert len(_modules()) > 100 and {"coworking", "roastery"} <= set(WORLDS)


def test_no_generic_module_names_a_demo_action_or_customer_type() -> None:
    hits = [
        f"{p.relative_to(PACKAGE)}: {name}"
        for p in _modules()
        for name in DEMO_NAMES
        if name in p.read_text(encoding="utf-8").lower()
    ]
    assert not hits, hits


def test_no_generic_default_names_a_world_or_a_demo_choice() -> None:
    """``world: str = "coworking"``, ``world="roastery"`` as a parameter default and the like."""
    hits = []
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for default in _defaults(tree):
            for text in _strings(default):
                low = text.lower()
                if low in WORLDS or any(n in low for n in (*DEMO_NAMES, *WORLDS)):
                    hits.append(f"{path.relative_to(PACKAGE)}:{default.lineno}: {text!r}")
    assert not hits, hits


def test_no_generic_code_says_coworking_outside_docstrings() -> None:
    """Messages and values do not suggest the demo to another business (docstrings may cite
    the demo as an example; the demo's own entry point names the world it runs)."""
    hits = []
    for path in _modules():
        if path.relative_to(PACKAGE) == DEMO_ENTRY:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            said = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if said and id(node) not in docs and "coworking" in node.value.lower():
                hits.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}")
    assert not hits, hits


def _named_defaults(tree: ast.AST) -> list[tuple[str, ast.expr]]:
    """(name, default) of every parameter and class attribute that has a default."""
    found: list[tuple[str, ast.expr]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arguments):
            plain = [*node.posonlyargs, *node.args]
            pairs = zip(plain[len(plain) - len(node.defaults) :], node.defaults, strict=True)
            found += [(a.arg, d) for a, d in pairs]
            found += [
                (a.arg, d) for a, d in zip(node.kwonlyargs, node.kw_defaults, strict=True) if d
            ]
        elif isinstance(node, ast.ClassDef):
            for stmt in node.body:
                named = isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                if named and stmt.value is not None:
                    found.append((stmt.target.id, stmt.value))
    return found


def test_no_generic_default_sets_a_business_currency_or_margin() -> None:
    """A business's currency and margin come from its source config or world, never from a
    default (``currency: str = "EUR"``, ``margin_rate = 0.7``); unset (None, "") is allowed."""
    hits = []
    for path in _modules():
        for name, default in _named_defaults(ast.parse(path.read_text(encoding="utf-8"))):
            unset = isinstance(default, ast.Constant) and default.value in (None, "")
            if name in ("currency", "margin_rate", "margin") and not unset:
                hits.append(f"{path.relative_to(PACKAGE)}:{default.lineno}: {name}")
    assert not hits, hits


@pytest.mark.parametrize(
    ("schema", "given"),
    [(SimulatorConfig, {}), (GenerateConfig, {"output_dir": "x"}), (ServingConfig, {})],
)
def test_a_world_is_required_by_the_schemas(schema: type, given: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"missing mandatory value: (simulator\.)?world"):
        to_object(OmegaConf.create(given), schema)


def test_a_world_without_a_currency_is_refused() -> None:
    raw = yaml.safe_load((PACKAGE / "simulators" / "coworking" / "world.yaml").read_text())
    del raw["currency"]
    with pytest.raises(ConfigError, match=r"^world.currency is not set"):
        world_from_dict(raw)


@pytest.mark.parametrize("name", ["", "???", "  "])
def test_no_world_given_is_a_one_line_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match=r"^no world given: set the world \(simulator.world"):
        load_world(name)


def test_the_command_line_exits_2_without_a_world(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JOURNEYOPT_DEBUG"}
    command = Path(sys.executable).with_name("journeyopt-evaluate")
    done = subprocess.run(
        [str(command), f"output_dir={tmp_path / 'eval'}", "simulator.world="],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200"},
        timeout=120,
        check=False,
    )
    assert "no world given" in error_line(done), done.stderr[-2000:]


PANEL_WINDOWS = ("lapse_weeks", "frequency_weeks", "fatigue_weeks", "engagement_weeks")
PANEL_REQUIRED = PANEL_WINDOWS[1:]
"""The panel windows a user's config must give: ``lapse_weeks`` defaults to null, read off the
logs where a panel is built (``journeyopt.panel.suggest``), never to the demo's 26 weeks."""
# Business choices the demo once supplied as defaults: a generic schema has none, a user's
# config gives them (the shipped demo's in its config group's yaml or world.yaml).
SUMMARY_CAPS = ("recency_cap_weeks", "conversions_cap", "contact_cap_weeks", "engagement_cap_weeks")
BUSINESS_FIELDS: dict[type, tuple[str, ...]] = {
    PanelConfig: PANEL_REQUIRED,
    DiscreteSpec: SUMMARY_CAPS,
    CapsConfig: SUMMARY_CAPS,
    PopulationSpec: tuple(f.name for f in dataclasses.fields(PopulationSpec)),
    FeatureSpec: PANEL_WINDOWS,
    ShopSpec: (
        "features",
        "recency_cap_weeks",
        "history_weeks",
        "max_contacts",
        "refund_lag_weeks",
    ),
}


@pytest.mark.parametrize("schema", list(BUSINESS_FIELDS), ids=lambda c: c.__name__)
def test_business_choices_have_no_default_in_the_schemas(schema: type) -> None:
    """``lapse_weeks: int = 26`` and the like: code that builds a schema in Python must say
    its business's value (a missing one is a TypeError in Python, a one-line ConfigError
    from a config file), never silently get the demo's."""
    named = {f.name: f for f in dataclasses.fields(schema)}
    defaulted = [
        name
        for name in BUSINESS_FIELDS[schema]
        if named[name].default not in (dataclasses.MISSING, omegaconf.MISSING)
        or named[name].default_factory is not dataclasses.MISSING
    ]
    assert not defaulted, f"{schema.__name__}: {defaulted}"
    hints = getattr(schema, "REQUIRED_HINTS", None)
    if hints is not None:  # a config group's schema says how to choose each
        assert set(BUSINESS_FIELDS[schema]) <= set(hints)


def test_lapse_weeks_defaults_to_the_logs_not_to_a_value() -> None:
    field = {f.name: f for f in dataclasses.fields(PanelConfig)}["lapse_weeks"]
    assert field.default is None
    assert (
        to_object(OmegaConf.create(dict.fromkeys(PANEL_REQUIRED, 4)), PanelConfig).lapse_weeks
        is None
    )


@pytest.mark.parametrize("name", PANEL_REQUIRED)
def test_a_panel_config_without_a_window_names_it_and_how_to_choose(name: str) -> None:
    given = {n: 4 for n in PANEL_WINDOWS if n != name}
    hint = PanelConfig.REQUIRED_HINTS[name]
    with pytest.raises(ConfigError, match=rf"^missing mandatory value: {name}: ") as err:
        to_object(OmegaConf.create(given), PanelConfig)
    assert hint in str(err.value) and "\n" not in str(err.value)


def test_a_user_panel_config_without_a_window_exits_2_naming_it(tmp_path: Path) -> None:
    """A user's own config folder whose panel file leaves out ``fatigue_weeks``: the command
    stops before reading anything, with one line naming ``panel.fatigue_weeks`` (exit 2), not
    the demo's 4 weeks (``lapse_weeks``, also left out, is read off the logs)."""
    panel = tmp_path / "conf" / "panel"
    panel.mkdir(parents=True)
    (panel / "shop.yaml").write_text("frequency_weeks: 26\nengagement_weeks: 2\n")
    env = {k: v for k, v in os.environ.items() if k != "JOURNEYOPT_DEBUG"}
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("journeyopt-panel")),
            "--config-dir",
            str(tmp_path / "conf"),
            "panel=shop",
            f"input_dir={tmp_path / 'nowhere'}",
            f"output_dir={tmp_path / 'out'}",
            f"hydra.run.dir={tmp_path / 'hydra'}",
        ],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "300"},
        timeout=120,
        check=False,
    )
    line = error_line(done)
    assert line.startswith("error: missing mandatory value: panel.fatigue_weeks: window of")
    assert "panel.fatigue_weeks=<value>" in line and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("section", "name"),
    [("discrete", "conversions_cap"), ("population", "lapsed"), ("features", "lapse_weeks")],
)
def test_a_world_without_a_business_choice_is_a_one_line_config_error(
    section: str, name: str
) -> None:
    raw = yaml.safe_load((PACKAGE / "simulators" / "coworking" / "world.yaml").read_text())
    del raw[section][name]
    with pytest.raises(ConfigError, match=rf"^world\.{section}\.{name} is not set: ") as err:
        world_from_dict(raw)
    assert "\n" not in str(err.value)


def test_a_calibration_without_a_cap_names_it_and_how_to_choose() -> None:
    given = {"caps": {n: 5 for n in SUMMARY_CAPS if n != "recency_cap_weeks"}}
    with pytest.raises(
        ConfigError, match=r"^missing mandatory value: caps\.recency_cap_weeks: weeks since"
    ):
        to_object(OmegaConf.create(given), CalibrationConfig)


def test_a_shop_world_without_its_panel_windows_is_refused() -> None:
    from journeyopt.sim.shop import shop_from_dict

    raw = yaml.safe_load((PACKAGE / "simulators" / "roastery" / "world.yaml").read_text())
    assert shop_from_dict(raw).features.lapse_weeks == raw["features"]["lapse_weeks"]
    del raw["features"]["fatigue_weeks"]
    with pytest.raises(ConfigError, match=r"^world\.features\.fatigue_weeks is not set: "):
        shop_from_dict(raw)


def test_a_job_without_its_panel_section_lists_what_to_give() -> None:
    """A top-level config without the ``panel`` group (a user's own job file): the one line
    names the section and every field it must give."""
    with pytest.raises(ConfigError, match=r"^missing mandatory value: panel: a PanelConfig") as err:
        to_object(OmegaConf.create({"output_dir": "x"}), CalibrateConfig)
    assert all(f"panel.{name}" in str(err.value) for name in PANEL_WINDOWS)


CONFIGS = PACKAGE / "configs"
GENERIC_GROUPS: dict[str, tuple[str, ...]] = {
    "panel": PANEL_REQUIRED,
    "simulator": ("world",),
    "calibration": tuple(f"caps.{name}" for name in SUMMARY_CAPS),
}
"""Each config group the commands select by default (``<group>/default.yaml``) and the business
choices it must leave to the user."""


def _value(raw: dict[str, object], dotted: str) -> object:
    node: object = raw
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, dotted
        node = node[part]
    return node


@pytest.mark.parametrize("group", sorted(GENERIC_GROUPS))
def test_the_default_groups_give_no_business_value(group: str) -> None:
    """The options every command selects unless told otherwise (``panel: default``,
    ``calibration: default``) leave every business choice required (``???``), so a user who
    writes only their data config is asked for them instead of silently getting the demo's
    (which live in ``<group>/coworking.yaml``, selected by the demo)."""
    generic = yaml.safe_load((CONFIGS / group / "default.yaml").read_text())
    demo = OmegaConf.load(CONFIGS / group / "coworking.yaml")
    for name in GENERIC_GROUPS[group]:
        assert _value(generic, name) == "???", f"{group}/default.yaml: {name}"
        assert OmegaConf.select(demo, name) not in (None, "???"), f"{group}/coworking: {name}"
    if group == "panel":  # the lapse threshold comes from the logs
        assert generic["lapse_weeks"] is None
    if group == "calibration":  # the practice's cycles come from the logs, its staff is nobody's
        assert generic["practice_cycles_weeks"] is None
        assert {"/practice@staff": "none"} in generic["defaults"]


def test_a_user_folder_with_only_a_data_config_exits_2_naming_each_choice(tmp_path: Path) -> None:
    """``journeyopt-calibrate`` over a user's config folder that maps their export but gives
    no panel windows stops before reading anything, naming the first window and how to choose
    it; with their panel file, it names the first state cap; never the demo's values."""
    conf = tmp_path / "conf"
    (conf / "data").mkdir(parents=True)
    shutil.copy(CONFIGS / "data" / "coworking_crm.yaml", conf / "data" / "my_crm.yaml")
    env = {k: v for k, v in os.environ.items() if k != "JOURNEYOPT_DEBUG"}

    def calibrate(*given: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(Path(sys.executable).with_name("journeyopt-calibrate")),
                "--config-dir",
                str(conf),
                "data=my_crm",
                *given,
                f"output_dir={tmp_path / 'world'}",
                f"hydra.run.dir={tmp_path / 'hydra'}",
                "tracking=off",
            ],
            capture_output=True,
            text=True,
            env={**env, "COLUMNS": "300"},
            timeout=120,
            check=False,
        )

    done = calibrate()
    assert done.returncode == 2, done.stderr[-2000:]
    line = error_line(done)
    assert line.startswith("error: missing mandatory value: panel.frequency_weeks: window of")
    assert "(a file of <your configs>/panel/ chosen with panel=<name>)" in line
    (conf / "panel").mkdir()
    (conf / "panel" / "mine.yaml").write_text(
        "lapse_weeks: 8\nfrequency_weeks: 26\nfatigue_weeks: 2\nengagement_weeks: 2\n"
    )
    done = calibrate("panel=mine")
    assert done.returncode == 2, done.stderr[-2000:]
    line = error_line(done)
    assert line.startswith(
        "error: missing mandatory value: calibration.caps.recency_cap_weeks: weeks since"
    ), line
    assert "<your configs>/calibration/ chosen with calibration=<name>" in line
    assert not (tmp_path / "world").exists()


def _is_demo_option(option: str) -> bool:
    """A config option named after a demo's world or business (``coworking``,
    ``coworking_crm``, ``roastery``, ``cdnow``, ...)."""
    return any(name in option.lower() for name in (*WORLDS, "cdnow"))


def _selections(raw: dict[str, object]) -> list[tuple[str, str]]:
    """(key, option) of every group selection in a config file's defaults list."""
    found = []
    for entry in raw.get("defaults") or []:
        if isinstance(entry, dict):
            found += [(str(k), str(v)) for k, v in entry.items()]
    return found


def _generic_group_options() -> list[Path]:
    """The group option files a shipped command selects by default that are not a demo's
    own (``serve/default.yaml``, ``evaluation/baselines.yaml``, ``panel/default.yaml``...)."""
    chosen = set()
    for top in sorted(CONFIGS.glob("*.yaml")):
        for key, option in _selections(yaml.safe_load(top.read_text()) or {}):
            group = key.removeprefix("override ").lstrip("/").split("@")[0]
            if not _is_demo_option(option) and (CONFIGS / group / f"{option}.yaml").is_file():
                chosen.add(CONFIGS / group / f"{option}.yaml")
    return sorted(chosen)


def test_the_generic_defaults_are_found() -> None:
    found = {str(p.relative_to(CONFIGS)) for p in _generic_group_options()}
    assert {"serve/default.yaml", "evaluation/baselines.yaml", "panel/default.yaml"} <= found


@pytest.mark.parametrize(
    "path", _generic_group_options(), ids=lambda p: str(p.relative_to(CONFIGS))
)
def test_no_generic_default_selects_a_demo_option(path: Path) -> None:
    """A group option every command selects unless told otherwise (``serve: default``) gives
    no demo's contact rules, practice or world: ``- /rules@rules: coworking`` there would serve
    every user under the coworking business's caps. The demo selects its own
    (``configs/demo.yaml``: ``override /rules@serve.rules: coworking``)."""
    raw = yaml.safe_load(path.read_text()) or {}
    name = str(path.relative_to(CONFIGS))
    hits = [
        f"{name}: {key}: {option}" for key, option in _selections(raw) if _is_demo_option(option)
    ]
    if str(raw.get("world", "")).lower() in WORLDS:  # serve.world: coworking
        hits.append(f"{name}: world: {raw['world']}")
    assert not hits, hits


COMMAND_CONFIGS = [p for p in sorted(CONFIGS.glob("*.yaml")) if p.name != "demo.yaml"]
"""Every command's top-level config but the demo's own (``demo.yaml`` selects its world)."""


def test_the_command_configs_are_found() -> None:
    names = {p.name for p in COMMAND_CONFIGS}
    assert {"calibrate.yaml", "cycle.yaml", "drift.yaml", "compare.yaml", "train.yaml"} <= names


@pytest.mark.parametrize("path", COMMAND_CONFIGS, ids=lambda p: p.name)
def test_no_command_selects_a_demo_option_by_default(path: Path) -> None:
    """``- data: coworking`` in ``calibrate.yaml`` would read a user's export, who forgot
    ``data=``, with the coworking source's columns and event names; ``- simulator: coworking``
    would train their policies under the coworking business's contact rules. A command's own
    defaults list leaves such choices to the user (``- data: ???``, ``simulator: default``
    whose world is ``???``), as does any ``world`` it sets."""
    raw = yaml.safe_load(path.read_text()) or {}
    hits = [f"{key}: {option}" for key, option in _selections(raw) if _is_demo_option(option)]
    for section in ("serve", "simulator"):
        world = str((raw.get(section) or {}).get("world", "")).lower()
        if world in WORLDS:
            hits.append(f"{section}.world: {world}")
    assert not hits, f"{path.name}: {hits}"


def _in_process(
    name: str, given: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """``journeyopt-<name> <given>`` in this process (its real ``main``, real Hydra): the exit
    code and stderr of a command that stops while composing its config."""
    module = importlib.import_module(f"journeyopt.cli.{name}")
    monkeypatch.setattr(sys, "argv", [f"journeyopt-{name}", *given])
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as exited:
        module.main()
    return int(exited.value.code or 0), capsys.readouterr().err


def test_a_command_without_a_source_exits_2_naming_the_group_and_its_options(
    tmp_path: Path,
) -> None:
    """A user who forgets ``data=``: one line naming the group and the options there are
    (the shipped ones and those of the user's ``--config-dir``), exit 2, nothing written;
    not a Hydra traceback and not the demo's source."""
    conf = tmp_path / "conf"
    (conf / "data").mkdir(parents=True)
    shutil.copy(CONFIGS / "data" / "coworking_crm.yaml", conf / "data" / "my_crm.yaml")
    env = {k: v for k, v in os.environ.items() if k not in ("JOURNEYOPT_DEBUG", "HYDRA_FULL_ERROR")}
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("journeyopt-calibrate")),
            "--config-dir",
            str(conf),
            f"output_dir={tmp_path / 'out'}",
        ],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "300"},
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    line = error_line(done)
    assert line.startswith("error: no data chosen: choose one with data=<name>"), line
    options = line.split("options: ", 1)[1].split(", ")
    assert "my_crm" in options and "coworking" in options, line
    assert not (tmp_path / "out").exists() and not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    ("name", "given", "said"),
    [
        ("cycle", ["week=2024-03-11", "work_dir=w"], "error: no data chosen: choose one with"),
        ("drift", ["output_dir=x"], "error: no data chosen: choose one with data=<name>"),
        ("generate", ["output_dir=x"], "error: no practice@staff chosen: choose one with"),
        ("ingest", ["data=nope", "output_dir=x"], "error: In 'ingest': Could not find 'data/nope'"),
    ],
)
def test_a_command_left_without_a_choice_stops_on_one_line(
    name: str,
    given: list[str],
    said: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every command that reads logs needs ``data=``, ``journeyopt-generate`` the practice
    its logs are written under; an option that does not exist is named with the options."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    code, err = _in_process(name, given, monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(said), err
    assert "coworking" in lines[0] and os.environ.get("HYDRA_FULL_ERROR") is None
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_before_a_choice_names_it_and_exits_0(
    flag: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``journeyopt-calibrate --help`` with no ``data=`` yet: not an error but the missing
    choice, its options and the command that shows the full help; exit 0."""
    import journeyopt.cli.calibrate

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", ["journeyopt-calibrate", flag])
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as exited:
        journeyopt.cli.calibrate.main()
    captured = capsys.readouterr()
    assert exited.value.code == 0 and not captured.err, captured.err
    first, second = captured.out.strip().splitlines()
    assert first.startswith("journeyopt-calibrate: no data chosen: choose one with data=<name>")
    assert "coworking" in first.split("options: ", 1)[1]
    assert second.endswith("journeyopt-calibrate data=<name> --help")
    assert not (tmp_path / "outputs").exists()


def test_the_user_can_still_ask_for_hydras_full_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``HYDRA_FULL_ERROR=1`` keeps Hydra's own behaviour: the exception itself."""
    from hydra.errors import ConfigCompositionException

    import journeyopt.cli.drift

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    monkeypatch.setattr(sys, "argv", ["journeyopt-drift", "output_dir=x"])
    GlobalHydra.instance().clear()
    with pytest.raises(ConfigCompositionException, match="You must specify 'data'"):
        journeyopt.cli.drift.main()
    assert os.environ["HYDRA_FULL_ERROR"] == "1"


def test_a_command_without_a_world_names_simulator_world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``journeyopt-compare`` without a world: the generic simulator settings leave it to the
    user (``simulator.world``), never the coworking demo's world and contact rules."""
    monkeypatch.chdir(tmp_path)
    code, err = _in_process("compare", ["tracking=off"], monkeypatch, capsys)
    assert code == 2, err
    assert err.strip().startswith("error: missing mandatory value: simulator.world: the world")
