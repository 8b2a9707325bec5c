"""``tracked_run``: params, tags, nesting, and the final status of every way a run can end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.run import ERROR_TAG, PARENT_RUN_TAG, RunTerminated, tracked_run
from journeyopt.tracking.tags import AGENT_TAG, GIT_COMMIT_TAG, fingerprint_files, run_tags


def _client(settings: TrackingConfig) -> MlflowClient:
    return MlflowClient(settings.resolved_tracking_uri(), settings.resolved_registry_uri())


def test_finished_run_has_flat_params_config_and_tags(
    mlflow_backend: TrackingConfig, job_config: DictConfig, tmp_path: Path
) -> None:
    job_config.tracking = vars(mlflow_backend)
    tags = run_tags(simulator="coworking", agent="ppo", cwd=Path(__file__).parent)
    with tracked_run(job_config, "ppo-seed3", tags=tags) as run:
        run_id = str(run.run_id)
    finished = _client(mlflow_backend).get_run(run_id)
    assert finished.info.status == "FINISHED"
    assert finished.info.run_name == "ppo-seed3"
    params = finished.data.params
    assert params["agent.n_steps"] == "3"
    assert params["agent.net_arch"] == "[64, 64]"
    assert params["callbacks.1.every"] == "5000"
    assert params["tracking.experiment"] == mlflow_backend.experiment
    assert finished.data.tags[AGENT_TAG] == "ppo"
    assert len(finished.data.tags[GIT_COMMIT_TAG]) == 40  # the tests run inside the repo
    config = _client(mlflow_backend).download_artifacts(run_id, "config.yaml", str(tmp_path))
    assert "net_arch" in Path(config).read_text()


def test_child_runs_point_at_their_parent(mlflow_backend: TrackingConfig) -> None:
    with tracked_run({}, "compare", tracking=mlflow_backend, log_config=False) as parent:
        children = []
        for name in ("ppo", "staff_rules"):
            with tracked_run(
                {}, name, parent_run_id=parent.run_id, tracking=mlflow_backend, log_config=False
            ) as child:
                child.log_metrics({"eval/value_mean": 1.0}, step=0)
                children.append(child.run_id)
    client = _client(mlflow_backend)
    found = client.search_runs(
        [client.get_experiment_by_name(mlflow_backend.experiment).experiment_id],
        filter_string=f"tags.`{PARENT_RUN_TAG}` = '{parent.run_id}'",
    )
    assert sorted(r.info.run_id for r in found) == sorted(children)
    assert {r.info.status for r in found} == {"FINISHED"}


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ValueError("diverged"), "FAILED"),
        (KeyboardInterrupt(), "KILLED"),
        (RunTerminated(), "KILLED"),
        (SystemExit(3), "FAILED"),
        (SystemExit(0), "FINISHED"),
    ],
)
def test_a_run_ends_with_the_status_of_its_exception(
    mlflow_sqlite: TrackingConfig, error: BaseException, status: str
) -> None:
    with (
        pytest.raises(type(error)),
        tracked_run({}, "doomed", tracking=mlflow_sqlite, log_config=False) as run,
    ):
        run.log_metrics({"train/loss": 0.5}, step=10)
        raise error
    ended = _client(mlflow_sqlite).get_run(str(run.run_id))
    assert ended.info.status == status
    assert ended.data.metrics == {"train/loss": 0.5}  # buffered values are not lost
    assert (ERROR_TAG in ended.data.tags) is (status != "FINISHED")


def test_failure_on_the_server_is_recorded(mlflow_remote: TrackingConfig) -> None:
    with (
        pytest.raises(RuntimeError, match="nan loss"),
        tracked_run({}, "doomed", tracking=mlflow_remote, log_config=False) as run,
    ):
        raise RuntimeError("nan loss")
    ended = _client(mlflow_remote).get_run(str(run.run_id))
    assert ended.info.status == "FAILED"
    assert ended.data.tags[ERROR_TAG] == "RuntimeError: nan loss"


def test_sigterm_marks_the_run_killed(mlflow_sqlite: TrackingConfig) -> None:
    previous = signal.getsignal(signal.SIGTERM)
    with (
        pytest.raises(RunTerminated) as raised,
        tracked_run({}, "terminated", tracking=mlflow_sqlite, log_config=False) as run,
    ):
        os.kill(os.getpid(), signal.SIGTERM)
    assert raised.value.code == 143
    assert signal.getsignal(signal.SIGTERM) is previous  # handler restored
    assert _client(mlflow_sqlite).get_run(str(run.run_id)).info.status == "KILLED"


def test_a_process_killed_by_sigterm_leaves_a_killed_run(
    mlflow_sqlite: TrackingConfig, tmp_path: Path
) -> None:
    """A separate process, terminated from outside while its run is open."""
    ready = tmp_path / "ready"
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from journeyopt.tracking.config import TrackingConfig
        from journeyopt.tracking.run import tracked_run

        settings = TrackingConfig(tracking_uri={mlflow_sqlite.tracking_uri!r},
                                  experiment="tests",
                                  artifact_location={mlflow_sqlite.artifact_location!r})
        with tracked_run({{}}, "worker", tracking=settings, log_config=False) as run:
            run.log_metrics({{"train/loss": 1.0}}, step=5)
            Path({str(ready)!r}).write_text(str(run.run_id))
            time.sleep(120)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    process = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        for _ in range(1200):
            if ready.exists() or process.poll() is not None:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert ready.exists(), "the worker did not start its run"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 143
    finally:
        if process.poll() is None:
            process.kill()
    ended = _client(mlflow_sqlite).get_run(ready.read_text())
    assert ended.info.status == "KILLED"
    assert ended.data.metrics == {"train/loss": 1.0}


def test_fingerprint_depends_on_content_not_location(tmp_path: Path) -> None:
    for root in ("a", "b"):
        (tmp_path / root / "data").mkdir(parents=True)
        (tmp_path / root / "data" / "events.csv").write_text("id,ts\n1,2024-01-01\n")
    first = fingerprint_files([tmp_path / "a" / "data"])
    assert first == fingerprint_files([tmp_path / "b" / "data"])
    (tmp_path / "b" / "data" / "events.csv").write_text("id,ts\n1,2024-01-02\n")
    assert first != fingerprint_files([tmp_path / "b" / "data"])
    with pytest.raises(FileNotFoundError, match="cannot fingerprint"):
        fingerprint_files([tmp_path / "missing"])
