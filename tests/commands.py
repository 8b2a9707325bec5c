"""What every test of a command's bad-input path checks: exit code 2 and a one-line message."""

from __future__ import annotations

import subprocess


def error_line(done: subprocess.CompletedProcess[str], *, only_line: bool = True) -> str:
    """The error message of a command that had to stop on bad input.

    Asserts exit code 2 and no traceback; with ``only_line`` the message is all of stderr,
    otherwise it is stderr's last line (libraries may warn above it). Returns the line.
    """
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert lines, "the command stopped without a message"
    if only_line:
        assert len(lines) == 1, done.stderr[-2000:]
    return lines[-1]


DEMO_WORLD = ("simulator=coworking", "practice@evaluation.staff=coworking")
"""The overrides that choose the coworking ground truth and its hand-written practice (a world
without logs, so the practice is not estimated from them): the commands' defaults name no
world and take the logs' practice."""
DEMO_SERVING = ("data=coworking", "serve.world=coworking", "practice@serve.holdout.staff=coworking")
"""The overrides that serve (``journeyopt-serve``, ``-score``) in the coworking demo: its
source's event names, its world and its hand-written practice for the control group (the
commands' defaults name no source and no world, and take the logs' practice)."""
