"""Where commands write: output folders are never overwritten silently.

Every command that writes files into a folder calls :func:`prepare_output_dir` first: an
existing, non-empty folder is refused with a clear message unless the user passes
``overwrite=true``. Input files are never written to.
"""

from __future__ import annotations

from pathlib import Path

from journeyopt.errors import OutputExistsError


def check_output_dir(output_dir: Path | str, overwrite: bool) -> Path:
    """Refuse a non-empty ``output_dir`` unless ``overwrite``, and a path that is an existing
    file; creates nothing (so a run that fails on its input leaves no folder behind).

    Raises:
        OutputExistsError: naming the folder and how to proceed.
    """
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"output_dir {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(
            f"output_dir {out} exists and is not empty; choose another folder or pass "
            "overwrite=true to replace its files"
        )
    return out


def prepare_output_dir(output_dir: Path | str, overwrite: bool) -> Path:
    """:func:`check_output_dir`, then create the folder; returns it."""
    out = check_output_dir(output_dir, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    return out
