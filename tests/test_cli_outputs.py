"""What every ``journeyopt-*`` command does with its outputs, as a user sees it: it never
writes over its own inputs (``overwrite`` or not), a non-empty output folder needs
``overwrite=true`` (training too), and an output folder that cannot be written (under a
regular file, on a read-only or full file system) is one line with exit code 2 and leaves
no partial folder behind."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

import journeyopt.cli.calibrate as calibrate_cli
import journeyopt.cli.compare as compare_cli
import journeyopt.cli.cycle as cycle_cli
import journeyopt.cli.drift as drift_cli
import journeyopt.cli.evaluate as evaluate_cli
import journeyopt.cli.generate as generate_cli
import journeyopt.cli.ingest as ingest_cli
import journeyopt.cli.panel as panel_cli
import journeyopt.cli.score as score_cli
import journeyopt.cli.train as train_cli
import journeyopt.cli.uplift as uplift_cli
from journeyopt.outputs import PARTIAL_SUFFIX
from tests.commands import DEMO_SERVING, DEMO_WORLD, error_line
from tests.test_outputs import _tmpfs

RAW_EVENTS = "customer_id,ts,kind,value\nc1,2024-01-02T10:00:00Z,visit,0\n"


@pytest.fixture
def export(tmp_path: Path) -> Iterator[Path]:
    """A raw export folder (``events.csv``) and a world folder, the inputs of the commands."""
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "events.csv").write_text(RAW_EVENTS)
    (tmp_path / "world").mkdir()
    (tmp_path / "world" / "world.yaml").write_text("name: mine\n")
    GlobalHydra.instance().clear()
    yield folder
    GlobalHydra.instance().clear()


def _main(command: Any) -> Callable[[Any], Any]:
    """The command's Hydra task function (errors reported, exit code set), given a config."""
    return command.main.__wrapped__


