"""A contact policy as an MLflow pyfunc model whose folder holds data only, no code to run.

The model folder holds the policy in open formats and no pickle:

- ``artifacts/policy/spec.json``: action names, observation feature names, observation layout
  version and the policy class that reads the folder (a class of the installed ``journeyopt``
  package);
- the policy's weights: ``weights.npz`` for :class:`LinearSoftmaxPolicy`, SB3's ``model.zip``
  (torch state dicts + JSON) for :class:`journeyopt.tracking.sb3_policy.SB3Policy`;
- ``pyfunc_code.py``: MLflow's *models from code* entry (for ``mlflow models serve``), a copy
  of this package's own file.

journeyopt loads a model folder as data through :func:`load_policy_folder`: it never imports
or runs a file of the folder, and it refuses a folder that carries code (a ``.py``, pickle or
native library file), except a ``pyfunc_code.py`` identical byte for byte to the installed
package's. MLflow's own loader (``mlflow.pyfunc.load_model``, ``mlflow models serve``) runs
``pyfunc_code.py``: use it only on folders :func:`check_model_folder` accepts.

Predict input: a pandas DataFrame with one row per customer, a float column per observation
feature (``spec.feature_names``) and a boolean column ``mask_<action>`` per action (the contact
rules' mask). Output: ``action`` (int64 index), ``action_name`` and ``probability_<action>``
(float64) per row. The chosen action is the most probable allowed one (deterministic).
"""

from __future__ import annotations

import importlib
import json
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import Model, ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.pyfunc import PyFuncModel
from mlflow.pyfunc.model import PythonModel, PythonModelContext, _PythonModelPyfuncWrapper
from mlflow.types import ColSpec, Schema
from numpy.typing import NDArray

import journeyopt
from journeyopt.errors import format_mismatch
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.logger import RunLogger
from journeyopt.tracking.registry import PolicyRegistry

Float32 = NDArray[np.float32]
Float64 = NDArray[np.float64]
Bool = NDArray[np.bool_]
Int64 = NDArray[np.int64]

SPEC_FILE = "spec.json"
SPEC_FORMAT_VERSION = 1
"""Format of a saved policy folder (``format_version`` in ``spec.json``, written by
:func:`save_policy`): the keys of ``spec.json`` and the files each policy class writes. Bump it
whenever a change makes an earlier folder read differently; :func:`load_policy` refuses another
version with a one-line :class:`ModelFolderError`. (A change of the observation layout is the
spec's ``layout_version``, checked against the world's by the scorer and the gate.)"""
ARTIFACT_KEY = "policy"
MODEL_CODE_FILE = "pyfunc_code.py"
POLICY_FOLDER = Path("artifacts") / ARTIFACT_KEY
"""Where a model folder keeps the policy's data (the ``policy`` artifact)."""
CODE_SUFFIXES = frozenset(
    {".py", ".pyc", ".pyo", ".pyd", ".pyz", ".pth", ".so", ".dll", ".dylib", ".pkl", ".pickle",
     ".cloudpickle", ".joblib", ".dill", ".whl", ".egg", ".sh", ".ipynb"}
)  # fmt: skip
"""File kinds a model folder must not hold: Python, pickles, native libraries, scripts."""
_CODE_FILE = Path(__file__).with_name(MODEL_CODE_FILE)
_CODE_LOADER = "mlflow.pyfunc.loaders.code_model"


@dataclass(frozen=True)
class PolicySpec:
    """What a served policy expects and answers.

    Attributes:
        action_names: The ``A`` actions, in action-index order.
        feature_names: The ``D`` observation columns, in observation-vector order.
        layout_version: Version of the observation layout the policy was trained on; a
            scorer refuses observations built with another layout.
    """

    action_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    layout_version: str

    def __post_init__(self) -> None:
        for what, names in (("action", self.action_names), ("feature", self.feature_names)):
            if not names:
                raise ValueError(f"a policy needs at least one {what} name")
            if len(set(names)) != len(names):
                raise ValueError(f"duplicate {what} names: {names}")
        if not self.layout_version:
            raise ValueError("layout_version must not be empty")

    @property
    def mask_columns(self) -> tuple[str, ...]:
        """Input columns of the action masks, ``mask_<action>``."""
        return tuple(f"mask_{a}" for a in self.action_names)

    @property
    def probability_columns(self) -> tuple[str, ...]:
        """Output columns of the action probabilities, ``probability_<action>``."""
        return tuple(f"probability_{a}" for a in self.action_names)

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON-ready dict."""
        return asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> PolicySpec:
        """The spec from :meth:`to_json`'s dict."""
        return PolicySpec(
            tuple(data["action_names"]), tuple(data["feature_names"]), str(data["layout_version"])
        )


