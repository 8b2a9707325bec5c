"""Training callbacks: periodic evaluation on a fixed population (the learning curve), the
entropy schedule, and the learning curve's record.

Evaluations during training use the same code as the final evaluation
(:func:`journeyopt.evaluation.simulate.evaluate_policies`) on the same customers and random
numbers every time (common random numbers), so the curve's steps are differences between
policies, not noise between populations.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from journeyopt.tracking.logger import RunLogger


@dataclass(frozen=True)
class EvalPoint:
    """One evaluation during training.

    Attributes:
        step: Environment steps (customer-weeks) trained so far.
        wall_seconds: Wall-clock seconds since training started (summed over resumed runs),
            evaluation time included.
        value: Mean discounted value per customer, currency.
        pct_of_optimum: ``100 * value / exact optimal value`` of the same customers.
        forbidden_action_rate: Forbidden actions requested per customer-week.
    """

    step: int
    wall_seconds: float
    value: float
    pct_of_optimum: float
    forbidden_action_rate: float

    def metrics(self) -> dict[str, float]:
        """The point as ``eval/`` metrics."""
        return {
            "eval/value": self.value,
            "eval/pct_of_optimum": self.pct_of_optimum,
            "eval/forbidden_action_rate": self.forbidden_action_rate,
            "eval/wall_seconds": self.wall_seconds,
        }


Evaluate = Callable[[BaseAlgorithm, int, float], EvalPoint]
"""(model, step, wall seconds) -> the model's evaluation point."""


class LearningCurve:
    """The evaluation points of a run, kept in ``path`` (CSV) so a resumed run extends it.

    Args:
        path: CSV file; read if it exists.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.points: list[EvalPoint] = []
        if path.is_file():
            with path.open(newline="") as handle:
                self.points = [_point(row) for row in csv.DictReader(handle)]

    @property
    def wall_seconds(self) -> float:
        """Wall seconds at the last point (0 for a new curve)."""
        return self.points[-1].wall_seconds if self.points else 0.0

    def add(self, point: EvalPoint) -> None:
        """Append a point and rewrite the CSV file."""
        self.points.append(point)
        names = [f.name for f in fields(EvalPoint)]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=names)
            writer.writeheader()
            writer.writerows(asdict(p) for p in self.points)


def _point(row: dict[str, str]) -> EvalPoint:
    return EvalPoint(
        step=int(row["step"]),
        wall_seconds=float(row["wall_seconds"]),
        value=float(row["value"]),
        pct_of_optimum=float(row["pct_of_optimum"]),
        forbidden_action_rate=float(row["forbidden_action_rate"]),
    )


class Stopwatch:
    """Wall-clock seconds since ``started`` plus an offset (seconds of earlier, resumed runs).

    Args:
        offset: Seconds already spent.
        started: ``time.monotonic()`` at the start; default now.
    """

    def __init__(self, offset: float = 0.0, started: float | None = None) -> None:
        self._start = time.monotonic() if started is None else started
        self._offset = offset

    def seconds(self) -> float:
        """Seconds so far."""
        return self._offset + time.monotonic() - self._start


class PeriodicEvaluation(BaseCallback):
    """Evaluates the agent every ``every_steps`` environment steps, logs the ``eval/``
    metrics at that step and adds the point to the learning curve.

    Args:
        evaluate: Evaluates a model (see :data:`Evaluate`).
        every_steps: Environment steps between evaluations (> 0).
        run: Where the metrics go.
        curve: The learning curve.
        clock: Wall clock of the run.
    """

    def __init__(
        self,
        evaluate: Evaluate,
        every_steps: int,
        run: RunLogger,
        curve: LearningCurve,
        clock: Stopwatch,
    ) -> None:
        super().__init__()
        if every_steps < 1:
            raise ValueError(f"every_steps must be >= 1, got {every_steps}")
        self._evaluate = evaluate
        self._every = every_steps
        self._run = run
        self._curve = curve
        self._clock = clock
        self._done = -1

    def _on_training_start(self) -> None:
        self._done = self.num_timesteps // self._every

    def _on_step(self) -> bool:
        due = self.num_timesteps // self._every
        if due > self._done:
            self._done = due
            point = self._evaluate(self.model, self.num_timesteps, self._clock.seconds())
            self._curve.add(point)
            self._run.log_metrics(point.metrics(), step=self.num_timesteps)
        return True


class EntropySchedule(BaseCallback):
    """Moves an actor-critic agent's entropy weight linearly from ``start`` to ``end`` over
    training (by SB3's progress, so a resumed run continues the schedule).

    Args:
        start: Entropy weight at the start.
        end: Entropy weight at the end.
    """

    def __init__(self, start: float, end: float) -> None:
        super().__init__()
        self._start, self._end = start, end

    def _on_rollout_start(self) -> None:
        remaining = float(self.model._current_progress_remaining)
        weight = self._end + (self._start - self._end) * max(remaining, 0.0)
        self.model.ent_coef = weight  # type: ignore[attr-defined]
        self.logger.record("train/ent_coef", weight)

    def _on_step(self) -> bool:
        return True
