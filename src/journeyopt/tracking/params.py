"""A resolved Hydra config as MLflow params: flat ``a.b.c`` keys within MLflow's limits.

MLflow params are strings: keys of at most 250 characters made of letters, digits and
``_ - . / : space``; values of at most 6,000 characters. Values that are longer are cut and
marked (the full config is logged as the artifact ``config.yaml`` next to them).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

MAX_PARAM_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
TRUNCATED_MARK = "...[truncated, see config.yaml]"
_INVALID_KEY_CHARS = re.compile(r"[^\w./\- :]")


def config_container(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` as plain nested dicts and lists, with every interpolation resolved."""
    if isinstance(cfg, DictConfig):
        container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
        if not isinstance(container, dict):
            raise TypeError("a config must be a mapping at the top level")
        return {str(k): v for k, v in container.items()}
    return {str(k): _plain(v) for k, v in cfg.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def flatten_config(cfg: DictConfig | Mapping[str, Any]) -> dict[str, str]:
    """Flatten ``cfg`` to MLflow params.

    Nested mappings become dotted keys (``agent.ppo.n_steps``); lists of scalars stay one value
    (JSON, ``["none", "mailing"]``); lists holding mappings are indexed
    (``callbacks.0.every``). Scalars are JSON except strings (``true``, ``0.5``, ``null``).

    Returns:
        ``{key: value}`` with keys and values within MLflow's limits (see :func:`param_key`
        and :func:`param_value`).
    """
    flat: dict[str, str] = {}
    _flatten_into(config_container(cfg), "", flat)
    return flat


def _flatten_into(node: Any, prefix: str, out: dict[str, str]) -> None:
    if isinstance(node, Mapping):
        if not node and prefix:
            out[param_key(prefix)] = "{}"
        for key, value in node.items():
            _flatten_into(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(node, list) and any(isinstance(v, Mapping | list) for v in node):
        for i, value in enumerate(node):
            _flatten_into(value, f"{prefix}.{i}", out)
    else:
        out[param_key(prefix)] = param_value(node)


def param_key(key: str) -> str:
    """``key`` as a valid MLflow param key: invalid characters become ``_``; a key longer than
    250 characters keeps its first 241 and gets ``~`` plus 8 hex digits of its SHA-1, so
    distinct long keys stay distinct."""
    key = _INVALID_KEY_CHARS.sub("_", key)
    if len(key) <= MAX_PARAM_KEY_LENGTH:
        return key
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return f"{key[: MAX_PARAM_KEY_LENGTH - 9]}~{digest}"


def param_value(value: Any) -> str:
    """``value`` as an MLflow param value: strings as they are, anything else as JSON; cut to
    6,000 characters (ending with :data:`TRUNCATED_MARK`) when longer."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) <= MAX_PARAM_VALUE_LENGTH:
        return text
    return text[: MAX_PARAM_VALUE_LENGTH - len(TRUNCATED_MARK)] + TRUNCATED_MARK
