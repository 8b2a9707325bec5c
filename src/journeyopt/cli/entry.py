"""What every ``journeyopt-*`` command shares: config schemas in Hydra's ConfigStore, turning a
composed config into typed dataclasses, and user-facing error handling."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import signal
import sys
import typing
from collections.abc import Callable, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

import hydra
from hydra.errors import ConfigCompositionException, OverrideParseException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf._utils import is_structured_config
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException
from rich.console import Console

from journeyopt.cli import INTERRUPTED_EXIT_CODE as INTERRUPTED_EXIT_CODE
from journeyopt.cli import interrupted_while_starting
from journeyopt.errors import ConfigError, JourneyoptError

T = TypeVar("T")
log = logging.getLogger("journeyopt")


def dataset_path(name: str) -> str:
    """Path of a dataset shipped in the package folder ``journeyopt/datasets/``.

    Registered as the OmegaConf resolver ``dataset``: ``path: ${dataset:cdnow_sample.txt}``.
    """
    path = files("journeyopt").joinpath("datasets", name)
    if not path.is_file():
        raise ConfigError(f"${{dataset:{name}}}: no dataset {name!r} ships with journeyopt")
    return str(path)


OmegaConf.register_new_resolver("dataset", dataset_path, replace=True)


def to_object(cfg: DictConfig | Any, schema: type[T]) -> T:
    """Validate a composed config node against its dataclass ``schema`` and instantiate it.

    Runs the dataclass's ``__post_init__`` checks; any problem becomes a :class:`ConfigError`
    naming the offending key. A map the composed config gives (``serve.rules.frequency_caps``)
    replaces the schema's default map instead of being merged into it, so a key the user
    removed (``'~serve.rules.frequency_caps.email'``) stays removed.
    """
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), cfg)
        if isinstance(cfg, DictConfig) and isinstance(merged, DictConfig):
            _replace_maps(merged, cfg)
        obj = OmegaConf.to_object(merged)
    except MissingMandatoryValue as err:
        raise ConfigError(missing_value_message(err)) from err
    except OmegaConfBaseException as err:
        raise ConfigError(f"invalid configuration: {err}".splitlines()[0]) from err
    if not isinstance(obj, schema):
        raise ConfigError(f"configuration did not produce a {schema.__name__}")
    return obj


def missing_value_message(err: MissingMandatoryValue) -> str:
    """One line for a value the user's config must give: its full key and, when its schema
    says how to choose it (a ``REQUIRED_HINTS`` class attribute mapping field names to advice),
    that advice, else where to set it."""
    key = str(err.full_key or err.key or "")
    hints = getattr(err.object_type, "REQUIRED_HINTS", {}) if err.object_type else {}
    hint = hints.get(str(err.key), "") if isinstance(hints, Mapping) else ""
    section = _field_type(err.object_type, str(err.key))
    inner = getattr(section, "REQUIRED_HINTS", None)
    if not hint and isinstance(inner, Mapping):  # a whole section, e.g. the panel group
        names = ", ".join(f"{key}.{name}" for name in inner)
        hint = f"a {section.__name__} that gives {names} (choices about your business)"
    group = key.split(".", 1)[0]
    yours = (
        f" (a file of <your configs>/{group}/ chosen with {group}=<name>)"
        if "." in key and files("journeyopt").joinpath("configs", group).is_dir()
        else ""
    )
    where = f"set it in your config{yours} or as {key}=<value> on the command line"
    return f"missing mandatory value: {key}: " + (f"{hint}; {where}" if hint else where)


def _field_type(schema: type | None, name: str) -> Any:
    """The declared type of the field ``name`` of the dataclass ``schema`` (None if unknown)."""
    if schema is None or not dataclasses.is_dataclass(schema):
        return None
    try:
        return typing.get_type_hints(schema).get(name)
    except (NameError, TypeError):
        return None


def _replace_maps(merged: DictConfig, given: DictConfig) -> None:
    """Drop from every plain map of ``merged`` (not a dataclass node) the keys ``given`` does
    not have, recursively; ``merged`` is ``given`` merged over a schema, so its maps then hold
    exactly the configured keys, still typed by the schema."""
    for key in given:
        value = given._get_node(key)
        target = merged._get_node(key)
        if not isinstance(value, DictConfig) or not isinstance(target, DictConfig):
            continue
        if OmegaConf.is_missing(given, key) or value._is_none() or target._is_none():
            continue
        if not is_structured_config(OmegaConf.get_type(target)):
            with open_dict(target):
                for extra in [k for k in target if k not in value]:
                    del target[extra]
        _replace_maps(target, value)


def report_errors(job: Callable[[], T]) -> T:
    """Run ``job``; print a :class:`JourneyoptError` as one clear line and exit non-zero, and
    a Ctrl-C (``KeyboardInterrupt``) as ``interrupted`` with exit code 130.

    Set ``JOURNEYOPT_DEBUG=1`` to get the full traceback instead. MLflow's per-file download
    progress bars (loading a registered model) are off unless
    ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR`` says otherwise: they would interleave with the
    command's own output.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if signal.getsignal(signal.SIGINT) is interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the work handles Ctrl-C
    try:
        return job()
    except JourneyoptError as err:
        if os.environ.get("JOURNEYOPT_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        if os.environ.get("JOURNEYOPT_DEBUG"):
            raise
        print("interrupted", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT_CODE)


FULL_ERROR = "HYDRA_FULL_ERROR"
"""Hydra's switch that lets a composition error reach :func:`command` (otherwise Hydra prints
it over several lines and exits 1)."""
_MUST_CHOOSE = re.compile(r"You must specify '(?P<key>[^']+)'")


def command(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[[], Any]]:
    """``hydra.main`` over the package's ``configs/<config_name>.yaml``: the entry point of a
    ``journeyopt-*`` command.

    A config group the command needs but nobody chose (``- data: ???`` in its defaults
    list), an option that does not exist (``data=mine`` without ``data/mine.yaml``) or an
    override that does not parse stops before any work with one line naming the group and
    its options, exit code 2 (:func:`composition_error_line`), instead of Hydra's several
    lines and exit 1. The command's own work is unchanged: errors there are reported by
    :func:`report_errors` as before.
    """

    def decorate(task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        set_here: list[bool] = []  # whether main() set HYDRA_FULL_ERROR (not the user)

        @functools.wraps(task)
        def job(cfg: DictConfig) -> Any:
            if set_here:  # composed: the job's own errors go through Hydra's reporting as before
                os.environ.pop(FULL_ERROR, None)
            return task(cfg)

        composed = hydra.main(
            version_base="1.3", config_path="../configs", config_name=config_name
        )(job)

        @functools.wraps(task)
        def main() -> Any:
            set_here.clear()
            if FULL_ERROR not in os.environ:
                set_here.append(True)
                os.environ[FULL_ERROR] = "1"
            try:
                return composed()
            except (ConfigCompositionException, OverrideParseException) as err:
                if not set_here:  # the user asked for Hydra's full error
                    raise
                if HELP_FLAGS.intersection(sys.argv[1:]):  # help before the choices are made
                    print(help_before_choosing(Path(sys.argv[0]).name, err))
                    sys.exit(0)
                print(f"error: {composition_error_line(err)}", file=sys.stderr)
                sys.exit(ConfigError.exit_code)
            finally:
                if set_here:
                    os.environ.pop(FULL_ERROR, None)

        return main

    return decorate


HELP_FLAGS = frozenset({"--help", "-h", "--hydra-help"})


def help_before_choosing(program: str, err: Exception) -> str:
    """What ``--help`` prints while a group the command needs is not chosen yet: Hydra can
    list the groups and the composed config only once it composes, so the help names the
    missing choice and its options and how to see the full help."""
    found = _MUST_CHOOSE.search(str(err))
    choice = f"{found.group('key')}=<name>" if found else "<group>=<name>"
    return (
        f"{program}: {composition_error_line(err)}\n"
        f"The full help (every group, option and the composed config) shows once it is "
        f"chosen: {program} {choice} --help"
    )


def composition_error_line(err: Exception) -> str:
    """One line for a config Hydra could not compose.

    A group left to the user (``???`` in the defaults list) reads ``no data chosen: choose
    one with data=<name> ...; options: a, b``, the options being those Hydra found (the
    shipped ones and those of ``--config-dir``); other composition errors are Hydra's own
    message with its lines joined.
    """
    text = str(err)
    parts: list[list[str]] = []  # Hydra's lines, each with the tab-indented list under it
    for line in text.splitlines():
        if line.startswith("\t") and line.strip() and parts:
            parts[-1].append(line.strip())
        elif line.strip():
            parts.append([line.strip()])
    options = parts[-1][1:] if parts else []
    found = _MUST_CHOOSE.search(text)
    if found is None:
        said = [head + (" " + ", ".join(items) if items else "") for head, *items in parts]
        return "; ".join(said) if said else type(err).__name__
    key = found.group("key")
    group = key.split("@", 1)[0].lstrip("/")
    return (
        f"no {key} chosen: choose one with {key}=<name> (a file of <your configs>/{group}/, "
        f"given with --config-dir <your configs>); options: "
        + (", ".join(options) if options else "none found")
    )


def console() -> Console:
    """A rich console for command output: the terminal's width, or 120 columns when the
    output goes to a file or pipe (CI logs), so tables are not cut at 80."""
    return Console(width=None if sys.stdout.isatty() else 120)


def outputs_line(what: str, output_dir: str | Path, files: str, run_id: str | None) -> str:
    """A command's last line: where ``what`` was written (``files`` in ``output_dir``) and its
    MLflow run (``(tracking off)`` without one)."""
    return f"{what} in {output_dir} ({files}); MLflow run {run_id or '(tracking off)'}"


def value_cells(
    value: float, ci_low: float, ci_high: float, pct_of_optimum: float, uplift: float
) -> tuple[str, str, str, str]:
    """A policy's evaluation as table cells: value per customer, its 95 % CI, % of optimum and
    uplift (``–`` when there is none, NaN)."""
    return (
        f"{value:,.1f}",
        f"{ci_low:,.1f} – {ci_high:,.1f}",
        f"{pct_of_optimum:.1f}",
        "–" if uplift != uplift else f"{uplift:,.1f}",
    )
