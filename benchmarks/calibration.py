"""Calibration benchmark (issue 16: a log of 10 M rows calibrated within 120 s).

    python benchmarks/run.py calibration                        # 10 M rows x 3 runs, 1 M x 3
    python benchmarks/run.py calibration --rows 1000000 --scaling-rows 0 --repeats 1
    python benchmarks/run.py calibration --work work/bench      # keep (and reuse) the logs

1. Raw coworking logs from the product's own generator, ``journeyopt-generate`` (the demo
   world under today's practice, 10 % exploration, ``none`` decisions logged with their
   propensity; seed 1, 104 weeks), sized to about ``--rows`` rows of events plus contact rows
   (:data:`ROWS_PER_CUSTOMER` a customer), into ``--work`` (default: a temporary folder;
   logs already there for the same number of customers are reused). Generation is timed but
   not part of the figure.
2. ``journeyopt-calibrate data=coworking panel=coworking calibration=coworking tracking=off``
   (the demo's settings, all customers) end to end, each run in its own child process: wall
   time and peak RSS, and the time of every stage from the lines the command logs
   (:mod:`journeyopt.timing`: wall and CPU seconds of ingest, panel, fits = propensities +
   penalty choice + point fit, ensemble refits, hold-out, card; "other" = start-up, config,
   starting population).
3. The machine's load average (``os.getloadavg``, 1 minute) at the start and the end of each
   run: on a shared machine wall time is an upper bound, CPU time (the process's and its
   workers') the steadier figure. Each run's log is kept beside the logs as
   ``calibrate_<date>_<time>.log`` (with ``calibration.workers``, its ``parallel:`` lines give
   the CPU time of the busiest worker, the wall time those tasks need on idle cores).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from journeyopt.timing import StageTime, parse_stages

ROWS_PER_CUSTOMER = 86.0
"""Rows (events + contact rows) per customer of ``journeyopt-generate``'s coworking logs over
104 weeks (measured: 9,998,860 rows from 116,300 customers, seed 1)."""

GROUPS: dict[str, tuple[str, ...]] = {
    "ingest": ("ingest",),
    "panel": ("panel",),
    "fits": ("propensities", "penalties", "point_fit"),
    "ensemble": ("ensemble",),
    "holdout": ("holdout",),
    "card": ("card",),
}
"""Columns of the table: the calibration's logged stages each column adds up."""


class Measured(Protocol):
    seconds: float
    peak_rss_mib: float


@dataclass(frozen=True)
class Run:
    """One timed calibration.

    Attributes:
        seconds: Wall time of the child process.
        peak_rss_mib: Its peak resident memory (MiB).
        stages: Stage name -> wall and CPU seconds, as logged.
        load: 1-minute load average at the start and the end.
    """

    seconds: float
    peak_rss_mib: float
    stages: dict[str, StageTime]
    load: tuple[float, float]

    def group(self, name: str) -> StageTime:
        """Wall and CPU seconds of a column of :data:`GROUPS`."""
        parts = [self.stages.get(s, StageTime(0.0, 0.0)) for s in GROUPS[name]]
        return StageTime(sum(p.wall for p in parts), sum(p.cpu for p in parts))

    @property
    def other(self) -> float:
        """Wall seconds outside the grouped stages (start-up, config, starting population)."""
        return self.seconds - sum(self.group(name).wall for name in GROUPS)

    @property
    def cpu(self) -> float:
        """CPU seconds of the logged stages."""
        return sum(t.cpu for t in self.stages.values())


