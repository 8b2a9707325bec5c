"""MLflow logging overhead: the same training run with tracking off and on (embedded SQLite).

    python benchmarks/tracking_overhead.py --train-steps 200000 --repeats 3
    python benchmarks/run.py tracking_overhead

Runs alternate off/on (so a slow phase of a shared machine hits both), in this process, each
with the same config and seed. Measured per run: the training wall time (``train/wall_seconds``:
optimum, agent, learning with its periodic evaluations and metric logging) and the whole
``train()`` call (plus the final evaluation, artifacts and, with tracking on, the pyfunc model
and its registration). Overhead = median(on) / median(off) - 1; the target is <= 2 % of the
training wall time.

On a shared machine the off/on difference drowns in other jobs' noise, so the tracked runs also
measure the overhead directly: the wall time spent inside MLflow client calls (run creation,
params, tags, metric batches, artifacts) until training ends, as a share of the same run's
training wall time.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_module
from mlflow.tracking import MlflowClient
from stable_baselines3.common.callbacks import BaseCallback

from journeyopt.agents.config import TrainConfig, register_configs, train_config
from journeyopt.agents.train import train
from journeyopt.tracking.config import TrackingConfig

TARGET_PCT = 2.0
CLIENT_CALLS = (
    "create_run",
    "get_experiment_by_name",
    "log_batch",
    "log_artifact",
    "log_artifacts",
    "set_tag",
)


@dataclass(frozen=True)
class Timing:
    train_seconds: float
    total_seconds: float
    mlflow_seconds: float  # inside MLflow client calls until training ended


class ClientTimer:
    """Wall seconds spent inside :data:`CLIENT_CALLS` of every ``MlflowClient``."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return timed


@contextmanager
def timed_client() -> Iterator[ClientTimer]:
    """Time the MLflow client calls made inside the block."""
    timer = ClientTimer()
    originals = {name: getattr(MlflowClient, name) for name in CLIENT_CALLS}
    for name, method in originals.items():
        setattr(MlflowClient, name, timer.wrap(method))
    try:
        yield timer
    finally:
        for name, method in originals.items():
            setattr(MlflowClient, name, method)


class TrainingEnd(BaseCallback):
    """Reads the timer when learning ends (before the final evaluation and model logging)."""

    def __init__(self, timer: ClientTimer) -> None:
        super().__init__()
        self.timer = timer
        self.seconds = 0.0

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self.seconds = self.timer.seconds


def overhead_config(steps: int, output_dir: Path, tracking: TrackingConfig) -> TrainConfig:
    """MaskablePPO on the coworking world for ``steps`` environment steps, evaluated 4 times."""
    register_configs()
    overrides = [
        "simulator=coworking",
        "practice@evaluation.staff=coworking",
        "agent=maskable_ppo",
        f"train.total_timesteps={steps}",
        f"train.eval_every_steps={max(steps // 4, 1)}",
        "train.eval_customers=1000",
        "train.checkpoint_every_steps=0",
        "train.progress_bar=false",
        "evaluation.n_customers=2000",
        f"output_dir={output_dir}",
    ]
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = train_config(compose("train", overrides=overrides))
    cfg.tracking = tracking
    return cfg


def timed_run(steps: int, folder: Path, tracked: bool) -> Timing:
    """One training run into ``folder``; tracking to a SQLite store there when ``tracked``."""
    tracking = TrackingConfig(
        enabled=tracked,
        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
        artifact_location=(folder / "mlruns").as_uri(),
        experiment="tracking-overhead",
    )
    cfg = overhead_config(steps, folder / "out", tracking)
    with timed_client() as timer:
        end = TrainingEnd(timer)
        started = time.perf_counter()
        result = train(cfg, callbacks=[end])
        total = time.perf_counter() - started
    return Timing(result.metrics["train/wall_seconds"], total, end.seconds)


def bench_tracking_overhead(steps: int, repeats: int) -> list[str]:
    """Median training wall time with tracking off and on; overhead in %."""
    timings: dict[bool, list[Timing]] = {False: [], True: []}
    rows = [
        "| run | tracking | training s | whole run s | in MLflow calls during training s |",
        "|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        # a first tracked run creates (migrates) the SQLite store; it is not timed
        timed_run(min(steps, 10_000), Path(tmp) / "warm", tracked=True)
        shutil.rmtree(Path(tmp) / "warm" / "out")
        for run in range(repeats):
            for tracked in (False, True):
                folder = Path(tmp) / ("warm" if tracked else f"off{run}")
                if tracked:
                    shutil.rmtree(folder / "out", ignore_errors=True)
                t = timed_run(steps, folder, tracked)
                timings[tracked].append(t)
                label = "on (SQLite)" if tracked else "off"
                rows.append(
                    f"| {run + 1} | {label} | {t.train_seconds:.2f} | {t.total_seconds:.2f} "
                    f"| {t.mlflow_seconds:.3f} |"
                )
                print(rows[-1], flush=True)
    off = statistics.median(t.train_seconds for t in timings[False])
    on = statistics.median(t.train_seconds for t in timings[True])
    off_total = statistics.median(t.total_seconds for t in timings[False])
    on_total = statistics.median(t.total_seconds for t in timings[True])
    pct = 100.0 * (on / off - 1.0)
    direct = statistics.median(100.0 * t.mlflow_seconds / t.train_seconds for t in timings[True])
    verdict = "met" if direct <= TARGET_PCT else "NOT met"
    rows.append(f"| **median** | off | **{off:.2f}** | {off_total:.2f} | |")
    rows.append(f"| **median** | on | **{on:.2f}** | {on_total:.2f} | |")
    header = [
        f"MLflow logging overhead: MaskablePPO, coworking world, {steps:,} env steps, "
        f"4 evaluations; {repeats} runs each, alternating off/on.",
        "",
    ]
    footer = [
        "",
        f"Time inside MLflow calls during training, share of training wall time (median of the "
        f"tracked runs): **{direct:.2f} %** (target <= {TARGET_PCT:.0f} %: {verdict}). "
        f"Difference of the medians on/off: {pct:+.1f} % of training wall time; whole run "
        f"incl. final evaluation, model logging and registration: "
        f"{100.0 * (on_total / off_total - 1.0):+.1f} %.",
    ]
    return header + rows + footer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-steps", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("\n".join(bench_tracking_overhead(args.train_steps, args.repeats)))


if __name__ == "__main__":
    main()
