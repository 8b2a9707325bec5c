"""Ctrl-C on a running command: one line ``interrupted``, exit code 130, no traceback, and no
half-written output folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from journeyopt.cli import interrupted_while_starting
from journeyopt.cli.entry import INTERRUPTED_EXIT_CODE, report_errors
from tests.commands import DEMO_WORLD

# Each command with work that takes 10-15 s (and under 1 GB), far longer than the test waits
# before pressing Ctrl-C.
LONG_RUNS: dict[str, list[str]] = {
    "generate": [
        "simulator=coworking",
        "practice@staff=coworking",
        "n_customers=20000",
        "weeks=208",
    ],
    "evaluate": [*DEMO_WORLD, "evaluation.n_customers=50000"],
}


def _wait_for_log(folder: Path, proc: subprocess.Popen[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not list(folder.glob("*.log")):
        if proc.poll() is not None:
            pytest.fail(f"the command ended before it started its work: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the command did not start within {seconds} s")
        time.sleep(0.1)


@pytest.mark.parametrize("command", sorted(LONG_RUNS))
def test_ctrl_c_is_one_line_and_exit_130(tmp_path: Path, command: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JOURNEYOPT_DEBUG"}
    hydra_dir = tmp_path / "hydra"
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name(f"journeyopt-{command}")), *LONG_RUNS[command],
         "output_dir=out", f"hydra.run.dir={hydra_dir}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip
    try:
        # Hydra writes its log file just before it calls the command's function: from then on
        # the command is at work (loading the world, simulating).
        _wait_for_log(hydra_dir, proc, seconds=120)
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == INTERRUPTED_EXIT_CODE, err
    assert err == "interrupted\n"
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _interrupt() -> None:
    raise KeyboardInterrupt


def test_report_errors_turns_ctrl_c_into_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOURNEYOPT_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        report_errors(_interrupt)
    assert exit_info.value.code == 130
    assert capsys.readouterr().err == "interrupted\n"
    monkeypatch.setenv("JOURNEYOPT_DEBUG", "1")  # the traceback, for whoever debugs
    with pytest.raises(KeyboardInterrupt):
        report_errors(_interrupt)


def test_ctrl_c_while_a_command_is_still_starting_is_one_line_and_exit_130(
    tmp_path: Path,
) -> None:
    """Ctrl-C during the imports (torch, MLflow take seconds), before Hydra composed the config:
    the same one line and exit code, no traceback from inside an import."""
    env = {k: v for k, v in os.environ.items() if k != "JOURNEYOPT_DEBUG"}
    hydra_dir = tmp_path / "hydra"
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("journeyopt-train")), "train=smoke",
         f"hydra.run.dir={hydra_dir}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip
    try:
        time.sleep(2.0)  # the interpreter is up; the command's imports take longer than this
        started = hydra_dir.exists()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not started, "the command reached Hydra's run folder before the test pressed Ctrl-C"
    assert proc.returncode == INTERRUPTED_EXIT_CODE, err
    assert err == "interrupted\n"


def test_python_processes_that_are_not_commands_keep_their_own_ctrl_c() -> None:
    """Importing the commands in a user's Python (or pytest) leaves SIGINT to Python."""
    # this process (pytest) imported journeyopt.cli above but is not a journeyopt-* command
    assert signal.getsignal(signal.SIGINT) is not interrupted_while_starting
