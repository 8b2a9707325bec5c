"""Export a calibrated world with its card into a worlds folder (``simulators/<name>/``), where
``load_world(name)`` and ``simulator.world=<name>`` find it like the shipped worlds.

The exported folder is the calibration's output folder as written by
:meth:`~journeyopt.calibration.calibrated.CalibratedWorld.save` and
:func:`~journeyopt.calibration.card.write_card`: ``world.yaml``, ``responses.npz``,
``members/<k>.npz``, ``calibration.json``, ``card.md``, ``card.png`` and the tables behind the
card (CSV). Open formats only, no pickle.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from journeyopt.calibration.calibrated import MEMBERS_DIR, META_FILE
from journeyopt.errors import ConfigError, OutputExistsError
from journeyopt.sim.world import WORLDS_DIR


def export_target(name: str, root: str | Path = "") -> Path:
    """The folder ``<root>/<name>`` a world is exported to (``root`` empty: the shipped
    worlds folder ``simulators/``).

    Raises:
        ConfigError: ``name`` is not a plain folder name.
    """
    if not name or name in (".", "..") or Path(name).name != name or "\\" in name:
        raise ConfigError(
            f"export={name!r}: expected a plain world name such as 'my_crm' (no slashes); "
            "choose the parent folder with export_dir="
        )
    return Path(root or WORLDS_DIR) / name


def check_export(target: Path, overwrite: bool) -> None:
    """Refuse an existing, non-empty ``target`` unless ``overwrite``; never replace a world
    that is not a calibrated world (a ground truth such as ``coworking``), even then.

    Raises:
        OutputExistsError: naming the folder and how to proceed.
    """
    if target.exists() and not target.is_dir():
        raise OutputExistsError(f"export folder {target} exists and is not a folder")
    if not target.is_dir() or not any(target.iterdir()):
        return
    if (target / "world.yaml").is_file() and not (target / META_FILE).is_file():
        raise OutputExistsError(
            f"export folder {target} holds a world that was not calibrated (no {META_FILE}); "
            "it is never replaced: choose another export name"
        )
    if not overwrite:
        raise OutputExistsError(
            f"export folder {target} exists and is not empty; choose another export name or "
            "pass overwrite=true to replace the world in it"
        )


def export_world(output_dir: Path, target: Path, overwrite: bool) -> Path:
    """Copy the calibrated world folder ``output_dir`` to ``target`` (see the module
    docstring); returns ``target``. An earlier export there is replaced file by file, and its
    ensemble members removed first (a smaller ensemble must not keep stale members)."""
    check_export(target, overwrite)
    if not (output_dir / "world.yaml").is_file():
        raise ConfigError(f"{output_dir}: no calibrated world to export (no world.yaml)")
    if (target / MEMBERS_DIR).is_dir():
        shutil.rmtree(target / MEMBERS_DIR)
    shutil.copytree(output_dir, target, dirs_exist_ok=True)
    return target
