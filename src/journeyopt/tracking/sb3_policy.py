"""A trained stable-baselines3 agent as a :class:`~journeyopt.tracking.model.ServablePolicy`.

Saved as SB3's own ``model.zip`` (torch state dicts + JSON; ``PPO.load("model.zip")`` reads
it for inspection or resuming) plus ``sb3.json`` naming the algorithm, its policy alias and the
policy's keyword arguments. Loading for serving never unpickles: it reads only the zip's
state dicts (``torch.load(weights_only=True)`` inside SB3's ``load_from_zip_file`` with
``load_data=False``) and rebuilds the policy network from ``sb3.json``.

Supported: PPO, A2C, DQN (greedy on Q-values) and sb3-contrib's MaskablePPO, with a flat
``Box`` observation of ``D`` features and ``Discrete(A)`` actions.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import stable_baselines3
import torch
from gymnasium import spaces
from numpy.typing import NDArray
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.distributions import MaskableCategoricalDistribution
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.dqn.policies import DQNPolicy

from journeyopt.tracking.model import Bool, Float32, Float64, Int64, PolicySpec, most_probable

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {
    "PPO": stable_baselines3.PPO,
    "A2C": stable_baselines3.A2C,
    "DQN": stable_baselines3.DQN,
    "MaskablePPO": MaskablePPO,
}
ZIP_FILE = "model.zip"
META_FILE = "sb3.json"


class SB3Policy:
    """An SB3 policy network behind the ``act(observations, masks)`` interface.

    Build it with :meth:`from_model` from a trained agent, or :meth:`load` from a folder.

    Args:
        spec: Actions and features (``D`` and ``A`` must match the network).
        policy: The SB3 policy network (in evaluation mode).
        meta: ``{"algorithm", "policy", "policy_kwargs"}`` as written to ``sb3.json``.
        zip_bytes: SB3's ``model.zip`` content.
    """

    def __init__(
        self, spec: PolicySpec, policy: BasePolicy, meta: dict[str, Any], zip_bytes: bytes
    ) -> None:
        self._spec = spec
        self.network = policy
        self.meta = meta
        self._zip = zip_bytes
        self.network.set_training_mode(False)
        self._actor = numpy_actor(policy, meta["algorithm"])

    @classmethod
    def from_model(cls, model: BaseAlgorithm, spec: PolicySpec) -> SB3Policy:
        """Wrap a trained agent (its current weights)."""
        algorithm = type(model).__name__
        if algorithm not in ALGORITHMS:
            raise ValueError(f"{algorithm}: supported agents are {sorted(ALGORITHMS)}")
        aliases = [k for k, v in model.policy_aliases.items() if v is type(model.policy)]
        if not aliases:
            raise ValueError(f"{type(model.policy).__name__} is not a named policy of {algorithm}")
        meta = {
            "algorithm": algorithm,
            "policy": aliases[0],
            "policy_kwargs": _kwargs_to_json(model.policy_kwargs),
        }
        buffer = io.BytesIO()
        model.save(buffer)
        return cls(spec, model.policy, meta, buffer.getvalue())

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    @property
    def pip_requirements(self) -> tuple[str, ...]:
        import sb3_contrib

        return (
            f"torch=={torch.__version__.split('+')[0]}",
            f"stable-baselines3=={stable_baselines3.__version__}",
            f"sb3-contrib=={sb3_contrib.__version__}",
            f"gymnasium=={_gymnasium_version()}",
        )

    def act(self, observations: Float32, masks: Bool) -> tuple[Int64, Float64]:
        masks = np.asarray(masks, bool)
        if not masks.any(axis=1).all():
            raise ValueError("every row of masks must allow at least one action")
        if self._actor is not None:
            raw = self._actor.probabilities(np.asarray(observations, np.float32), masks)
            return most_probable(raw, masks), _restrict(raw, masks)
        with torch.inference_mode():
            obs = torch.as_tensor(np.array(observations, np.float32), device=self.network.device)
            raw = self._probabilities(obs, masks)
        return most_probable(raw, masks), _restrict(raw, masks)

    def _probabilities(self, obs: torch.Tensor, masks: Bool) -> Float64:
        network: Any = self.network
        if isinstance(network, DQNPolicy):
            q = network.q_net(obs).cpu().numpy().astype(np.float64)
            greedy = np.argmax(np.where(masks, q, -np.inf), axis=1)
            return np.eye(q.shape[1])[greedy]
        if self.meta["algorithm"] == "MaskablePPO":
            dist = network.get_distribution(obs, action_masks=masks)
        elif isinstance(network, ActorCriticPolicy):
            dist = network.get_distribution(obs)
        else:
            raise TypeError(f"unsupported SB3 policy {type(network).__name__}")
        probs = dist.distribution.probs
        return np.asarray(probs.cpu().numpy(), dtype=np.float64)

    def save(self, folder: Path) -> None:
        (folder / ZIP_FILE).write_bytes(self._zip)
        (folder / META_FILE).write_text(json.dumps(self.meta, indent=2))

    @classmethod
    def load(cls, folder: Path, spec: PolicySpec) -> SB3Policy:
        """Rebuild the network from ``sb3.json`` and the zip's state dicts (no unpickling)."""
        meta = json.loads((folder / META_FILE).read_text())
        algorithm = ALGORITHMS[meta["algorithm"]]
        policy_class: Any = algorithm.policy_aliases[meta["policy"]]
        n_features = len(spec.feature_names)
        network = policy_class(
            observation_space=spaces.Box(-np.inf, np.inf, (n_features,), np.float32),
            action_space=spaces.Discrete(len(spec.action_names)),
            lr_schedule=_constant_zero,
            **_kwargs_from_json(meta["policy_kwargs"]),
        )
        zip_path = folder / ZIP_FILE
        _, params, _ = load_from_zip_file(zip_path, load_data=False, device="cpu")
        network.load_state_dict(params["policy"])
        return cls(spec, network, meta, zip_path.read_bytes())


