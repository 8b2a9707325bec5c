"""``journeyopt-evaluate`` end to end on a small population."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_module

from journeyopt.cli.entry import to_object
from journeyopt.cli.evaluate import run
from journeyopt.errors import ConfigError
from journeyopt.evaluation.config import EvaluateConfig
from tests.commands import DEMO_WORLD


def _config(*overrides: str) -> EvaluateConfig:
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = compose("evaluate", overrides=[*DEMO_WORLD, *overrides])
    return to_object(cfg, EvaluateConfig)


def test_cli_writes_tables(tmp_path: Path) -> None:
    cfg = _config(
        f"output_dir={tmp_path / 'out'}",
        "evaluation.n_customers=300",
        "simulator.horizon_weeks=4",
        "evaluation.policies=[no_contact,staff_rules,optimum]",
    )
    out = run(cfg)
    table = pd.read_csv(out / "evaluation.csv")
    assert set(table["policy"]) == {"no_contact", "staff_rules", "optimum"}


def test_cli_rejects_unknown_policy(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown"):
        _config(f"output_dir={tmp_path}", "evaluation.policies=[nope]")