@runtime_checkable
class ServablePolicy(Protocol):
    """A policy that can be logged as a pyfunc model.

    Its class also provides ``load(folder: Path, spec: PolicySpec) -> Self``, reading what
    :meth:`save` wrote, and lives in the ``journeyopt`` package (see :func:`load_policy`).
    """

    @property
    def spec(self) -> PolicySpec:
        """Actions, features and layout version."""
        ...

    @property
    def pip_requirements(self) -> tuple[str, ...]:
        """Packages needed to load the policy besides journeyopt, numpy, pandas, MLflow."""
        ...

    def act(self, observations: Float32, masks: Bool) -> tuple[Int64, Float64]:
        """Choose an allowed action per customer.

        Args:
            observations: (N, D) float32 observation vectors.
            masks: (N, A) allowed actions; every row allows at least one.

        Returns:
            ``(actions, probabilities)``: (N,) int64 chosen action (the most probable allowed
            one) and (N, A) float64 probabilities (rows sum to 1, 0 on masked actions).
        """
        ...

    def save(self, folder: Path) -> None:
        """Write the weights into ``folder`` (an existing, empty folder) in an open format."""
        ...


def masked_softmax(logits: Float64, masks: Bool) -> Float64:
    """(N, A) softmax of ``logits`` over the allowed actions of ``masks`` (0 elsewhere)."""
    if not masks.any(axis=1).all():
        raise ValueError("every row of masks must allow at least one action")
    shifted = np.where(masks, logits, -np.inf)
    shifted = shifted - shifted.max(axis=1, keepdims=True)
    weights = np.exp(shifted)
    return np.asarray(weights / weights.sum(axis=1, keepdims=True), dtype=np.float64)


def most_probable(probabilities: Float64, masks: Bool) -> Int64:
    """(N,) index of the most probable allowed action (ties: the lowest index)."""
    return np.argmax(np.where(masks, probabilities, -1.0), axis=1).astype(np.int64)


class LinearSoftmaxPolicy:
    """Softmax over a linear score per action: ``p = softmax(x @ weights + bias)`` restricted
    to the allowed actions.

    Args:
        spec: Actions and features.
        weights: (D, A) score weights per feature and action.
        bias: (A,) score offset per action.
    """

    pip_requirements: tuple[str, ...] = ()

    def __init__(self, spec: PolicySpec, weights: NDArray[np.floating], bias: NDArray[np.floating]):
        d, a = len(spec.feature_names), len(spec.action_names)
        self._spec = spec
        self.weights = np.asarray(weights, dtype=np.float64)
        self.bias = np.asarray(bias, dtype=np.float64)
        if self.weights.shape != (d, a) or self.bias.shape != (a,):
            raise ValueError(
                f"weights must be ({d}, {a}) and bias ({a},); got {self.weights.shape} "
                f"and {self.bias.shape}"
            )

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def act(self, observations: Float32, masks: Bool) -> tuple[Int64, Float64]:
        logits = np.asarray(observations, np.float64) @ self.weights + self.bias
        probabilities = masked_softmax(logits, np.asarray(masks, bool))
        return most_probable(probabilities, masks), probabilities

    def save(self, folder: Path) -> None:
        np.savez(folder / "weights.npz", weights=self.weights, bias=self.bias)

    @classmethod
    def load(cls, folder: Path, spec: PolicySpec) -> LinearSoftmaxPolicy:
        """The policy :meth:`save` wrote into ``folder`` (``.npz`` read without pickle)."""
        with np.load(folder / "weights.npz", allow_pickle=False) as data:
            return cls(spec, data["weights"], data["bias"])


