"""Independent tasks on forked workers: the same results in the same order as one after the
other, in other processes, sharing the caller's memory (closures over large arrays are not
pickled), errors surfacing in the caller; the same for one task started ahead of its use."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable

import numpy as np
import pytest

from journeyopt.parallel import available_cores, resolve_workers, run_tasks, start_task


def test_results_come_back_in_order_from_other_processes() -> None:
    data = np.arange(2_000_000, dtype=np.float64)  # shared with the workers, not pickled

    def task(k: int) -> Callable[[], tuple[int, float, int]]:
        return lambda: (k, float(data[k::7].sum()), os.getpid())

    serial = run_tasks([task(k) for k in range(7)], workers=1)
    forked = run_tasks([task(k) for k in range(7)], workers=2)
    assert [r[:2] for r in forked] == [r[:2] for r in serial]
    assert all(r[2] == os.getpid() for r in serial)
    assert os.getpid() not in {r[2] for r in forked}


def test_seeded_tasks_give_the_same_numbers_whatever_the_workers() -> None:
    def draw(seed: int) -> Callable[[], np.ndarray]:
        return lambda: np.random.default_rng(seed).normal(size=1000)

    one = run_tasks([draw(s) for s in range(5)], workers=1)
    two = run_tasks([draw(s) for s in range(5)], workers=2)
    assert all(np.array_equal(a, b) for a, b in zip(one, two, strict=True))


def test_a_failing_task_raises_in_the_caller() -> None:
    def fail() -> int:
        raise RuntimeError("task 1 failed")

    with pytest.raises(RuntimeError, match="task 1 failed"):
        run_tasks([lambda: 0, fail, lambda: 2], workers=2)


def test_workers_setting() -> None:
    assert resolve_workers(0) == available_cores() >= 1
    assert resolve_workers(3) == 3
    with pytest.raises(ValueError, match="workers must be >= 0"):
        resolve_workers(-1)
    assert run_tasks([], workers=2) == []


def test_a_started_task_runs_beside_the_caller_on_its_memory_of_the_start() -> None:
    data = np.arange(1_000_000, dtype=np.float64)  # shared with the child, not pickled

    def task() -> tuple[float, int]:
        return float(data.sum()), os.getpid()

    forked = start_task(task, workers=2)
    data[:] = 0.0  # after the start: the child keeps what it saw
    total, pid = forked.result()
    assert total == float(np.arange(1_000_000, dtype=np.float64).sum())
    assert pid != os.getpid()
    with pytest.raises(RuntimeError, match="already taken"):
        forked.result()
    in_place = start_task(task, workers=1)
    data[:] = 1.0  # one process: the task runs when its result is asked for
    assert in_place.result() == (1_000_000.0, os.getpid())


def test_a_started_task_that_fails_raises_in_the_caller() -> None:
    def fail() -> int:
        raise ValueError("background task failed")

    with pytest.raises(ValueError, match="background task failed"):
        start_task(fail, workers=2).result()
    with pytest.raises(RuntimeError, match="cannot be sent back"):
        start_task(lambda: lambda: 0, workers=2).result()  # a lambda does not pickle


def test_a_started_task_dropped_unread_ends_its_process() -> None:
    started = start_task(lambda: time.sleep(30), workers=2)
    process = started._process
    assert process is not None and process.is_alive()
    del started
    process.join(timeout=5)
    assert not process.is_alive()


def test_a_started_task_logs_the_callers_own_cpu(caplog: pytest.LogCaptureFixture) -> None:
    """The log line gives the caller's CPU time between the start and the result (on idle
    cores the wait is about the task's CPU time less that)."""
    started = start_task(lambda: 1, workers=2)
    begin = time.process_time()
    while time.process_time() - begin < 0.1:  # the caller's own work
        pass
    with caplog.at_level(logging.INFO, logger="journeyopt"):
        assert started.result() == 1
    (line,) = [r.getMessage() for r in caplog.records if "background task" in r.getMessage()]
    found = re.search(r"waited [0-9.]+ s for it after ([0-9.]+) s CPU of its own", line)
    assert found is not None and float(found[1]) >= 0.1


def test_run_tasks_logs_each_tasks_cpu(caplog: pytest.LogCaptureFixture) -> None:
    """Each task's CPU time is logged, in the tasks' order (how balanced the workers were)."""

    def spin(seconds: float) -> Callable[[], float]:
        def run() -> float:
            begin = time.process_time()
            while time.process_time() - begin < seconds:
                pass
            return seconds

        return run

    with caplog.at_level(logging.INFO, logger="journeyopt"):
        assert run_tasks([spin(0.15), spin(0.0), spin(0.05)], workers=2) == [0.15, 0.0, 0.05]
    (line,) = [r.getMessage() for r in caplog.records if "tasks on 2 workers" in r.getMessage()]
    found = re.search(r"\(tasks: ([0-9.]+) ([0-9.]+) ([0-9.]+) s\)", line)
    assert found is not None
    assert float(found[1]) >= 0.15 and float(found[2]) < 0.05 and float(found[3]) >= 0.05
