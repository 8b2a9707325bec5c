"""Where commands write: outputs never replace earlier results silently, never land on the
command's own inputs, and never stay half-written.

Three rules, shared by every command:

1. **No silent overwrite.** An existing, non-empty output folder is refused unless the user
   passes ``overwrite=true`` (:func:`check_output_dir`).
2. **Never over the inputs.** An output path that is, lies inside or contains one of the
   command's input paths is refused, ``overwrite`` or not (:func:`refuse_inputs`).
3. **Staged writes.** A command writes into a hidden temporary folder beside its output folder
   (:func:`staged_output_dir`) or into temporary files beside its output files
   (:func:`staged_output_files`); they are moved into place only when everything is written,
   and removed when anything fails (an error, a full disk, Ctrl-C). A system error while
   writing (no permission, read-only or full file system, a path under a regular file, ...)
   becomes an :class:`~journeyopt.errors.OutputWriteError` naming the path and the reason.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from journeyopt.errors import OutputExistsError, OutputOverInputError, OutputWriteError

PARTIAL_SUFFIX = ".partial"
"""Suffix of the hidden temporary folders and files a staged write uses."""

# Errors that only a write can cause: without a file name they still mean the output failed.
_WRITE_ONLY_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})
_ERRNO_IN_MESSAGE = re.compile(r"errno (\d+)", re.IGNORECASE)


def check_output_dir(output_dir: Path | str, overwrite: bool) -> Path:
    """Refuse a non-empty ``output_dir`` unless ``overwrite``, a path that is an existing
    file, and a folder that cannot be written (:func:`check_writable`); creates nothing (so a
    run that fails on its input leaves no folder behind), and is meant to be called before
    the work, so that a long run does not fail only at its end.

    Raises:
        OutputExistsError: naming the folder and how to proceed.
        OutputWriteError: naming the folder and the system's reason.
    """
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"output_dir {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(
            f"output_dir {out} exists and is not empty; choose another folder or pass "
            "overwrite=true to replace its files"
        )
    check_writable(out)
    return out


def check_simulation_output(output_dir: str, overwrite: bool, world: str) -> None:
    """Check a simulation's ``output_dir`` before it runs: not over the files of the world it
    simulates (``simulator.world``, when given as a path; :func:`refuse_inputs`), and then
    :func:`check_output_dir`.

    Raises:
        OutputOverInputError, OutputExistsError, OutputWriteError: as those two.
    """
    refuse_inputs({"output_dir": output_dir}, {"simulator.world": path_like(world)})
    check_output_dir(output_dir, overwrite)


def check_writable(output_dir: Path | str, label: str = "output_dir") -> None:
    """Refuse an ``output_dir`` that cannot be created or written, without writing anything:
    under a regular file, on a read-only file system, or without the permission to write
    (the folder itself when it exists, and the folder that will hold it and its staging).

    Raises:
        OutputWriteError: naming the folder and the system's reason.
    """
    out = _absolute(output_dir)
    checked = [out] if out.is_dir() else []
    ancestor = _nearest_folder(out.parents, out, label)
    if ancestor is not None:
        checked.append(ancestor)
    for folder in checked:
        if not os.access(folder, os.W_OK | os.X_OK):
            code = errno.EROFS if os.statvfs(folder).f_flag & os.ST_RDONLY else errno.EACCES
            raise OutputWriteError(f"cannot write {label} {out}: {os.strerror(code)}")


def prepare_output_dir(output_dir: Path | str, overwrite: bool) -> Path:
    """:func:`check_output_dir`, then create the folder; returns it."""
    out = check_output_dir(output_dir, overwrite)
    with output_errors(out):
        _make_folder(out, out)
    return out


def _absolute(path: Path | str) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


def _overlap(output: Path, input_: Path) -> str | None:
    """How ``output`` meets ``input_`` (both absolute and resolved), or None."""
    if output == input_:
        return "is"
    if output.is_relative_to(input_):
        return "is inside"
    if input_.is_relative_to(output):
        return "contains"
    return None


def refuse_inputs(
    outputs: Mapping[str, Path | str | None], inputs: Mapping[str, Path | str | None]
) -> None:
    """Refuse any output path that is, lies inside or contains an input path.

    Args:
        outputs: What the command writes, by the name the user knows it under
            (``{"output_dir": ...}``, ``{"out": ...}``); empty values are skipped.
        inputs: What the command reads, by name (``{"data.path": ...}``); empty values are
            skipped (a world given by name rather than by folder, say).

    Raises:
        OutputOverInputError: one line naming both paths; ``overwrite`` does not lift it.
    """
    for out_name, out_value in outputs.items():
        if not out_value:
            continue
        output = _absolute(out_value)
        for in_name, in_value in inputs.items():
            if not in_value:
                continue
            how = _overlap(output, _absolute(in_value))
            if how is not None:
                raise OutputOverInputError(
                    f"{out_name}={out_value} {how} the input {in_name}={in_value}: a command "
                    "never writes over its own inputs (overwrite=true or not); choose another "
                    f"{out_name}"
                )


def _errno_of(err: OSError) -> int | None:
    if err.errno is not None:
        return int(err.errno)
    found = _ERRNO_IN_MESSAGE.search(str(err))  # pyarrow: "... [errno 28] No space left ..."
    return int(found.group(1)) if found else None


def _is_output_error(err: OSError, places: Sequence[Path]) -> bool:
    """Whether ``err`` came from writing into one of ``places`` (files or folders)."""
    names = [os.fsdecode(n) for n in (err.filename, err.filename2) if n]
    text = " ".join([*names, str(err)])
    if any(re.search(re.escape(str(place)) + r"(?=$|[/'\"\s:])", text) for place in places):
        return True
    return not names and _errno_of(err) in _WRITE_ONLY_ERRNOS


def write_error(err: OSError, path: Path, label: str) -> OutputWriteError:
    """The one-line :class:`OutputWriteError` for ``err`` raised writing ``path``."""
    code = _errno_of(err)
    reason = os.strerror(code) if code else (err.strerror or str(err).splitlines()[0])
    return OutputWriteError(f"cannot write {label} {path}: {reason}")


@contextmanager
def output_errors(
    path: Path, *places: Path, label: str = "output_dir", any_error: bool = False
) -> Iterator[None]:
    """Turn an :class:`OSError` raised while writing ``path`` (or one of ``places``) into an
    :class:`OutputWriteError`; other OS errors (reading an input, say) pass unchanged unless
    ``any_error``."""
    try:
        yield
    except OSError as err:
        if any_error or _is_output_error(err, [_absolute(path), *map(_absolute, places)]):
            raise write_error(err, path, label) from err
        raise


def _make_folder(folder: Path, out: Path, label: str = "output_dir") -> None:
    """``mkdir -p folder``, with one clear line when an ancestor is a regular file."""
    _nearest_folder((folder, *folder.parents), out, label)
    folder.mkdir(parents=True, exist_ok=True)


def _nearest_folder(ancestors: Iterable[Path], out: Path, label: str) -> Path | None:
    """The first of ``ancestors`` (nearest first) that exists, None when none does.

    Raises:
        OutputWriteError: naming ``out`` under ``label`` when that one is a regular file.
    """
    for ancestor in ancestors:
        if ancestor.exists():
            if not ancestor.is_dir():
                reason = os.strerror(errno.ENOTDIR)
                raise OutputWriteError(
                    f"cannot write {label} {out}: {reason} ({ancestor} is a file)"
                )
            return ancestor
    return None


def _move_into_place(staging: Path, out: Path) -> None:
    """Move the written ``staging`` folder to ``out``: a rename when ``out`` is absent or
    empty, else entry by entry (files and sub-folders of the same name are replaced, other
    files of ``out`` are kept)."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        os.replace(staging, out)
        return
    for entry in sorted(staging.iterdir()):
        target = out / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif entry.is_dir() and (target.exists() or target.is_symlink()):
            target.unlink()  # a file where the new outputs have a folder
        os.replace(entry, target)
    staging.rmdir()