def generate_logs(folder: Path, rows: int, command: str) -> tuple[Path, int, float]:
    """Coworking logs of about ``rows`` rows in ``folder`` (reused when already there).

    Returns:
        The logs' folder, their number of rows (events + contacts), the generation's wall
        seconds (0 when reused).
    """
    customers = max(1, round(rows / ROWS_PER_CUSTOMER))
    logs = folder / f"coworking_{customers}"
    took = 0.0
    if not (logs / "contacts.csv").exists():
        start = time.perf_counter()
        subprocess.run(
            [
                command,
                "simulator=coworking",
                "practice@staff=coworking",
                f"output_dir={logs}",
                f"n_customers={customers}",
                "seed=1",
                "hydra.run.dir=" + str(folder / f"hydra_generate_{customers}"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        took = time.perf_counter() - start
    n_rows = sum(_data_rows(logs / name) for name in ("events.csv", "contacts.csv"))
    return logs, n_rows, took


def _data_rows(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f) - 1


def time_calibration(
    logs: Path, folder: Path, measure: Callable[[Sequence[str]], Measured], command: str
) -> Run:
    """One ``journeyopt-calibrate`` of ``logs`` in a child process, outputs under ``folder``."""
    hydra_dir = folder / "hydra"
    load_start = os.getloadavg()[0]
    m = measure(
        [
            command,
            "data=coworking",
            "panel=coworking",
            "calibration=coworking",
            f"data.path={logs}",
            f"output_dir={folder / 'world'}",
            "tracking=off",
            f"hydra.run.dir={hydra_dir}",
        ]
    )
    load_end = os.getloadavg()[0]
    text = "".join(p.read_text() for p in sorted(hydra_dir.glob("*.log")))
    # the log (stage lines, the parallel tasks' CPU per worker) outlives the run's folder
    (folder.parent / f"calibrate_{time.strftime('%Y%m%d_%H%M%S')}.log").write_text(text)
    stages = parse_stages(text)
    if not stages:
        raise SystemExit(f"no stage times in the log of {hydra_dir}")
    return Run(m.seconds, m.peak_rss_mib, stages, (load_start, load_end))


def _stage_cell(runs: Sequence[Run], group: str) -> str:
    """``wall (CPU)`` median seconds of a column of :data:`GROUPS` over ``runs``."""
    wall = statistics.median(r.group(group).wall for r in runs)
    cpu = statistics.median(r.group(group).cpu for r in runs)
    return f"{wall:.1f} ({cpu:.1f})"


def table(runs: Sequence[Run]) -> list[str]:
    """Markdown rows: one per run (stage cells ``wall (CPU)`` seconds), then the medians."""
    head = " | ".join(f"{g} s" for g in GROUPS)
    lines = [
        f"| run | load start / end | total s | {head} | other s | CPU s | peak RSS MiB |",
        "|---|---|---|" + "---|" * len(GROUPS) + "---|---|---|",
    ]
    for k, run in enumerate(runs):
        stages = " | ".join(_stage_cell([run], g) for g in GROUPS)
        lines.append(
            f"| {k + 1} | {run.load[0]:.1f} / {run.load[1]:.1f} | {run.seconds:.1f} | {stages} "
            f"| {run.other:.1f} | {run.cpu:.1f} | {run.peak_rss_mib:,.0f} |"
        )
    stages = " | ".join(_stage_cell(runs, g) for g in GROUPS)
    total = statistics.median(r.seconds for r in runs)
    other = statistics.median(r.other for r in runs)
    cpu = statistics.median(r.cpu for r in runs)
    rss = statistics.median(r.peak_rss_mib for r in runs)
    lines.append(
        f"| **median** | | **{total:.1f}** | {stages} | {other:.1f} | {cpu:.1f} | {rss:,.0f} |"
    )
    return lines


def bench_calibration(
    rows: int,
    repeats: int,
    scaling_rows: int,
    measure: Callable[[Sequence[str]], Measured],
    calibrate: str,
    generate: str,
    work: str = "",
) -> list[str]:
    """Median wall time (and stage times) of ``repeats`` calibrations of about ``rows`` rows,
    after the same at ``scaling_rows`` (0: no scaling point).

    Args:
        rows: Rows of the measured log (events + contact rows).
        repeats: Calibrations timed per size.
        scaling_rows: Rows of the smaller log timed first (0 = none).
        measure: Runs a command in a child process, returns its seconds and peak RSS (MiB).
        calibrate, generate: Paths of ``journeyopt-calibrate`` and ``journeyopt-generate``.
        work: Folder for the logs and outputs (kept); empty = a temporary folder.
    """
    out: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(work) if work else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        for size in [n for n in (scaling_rows, rows) if n > 0]:
            logs, n_rows, took = generate_logs(base, size, generate)
            gen = f"generated in {took:.1f} s" if took else "reused"
            out += [
                f"Calibration (journeyopt-calibrate data=coworking panel=coworking "
                f"calibration=coworking tracking=off, the demo's settings, all customers) of "
                f"{n_rows:,} rows (events + contacts; "
                f"{logs.name}, {gen}); {repeats} runs. Stage cells: wall s (CPU s).",
                "",
            ]
            runs = []
            for _ in range(repeats):
                with tempfile.TemporaryDirectory(dir=base) as run_dir:
                    runs.append(time_calibration(logs, Path(run_dir), measure, calibrate))
                print(table(runs)[-2], flush=True)
            out += [*table(runs), ""]
    return out
