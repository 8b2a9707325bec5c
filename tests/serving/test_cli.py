"""``journeyopt-score`` as a user runs it (a local model folder, a source config, one-line
errors with exit code 2) and the validation of the serving configs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from journeyopt.cli.entry import to_object
from journeyopt.cli.score import run
from journeyopt.errors import ConfigError
from journeyopt.serving.config import ServeJobConfig, register_configs
from tests.serving.conftest import AS_OF, Registered


def score(*overrides: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("journeyopt-score")), *overrides,
               f"hydra.run.dir={cwd / 'hydra'}"]  # fmt: skip
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_score_command_writes_the_contact_list(
    registered: Registered, demo_logs: Path, tmp_path: Path
) -> None:
    done = score("data=coworking", f"data.path={demo_logs}", f"as_of={AS_OF}",
                 f"model={registered.folder}", "out=week/actions.csv", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "customers scored" in done.stdout
    for name in ("actions.csv", "decisions.csv", "rejects.csv", "summary.json"):
        assert (tmp_path / "week" / name).is_file()


def test_score_command_names_a_bad_model(demo_logs: Path, tmp_path: Path) -> None:
    register_configs()
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = compose("score", overrides=["data=coworking", f"data.path={demo_logs}",
                      f"as_of={AS_OF}", f"model={tmp_path / 'nothing'}", "out=a.csv"])  # fmt: skip
    with pytest.raises(ConfigError, match="neither a models:/ URI nor an existing folder"):
        run(cfg)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("serve.holdout.control_share=1.0", "control_share must be in"),
        ("serve.holdout.calendar_origin=2024-01-02", "must be a Monday"),
        ("serve.rules.cooldown_weeks=-1", "cooldown_weeks must be >= 0"),
        ("serve.max_batch=0", "max_batch must be >= 1"),
        ("serve.exploration.share=1.5", r"exploration.share must be in \[0, 1\]"),
        ("serve.reload.poll_seconds=-1", "poll_seconds must be >= 0"),
        ("port=0", "port must be in 1..65535"),
    ],
)
def test_invalid_serving_configs_are_refused(override: str, message: str) -> None:
    register_configs()
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = compose("serve", overrides=[override])
    with pytest.raises(ConfigError, match=message):
        to_object(cfg, ServeJobConfig)
