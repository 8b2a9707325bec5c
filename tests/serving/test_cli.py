"""``journeyopt-score`` as a user runs it (a local model folder, a source config, one-line
errors with exit code 2) and the validation of the serving configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from hydra import compose, initialize_config_module

from journeyopt.cli.entry import to_object
from journeyopt.cli.score import run
from journeyopt.cli.serve import is_loopback
from journeyopt.errors import ConfigError
from journeyopt.serving.config import ServeJobConfig, register_configs
from tests.commands import DEMO_SERVING
from tests.serving.conftest import AS_OF, Registered
from tests.serving.test_server import running_server


def score(*overrides: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("journeyopt-score")), *overrides,
               f"hydra.run.dir={cwd / 'hydra'}"]  # fmt: skip
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_score_command_writes_the_contact_list(
    registered: Registered, demo_logs: Path, tmp_path: Path
) -> None:
    done = score(*DEMO_SERVING, f"data.path={demo_logs}", f"as_of={AS_OF}",
                 f"model={registered.folder}", "out=week/actions.csv", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "customers scored" in done.stdout
    for name in ("actions.csv", "decisions.csv", "rejects.csv", "summary.json"):
        assert (tmp_path / "week" / name).is_file()


def test_score_command_names_a_bad_model(demo_logs: Path, tmp_path: Path) -> None:
    register_configs()
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = compose("score", overrides=[*DEMO_SERVING, f"data.path={demo_logs}",
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
        ("serve.decision_log_max_bytes=-1", "decision_log_max_bytes must be >= 0"),
        ("serve.decision_log_file_bytes=0", "decision_log_file_bytes must be >= 1"),
    ],
)
def test_invalid_serving_configs_are_refused(override: str, message: str) -> None:
    register_configs()
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = compose("serve", overrides=[*DEMO_SERVING, override])
    with pytest.raises(ConfigError, match=message):
        to_object(cfg, ServeJobConfig)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.1.2.3", False),
     ("api.example.com", False), ("", False)],
)  # fmt: skip
def test_only_loopback_addresses_count_as_private(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serve_refuses_a_public_address_without_a_token(
    registered: Registered, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JOURNEYOPT_API_TOKEN"}
    command = [str(Path(sys.executable).with_name("journeyopt-serve")), *DEMO_SERVING,
               "host=0.0.0.0", f"model={registered.folder}",
               f"hydra.run.dir={tmp_path / 'hydra'}"]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: refusing to serve on 0.0.0.0 without a bearer token")
    assert "serve.allow_unauthenticated=true" in lines[0]


@pytest.mark.slow
def test_serve_without_a_token_warns_at_start_up(registered: Registered, tmp_path: Path) -> None:
    uri = registered.tracking.tracking_uri
    with running_server(tmp_path, uri, "host=0.0.0.0", "serve.allow_unauthenticated=true",
                        token=None) as (url, _):  # fmt: skip
        assert httpx.get(f"{url}/v1/model", timeout=30).status_code == 200  # open
    log = (tmp_path / "server.log").read_text()
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    assert any("JOURNEYOPT_API_TOKEN is not set" in w and "open" in w for w in warnings), log
