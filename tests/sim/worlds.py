"""The coworking world's YAML, renamed: the same world as another business would name it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from journeyopt.sim.world import WORLDS_DIR


def raw_coworking() -> dict[str, Any]:
    """The parsed ``simulators/coworking/world.yaml``."""
    raw = yaml.safe_load((WORLDS_DIR / "coworking" / "world.yaml").read_text(encoding="utf-8"))
    assert isinstance(raw, dict)
    return raw


def renamed(value: Any, names: Mapping[str, str]) -> Any:
    """``value`` with every mapping key in ``names`` renamed, order kept (actions and customer
    types are keys of the world's YAML wherever they appear)."""
    if isinstance(value, dict):
        return {names.get(k, k): renamed(v, names) for k, v in value.items()}
    return value
