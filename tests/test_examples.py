"""The worked examples' config folders (``examples/<business>/my_configs``) fit the schemas,
name only what their business has, and their shipped exports are what the seeded generator
writes. Fast: the end-to-end run of the wine club is ``tests/test_walkthrough.py``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pytest
from omegaconf import OmegaConf

from journeyopt.data.source import SourceConfig
from journeyopt.sim.config import RulesConfig, StaffRulesConfig
from tests.test_no_demo_in_machinery import DEMO_NAMES

ROOT = Path(__file__).resolve().parents[1]
CLUB = ROOT / "examples" / "wine_club"
EXPORT = ROOT / "src" / "journeyopt" / "datasets" / "wine_club"
# the demo's world, actions and customer types: a second business names none of them
EXAMPLE_FORBIDDEN = ("coworking", *DEMO_NAMES)
T = TypeVar("T")


def _load(path: Path, schema: type[T]) -> T:
    merged = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.load(path))
    obj = OmegaConf.to_object(merged)
    assert isinstance(obj, schema)
    return obj


def _source() -> SourceConfig:
    raw: Any = OmegaConf.load(CLUB / "my_configs" / "data" / "wine_club.yaml")
    raw.path = str(EXPORT / "activity.csv")  # the ${dataset:...} of the file, resolved here
    obj = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SourceConfig), raw))
    assert isinstance(obj, SourceConfig)
    return obj


def test_the_club_config_folder_fits_the_schemas_and_its_own_business() -> None:
    source = _source()
    rules = _load(CLUB / "my_configs" / "rules" / "wine_club.yaml", RulesConfig)
    practice = _load(CLUB / "my_configs" / "practice" / "wine_club.yaml", StaffRulesConfig)
    actions = set(source.actions) - {"none"}
    segments = set(pd.read_csv(EXPORT / "members.csv")["Signup Source"])
    assert {rule.action for rule in practice.rules} <= actions
    assert {s for rule in practice.rules for s in rule.segments} <= segments
    named = {a for cap in rules.caps for a in cap.actions} | set(rules.capacity)
    named |= {a for q in rules.quiet_weeks for a in q.actions}
    named |= {a for e in rules.eligibility for a in e.actions}
    assert named <= actions
    assert {s for e in rules.eligibility for s in e.segments} <= segments
    assert rules.capacity and rules.caps and rules.quiet_weeks and rules.eligibility
    assert source.economics.currency == "USD" and source.economics.margin_rate == 0.4
    assert "refund" in source.event_roles.values()


def test_the_club_describes_nothing_of_the_coworking_demo() -> None:
    for path in sorted((CLUB / "my_configs").rglob("*.yaml")):
        text = path.read_text(encoding="utf-8").lower()
        assert not [n for n in EXAMPLE_FORBIDDEN if n in text], path


@pytest.mark.slow
def test_the_shipped_export_is_what_the_seeded_generator_writes(tmp_path: Path) -> None:
    """``generate_export.py`` in the repo reproduces the shipped files byte for byte."""
    script = CLUB / "generate_export.py"
    done = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path / "export")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("activity.csv", "outreach.csv", "members.csv"):
        fresh = (tmp_path / "export" / name).read_bytes()
        assert fresh == (EXPORT / name).read_bytes(), f"{name} differs from the shipped one"