@contextmanager
def staged_output_dir(
    output_dir: Path | str, overwrite: bool, label: str = "output_dir"
) -> Iterator[Path]:
    """Write an output folder all at once: yields an empty hidden folder beside
    ``output_dir`` (``.<name>.<random>.partial``) to write into; on success it becomes
    ``output_dir``; on any failure (Ctrl-C included) it is removed and ``output_dir`` is left
    as it was.

    Args:
        output_dir: The folder the outputs belong in (created with its parents).
        overwrite: Allow a non-empty ``output_dir``; its files and sub-folders of the same
            names are replaced, others are kept.
        label: How the user calls the folder (in messages).

    Raises:
        OutputExistsError: ``output_dir`` is not empty and ``overwrite`` is false, or a file.
        OutputWriteError: the folder cannot be written (naming it and the system's reason).
    """
    out = _absolute(check_output_dir(output_dir, overwrite))
    with output_errors(out, label=label, any_error=True):
        _make_folder(out.parent, out, label)
        staging = out.parent / f".{out.name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}"
        staging.mkdir()
    try:
        with output_errors(out, staging, label=label):
            yield staging
        with output_errors(out, staging, label=label, any_error=True):
            check_output_dir(out, overwrite)  # still true after the work (a second run?)
            _move_into_place(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def staged_output_files(paths: Sequence[Path], label: str = "out") -> Iterator[list[Path]]:
    """Write output files all at once: yields one hidden temporary path beside each of
    ``paths`` (same folder, so the final move is a rename); on success each replaces its
    file (the first of ``paths`` last), on any failure they are removed.

    Raises:
        OutputWriteError: a file cannot be written (naming it and the system's reason).
    """
    finals = [_absolute(p) for p in paths]
    token = secrets.token_hex(4)
    temporary = [p.with_name(f".{p.name}.{token}{PARTIAL_SUFFIX}") for p in finals]
    main = finals[0]
    try:
        with output_errors(main, label=label, any_error=True):
            for folder in dict.fromkeys(p.parent for p in finals):
                _make_folder(folder, main, label)
        with output_errors(main, *finals, *temporary, label=label):
            yield temporary
        for temp, final in reversed(list(zip(temporary, finals, strict=True))):
            with output_errors(final, label=label, any_error=True):
                os.replace(temp, final)
    finally:
        for temp in temporary:
            temp.unlink(missing_ok=True)


def path_like(value: str | None) -> str | None:
    """``value`` when it names a file or folder (has a path separator, a YAML suffix or
    exists), else None: a world given by name (``coworking``) is not a path to protect."""
    if not value:
        return None
    if "/" in value or value.endswith((".yaml", ".yml")) or Path(value).exists():
        return value
    return None