def save_policy(policy: ServablePolicy, folder: Path) -> Path:
    """Write ``policy`` into the new folder ``folder``: ``spec.json`` plus its weights."""
    cls = type(policy)
    if not cls.__module__.startswith("journeyopt.") or not callable(getattr(cls, "load", None)):
        raise TypeError(
            f"{cls.__qualname__}: a served policy class lives in journeyopt and has load"
        )
    folder.mkdir(parents=True)
    policy.save(folder)
    spec = {
        "format_version": SPEC_FORMAT_VERSION,
        "policy_class": f"{cls.__module__}:{cls.__qualname__}",
        "journeyopt_version": journeyopt.__version__,
        **policy.spec.to_json(),
    }
    (folder / SPEC_FILE).write_text(json.dumps(spec, indent=2))
    return folder


SERVED_POLICY_CLASSES = frozenset(
    {
        "journeyopt.tracking.model:LinearSoftmaxPolicy",
        "journeyopt.tracking.sb3_policy:SB3Policy",
        "journeyopt.agents.optimum_model:PlannedOptimum",
        "journeyopt.agents.practice_model:ServedPractice",
    }
)
"""The policy classes a ``spec.json`` may name (``module:qualname``)."""


def load_policy(folder: Path) -> ServablePolicy:
    """The policy :func:`save_policy` wrote; only the classes of :data:`SERVED_POLICY_CLASSES`
    (installed ``journeyopt`` code) are imported, and they read open formats only."""
    data = json.loads((folder / SPEC_FILE).read_text())
    found = data.get("format_version", 0)
    if found != SPEC_FORMAT_VERSION:
        remedy = (
            "re-run journeyopt-train to log the policy again (or load it with the journeyopt "
            "version that wrote it)"
        )
        raise ModelFolderError(
            format_mismatch(folder, "policy", found, SPEC_FORMAT_VERSION, remedy)
        )
    name = str(data["policy_class"])
    module_name, _, qualname = name.partition(":")
    if not module_name.startswith("journeyopt."):
        raise ValueError(f"{folder / SPEC_FILE}: policy class {module_name} is not journeyopt's")
    if name not in SERVED_POLICY_CLASSES:
        raise ValueError(f"{folder / SPEC_FILE}: {name} is not a served policy class")
    cls = getattr(importlib.import_module(module_name), qualname)
    policy = cls.load(folder, PolicySpec.from_json(data))
    if not isinstance(policy, ServablePolicy):
        raise TypeError(f"{qualname}.load did not return a policy")
    return policy


class ModelFolderError(ValueError):
    """A model folder journeyopt refuses to load (one line, naming the file)."""


def _check_code_file(path: Path) -> None:
    if path.read_bytes() != _CODE_FILE.read_bytes():
        raise ModelFolderError(
            f"{path}: differs from {MODEL_CODE_FILE} of the installed journeyopt "
            f"{journeyopt.__version__}; refused, a model folder may hold data only (re-log the "
            "model with this version)"
        )


def _check_no_code(folder: Path) -> None:
    """Refuse links and code files; the only code file allowed is an exact copy of this
    package's ``pyfunc_code.py`` at the top of the folder."""
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            raise ModelFolderError(f"{path}: a model folder may not hold symbolic links")
        if not path.is_file() or path.suffix.lower() not in CODE_SUFFIXES:
            continue
        if path == folder / MODEL_CODE_FILE:
            _check_code_file(path)
            continue
        raise ModelFolderError(
            f"{path}: a model folder may hold data only (weights, layout, config), not code"
        )


def _check_flavor(folder: Path) -> None:
    """The ``python_function`` flavor must be MLflow's models-from-code entry of
    ``pyfunc_code.py`` without extra code paths (what :func:`log_policy_model` writes)."""
    mlmodel = folder / "MLmodel"
    flavor = Model.load(str(mlmodel)).flavors.get("python_function") or {}
    code_path = str(flavor.get("model_code_path") or "")
    if (
        flavor.get("loader_module") != _CODE_LOADER
        or Path(code_path.replace("\\", "/")).name != MODEL_CODE_FILE
        or flavor.get("code")
    ):
        raise ModelFolderError(
            f"{mlmodel}: not a journeyopt policy model (its python_function flavor must be "
            f"the models-from-code entry {MODEL_CODE_FILE}, without code paths)"
        )