_ACTIVATIONS: dict[type[torch.nn.Module], Any] = {
    torch.nn.Tanh: np.tanh,
    torch.nn.ReLU: lambda x: np.maximum(x, np.float32(0.0)),
    torch.nn.Identity: lambda x: x,
}
"""Activation modules :class:`NumpyActor` re-implements (elementwise, float32)."""


class NumpyActor:
    """The action head of an SB3 actor-critic MLP policy in numpy: the same float32 weights,
    read once from the network, and the same arithmetic as its torch forward pass
    (``Linear`` -> activation ... -> ``action_net`` -> [mask with -1e8] -> softmax), without
    torch's per-call overhead (one customer: about 30 µs instead of almost 1 ms).

    Args:
        layers: ``(weight (in, out) float32, bias (out,) float32, activation)`` per hidden
            layer of ``mlp_extractor.policy_net``, in order.
        head: ``action_net``'s weight (H, A) and bias (A,), float32.
        masked_logits: The policy masks logits before the softmax (MaskablePPO).
    """

    def __init__(
        self,
        layers: list[tuple[NDArray[np.float32], NDArray[np.float32], Any]],
        head: tuple[NDArray[np.float32], NDArray[np.float32]],
        masked_logits: bool,
    ) -> None:
        self.layers = layers
        self.head = head
        self.masked_logits = masked_logits

    def probabilities(self, observations: Float32, masks: Bool) -> Float64:
        """(N, A) action probabilities of (N, D) ``observations`` under (N, A) ``masks``."""
        hidden = np.asarray(observations, np.float32)
        for weight, bias, activation in self.layers:
            hidden = activation(hidden @ weight + bias)
        logits = hidden @ self.head[0] + self.head[1]
        if self.masked_logits:
            logits = np.where(masks, logits, np.float32(-1e8))
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = shifted / shifted.sum(axis=1, keepdims=True)
        return np.asarray(probs, dtype=np.float64)


