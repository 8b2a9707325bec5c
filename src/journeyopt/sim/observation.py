"""The observation vector: a customer's named features, segment and week of year as float32.

Agents with a neural network (SB3) see customers through :func:`encode`; rule-based and tabular
policies read the named features directly (:class:`journeyopt.agents.policy.Observation`). Both
come from the same :func:`journeyopt.panel.state.state_features`, so a policy sees the same
numbers in simulation, on the panel and at scoring time.

Layout (``D = layout.size`` columns, every value in [0, 1]), in :attr:`ObservationLayout.columns`
order:

- per feature of ``FeatureSpec.feature_names`` except ``lifecycle``:
  - features that can be "never" (``recency_weeks``, ``monetary``, ``weeks_since_*``): an
    indicator column ``<name>_never`` (1.0 = never happened) followed by ``<name>`` = value /
    cap clipped to [0, 1] (0.0 when never);
  - counts and weeks: ``<name>`` = value / cap clipped to [0, 1];
  - ``opted_out_<channel>``: 0.0 / 1.0;
- ``lifecycle_<stage>``: one-hot over :data:`journeyopt.panel.state.LIFECYCLE_STAGES`;
- ``segment_<name>``: one-hot over the world's customer types;
- ``week_of_year``: ``(week_of_year - 1) / 52``; ``week_of_year_sin`` and ``week_of_year_cos``:
  ``(1 + sin(2 pi w / 52)) / 2`` and likewise (so week 52 sits next to week 1).

Caps are in the feature's unit (weeks, counts, currency) and at least the caps of the world's
discrete summary, so :func:`decode` recovers every input of
:func:`journeyopt.sim.discrete.summarise` exactly: the exact optimum is reachable by a policy
that sees only the observation vector (and, for a finite horizon longer than a year, the episode
week).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from journeyopt.panel.state import LIFECYCLE_STAGES, FeatureSpec
from journeyopt.sim.world import WorldSpec

Float32 = NDArray[np.float32]

NEVER_FEATURES: tuple[str, ...] = (
    "recency_weeks",
    "monetary",
    "weeks_since_contact",
    "weeks_since_engagement",
)
"""Features that are NaN when the event never happened."""

WEEKS_PER_YEAR = 52


@dataclass(frozen=True)
class ObservationLayout:
    """Column layout and caps of the observation vector of one world.

    Attributes:
        feature_spec: Feature windows (names of the features).
        caps: Feature name -> cap in the feature's unit; values are divided by it and clipped
            to [0, 1]. Opt-out flags and ``lifecycle`` have no cap.
        segment_names: Customer types, in segment-index order.
    """

    feature_spec: FeatureSpec
    caps: Mapping[str, float]
    segment_names: tuple[str, ...]

    def __post_init__(self) -> None:
        for name, cap in self.caps.items():
            if not cap > 0:
                raise ValueError(f"cap of {name!r} must be > 0, got {cap}")
        missing = [n for n in self.scaled_features if n not in self.caps]
        if missing:
            raise ValueError(f"no cap for features {missing}")

    @property
    def scaled_features(self) -> tuple[str, ...]:
        """Features encoded as value / cap, in layout order."""
        return tuple(
            n
            for n in self.feature_spec.feature_names
            if n != "lifecycle" and not n.startswith("opted_out_")
        )

    @property
    def columns(self) -> tuple[str, ...]:
        """Name of every column of the observation vector, in order (see the module docstring)."""
        names: list[str] = []
        for name in self.feature_spec.feature_names:
            if name == "lifecycle":
                continue
            if name in NEVER_FEATURES:
                names.append(f"{name}_never")
            names.append(name)
        names += [f"lifecycle_{s}" for s in LIFECYCLE_STAGES]
        names += [f"segment_{s}" for s in self.segment_names]
        names += ["week_of_year", "week_of_year_sin", "week_of_year_cos"]
        return tuple(names)

    @property
    def size(self) -> int:
        """Length ``D`` of the observation vector."""
        return len(self.columns)

    def index(self, column: str) -> int:
        """Position of a named column in the vector."""
        return self.columns.index(column)


def observation_layout(world: WorldSpec) -> ObservationLayout:
    """The layout of a world's observations; caps cover at least the discrete summary's caps.

    Caps: weeks since an event 104 weeks (2 years), lifetime conversions 52, tenure 520 weeks,
    window counts their window length (one contact per channel a week at most), mean
    conversion value twice the world's largest mean list value, cancellations 10.
    """
    spec = world.features
    d = world.discrete
    fw, ew = spec.fatigue_weeks, spec.engagement_weeks
    caps: dict[str, float] = {
        "recency_weeks": float(max(2 * WEEKS_PER_YEAR, d.recency_cap_weeks)),
        "frequency": float(spec.frequency_weeks),
        "monetary": float(2.0 * np.max(world.params.kind_values)),
        "n_conversions": float(max(WEEKS_PER_YEAR, d.conversions_cap)),
        "tenure_weeks": float(10 * WEEKS_PER_YEAR),
        f"contacts_{fw}w": float(fw * max(len(spec.contact_channels), 1)),
        "weeks_since_contact": float(max(2 * WEEKS_PER_YEAR, d.contact_cap_weeks)),
        f"engagements_{ew}w": float(ew),
        "weeks_since_engagement": float(max(2 * WEEKS_PER_YEAR, d.engagement_cap_weeks)),
        "n_cancellations": 10.0,
    }
    for channel in spec.contact_channels:
        caps[f"contacts_{fw}w_{channel}"] = float(fw)
    return ObservationLayout(spec, caps, world.segment_names)


def encode(
    layout: ObservationLayout,
    features: Mapping[str, NDArray[np.generic]],
    segment: NDArray[np.integer],
    week_of_year: int | NDArray[np.integer],
) -> Float32:
    """(N, D) float32 observation vectors of ``N`` customers.

    The result is a transposed view of a (D, N) C-ordered array (filling whole columns is
    several times faster than strided writes); use ``np.ascontiguousarray`` if row-major memory
    matters.

    Args:
        layout: The world's layout (:func:`observation_layout`).
        features: (N,) arrays from :func:`journeyopt.panel.state.state_features`.
        segment: (N,) customer type index.
        week_of_year: ISO week of year (1..53), one for all or (N,).
    """
    seg = np.asarray(segment)
    out = np.empty((layout.size, seg.shape[0]), np.float32)
    col = 0
    for name in layout.feature_spec.feature_names:
        if name == "lifecycle":
            continue
        value = np.asarray(features[name])
        if name.startswith("opted_out_"):
            out[col] = value
            col += 1
            continue
        if name in NEVER_FEATURES:
            out[col] = np.isnan(value)
            col += 1
            # NaN -> 0 like the clip below does for negatives; ``np.where`` on the irregular
            # never-mask costs ten times more
            value = np.fmax(value, 0.0)
        np.multiply(value, 1.0 / layout.caps[name], out=out[col], casting="unsafe")
        np.clip(out[col], 0.0, 1.0, out=out[col])
        col += 1
    stage = np.asarray(features["lifecycle"])
    for k in range(len(LIFECYCLE_STAGES)):
        np.equal(stage, k, out=out[col], casting="unsafe")
        col += 1
    for k in range(len(layout.segment_names)):
        np.equal(seg, k, out=out[col], casting="unsafe")
        col += 1
    woy = np.asarray(week_of_year, np.float64)
    angle = 2.0 * np.pi * woy / WEEKS_PER_YEAR
    out[col] = (woy - 1.0) / WEEKS_PER_YEAR
    out[col + 1] = 0.5 * (1.0 + np.sin(angle))
    out[col + 2] = 0.5 * (1.0 + np.cos(angle))
    return out.T


def decode(
    layout: ObservationLayout, observations: NDArray[np.floating]
) -> tuple[dict[str, NDArray[np.float64]], NDArray[np.int64], NDArray[np.int64]]:
    """Invert :func:`encode` up to the caps: ``(features, segment, week_of_year)``.

    Features come back in their units, capped (a value at or above its cap reads as the cap),
    NaN where "never"; counts and weeks are rounded to integers, ``monetary`` is not. Enough to
    recompute the discrete summary exactly.

    Args:
        layout: The layout the observations were encoded with.
        observations: (N, D) observation vectors.
    """
    obs = np.asarray(observations, np.float64)
    columns = layout.columns
    features: dict[str, NDArray[np.float64]] = {}
    for name in layout.scaled_features:
        value = obs[:, columns.index(name)] * layout.caps[name]
        if name != "monetary":
            value = np.round(value)
        if name in NEVER_FEATURES:
            value = np.where(obs[:, columns.index(f"{name}_never")] > 0.5, np.nan, value)
        features[name] = value
    for channel in layout.feature_spec.contact_channels:
        features[f"opted_out_{channel}"] = obs[:, columns.index(f"opted_out_{channel}")]
    first = columns.index(f"lifecycle_{LIFECYCLE_STAGES[0]}")
    features["lifecycle"] = np.argmax(obs[:, first : first + len(LIFECYCLE_STAGES)], axis=1)
    first = columns.index(f"segment_{layout.segment_names[0]}")
    segment = np.argmax(obs[:, first : first + len(layout.segment_names)], axis=1)
    woy = np.round(obs[:, columns.index("week_of_year")] * WEEKS_PER_YEAR + 1.0)
    return features, segment.astype(np.int64), woy.astype(np.int64)