def check_model_folder(folder: Path) -> Path:
    """The policy data folder (``artifacts/policy``) of the MLflow model folder ``folder``,
    after checking that the folder holds data only.

    Raises:
        ModelFolderError: No ``MLmodel`` or policy spec, a foreign flavor, a code file other
            than an exact copy of the installed ``pyfunc_code.py``, or a symbolic link.
    """
    if not (folder / "MLmodel").is_file():
        raise ModelFolderError(f"{folder}: no MLmodel file there (not an MLflow model folder)")
    _check_no_code(folder)
    _check_flavor(folder)
    policy = folder / POLICY_FOLDER
    if not (policy / SPEC_FILE).is_file():
        raise ModelFolderError(f"{policy / SPEC_FILE}: missing (not a journeyopt policy model)")
    return policy


def load_policy_folder(folder: Path) -> ServablePolicy:
    """The policy of the MLflow model folder ``folder``, read as data by this package's own
    code: :func:`check_model_folder`, then :func:`load_policy`. Nothing of the folder is
    imported, executed or unpickled."""
    return load_policy(check_model_folder(folder))


def observation_frame(observations: Float32, masks: Bool, spec: PolicySpec) -> pd.DataFrame:
    """The predict input for (N, D) ``observations`` and (N, A) ``masks``."""
    frame = pd.DataFrame(np.asarray(observations, np.float64), columns=list(spec.feature_names))
    for column, mask in zip(spec.mask_columns, np.asarray(masks, bool).T, strict=True):
        frame[column] = mask
    return frame


def frame_arrays(frame: pd.DataFrame, spec: PolicySpec) -> tuple[Float32, Bool]:
    """``(observations (N, D) float32, masks (N, A) bool)`` from a predict input frame."""
    missing = [c for c in (*spec.feature_names, *spec.mask_columns) if c not in frame.columns]
    if missing:
        raise ValueError(f"input is missing columns {missing}")
    observations = frame[list(spec.feature_names)].to_numpy(dtype=np.float32)
    masks = frame[list(spec.mask_columns)].to_numpy(dtype=bool)
    return observations, masks


def predictions_frame(actions: Int64, probabilities: Float64, spec: PolicySpec) -> pd.DataFrame:
    """The predict output: ``action``, ``action_name`` and ``probability_<action>``."""
    names = np.asarray(spec.action_names, dtype=object)
    frame = pd.DataFrame({"action": actions.astype(np.int64), "action_name": names[actions]})
    for column, p in zip(spec.probability_columns, probabilities.T, strict=True):
        frame[column] = p.astype(np.float64)
    return frame


def policy_signature(spec: PolicySpec) -> ModelSignature:
    """Model signature: double feature columns and boolean masks in; action, its name and
    double probabilities out."""
    inputs = [ColSpec("double", f) for f in spec.feature_names]
    inputs += [ColSpec("boolean", m) for m in spec.mask_columns]
    outputs = [ColSpec("long", "action"), ColSpec("string", "action_name")]
    outputs += [ColSpec("double", p) for p in spec.probability_columns]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))  # type: ignore[arg-type]


