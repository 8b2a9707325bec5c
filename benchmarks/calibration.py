"""Calibration benchmark: ``journeyopt-calibrate`` end to end (ingest, panel, fit of the response
models and their bootstrap ensemble, hold-out simulation, card) on the synthetic benchmark log
of ``synthetic_logs.py`` (the log the ingest + panel benchmark reads).

Run through ``benchmarks/run.py calibration``; each calibration runs in its own child process
(wall time and peak RSS its own), with MLflow tracking off so only the calibration is timed.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from synthetic_logs import write_synthetic_logs


class Measured(Protocol):
    seconds: float
    peak_rss_mib: float


def bench_calibration(
    events: int,
    customers: int,
    contacts: int,
    repeats: int,
    measure: Callable[[Sequence[str]], Measured],
    command: str,
    max_customers: int = 0,
) -> list[str]:
    """Median wall time and peak RSS of ``repeats`` calibrations of one synthetic log.

    Args:
        events, customers, contacts: Size of the synthetic log (104 weeks).
        repeats: Calibrations timed.
        measure: Runs a command in a child process, returns its seconds and peak RSS (MiB).
        command: Path of the ``journeyopt-calibrate`` script.
        max_customers: ``calibration.max_customers``: fit on a random sample of at most this
            many customers (0 = all; the whole log is still ingested).
    """
    rows = ["| run | seconds | peak RSS MiB | load average at start |", "|---|---|---|---|"]
    seconds: list[float] = []
    peaks: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "logs"
        write_synthetic_logs(logs, events, customers, contacts)
        for run in range(repeats):
            load = os.getloadavg()[0]
            m = measure(
                [
                    command,
                    "data=coworking",
                    f"data.path={logs}",
                    f"output_dir={Path(tmp) / f'world{run}'}",
                    "tracking=off",
                    f"calibration.max_customers={max_customers}",
                    "hydra.run.dir=" + str(Path(tmp) / f"hydra{run}"),
                ]
            )
            seconds.append(m.seconds)
            peaks.append(m.peak_rss_mib)
            rows.append(f"| {run + 1} | {m.seconds:.1f} | {m.peak_rss_mib:,.0f} | {load:.1f} |")
            print(rows[-1], flush=True)
    rows.append(
        f"| **median** | **{statistics.median(seconds):.1f}** "
        f"| **{statistics.median(peaks):,.0f}** | |"
    )
    header = [
        f"Calibration (journeyopt-calibrate, default settings, tracking off, "
        f"calibration.max_customers={max_customers:,}): {events:,} events, {customers:,} "
        f"customers, {contacts:,} contacts, 104 weeks; {repeats} runs.",
        "",
    ]
    return header + rows
