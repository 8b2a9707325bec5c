"""No demo in the machinery: the generic modules of ``src/journeyopt`` (everything outside the
worlds' data ``simulators/`` and the shipped ``configs/``) name no action, customer type or world
of the demos and default to none of them; the demos' choices live in config files. A missing
world is a one-line ``ConfigError`` (exit 2 at the command line), never the coworking demo."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from journeyopt.cli.entry import to_object
from journeyopt.errors import ConfigError
from journeyopt.serving.config import ServingConfig
from journeyopt.sim.config import GenerateConfig, SimulatorConfig
from journeyopt.sim.world import load_world, world_from_dict

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
    with pytest.raises(ConfigError, match="missing mandatory value: world"):
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
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no world given" in lines[0], done.stderr[-2000:]
