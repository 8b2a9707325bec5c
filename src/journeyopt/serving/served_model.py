"""The policy a scorer serves: resolved to one immutable version, loaded, hashed, described.

``models:/journey-policy@champion`` is resolved through
:class:`journeyopt.tracking.registry.PolicyRegistry` to one version at load time; the version's
files are downloaded, hashed and checked against the SHA-256 recorded at registration, and the
policy is read from them as data by this package's own loader
(:func:`journeyopt.tracking.model.load_policy_folder`): nothing of the model folder is imported,
executed or unpickled, and a folder carrying code other than an exact copy of the installed
``pyfunc_code.py`` is refused. A local model folder (an MLflow model directory) works too, for
air-gapped deployments, with the same checks.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from journeyopt.errors import ConfigError
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.model import ModelFolderError, ServablePolicy, load_policy_folder
from journeyopt.tracking.registry import CHAMPION, PolicyRegistry, content_hash
from journeyopt.tracking.rollout import read_rollout
from journeyopt.tracking.tags import SIMULATOR_TAG

LINEAGE_PREFIXES: tuple[str, ...] = ("journeyopt.", "mlflow.source.git.commit")
"""Run tags reported as the model's lineage (simulator, data fingerprint, agent, commit)."""


@dataclass(frozen=True)
class ServedModel:
    """A loaded policy and what it is.

    Attributes:
        policy: The policy (its ``spec`` names actions and observation columns).
        requested: What was asked for (an alias URI, a version URI or a folder).
        name: Registered model name (the folder name of a local model).
        version: Registered version (``local`` for a folder).
        uri: The immutable address: ``models:/<name>/<version>`` or the folder.
        run_id: Run the model was logged in (empty if unknown).
        content_sha256: SHA-256 of the model's files, as served.
        lineage: Lineage tags of the run (simulator, data fingerprint, agent, git commit).
        previous: During a staged rollout's canary, the version the rest of the treatment
            group keeps (see :mod:`journeyopt.tracking.rollout`); None: this policy serves
            the whole treatment group.
        canary_share: Share of the treatment group this policy serves (1.0 without a
            canary).
        trained_world: The world the policy was trained in (its registered version's
            ``journeyopt.simulator`` tag; empty when unknown): a previous champion of an
            earlier re-calibration reads its observations over that world's layout.
    """

    policy: ServablePolicy
    requested: str
    name: str
    version: str
    uri: str
    run_id: str
    content_sha256: str
    lineage: dict[str, str] = field(default_factory=dict)
    previous: ServedModel | None = None
    canary_share: float = 1.0
    trained_world: str = ""

    @property
    def key(self) -> str:
        """What an alias poll compares (:func:`alias_watcher`): the version, plus the
        previous version and the canary share during a canary."""
        if self.previous is None:
            return self.version
        return f"{self.version}+{self.previous.version}@{self.canary_share:g}"


def _load_data(folder: Path, requested: str) -> ServablePolicy:
    """The policy of a model folder, read as data (see the module docstring)."""
    try:
        return load_policy_folder(folder)
    except ModelFolderError as err:
        raise ConfigError(f"model {requested}: {err}") from err
    except (MlflowException, OSError, ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"model {requested}: not a journeyopt policy model ({err})") from err


def _lineage(client: MlflowClient, run_id: str) -> dict[str, str]:
    if not run_id:
        return {}
    try:
        tags = client.get_run(run_id).data.tags
    except MlflowException:
        return {}
    return {k: v for k, v in sorted(tags.items()) if k.startswith(LINEAGE_PREFIXES)}


def _registry(uri: str, tracking: TrackingConfig) -> tuple[PolicyRegistry, TrackingConfig]:
    """The registry of the model named in ``uri`` and the tracking settings it uses."""
    name = uri.removeprefix("models:/").split("@")[0].split("/")[0]
    settings = replace(tracking, registered_model=name) if name else tracking
    return PolicyRegistry(settings), settings


