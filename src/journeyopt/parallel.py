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

:func:`start_task` starts one such task ahead of its use, on a forked process of its own that
runs beside the caller (which goes on with serial work, leaving a core idle, or with its own
:func:`run_tasks`); :meth:`Pending.result` waits for it. Its CPU time, the time the caller
waited and the caller's own CPU time since the start are logged (``parallel: background task
...``): on idle cores the wait is what the task adds to the caller's wall time, about the
task's CPU time less the caller's own (on a busy machine the wait is longer).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar, cast

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
    # the busiest worker's CPU time is the wall time these tasks need on idle cores; each
    # task's shows how well the workers were balanced
    LOG.info(
        "parallel: %d tasks on %d workers, %.2f s CPU in all, busiest worker %.2f s CPU "
        "(tasks: %s s)",
        len(tasks),
        n,
        sum(busy.values()),
        max(busy.values()),
        " ".join(f"{cpu:.2f}" for _, _, cpu in done),
    )
    return [result for result, _, _ in done]


class Pending(Generic[R]):
    """A task started by :func:`start_task`; :meth:`result` returns what it returned."""

    def __init__(self, task: Callable[[], R], workers: int) -> None:
        self._task: Callable[[], R] | None = task
        self._process: multiprocessing.process.BaseProcess | None = None
        self._receive: Connection | None = None
        self._owner = 0  # the process that started the task's process
        self._start_cpu = time.process_time()  # the caller's, to log its own work meanwhile
        forkable = "fork" in multiprocessing.get_all_start_methods()
        if resolve_workers(workers) <= 1 or not forkable or multiprocessing.parent_process():
            return  # one process: the task runs when its result is asked for
        context = multiprocessing.get_context("fork")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_send_outcome, args=(task, send), daemon=True)
        gc.freeze()  # as in run_tasks: the child's collections leave the shared pages alone
        try:
            self._process.start()
        finally:
            gc.unfreeze()
        send.close()  # the child holds the sending end; its exit closes the pipe
        self._task = None
        self._owner = os.getpid()

    def __del__(self) -> None:
        # dropped unread (the caller failed before asking): the process is not left waiting
        # to send a result nobody reads
        process = self._process
        if process is not None and self._owner == os.getpid() and process.is_alive():
            process.terminate()

    def result(self) -> R:
        """The task's result, waiting for it; the task's exception, raised here, if it failed.

        Raises:
            RuntimeError: The result was asked for before, or the task's process ended
                without sending one.
        """
        if self._task is not None:  # one process
            task, self._task = self._task, None
            return task()
        if self._process is None or self._receive is None:
            raise RuntimeError("the background task's result was already taken")
        own = time.process_time() - self._start_cpu
        start = time.perf_counter()
        try:
            ok, value, cpu = self._receive.recv()
        except EOFError:
            ok, value, cpu = False, None, 0.0
        finally:
            self._process.join()
            self._receive.close()
        waited = time.perf_counter() - start
        code = self._process.exitcode
        self._process = self._receive = None
        LOG.info(
            "parallel: background task, %.2f s CPU, the caller waited %.2f s for it after "
            "%.2f s CPU of its own",
            cpu,
            waited,
            own,
        )
        if not ok:
            if isinstance(value, BaseException):
                raise value
            raise RuntimeError(f"the background task's process ended with no result (exit {code})")
        return cast(R, value)


def _send_outcome(task: Callable[[], Any], send: Connection) -> None:
    """In the forked child: run ``task``, send ``(ok, its result or exception, CPU s)``."""
    start = time.process_time()
    try:
        ok, value = True, task()
    except BaseException as err:  # every failure travels to the caller
        ok, value = False, err
    try:
        send.send((ok, value, time.process_time() - start))
    except Exception as err:  # an unpicklable result or exception
        problem = RuntimeError(f"the background task's outcome cannot be sent back: {err}")
        send.send((False, problem, time.process_time() - start))
    finally:
        send.close()


def start_task(task: Callable[[], R], workers: int) -> Pending[R]:
    """Start ``task`` now on a forked process beside the caller (see the module docstring).

    Args:
        task: A zero-argument callable (a closure is fine: it is not pickled); its result
            must be picklable. It sees the caller's memory as it is now.
        workers: The caller's worker setting (:func:`resolve_workers`); 1 (or a platform
            without ``fork``, or a call inside a worker): no process, the task runs in the
            caller when :meth:`Pending.result` is called.

    Returns:
        The pending task; ask for its result once.
    """
    return Pending(task, workers)
