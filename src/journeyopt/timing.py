"""Wall and CPU time of a pipeline's stages, logged as they end.

A long command (``journeyopt-calibrate``) times its consecutive stages with one
:class:`Stopwatch`: each stage is logged at INFO as ``stage <name>: <wall> s wall, <cpu> s
CPU`` on the ``journeyopt`` logger (so it lands in the command's Hydra log file), and the totals
per stage are kept for the caller. CPU time is the whole process's (every thread) plus that of
its finished child processes (the workers of :mod:`journeyopt.parallel`), which a busy shared
machine disturbs less than wall time.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field

LOG = logging.getLogger("journeyopt")

STAGE_LINE = re.compile(
    r"stage (?P<name>[\w.-]+): (?P<wall>[0-9.]+) s wall, (?P<cpu>[0-9.]+) s CPU"
)
"""Pattern of a logged stage line (what benchmarks read back from a log file)."""


def cpu_seconds() -> float:
    """CPU seconds of this process (every thread) and of its waited-for child processes."""
    children = os.times()
    return time.process_time() + children.children_user + children.children_system


@dataclass(frozen=True)
class StageTime:
    """Time spent in one stage.

    Attributes:
        wall: Wall-clock seconds.
        cpu: CPU seconds of the process (all threads) and its finished child processes.
    """

    wall: float
    cpu: float


@dataclass
class Stopwatch:
    """Times consecutive stages of a pipeline: each :meth:`lap` closes the stage that ran since
    the previous lap (or since the stopwatch was made). A stage name used twice adds up.

    Attributes:
        stages: Stage name -> its time so far, in the order the stages first ended.
    """

    stages: dict[str, StageTime] = field(default_factory=dict)
    _wall: float = field(default_factory=time.perf_counter, repr=False)
    _cpu: float = field(default_factory=cpu_seconds, repr=False)

    def lap(self, name: str) -> StageTime:
        """End stage ``name`` now: log its time, add it to :attr:`stages` and return it."""
        wall, cpu = time.perf_counter(), cpu_seconds()
        took = StageTime(wall - self._wall, cpu - self._cpu)
        self._wall, self._cpu = wall, cpu
        before = self.stages.get(name, StageTime(0.0, 0.0))
        self.stages[name] = StageTime(before.wall + took.wall, before.cpu + took.cpu)
        LOG.info("stage %s: %.2f s wall, %.2f s CPU", name, took.wall, took.cpu)
        return took


def parse_stages(text: str) -> dict[str, StageTime]:
    """Stage times logged in ``text`` (a log file's content), summed per stage name."""
    out: dict[str, StageTime] = {}
    for match in STAGE_LINE.finditer(text):
        name = match["name"]
        before = out.get(name, StageTime(0.0, 0.0))
        out[name] = StageTime(before.wall + float(match["wall"]), before.cpu + float(match["cpu"]))
    return out