def alias_watcher(model: str, tracking: TrackingConfig) -> Callable[[], str] | None:
    """For ``models:/<name>@<alias>``: a function answering the version the alias points to
    now (one registry call each time; for the champion alias, with its staged rollout: a
    :attr:`ServedModel.key`); None for a version URI or a local folder, which never move.

    The function raises ``MlflowException`` (or a connection error) when the registry cannot
    answer."""
    if not model.startswith("models:/") or "@" not in model:
        return None

    def version() -> str:
        registry, _ = _registry(model, tracking)
        if model.endswith(f"@{CHAMPION}"):
            state = read_rollout(registry)
            if state is not None:
                return state.key
        return registry.resolve(model).version

    return version


def load_registered(uri: str, tracking: TrackingConfig) -> ServedModel:
    """Resolve ``models:/<name>@<alias>`` or ``models:/<name>/<version>`` and load it; for
    ``@champion`` during a canary, with the previous version it shares treatment with.

    Raises:
        ConfigError: The URI resolves to nothing, or the files do not match the recorded hash.
    """
    registry, _ = _registry(uri, tracking)
    try:
        resolved = registry.resolve(uri)
    except (MlflowException, ValueError) as err:
        message = str(err).splitlines()[0]
        raise ConfigError(f"model {uri}: cannot be resolved in the registry ({message})") from err
    with tempfile.TemporaryDirectory(prefix="journeyopt-model-") as tmp:
        try:
            local = registry.download(resolved, Path(tmp))
        except MlflowException as err:
            first = str(err).splitlines()[0].rstrip(":")
            raise ConfigError(
                f"model {uri}: cannot download {resolved.uri} ({first}); if its files were "
                "moved or deleted, train and register the policy again"
            ) from err
        digest = content_hash(Path(local))
        if resolved.content_sha256 and digest != resolved.content_sha256:
            raise ConfigError(
                f"model {uri}: the files of {resolved.uri} hash to {digest}, but "
                f"{resolved.content_sha256} was recorded at registration"
            )
        policy = _load_data(Path(local), uri)
    previous, share = None, 1.0
    if uri.endswith(f"@{CHAMPION}"):
        state = read_rollout(registry)
        if state is not None and state.champion == resolved.version and state.previous:
            previous = load_registered(f"models:/{resolved.name}/{state.previous}", tracking)
            share = state.canary_share
    return ServedModel(
        policy=policy,
        requested=uri,
        name=resolved.name,
        version=resolved.version,
        uri=resolved.uri,
        run_id=resolved.source_run_id or "",
        content_sha256=digest,
        lineage=_lineage(registry.client, resolved.source_run_id or ""),
        previous=previous,
        canary_share=share,
        trained_world=_trained_world(registry, resolved.version),
    )


def _trained_world(registry: PolicyRegistry, version: str) -> str:
    """The ``journeyopt.simulator`` tag of a registered version (empty when unknown)."""
    try:
        tags = registry.client.get_model_version(registry.name, version).tags or {}
    except MlflowException:
        return ""
    return str(tags.get(SIMULATOR_TAG, ""))


def load_local(folder: Path) -> ServedModel:
    """Load the MLflow model folder ``folder`` (with its ``MLmodel`` file)."""
    if not (folder / "MLmodel").is_file():
        raise ConfigError(f"model {folder}: no MLmodel file there (not an MLflow model folder)")
    policy = _load_data(folder, str(folder))
    meta: Any = mlflow.models.Model.load(str(folder / "MLmodel"))
    return ServedModel(
        policy=policy,
        requested=str(folder),
        name=folder.name,
        version="local",
        uri=str(folder.resolve()),
        run_id=str(getattr(meta, "run_id", None) or ""),
        content_sha256=content_hash(folder),
    )


def load_served_model(model: str, tracking: TrackingConfig) -> ServedModel:
    """The policy at ``model``: a ``models:/`` URI (registry) or a local model folder."""
    if model.startswith("models:/"):
        return load_registered(model, tracking)
    folder = Path(model)
    if not folder.exists():
        raise ConfigError(f"model {model}: neither a models:/ URI nor an existing folder")
    return load_local(folder)
