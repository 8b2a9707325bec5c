"""A calibrated world's starting population as data: the business's own customers as they are
at the as-of date, and how new customers arrive.

A :class:`StartingBase` holds every customer known at the as-of instant with their
:class:`~journeyopt.panel.state.CustomerState` (built by the panel's walk over the logs, so opted
out, fatigued, lapsed customers and their histories are as the panel sees them) and their
segment, plus the weekly arrival rate and segment mix of new customers over the last weeks of
the logs. It is written next to the world as ``base.parquet`` (one row per customer; the ring
buffers as list columns, customer-major) and named in ``world.yaml`` under
``starting_population``; :func:`journeyopt.sim.population.starting_population` draws a
simulation's customers from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from journeyopt.errors import ConfigError
from journeyopt.panel.state import CustomerState, FeatureSpec

IntArray = NDArray[np.int64]
Float = NDArray[np.float64]

BASE_FILE = "base.parquet"


def _array_fields() -> tuple[str, ...]:
    """The per-customer array fields of :class:`CustomerState` (all but ``week``)."""
    return tuple(f.name for f in fields(CustomerState) if f.name != "week")


def _customer_major(name: str, array: NDArray[Any]) -> NDArray[Any]:
    """``array`` with the customer axis first (the rings are week-major, customer axis 1)."""
    return np.moveaxis(array, 1, 0) if name.endswith("_ring") else array


def _template(spec: FeatureSpec, week: int, n: int) -> CustomerState:
    """Customers without history: the shapes and dtypes a state of ``spec`` has."""
    return CustomerState.new(spec, week, np.full(n, week, np.int64))


@dataclass(frozen=True)
class StartingBase:
    """The customers at the as-of date and the arrival of new ones.

    Attributes:
        state: State of the ``N`` known customers at the start of the as-of week
            (``state.week`` counts weeks from the logs' panel origin).
        segment: (N,) segment index into the world's ``segment_names``.
        customer_id: (N,) the customers' ids in the logs.
        arrivals_per_week: New customers (first activity) per week in the logs' last
            ``arrival_weeks`` weeks before the as-of week.
        arrival_shares: (S,) segment mix of those new customers (sums to 1).
        arrival_weeks: Length of the window the arrival rate and mix were measured over, weeks.
        as_of: The as-of instant, ISO 8601 (informational).
    """

    state: CustomerState
    segment: IntArray
    customer_id: NDArray[np.str_]
    arrivals_per_week: float
    arrival_shares: Float
    arrival_weeks: int
    as_of: str

    def __post_init__(self) -> None:
        n = self.state.n_customers
        if n < 1:
            raise ConfigError("starting_population: the base holds no customers")
        if self.segment.shape != (n,) or self.customer_id.shape != (n,):
            raise ConfigError("starting_population: segment and customer_id must be (N,)")
        if not self.arrivals_per_week >= 0:
            raise ConfigError("starting_population.arrivals_per_week must be >= 0")
        shares = np.asarray(self.arrival_shares, np.float64)
        if shares.ndim != 1 or np.any(shares < 0) or abs(float(shares.sum()) - 1.0) > 1e-4:
            raise ConfigError("starting_population.arrival_shares must be >= 0 and sum to 1")
        if self.segment.size and (self.segment.min() < 0 or self.segment.max() >= shares.size):
            raise ConfigError("starting_population: a segment index is outside the world's")

    @property
    def n_customers(self) -> int:
        return self.state.n_customers

    def check(self, spec: FeatureSpec, n_segments: int) -> None:
        """Raise ConfigError unless the state's windows and channels are ``spec``'s and the
        arrival mix has ``n_segments`` entries. A part of the state the base does not hold
        (an empty array, e.g. counts for contact rules chosen after the calibration) is
        allowed: :meth:`conformed` fills it in."""
        template = _template(spec, self.state.week, self.state.n_customers)
        for name in _array_fields():
            have, need = getattr(self.state, name).shape, getattr(template, name).shape
            if have != need and getattr(self.state, name).size:
                raise ConfigError(
                    f"starting_population: {name} has shape {have}, the world's features "
                    f"need {need}"
                )
        if self.arrival_shares.shape != (n_segments,):
            raise ConfigError(
                f"starting_population.arrival_shares has {self.arrival_shares.size} segments, "
                f"the world {n_segments}"
            )

    def conformed(self, spec: FeatureSpec) -> CustomerState:
        """The base's state under ``spec``: the parts the base does not hold (empty arrays
        where ``spec`` needs more, see :meth:`check`) are filled in, by the weeks of the
        per-channel contact ring that overlap them (contacts per channel in the last
        ``fatigue_weeks`` weeks) and zeros for the rest (older weeks, counts per action)."""
        template = _template(spec, self.state.week, self.state.n_customers)
        filled = {}
        for name in _array_fields():
            have, like = getattr(self.state, name), getattr(template, name)
            if have.shape == like.shape:
                continue
            ring = like.copy()
            if name.endswith("_ring") and ring.ndim == 3 and ring.shape[0]:
                known = self.state.contacts_ring  # (fatigue_weeks, N, C)
                c = min(known.shape[2], ring.shape[2])
                t = self.state.week
                for k in range(1, min(ring.shape[0], known.shape[0]) + 1):
                    ring[(t - k) % ring.shape[0], :, :c] = known[(t - k) % known.shape[0], :, :c]
            filled[name] = ring
        return replace(self.state, **filled) if filled else self.state

    def with_segments(self, order: Sequence[int]) -> StartingBase:
        """The base with segments renumbered for a world whose segment ``i`` is this base's
        segment ``order[i]``."""
        new_index = np.empty(len(order), np.int64)
        new_index[np.asarray(order, np.int64)] = np.arange(len(order))
        return StartingBase(
            self.state,
            new_index[self.segment],
            self.customer_id,
            self.arrivals_per_week,
            self.arrival_shares[np.asarray(order, np.int64)],
            self.arrival_weeks,
            self.as_of,
        )

    def save(self, folder: Path, segment_names: Sequence[str]) -> dict[str, Any]:
        """Write ``base.parquet`` into ``folder``; returns the ``world.yaml`` mapping
        ``starting_population`` that names it."""
        s = self.state
        n = s.n_customers
        columns: dict[str, pa.Array] = {
            "customer_id": pa.array(self.customer_id.astype(str), pa.string()),
            "segment": pa.array(np.asarray(segment_names, dtype=object)[self.segment], pa.string()),
        }
        for name in _array_fields():
            per_customer = np.ascontiguousarray(_customer_major(name, getattr(s, name)))
            if per_customer.size == 0 and n > 0:
                continue  # an empty window (no such rule): nothing to store
            if per_customer.ndim == 1:
                columns[name] = pa.array(per_customer)
            else:
                flat = per_customer.reshape(n, -1)
                values = pa.array(flat.reshape(-1))
                columns[name] = pa.FixedSizeListArray.from_arrays(values, flat.shape[1])
        pq.write_table(pa.table(columns), str(folder / BASE_FILE))
        return {
            "file": BASE_FILE,
            "week": int(s.week),
            "as_of": self.as_of,
            "arrivals_per_week": float(round(self.arrivals_per_week, 6)),
            "arrival_weeks": int(self.arrival_weeks),
            "arrival_shares": {
                name: float(round(float(p), 6))
                for name, p in zip(segment_names, self.arrival_shares, strict=True)
            },
        }

    @staticmethod
    def load(
        raw: Mapping[str, Any], folder: Path, spec: FeatureSpec, segment_names: Sequence[str]
    ) -> StartingBase:
        """Read the base named by the ``world.yaml`` mapping ``raw`` (see :meth:`save`)."""
        path = folder / str(raw["file"])
        if not path.is_file():
            raise ConfigError(f"{path}: the world's starting population file is missing")
        table = pq.read_table(str(path))
        n = table.num_rows
        names = [str(x) for x in table.column("segment").to_pylist()]
        unknown = sorted(set(names) - set(segment_names))
        if unknown:
            raise ConfigError(f"{path}: segments {unknown} are not the world's {segment_names}")
        lookup = {name: k for k, name in enumerate(segment_names)}
        segment = np.array([lookup[x] for x in names], np.int64)
        template = _template(spec, int(raw["week"]), n)
        arrays: dict[str, NDArray[Any]] = {}
        for name in _array_fields():
            like = getattr(template, name)
            if name not in table.column_names:
                # a base written before the state kept the last contact's action, the
                # conversion gap, each action's last week or the lifetime counts: none known
                # (no world of that time reads them)
                if like.size and name not in (
                    "last_contact_action",
                    "conversion_gap",
                    "last_action_week",
                    "n_engagements",
                    "n_contacts",
                ):
                    raise ConfigError(f"{path}: column {name} is missing")
                arrays[name] = like
                continue
            column = table.column(name).combine_chunks()
            flat = np.asarray(
                column.flatten() if pa.types.is_fixed_size_list(column.type) else column
            )
            shape = _customer_major(name, like).shape
            if flat.size != int(np.prod(shape)):
                raise ConfigError(f"{path}: {name} does not fit the world's features")
            matrix = flat.reshape(shape).astype(like.dtype)
            arrays[name] = np.ascontiguousarray(
                np.moveaxis(matrix, 0, 1) if name.endswith("_ring") else matrix
            )
        state = CustomerState(week=int(raw["week"]), **arrays)
        shares_raw = dict(raw.get("arrival_shares", {}))
        shares = np.array([float(shares_raw.get(s, 0.0)) for s in segment_names], np.float64)
        base = StartingBase(
            state=state,
            segment=segment,
            customer_id=np.asarray(table.column("customer_id").to_pylist(), dtype=str),
            arrivals_per_week=float(raw["arrivals_per_week"]),
            arrival_shares=shares / shares.sum() if shares.sum() > 0 else shares,
            arrival_weeks=int(raw.get("arrival_weeks", 0)),
            as_of=str(raw.get("as_of", "")),
        )
        base.check(spec, len(segment_names))
        return base


def arrivals(
    first_week: NDArray[np.integer],
    segment: IntArray,
    n_segments: int,
    as_of_week: int,
    window_weeks: int,
) -> tuple[float, Float, int]:
    """The weekly arrival rate and segment mix of new customers.

    Args:
        first_week: (N,) week of each known customer's first activity.
        segment: (N,) their segment index.
        n_segments: ``S``, the world's number of segments.
        as_of_week: The as-of week (customers with ``first_week`` before it are counted).
        window_weeks: Count arrivals in the last ``window_weeks`` weeks before ``as_of_week``
            (fewer when the logs are shorter).

    Returns:
        ``(arrivals_per_week, shares (S,), weeks)``: new customers per week, their segment mix
        (the whole base's mix when nobody arrived in the window) and the window's length.
    """
    first = np.asarray(first_week, np.int64)
    start = max(int(first.min(initial=as_of_week)), as_of_week - window_weeks)
    weeks = max(as_of_week - start, 1)
    new = (first >= start) & (first < as_of_week)
    counted = segment[new] if new.any() else segment
    counts = np.bincount(counted, minlength=n_segments).astype(np.float64)
    shares = counts / counts.sum() if counts.sum() > 0 else np.full(n_segments, 1.0 / n_segments)
    return float(new.sum()) / weeks, shares, weeks