# Each command with an output on (or in, or around) one of its inputs, ``overwrite=true``.
OVER_INPUTS: list[tuple[str, Any, list[str], str]] = [
    (
        "score",
        score_cli,
        [*DEMO_SERVING, "data.path={export}", "as_of=2024-06-03",
         "model={tmp}/model", "out={export}/events.csv"],
        "out={export}/events.csv is inside the input data.path={export}",
    ),
    (
        "ingest",
        ingest_cli,
        ["data=coworking", "data.path={export}/events.csv", "output_dir={export}"],
        "output_dir={export} contains the input data.path={export}/events.csv",
    ),
    (
        "panel",
        panel_cli,
        ["input_dir={export}", "output_dir={export}", "panel=coworking"],
        "output_dir={export} is the input input_dir={export}",
    ),
    (
        "calibrate",
        calibrate_cli,
        ["data=coworking", "data.path={export}", "output_dir={export}/world", "tracking=off",
         "panel=coworking", "calibration=coworking"],
        "output_dir={export}/world is inside the input data.path={export}",
    ),
    (
        "train",
        train_cli,
        [*DEMO_WORLD, "simulator.world={tmp}/world", "output_dir={tmp}/world/run", "tracking=off"],
        "output_dir={tmp}/world/run is inside the input simulator.world={tmp}/world",
    ),
    (
        "train",
        train_cli,
        [*DEMO_WORLD, "train.resume={tmp}/earlier", "output_dir={tmp}/earlier", "tracking=off"],
        "output_dir={tmp}/earlier is the input train.resume={tmp}/earlier",
    ),
    (
        "uplift",
        uplift_cli,
        ["data=coworking", "data.path={export}", "decisions={tmp}/decisions",
         "since=2024-03-04", "output_dir={tmp}/decisions/report", "tracking=off",
         "panel=coworking"],
        "output_dir={tmp}/decisions/report is inside the input decisions={tmp}/decisions",
    ),
    (
        "drift",
        drift_cli,
        ["data=coworking", "data.path={export}", "output_dir={export}", "tracking=off",
         "panel=coworking"],
        "output_dir={export} is the input data.path={export}",
    ),
    (
        "cycle",
        cycle_cli,
        ["week=2024-03-11", "data=coworking", "data.path={export}",
         "work_dir={export}/cycles", "tracking=off", "panel=coworking", "calibration=coworking"],
        "work_dir={export}/cycles is inside the input data.path={export}",
    ),
    (
        "evaluate",
        evaluate_cli,
        [*DEMO_WORLD, "simulator.world={tmp}/world", "output_dir={tmp}/world"],
        "output_dir={tmp}/world is the input simulator.world={tmp}/world",
    ),
    (
        "generate",
        generate_cli,
        ["practice@staff=coworking", "simulator.world={tmp}/world/world.yaml",
         "output_dir={tmp}/world"],
        "output_dir={tmp}/world contains the input simulator.world={tmp}/world/world.yaml",
    ),
    (
        "compare",
        compare_cli,
        [*DEMO_WORLD, "simulator.world={tmp}/world", "output_dir={tmp}/world/comparison",
         "tracking=off"],
        "output_dir={tmp}/world/comparison is inside the input simulator.world={tmp}/world",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("config", "command", "overrides", "message"),
    OVER_INPUTS,
    ids=[f"{c}-{i}" for i, (c, *_) in enumerate(OVER_INPUTS)],
)
def test_no_command_writes_over_its_inputs_even_with_overwrite(
    export: Path,
    capsys: pytest.CaptureFixture[str],
    config: str,
    command: Any,
    overrides: list[str],
    message: str,
) -> None:
    tmp = export.parent
    before = {p: p.read_bytes() for p in tmp.rglob("*") if p.is_file()}
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = compose(
            config,
            overrides=[
                *(o.format(export=export, tmp=tmp) for o in overrides),
                *([] if config == "cycle" else ["overwrite=true"]),  # the cycle has no overwrite
            ],
        )
    with pytest.raises(SystemExit) as exit_info:
        _main(command)(cfg)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: " + message.format(export=export, tmp=tmp))
    assert {p: p.read_bytes() for p in tmp.rglob("*") if p.is_file()} == before


def test_train_refuses_an_earlier_run_folder_without_overwrite(
    export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    earlier = export.parent / "earlier"
    (earlier / "checkpoints").mkdir(parents=True)
    (earlier / "checkpoints" / "model_1000_steps.zip").write_bytes(b"an earlier checkpoint")
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = compose(
            "train", overrides=[*DEMO_WORLD, f"output_dir={earlier}", "train=smoke", "tracking=off"]
        )
    with pytest.raises(SystemExit) as exit_info:
        _main(train_cli)(cfg)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: output_dir {earlier} exists and is not empty; choose another folder or pass "
        "overwrite=true to replace its files\n"
    )
    assert [p.name for p in earlier.rglob("*")] == ["checkpoints", "model_1000_steps.zip"]


def test_a_cycle_work_dir_under_a_regular_file_is_one_line(
    export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = export.parent / "notes.txt"
    notes.write_text("a file\n")
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = compose(
            "cycle",
            overrides=["week=2024-03-11", "data=coworking", f"data.path={export}",
                       f"work_dir={notes}/cycles", "tracking=off", "panel=coworking",
                       "calibration=coworking"],
        )  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        _main(cycle_cli)(cfg)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write work_dir {notes}/cycles: Not a directory")
    assert err.count("\n") == 1


def _never(*_: object, **__: object) -> None:
    raise AssertionError("the work ran before the output folder was checked")


@pytest.mark.parametrize(
    ("config", "command", "work"),
    [
        ("evaluate", evaluate_cli, "evaluate_with_baselines"),
        ("generate", generate_cli, "generate_logs"),
        ("compare", compare_cli, "compare"),
    ],
)
def test_a_non_empty_output_dir_is_refused_before_the_work(
    export: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    config: str,
    command: Any,
    work: str,
) -> None:
    monkeypatch.setattr(command, work, _never)
    earlier = export.parent / "earlier"
    earlier.mkdir()
    (earlier / "evaluation.csv").write_text("policy,value\n")
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = compose(
            config,
            overrides=[
                *(
                    ["simulator=coworking", "practice@staff=coworking"]
                    if config == "generate"
                    else DEMO_WORLD
                ),
                f"output_dir={earlier}",
                *(["tracking=off"] if config == "compare" else []),
            ],
        )
    with pytest.raises(SystemExit) as exit_info:
        _main(command)(cfg)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(
        f"error: output_dir {earlier} exists and is not empty"
    )


def test_a_read_only_output_dir_is_refused_before_calibrating(
    export: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("journeyopt.calibration.pipeline.ingest_to_logs", _never)
    with _tmpfs(export.parent / "ro", "size=64k,ro") as readonly:
        with initialize_config_module("journeyopt.configs", version_base="1.3"):
            cfg = compose(
                "calibrate",
                overrides=["data=coworking", f"data.path={export}",
                           f"output_dir={readonly}/world", "tracking=off", "panel=coworking",
                           "calibration=coworking"],
            )  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            _main(calibrate_cli)(cfg)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"error: cannot write output_dir {readonly}/world: Read-only file system\n"
    )


def test_score_refuses_a_read_only_out_before_scoring(
    export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with _tmpfs(export.parent / "ro", "size=64k,ro") as readonly:
        with initialize_config_module("journeyopt.configs", version_base="1.3"):
            cfg = compose(
                "score",
                overrides=[*DEMO_SERVING, f"data.path={export}", "as_of=2024-06-03",
                           f"model={export.parent}/model", f"out={readonly}/week/actions.csv"],
            )  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            _main(score_cli)(cfg)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"error: cannot write out {readonly}/week/actions.csv: Read-only file system\n"
    )


# -- the real commands, as subprocesses -------------------------------------------------------


def _run(
    module: str, args: list[str], cwd: Path, preexec: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "JOURNEYOPT_DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", f"journeyopt.cli.{module}", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "160", "PYTHONIOENCODING": "utf-8"},
        timeout=300,
        check=False,
        preexec_fn=preexec,
    )


def test_score_never_replaces_the_raw_export_it_reads(export: Path) -> None:
    """The issue's case, verbatim: ``out=<data.path>/events.csv overwrite=true``."""
    proc = _run(
        "score",
        [*DEMO_SERVING, f"data.path={export}", "as_of=2024-06-03", "model=no_model",
         f"out={export}/events.csv", "overwrite=true"],
        cwd=export.parent,
    )  # fmt: skip
    assert error_line(proc).startswith(f"error: out={export}/events.csv is inside the input")
    assert (export / "events.csv").read_text() == RAW_EVENTS
    assert sorted(p.name for p in export.iterdir()) == ["events.csv"]


def test_an_output_dir_under_a_regular_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("a file\n")
    proc = _run("ingest", ["data=cdnow_sample", "output_dir=notes.txt/out"], cwd=tmp_path)
    assert error_line(proc) == (
        f"error: cannot write output_dir {tmp_path / 'notes.txt' / 'out'}: Not a directory "
        f"({tmp_path / 'notes.txt'} is a file)"
    )


def test_a_read_only_output_dir_is_one_line(tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "ro", "size=64k,ro") as readonly:
        proc = _run("ingest", ["data=cdnow_sample", f"output_dir={readonly}/out"], cwd=tmp_path)
        assert error_line(proc) == (
            f"error: cannot write output_dir {readonly / 'out'}: Read-only file system"
        )
        assert list(readonly.iterdir()) == []


def test_a_full_disk_is_one_line_and_leaves_no_partial_folder(tmp_path: Path) -> None:
    """A real full file system: a 32 KiB tmpfs (the canonical tables of the cdnow sample take
    more); skipped where mounting is not permitted (see the next test)."""
    with _tmpfs(tmp_path / "disk", "size=32k") as disk:
        proc = _run("ingest", ["data=cdnow_sample", f"output_dir={disk}/out"], cwd=tmp_path)
        assert error_line(proc) == (
            f"error: cannot write output_dir {disk / 'out'}: No space left on device"
        )
        assert list(disk.iterdir()) == []  # no truncated events.parquet, no staging folder


def _limit_file_size() -> None:
    # Every file the process writes is cut at 16 KiB: the kernel refuses the write that goes
    # past it (EFBIG; Python ignores SIGXFSZ), as a full disk refuses it with ENOSPC.
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))


def test_a_write_the_kernel_refuses_is_one_line_and_keeps_the_earlier_outputs(
    tmp_path: Path,
) -> None:
    """Without the right to mount: a real file-size limit on the subprocess. An earlier run's
    complete outputs stay as they were (the new ones were staged beside them)."""
    first = _run("ingest", ["data=cdnow_sample", "output_dir=out"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    proc = _run(
        "ingest",
        ["data=cdnow_sample", "output_dir=out", "overwrite=true"],
        cwd=tmp_path,
        preexec=_limit_file_size,
    )
    assert error_line(proc) == f"error: cannot write output_dir {tmp_path / 'out'}: File too large"
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(PARTIAL_SUFFIX)] == []


def test_paths_with_spaces_and_non_ascii_are_quoted_for_hydra(tmp_path: Path) -> None:
    """The example of docs/configuration.md: ``output_dir='my out/ü'``."""
    proc = _run("ingest", ["data=cdnow_sample", "output_dir='my out/ü'"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "my out" / "ü" / "summary.json").is_file()