def numpy_actor(network: BasePolicy, algorithm: str) -> NumpyActor | None:
    """A :class:`NumpyActor` of ``network``; None when the network is not a plain MLP
    actor-critic over a flat observation (DQN, custom feature extractors or activations),
    which then runs in torch."""
    net: Any = network
    actor_critic = isinstance(network, ActorCriticPolicy) or algorithm == "MaskablePPO"
    if isinstance(network, DQNPolicy) or not actor_critic:
        return None
    shared = net.share_features_extractor
    extractor = net.features_extractor if shared else net.pi_features_extractor
    categorical = (CategoricalDistribution, MaskableCategoricalDistribution)
    if not (
        isinstance(extractor, FlattenExtractor)
        and isinstance(net.action_net, torch.nn.Linear)
        and isinstance(net.action_dist, categorical)
    ):
        return None
    layers: list[tuple[NDArray[np.float32], NDArray[np.float32], Any]] = []
    modules = list(net.mlp_extractor.policy_net)
    for i, module in enumerate(modules):
        if isinstance(module, torch.nn.Linear):
            following = modules[i + 1] if i + 1 < len(modules) else torch.nn.Identity()
            activation = _ACTIVATIONS.get(type(following))
            if activation is None or isinstance(following, torch.nn.Linear):
                return None
            layers.append((_weight(module), _bias(module), activation))
        elif type(module) not in _ACTIVATIONS:
            return None
    head = (_weight(net.action_net), _bias(net.action_net))
    return NumpyActor(layers, head, masked_logits=algorithm == "MaskablePPO")


def _weight(layer: torch.nn.Linear) -> NDArray[np.float32]:
    """(in, out) float32 copy of a linear layer's weight."""
    return np.ascontiguousarray(layer.weight.detach().cpu().numpy().T, dtype=np.float32)


def _bias(layer: torch.nn.Linear) -> NDArray[np.float32]:
    """(out,) float32 copy of a linear layer's bias (zeros without one)."""
    if layer.bias is None:
        return np.zeros(layer.out_features, np.float32)
    return np.asarray(layer.bias.detach().cpu().numpy(), dtype=np.float32)


def _constant_zero(progress_remaining: float) -> float:
    """Learning-rate schedule of a policy used for inference only."""
    return 0.0


def _restrict(probabilities: Float64, masks: Bool) -> Float64:
    """Probabilities renormalised over the allowed actions; uniform over them when the
    network gives them no mass at all."""
    kept = np.where(masks, probabilities, 0.0)
    total = kept.sum(axis=1, keepdims=True)
    uniform = masks / masks.sum(axis=1, keepdims=True)
    return np.asarray(np.where(total > 0, kept / np.where(total > 0, total, 1.0), uniform))


def _class_kwargs() -> dict[str, ModuleType]:
    """``policy_kwargs`` entries that hold a class, saved by name within a torch module."""
    return {"activation_fn": torch.nn, "optimizer_class": torch.optim}


def _kwargs_to_json(kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """SB3 ``policy_kwargs`` as JSON: ``activation_fn`` and ``optimizer_class`` by their
    ``torch.nn`` / ``torch.optim`` name; other values must be JSON already (``net_arch``,
    ``ortho_init``, ``optimizer_kwargs``, ...)."""
    out: dict[str, Any] = {}
    for key, value in (kwargs or {}).items():
        if key in _class_kwargs():
            name = str(getattr(value, "__name__", ""))
            if getattr(_class_kwargs()[key], name, None) is not value:
                raise ValueError(f"policy_kwargs[{key!r}] = {value!r} is not a torch class")
            out[key] = name
            continue
        try:
            json.dumps(value)
        except TypeError as err:
            raise ValueError(f"policy_kwargs[{key!r}] cannot be saved as JSON") from err
        out[key] = value
    return out


def _kwargs_from_json(data: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(data)
    for key, module in _class_kwargs().items():
        if key in kwargs:
            found = getattr(module, str(kwargs[key]), None)
            if not isinstance(found, type):
                raise ValueError(f"policy_kwargs[{key!r}] = {kwargs[key]!r} is not a torch class")
            kwargs[key] = found
    return kwargs


def _gymnasium_version() -> str:
    import gymnasium

    return str(gymnasium.__version__)
