"""One interface for every contact policy: baselines, the exact optimum, trained agents.

A policy maps what it may see of ``N`` customers (an :class:`Observation`) and the contact
rules' masks to one action per customer plus the probabilities it chose them with, so the
same object drives the simulator, off-policy evaluation (which needs the probabilities) and
serving.

    actions, probabilities = policy.act(observation, masks, rng)
    # actions: (N,) int64 action indices; probabilities: (N, A) float64, rows sum to 1,
    # zero on masked actions, probabilities[i, actions[i]] > 0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from journeyopt.panel.state import CustomerState, state_features
from journeyopt.sim.observation import ObservationLayout, encode

IntArray = NDArray[np.int64]
Float = NDArray[np.float64]
Bool = NDArray[np.bool_]


@dataclass(frozen=True)
class Observation:
    """What a policy sees of ``N`` customers at the start of one week.

    Attributes:
        features: Named (N,) arrays of :func:`journeyopt.panel.state.state_features` (or panel
            columns of the same names).
        segment: (N,) customer type index into the world's segment names.
        week_of_year: ISO week of year (1..53) of the week.
        week: Weeks since the start of the episode or of the campaign calendar (0-based): the
            staff's campaign calendar and a finite-horizon optimum depend on it.
        segment_names: Names of the segment indices (the world's or the panel's order). When
            given, :meth:`vector` matches segments by name, so a policy trained in another
            world (a calibrated one lists its segments in another order) sees the right type.
    """

    features: Mapping[str, NDArray[np.generic]]
    segment: IntArray
    week_of_year: int
    week: int
    segment_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        n = self.segment.shape[0]
        bad = [k for k, v in self.features.items() if np.shape(v) != (n,)]
        if bad:
            raise ValueError(f"features {bad} do not have shape ({n},)")
        if not 1 <= self.week_of_year <= 53:
            raise ValueError(f"week_of_year must be in 1..53, got {self.week_of_year}")
        if self.week < 0:
            raise ValueError(f"week must be >= 0, got {self.week}")

    @property
    def n(self) -> int:
        """Number of customers ``N``."""
        return int(self.segment.shape[0])

    @staticmethod
    def of_state(
        state: CustomerState,
        segment: NDArray[np.integer],
        layout: ObservationLayout,
        week_of_year: int,
        week: int,
    ) -> Observation:
        """The observation of customers in ``state`` (features from ``state_features``)."""
        return Observation(
            state_features(state, layout.feature_spec),
            np.asarray(segment, np.int64),
            week_of_year,
            week,
        )

    def vector(self, layout: ObservationLayout) -> NDArray[np.float32]:
        """(N, D) float32 observation vectors, as the environments give them to agents."""
        return encode(layout, self.features, self.segment_in(layout), self.week_of_year)

    def segment_in(self, layout: ObservationLayout) -> IntArray:
        """(N,) segment indices in ``layout``'s order (matched by name when
        ``segment_names`` is given; an unknown name is a ``ValueError``)."""
        names = self.segment_names
        if names is None or tuple(names) == layout.segment_names:
            return self.segment
        position = {name: i for i, name in enumerate(layout.segment_names)}
        unknown = [name for name in names if name not in position]
        if unknown:
            raise ValueError(
                f"segments {unknown} are not among the policy's {list(layout.segment_names)}"
            )
        return np.array([position[name] for name in names], np.int64)[self.segment]


@runtime_checkable
class Policy(Protocol):
    """A contact policy over ``A`` actions."""

    @property
    def name(self) -> str:
        """Short name used in tables and charts."""
        ...

    def act(
        self, observation: Observation, masks: Bool, rng: np.random.Generator
    ) -> tuple[IntArray, Float]:
        """Choose one allowed action per customer.

        Args:
            observation: What the policy sees of ``N`` customers.
            masks: (N, A) allowed actions from :meth:`journeyopt.sim.rules.ContactRules.masks`.
            rng: Source of randomness of stochastic policies.

        Returns:
            ``(actions, probabilities)``: (N,) int64 actions, each allowed, and (N, A) float64
            probabilities of every action (rows sum to 1, 0 on masked actions).
        """
        ...


def one_hot(actions: NDArray[np.integer], n_actions: int) -> Float:
    """(N, A) probabilities of a deterministic policy choosing ``actions`` (N,)."""
    a = np.asarray(actions, np.int64)
    probs = np.zeros((a.shape[0], n_actions))
    probs[np.arange(a.shape[0]), a] = 1.0
    return probs


def masked_argmax(scores: Float, masks: Bool) -> IntArray:
    """(N,) index of the best allowed action per row of (N, A) ``scores``; ties go to the
    lowest index (``none`` first)."""
    return np.argmax(np.where(masks, scores, -np.inf), axis=1).astype(np.int64)


def sample_from(probabilities: Float, rng: np.random.Generator) -> IntArray:
    """(N,) one draw per row of (N, A) ``probabilities`` (one uniform per row)."""
    u = rng.random((probabilities.shape[0], 1))
    cdf = np.cumsum(probabilities, axis=1)
    cdf[:, -1] = 1.0  # guard against rounding: the last positive column catches u close to 1
    draw = (u >= cdf).sum(axis=1)
    # an action with zero probability is never drawn: move ties at zero mass to the next column
    positive = probabilities > 0
    last_positive = probabilities.shape[1] - 1 - np.argmax(positive[:, ::-1], axis=1)
    return np.minimum(draw, last_positive).astype(np.int64)
