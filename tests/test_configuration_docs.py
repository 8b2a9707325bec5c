"""``docs/configuration.md`` lists every option of every config schema.

The schemas are the dataclasses registered in Hydra's ConfigStore (every ``journeyopt-*``
command registers its own) and every dataclass reachable from their fields (``serve.rules``,
``data.actions.<name>``, ``evaluation.staff.rules[]``...). Each has a section in the reference,
``### `<module>.<Class>` ``, whose table rows start with the option's name in backticks; an
option a class inherits from a dataclass base is documented once, in the base's section.

When an option is added to a schema, this test fails naming it, with a row to paste (its
default and the meaning from the schema's docstring) into the section it names.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

import journeyopt.cli

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
SECTION = "## Every option"
REGISTERING_PACKAGES = (
    "agents",
    "calibration",
    "evaluation",
    "loop",
    "monitoring",
    "serving",
    "sim",
)


def _register_all() -> None:
    """Import every command (each registers its schemas) and call each package's
    ``register_configs`` (some register only when their command starts)."""
    for module in pkgutil.iter_modules(journeyopt.cli.__path__):
        importlib.import_module(f"journeyopt.cli.{module.name}")
    for package in REGISTERING_PACKAGES:
        config = importlib.import_module(f"journeyopt.{package}.config")
        register = getattr(config, "register_configs", None)
        if register is not None:
            register()


def _stored(tree: dict[str, Any]) -> Iterator[Any]:
    for value in tree.values():
        if isinstance(value, dict):
            yield from _stored(value)
        else:
            yield value


def _dataclasses_in(annotation: Any) -> list[type]:
    """Dataclass types inside an annotation (``list[X]``, ``dict[str, X]``, ``X | None``)."""
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return [annotation]
    return [t for arg in typing.get_args(annotation) for t in _dataclasses_in(arg)]


def qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def schemas() -> dict[str, type]:
    """Every journeyopt config schema: registered ones and the dataclasses reachable from
    their fields and dataclass bases, by qualified name."""
    _register_all()
    stack: list[type] = []
    for node in _stored(ConfigStore.instance().repo):
        cls = OmegaConf.get_type(node.node)
        if isinstance(cls, type) and dataclasses.is_dataclass(cls):
            stack.append(cls)
    found: dict[str, type] = {}
    while stack:
        cls = stack.pop()
        name = qualified(cls)
        if name in found or not name.startswith("journeyopt."):
            continue
        found[name] = cls
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            stack.extend(_dataclasses_in(hints[f.name]))
        stack.extend(b for b in cls.__mro__[1:] if dataclasses.is_dataclass(b))
    return found


def own_options(cls: type) -> list[str]:
    """The fields ``cls`` declares itself (not inherited from a dataclass base)."""
    inherited = {
        f.name
        for base in cls.__mro__[1:]
        if dataclasses.is_dataclass(base)
        for f in dataclasses.fields(base)
    }
    return [f.name for f in dataclasses.fields(cls) if f.name not in inherited]


def documented(doc: str) -> dict[str, set[str]]:
    """Section heading's qualified class name -> the option names its table rows start with."""
    out: dict[str, set[str]] = {}
    body = doc[doc.index(SECTION) :] if SECTION in doc else ""
    for part in re.split(r"^### ", body, flags=re.MULTILINE)[1:]:
        heading, _, rest = part.partition("\n")
        match = re.search(r"`(journeyopt\.[\w.]+)`", heading)
        if match is None:
            continue
        rows = re.findall(r"^\|\s*`([\w.]+)`", rest, flags=re.MULTILINE)
        out[match.group(1)] = set(rows)
    return out


def _docstring_meanings(cls: type) -> dict[str, str]:
    """Field -> its line(s) of the class docstring's ``Attributes:`` block, joined."""
    lines = (cls.__doc__ or "").splitlines()
    meanings: dict[str, str] = {}
    current: list[str] = []
    inside = False
    for line in lines:
        stripped = line.strip()
        if stripped == "Attributes:":
            inside = True
            continue
        if not inside:
            continue
        if not stripped:
            if meanings:
                break
            continue
        match = re.match(r"^([\w, ]+):\s*(.*)$", stripped)
        if match and line.startswith(" " * 8) and not line.startswith(" " * 12):
            current = [n.strip() for n in match.group(1).split(",")]
            for name in current:
                meanings[name] = match.group(2)
        elif current:
            for name in current:
                meanings[name] += " " + stripped
    return meanings


def suggested_row(cls: type, option: str) -> str:
    """A row to paste: ``| `option` | default | meaning |`` from the schema itself."""
    f = next(f for f in dataclasses.fields(cls) if f.name == option)
    if f.default is not dataclasses.MISSING:
        default = "required" if f.default == MISSING else repr(f.default)
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        default = type(value).__name__ if dataclasses.is_dataclass(value) else repr(value)
    else:
        default = "required"
    meaning = _docstring_meanings(cls).get(option, "(no docstring line: write one)")
    meaning = re.sub(r":\w+:`~?(?:[\w]+\.)*([\w]+)`", r"`\1`", meaning).replace("``", "`")
    return f"| `{option}` | `{default}` | {meaning.replace('|', '/')} |"


def missing_options(doc: str) -> dict[str, list[str]]:
    """Qualified class name -> its options the reference does not list (empty when complete)."""
    listed = documented(doc)
    missing: dict[str, list[str]] = {}
    for name, cls in sorted(schemas().items()):
        absent = [o for o in own_options(cls) if o not in listed.get(name, set())]
        if absent:
            missing[name] = absent
    return missing


def test_the_walk_finds_the_schemas_of_every_group() -> None:
    """The walk reaches the schemas behind every group and nested option (a guard against a
    walk that finds nothing and so passes)."""
    found = schemas()
    for name in (
        "journeyopt.data.source.SourceConfig",
        "journeyopt.data.source.ActionSpec",
        "journeyopt.sim.config.RulesConfig",
        "journeyopt.sim.config.PracticeRuleConfig",
        "journeyopt.serving.config.ServingConfig",
        "journeyopt.panel.config.PanelConfig",
        "journeyopt.agents.config.AgentConfig",
        "journeyopt.tracking.promotion.GateConfig",
    ):
        assert name in found, f"{name} not reached"
    assert "algorithm" in own_options(found["journeyopt.agents.config.AgentConfig"])
    assert "algorithm" not in own_options(found["journeyopt.agents.config.PPOConfig"])


def test_missing_options_are_found() -> None:
    """The check can fail: a reference without a section misses every option of its class."""
    doc = DOC.read_text(encoding="utf-8")
    heading = "### `journeyopt.sim.config.RulesConfig`"
    assert heading in doc
    crippled = doc.replace(heading, "### (removed)")
    assert "frequency_caps" in missing_options(crippled)["journeyopt.sim.config.RulesConfig"]


def test_configuration_reference_lists_every_option() -> None:
    missing = missing_options(DOC.read_text(encoding="utf-8"))
    if missing:
        classes = schemas()
        report = []
        for name, options in missing.items():
            report.append(f"### `{name}` (docs/configuration.md, section '{SECTION}'):")
            report.extend(suggested_row(classes[name], option) for option in options)
        count = sum(len(v) for v in missing.values())
        raise AssertionError(
            f"docs/configuration.md does not list {count} option(s); add these rows (check the "
            "wording) to the sections named:\n" + "\n".join(report)
        )
