"""The policy registry: versions of ``journey-policy``, aliases, promotions.

A logged policy model is registered as a new, immutable version of the registered model
(``tracking.registered_model``). Aliases name the versions in use: ``champion`` (served) and
``challenger`` (candidate). ``models:/journey-policy@champion`` resolves to one version and
the SHA-256 of that version's files, recorded at registration, so a scorer can log exactly
what it served. :meth:`PolicyRegistry.promote` moves an alias and records why; deciding
whether a promotion is justified (the evidence gate) is not done here.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models.model import ModelInfo
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.tracking import MlflowClient

from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.tags import current_user, digest_named_files

CONTENT_HASH_TAG = "journeyopt.content_sha256"
RULES_TAG = "journeyopt.rules"
"""Version tag: the contact rules the policy was trained under (``RulesConfig.fingerprint``)."""
CHAMPION = "champion"
CHALLENGER = "challenger"
DOWNLOAD_META_FILE = "registered_model_meta"


@dataclass(frozen=True)
class ResolvedVersion:
    """One immutable registered version.

    Attributes:
        name: Registered model name.
        version: Version number (as MLflow's string).
        uri: ``models:/<name>/<version>``: always the same files.
        source_run_id: Run the model was logged in (``None`` if not from a run).
        content_sha256: SHA-256 of the version's files, recorded at registration.
    """

    name: str
    version: str
    uri: str
    source_run_id: str | None
    content_sha256: str


def content_hash(folder: Path) -> str:
    """SHA-256 (hex) over the relative paths and bytes of every file of a downloaded model
    folder, except ``registered_model_meta``, which MLflow writes into the folder on download
    (it names the version asked for, not the content)."""
    files = (p for p in folder.rglob("*") if p.is_file() and p.name != DOWNLOAD_META_FILE)
    return digest_named_files((p.relative_to(folder).as_posix(), p) for p in sorted(files))


class PolicyRegistry:
    """Versions and aliases of the registered model ``settings.registered_model``.

    Args:
        settings: Tracking settings (tracking and registry URIs, registered model name).
    """

    def __init__(self, settings: TrackingConfig) -> None:
        self.name = settings.registered_model
        self._tracking_uri = settings.resolved_tracking_uri()
        self._registry_uri = settings.resolved_registry_uri()
        self.client = MlflowClient(self._tracking_uri, self._registry_uri)

    def register(
        self, model: ModelInfo, *, tags: Mapping[str, str] | None = None
    ) -> ResolvedVersion:
        """Register a logged model (from :func:`journeyopt.tracking.model.log_policy_model`)
        as a new version, tagged with the SHA-256 of its files."""
        self._ensure_registered_model()
        created = self.client.create_model_version(
            self.name,
            source=model.model_uri,
            run_id=model.run_id,
            tags={**(tags or {}), CONTENT_HASH_TAG: self._hash_of(model.model_uri)},
            model_id=model.model_id,
        )
        return self._resolved(created)

    def version(self, version: str | int) -> ResolvedVersion:
        """The registered version ``version``."""
        return self._resolved(self.client.get_model_version(self.name, str(version)))

    def version_tags(self, version: str | int) -> dict[str, str]:
        """The tags of the registered version ``version``."""
        return dict(self.client.get_model_version(self.name, str(version)).tags)

    def alias(self, alias: str) -> ResolvedVersion:
        """The version ``alias`` points to (an ``MlflowException`` if it points nowhere)."""
        return self._resolved(self.client.get_model_version_by_alias(self.name, alias))

    def resolve(self, uri: str) -> ResolvedVersion:
        """``models:/<name>@<alias>`` or ``models:/<name>/<version>`` as an immutable version."""
        prefix = f"models:/{self.name}"
        rest = uri.removeprefix(prefix)
        if rest == uri or rest[:1] not in ("@", "/") or len(rest) < 2:
            raise ValueError(f"{uri!r} is not models:/{self.name}@<alias> or /<version>")
        return self.alias(rest[1:]) if rest[0] == "@" else self.version(rest[1:])

    def set_alias(self, alias: str, version: str | int) -> None:
        """Point ``alias`` at ``version`` (moving it from any other version)."""
        self.client.set_registered_model_alias(self.name, alias, str(version))

    def promote(
        self,
        version: str | int,
        alias: str,
        *,
        reason: str,
        evidence: Mapping[str, str] | None = None,
    ) -> ResolvedVersion:
        """Point ``alias`` at ``version`` and record on the version why, when, by whom and
        which version held the alias before (tags ``journeyopt.promotion.<alias>.*``).

        Args:
            version: Version to promote.
            alias: ``champion``, ``challenger`` or another alias.
            reason: Why, in a sentence (shown in the MLflow UI).
            evidence: Extra tags, e.g. the evaluation run id and the uplift with its CI.
        """
        if not reason.strip():
            raise ValueError("a promotion needs a reason")
        previous = self._holder(alias)
        prefix = f"journeyopt.promotion.{alias}"
        record = {
            f"{prefix}.reason": reason,
            f"{prefix}.at": datetime.now(UTC).isoformat(timespec="seconds"),
            f"{prefix}.by": current_user(),
            f"{prefix}.previous_version": previous or "none",
            **{f"{prefix}.evidence.{k}": v for k, v in (evidence or {}).items()},
        }
        for key, value in record.items():
            self.client.set_model_version_tag(self.name, str(version), key, value)
        self.set_alias(alias, version)
        return self.version(version)

    def verify(self, resolved: ResolvedVersion) -> bool:
        """Whether the version's files still hash to the recorded ``content_sha256``."""
        with tempfile.TemporaryDirectory() as tmp:
            return content_hash(self.download(resolved, Path(tmp))) == resolved.content_sha256

    def download(self, resolved: ResolvedVersion, dst: Path) -> Path:
        """Download the files of the registered version ``resolved`` into ``dst``; returns the
        model folder. Read from the location this registry records for the version: MLflow
        resolves a ``models:/<name>/<version>`` URI against its process-wide registry
        whatever registry it is given, which may be another store with a version of the same
        name and number."""
        location = self.client.get_model_version_download_uri(self.name, resolved.version)
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=str(dst), tracking_uri=self._tracking_uri
        )
        return Path(local)

    def _holder(self, alias: str) -> str | None:
        try:
            return str(self.client.get_model_version_by_alias(self.name, alias).version)
        except MlflowException:
            return None

    def _ensure_registered_model(self) -> None:
        try:
            self.client.create_registered_model(self.name)
        except MlflowException as err:
            if err.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise

    def _hash_of(self, model_uri: str) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=model_uri,
                dst_path=tmp,
                tracking_uri=self._tracking_uri,
                registry_uri=self._registry_uri,
            )
            return content_hash(Path(local))

    def _resolved(self, mv: ModelVersion) -> ResolvedVersion:
        return ResolvedVersion(
            name=self.name,
            version=str(mv.version),
            uri=f"models:/{self.name}/{mv.version}",
            source_run_id=mv.run_id or None,
            content_sha256=str((mv.tags or {}).get(CONTENT_HASH_TAG, "")),
        )
