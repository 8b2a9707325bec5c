"""Thin Hydra entry points (``journeyopt-*`` commands) over plain, testable functions.

A ``journeyopt-*`` command spends its first seconds importing (torch, MLflow) and composing its
configuration, before :func:`journeyopt.cli.entry.report_errors` takes over. A Ctrl-C in those
seconds would print a Python traceback from deep inside an import; in a command's process
(``sys.argv[0]`` is a ``journeyopt-*`` script) the SIGINT handler installed here prints the
same one line ``interrupted`` and exits with 130 instead. ``report_errors`` puts Python's own
handler back, so the command's work sees a ``KeyboardInterrupt`` as before (training saves
its checkpoint). Other processes (tests, notebooks, a user's own Python) are left alone.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

COMMAND_PREFIX = "journeyopt-"
INTERRUPTED_EXIT_CODE = 130
"""Exit code of a command stopped by Ctrl-C (SIGINT): 128 + the signal's number, as shells do."""


def interrupted_while_starting(signum: int, frame: FrameType | None) -> None:
    """SIGINT before the command's work started: one line, exit 130, no traceback."""
    del signum, frame
    sys.stderr.write("interrupted\n")
    sys.stderr.flush()
    os._exit(INTERRUPTED_EXIT_CODE)  # nothing is written yet; skip teardown of half-imports


if os.path.basename(sys.argv[0] if sys.argv else "").startswith(COMMAND_PREFIX):
    signal.signal(signal.SIGINT, interrupted_while_starting)
