"""What every ``journeyopt-*`` command shares: config schemas in Hydra's ConfigStore, turning a
composed config into typed dataclasses, and user-facing error handling."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import typing
from collections.abc import Callable, Mapping
from importlib.resources import files
from typing import Any, TypeVar

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


def console() -> Console:
    """A rich console for command output: the terminal's width, or 120 columns when the
    output goes to a file or pipe (CI logs), so tables are not cut at 80."""
    return Console(width=None if sys.stdout.isatty() else 120)