class PolicyPyfunc(PythonModel):
    """The pyfunc face of a saved policy; built by ``pyfunc_code.py`` (models from code)."""

    def __init__(self) -> None:
        self._policy: ServablePolicy | None = None

    def load_context(self, context: Any) -> None:
        """Read the policy from the model's ``policy`` artifact folder."""
        self._policy = load_policy(Path(context.artifacts[ARTIFACT_KEY]))

    @property
    def policy(self) -> ServablePolicy:
        """The loaded policy."""
        if self._policy is None:
            raise RuntimeError("the policy model is not loaded (load_context was not called)")
        return self._policy

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Actions and probabilities (DataFrame) for a DataFrame of observations and masks
        (see the module docstring for the columns)."""
        spec = self.policy.spec
        observations, masks = frame_arrays(pd.DataFrame(model_input), spec)
        actions, probabilities = self.policy.act(observations, masks)
        return predictions_frame(actions, probabilities, spec)


def base_requirements() -> list[str]:
    """Pinned requirements of every policy model (the installed versions)."""
    return [
        f"journeyopt=={journeyopt.__version__}",
        f"mlflow-skinny=={mlflow.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
    ]


def log_policy_model(
    run: RunLogger,
    policy: ServablePolicy,
    observations: Float32,
    masks: Bool,
    *,
    name: str = "policy",
    step: int = 0,
) -> ModelInfo | None:
    """Log ``policy`` into ``run`` as the pyfunc model ``name``; ``None`` when tracking is off.

    Call it inside :func:`~journeyopt.tracking.run.tracked_run`, which points MLflow's
    process-wide URIs (used by MLflow's model logging) at the run's backend.

    Args:
        run: The run (from :func:`journeyopt.tracking.run.tracked_run`).
        policy: The policy.
        observations: (K, D) example observations (a few rows: the model's input example).
        masks: (K, A) their masks.
        name: Model name within the run.
        step: Training step (environment steps) the policy was taken at.

    Returns:
        MLflow's record of the logged model (``model_uri`` is ``models:/<model_id>``).
    """
    if run.run_id is None:
        return None
    spec = policy.spec
    # The logged model belongs to the run's experiment and its files to that experiment's
    # artifact root: MLflow's Model.log with a run id but no active run would put it in the
    # Default experiment (id 0), whose root on a SQLite store is ./mlruns/0 of the working
    # directory the store was first opened from, not beside the database.
    source = mlflow.MlflowClient().get_run(run.run_id)
    logged = mlflow.initialize_logged_model(
        name=name,
        source_run_id=run.run_id,
        params={key: str(value) for key, value in source.data.params.items()},
        experiment_id=source.info.experiment_id,
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_policy(policy, Path(tmp) / ARTIFACT_KEY)
        return Model.log(
            artifact_path=None,
            name=name,
            flavor=mlflow.pyfunc,
            run_id=run.run_id,
            python_model=str(_CODE_FILE),
            artifacts={ARTIFACT_KEY: str(folder)},
            signature=policy_signature(spec),
            # today's practice reads the date, not observations: no example to predict
            input_example=observation_frame(observations, masks, spec)
            if getattr(policy, "reads_observations", True)
            else None,
            pip_requirements=base_requirements() + list(policy.pip_requirements),
            metadata={
                "journeyopt_version": journeyopt.__version__,
                "layout_version": spec.layout_version,
                "action_names": list(spec.action_names),
            },
            step=step,
            model_id=logged.model_id,
        )


def policy_pyfunc_model(folder: Path) -> PyFuncModel:
    """The MLflow model folder ``folder`` as a ``PyFuncModel`` (``predict`` with MLflow's
    input schema check, ``metadata``, ``unwrap_python_model``), built by this package's code
    from the folder's data (:func:`load_policy_folder`); ``pyfunc_code.py`` is not run."""
    policy_folder = check_model_folder(folder)
    meta = Model.load(str(folder / "MLmodel"))
    context = PythonModelContext(artifacts={ARTIFACT_KEY: str(policy_folder)}, model_config={})
    python_model = PolicyPyfunc()
    python_model.load_context(context)
    wrapper = _PythonModelPyfuncWrapper(python_model, context, meta.signature)
    return PyFuncModel(model_meta=meta, model_impl=wrapper, model_id=meta.model_id)


def load_policy_model(model_uri: str, settings: TrackingConfig, dst: Path) -> PyFuncModel:
    """Download the pyfunc model at ``model_uri`` (``models:/...``, ``runs:/...``) from the
    configured backend into ``dst`` and load it as data (:func:`policy_pyfunc_model`). A
    registered version (``models:/<name>/<version>``, ``models:/<name>@<alias>``) is read from
    the location the configured registry records for it
    (:meth:`journeyopt.tracking.registry.PolicyRegistry.download`)."""
    rest = model_uri.removeprefix("models:/")
    name = rest.split("@")[0].split("/")[0]
    if rest != model_uri and name and not (name.startswith("m-") and name == rest):
        registry = PolicyRegistry(replace(settings, registered_model=name))
        return policy_pyfunc_model(registry.download(registry.resolve(model_uri), dst))
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=model_uri,
        dst_path=str(dst),
        tracking_uri=settings.resolved_tracking_uri(),
        registry_uri=settings.resolved_registry_uri(),
    )
    return policy_pyfunc_model(Path(local))


def unwrap_policy(model: Any) -> ServablePolicy:
    """The :class:`ServablePolicy` inside a loaded pyfunc model of this module."""
    inner = model.unwrap_python_model()
    if not isinstance(inner, PolicyPyfunc):
        raise TypeError("not a journeyopt policy model")
    return inner.policy
