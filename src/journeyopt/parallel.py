"""Independent pieces of work on several CPU cores, sharing the parent's memory.

A calibration's hold-out simulations, ensemble refits and penalty fits are independent of
each other and read the same large arrays (the panel, the fitted cells). :func:`run_tasks`
runs such zero-argument callables in worker processes **forked** from the caller: a worker
sees the caller's memory as it is at the fork (copy-on-write), so neither the callables nor
the data they close over are pickled or copied; only each task's result travels back
(pickled). Results come back in the tasks' order and do not depend on the number of workers
or on which worker ran what, as long as every task carries its own random numbers (a seed or
a generator of its own; none may draw from a generator shared with the others).

``workers=1`` runs the tasks one after the other in the calling process (no fork). With
workers, the CPU time of the tasks and of the busiest worker is logged (``parallel: ...``): on
idle cores the busiest worker's CPU time is the wall time the tasks take.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

R = TypeVar("R")
LOG = logging.getLogger("journeyopt")

_TASKS: Sequence[Callable[[], Any]] = ()
"""The tasks of the running :func:`run_tasks` (set before the fork, read by the workers)."""


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # platforms without sched_getaffinity
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int) -> int:
    """Worker processes for a ``workers`` setting: 0 = every available core, else ``workers``.

    Raises:
        ValueError: ``workers`` is negative.
    """
    if workers < 0:
        raise ValueError(f"workers must be >= 0 (0 = every core), got {workers}")
    return available_cores() if workers == 0 else workers


def _run(k: int) -> tuple[Any, int, float]:
    """Task ``k``'s result, the worker's process id and the task's CPU seconds."""
    start = time.process_time()
    result = _TASKS[k]()
    return result, os.getpid(), time.process_time() - start


def run_tasks(tasks: Sequence[Callable[[], R]], workers: int) -> list[R]:
    """``[task() for task in tasks]``, on up to ``workers`` forked processes.

    Args:
        tasks: Zero-argument callables (closures are fine: they are not pickled); each
            result must be picklable.
        workers: Processes (0 = every available core; 1, or a single task, or a platform
            without ``fork``: in this process, one after the other).

    Returns:
        The tasks' results, in the tasks' order.
    """
    global _TASKS
    n = min(resolve_workers(workers), len(tasks))
    forkable = "fork" in multiprocessing.get_all_start_methods()
    # inside a worker the tasks run in place: the caller's workers already use the cores
    if n <= 1 or not forkable or multiprocessing.parent_process() is not None:
        return [task() for task in tasks]
    _TASKS = tasks
    # objects that exist at the fork are left out of the workers' garbage collections, so
    # the collector does not write to (and so copy) the pages that hold them
    gc.freeze()
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=n, mp_context=context) as pool:
            done = list(pool.map(_run, range(len(tasks))))
    finally:
        gc.unfreeze()
        _TASKS = ()
    busy: dict[int, float] = {}
    for _, pid, cpu in done:
        busy[pid] = busy.get(pid, 0.0) + cpu
    # the busiest worker's CPU time is the wall time these tasks need on idle cores
    LOG.info(
        "parallel: %d tasks on %d workers, %.2f s CPU in all, busiest worker %.2f s CPU",
        len(tasks),
        n,
        sum(busy.values()),
        max(busy.values()),
    )
    return [result for result, _, _ in done]
