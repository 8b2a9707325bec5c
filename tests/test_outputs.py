"""The output rules every command shares (:mod:`journeyopt.outputs`): never over the inputs,
staged writes that are all or nothing, and one clear line for a folder that cannot be written
(a path under a regular file, a read-only or full file system)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from journeyopt.errors import OutputExistsError, OutputOverInputError, OutputWriteError
from journeyopt.outputs import (
    PARTIAL_SUFFIX,
    check_output_dir,
    refuse_inputs,
    staged_output_dir,
    staged_output_files,
)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(PARTIAL_SUFFIX))


# -- never over the inputs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "how"),
    [
        ("export/events.csv", "is the input"),  # the file itself
        ("export/events.csv/x", "is inside the input"),
        ("export", "contains the input"),  # a folder holding the input file
        ("export/../export/events.csv", "is the input"),  # the same file, spelt differently
    ],
)
def test_an_output_on_an_input_is_refused_naming_both(
    tmp_path: Path, output: str, how: str
) -> None:
    raw = tmp_path / "export" / "events.csv"
    raw.parent.mkdir()
    raw.write_text("customer_id,ts\n")
    with pytest.raises(OutputOverInputError) as caught:
        refuse_inputs({"out": tmp_path / output}, {"data.path": raw, "model": None})
    message = str(caught.value)
    assert "\n" not in message
    assert f"out={tmp_path / output}" in message and f"data.path={raw}" in message
    assert how in message
    assert caught.value.exit_code == 2


def test_an_output_folder_inside_an_input_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputOverInputError, match=r"is inside the input data\.path"):
        refuse_inputs({"output_dir": tmp_path / "logs" / "out"}, {"data.path": tmp_path / "logs"})


def test_a_symlink_to_an_input_is_the_input(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "logs")
    with pytest.raises(OutputOverInputError):
        refuse_inputs({"output_dir": tmp_path / "link"}, {"input_dir": tmp_path / "logs"})


def test_disjoint_and_empty_paths_pass(tmp_path: Path) -> None:
    refuse_inputs(
        {"output_dir": tmp_path / "out", "export": None},
        {"data.path": tmp_path / "logs", "world": "", "decisions": tmp_path / "out_decisions"},
    )


# -- staged folders -------------------------------------------------------------------------


def test_a_staged_folder_appears_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "results" / "run"
    with staged_output_dir(out, overwrite=False) as staging:
        assert staging.parent == out.parent and staging.name.startswith(".run.")
        (staging / "a.csv").write_text("1\n")
        assert not out.exists()  # nothing half-written is visible
    assert (out / "a.csv").read_text() == "1\n"
    assert _leftovers(out.parent) == []


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(RuntimeError), staged_output_dir(out, overwrite=False) as staging:
        (staging / "events.parquet").write_bytes(b"PAR1 truncated")
        raise RuntimeError("the job failed half-way")
    assert not out.exists()
    assert _leftovers(tmp_path) == []


def test_ctrl_c_while_writing_leaves_the_earlier_outputs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.json").write_text("{}\n")
    with pytest.raises(KeyboardInterrupt), staged_output_dir(out, overwrite=True) as staging:
        (staging / "summary.json").write_text('{"half": ')
        raise KeyboardInterrupt
    assert (out / "summary.json").read_text() == "{}\n"
    assert _leftovers(tmp_path) == []


def test_a_non_empty_folder_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.csv").write_text("old\n")
    with (
        pytest.raises(OutputExistsError, match="overwrite=true"),
        staged_output_dir(out, overwrite=False),
    ):
        pass
    assert _leftovers(tmp_path) == []


def test_overwrite_replaces_same_names_and_keeps_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "run"
    (out / "members").mkdir(parents=True)
    (out / "members" / "7.npz").write_text("stale member")
    (out / "world.yaml").write_text("old\n")
    (out / "notes.txt").write_text("the user's\n")
    with staged_output_dir(out, overwrite=True) as staging:
        (staging / "members").mkdir()
        (staging / "members" / "0.npz").write_text("new member")
        (staging / "world.yaml").write_text("new\n")
    assert (out / "world.yaml").read_text() == "new\n"
    assert sorted(p.name for p in (out / "members").iterdir()) == ["0.npz"]
    assert (out / "notes.txt").read_text() == "the user's\n"
    assert _leftovers(tmp_path) == []


def test_overwrite_replaces_a_file_by_a_folder_and_back(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "members").write_text("a file of an older version\n")
    (out / "card").mkdir()
    with staged_output_dir(out, overwrite=True) as staging:
        (staging / "members").mkdir()
        (staging / "members" / "0.npz").write_text("member")
        (staging / "card").write_text("now a file\n")
    assert (out / "members" / "0.npz").is_file() and (out / "card").is_file()


def test_an_input_read_error_is_not_called_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), staged_output_dir(tmp_path / "out", False):
        (tmp_path / "missing_input.csv").read_text()


def test_an_output_dir_under_a_regular_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "report.txt").write_text("a file, not a folder\n")
    out = tmp_path / "report.txt" / "run"
    with pytest.raises(OutputWriteError) as caught, staged_output_dir(out, overwrite=False):
        pytest.fail("must not get to write")
    message = str(caught.value)
    assert message == (
        f"cannot write output_dir {out}: Not a directory ({tmp_path / 'report.txt'} is a file)"
    )


# -- real file systems: read-only and full ---------------------------------------------------


@contextlib.contextmanager
def _tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A small tmpfs mounted at ``where`` (needs the right to mount: root, outside most
    containers); the test is skipped where the platform does not allow it."""
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "journeyopt-test", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def test_a_full_disk_is_one_line_and_leaves_no_partial_folder(tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "disk", "size=64k") as disk:
        out = disk / "canonical"
        with (
            pytest.raises(OutputWriteError) as caught,
            staged_output_dir(out, overwrite=False) as staging,
        ):
            (staging / "summary.json").write_text("{}\n")
            with (staging / "events.parquet").open("wb") as fh:
                for _ in range(64):  # 1 MiB into a 64 KiB file system
                    fh.write(b"x" * 16384)
        assert str(caught.value) == f"cannot write output_dir {out}: No space left on device"
        assert isinstance(caught.value.__cause__, OSError)
        assert caught.value.__cause__.errno == errno.ENOSPC
        assert sorted(p.name for p in disk.iterdir()) == []  # no folder, no staging left


def test_a_read_only_file_system_is_one_line(tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "ro", "size=64k,ro") as readonly:
        out = readonly / "run"
        with pytest.raises(OutputWriteError) as caught, staged_output_dir(out, False):
            pytest.fail("must not get to write")
        assert str(caught.value) == f"cannot write output_dir {out}: Read-only file system"


# -- staged files ---------------------------------------------------------------------------


def test_staged_files_replace_all_or_none(tmp_path: Path) -> None:
    paths = [tmp_path / "week" / "actions.csv", tmp_path / "week" / "summary.json"]
    with staged_output_files(paths) as (actions, summary):
        actions.write_text("a\n")
        summary.write_text("{}\n")
        assert not paths[0].exists()
    assert [p.read_text() for p in paths] == ["a\n", "{}\n"]
    with pytest.raises(RuntimeError), staged_output_files(paths) as (actions, _):
        actions.write_text("half")
        raise RuntimeError("failed before the summary")
    assert [p.read_text() for p in paths] == ["a\n", "{}\n"]
    assert _leftovers(tmp_path / "week") == []


def test_staged_files_on_a_full_disk_are_one_line(tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "disk", "size=64k") as disk:
        out = disk / "actions.csv"
        with (
            pytest.raises(OutputWriteError, match=r"cannot write out .*No space left on device"),
            staged_output_files([out]) as (actions,),
        ):
            actions.write_bytes(b"x" * (1 << 20))
        assert list(disk.iterdir()) == []


def test_an_unwritable_output_dir_is_refused_before_the_work_creating_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "notes.txt").write_text("a file\n")
    with pytest.raises(OutputWriteError, match=r": Not a directory \("):
        check_output_dir(tmp_path / "notes.txt" / "a" / "b", overwrite=False)
    with _tmpfs(tmp_path / "ro", "size=64k,ro") as readonly:
        with pytest.raises(OutputWriteError) as caught:
            check_output_dir(readonly / "a" / "b", overwrite=False)
        assert str(caught.value) == (
            f"cannot write output_dir {readonly / 'a' / 'b'}: Read-only file system"
        )
        assert list(readonly.iterdir()) == []


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root writes into a chmod 0o500 folder anyway: no EACCES to test"
)
def test_a_folder_without_write_permission_is_one_line(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(OutputWriteError) as caught:
            check_output_dir(locked / "run", overwrite=False)
        assert str(caught.value) == f"cannot write output_dir {locked / 'run'}: Permission denied"
    finally:
        locked.chmod(0o700)
