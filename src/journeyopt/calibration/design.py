"""Design matrices of the response models: sparse one-hot features of (discrete state, action,
week of year), with action x state interactions.

Every response model of a calibrated world is a generalised linear model on the same columns
(``S`` segments, ``C`` contact channels, caps from :class:`~journeyopt.sim.world.DiscreteSpec`):

- state, per segment: intercept; lifetime conversions (``0..K``); weeks since the last
  conversion one-hot (``1..R``; ``1..B`` with ``recency_bins_weeks = B``, recencies of ``B``
  or more sharing ``B``'s column) plus a smooth trend ``log(recency)`` overall and per
  conversions level (so recencies without support follow the trend instead of the intercept);
  weeks since the last engagement and since the last contact one-hot; opt-out bits;
- tenure (only when the world tracks it, ``tenure_cap_weeks > 0``), per segment and
  conversions level: ``log(1 + tenure)`` and the relative recency
  ``log((1 + tenure) / (1 + tenure - recency))``. Smooth terms, not one-hot: a cohort's
  hold-out reaches ages the calibration weeks never saw, and these are the two quantities a
  latent-rate model's posterior purchase rate depends on (BG/NBD: the rate falls with age
  ``T`` given the purchases, the probability of being alive falls with the share of ``T``
  spent since the last purchase), so the fit extrapolates along them;
- action (each contact action ``a >= 1``): a main effect; per segment; per segment x weeks since
  the last contact (fatigue); per segment x lifecycle (prospect, recent customer, lapsed =
  recency at the cap); x "engaged recently" (engagement below its cap);
- contact pattern (only when the state keeps it, ``contact_pattern_weeks = W > 0``): the
  number of weeks with a contact among the last ``W`` (any channel, ``0..W``)
  one-hot per segment, and per contact action (fatigue by the count of recent contacts);
- last action (only when the state keeps it): the last contact's action x weeks since the
  contact one-hot (``1..`` the contact cap) per segment (a delayed effect that depends on
  which action was taken);
- previous gap between conversions (only when the state keeps it, ``gap_cap_weeks > 0``;
  rows with two or more conversions): the gap bin one-hot per segment, the gap bin x weeks
  since the last conversion one-hot (``1..R``) and x ``log(recency)`` pooled over segments (a
  purchase cycle whose length the gap reveals: the hazard peaks at another recency), and per
  contact action (customers of different cycles respond differently to contacts);
- purchase rate (only when ``rate_levels = L > 0``; rows of customers), per segment, smooth
  across lifetime-conversion levels: ``log n``, ``log(n / (1 + tenure))`` (the customer's own
  conversions per week of tenure; only when the world tracks tenure) and ``log n *
  log(recency)``; the per-level columns above (conversions, ``log(recency)``, tenure) are kept
  for levels ``0..L`` and shared by the levels above ``L``. Per-level columns shrink toward
  zero, i.e. a level with few customers (the heaviest buyers) toward the pooled level; with
  these its prediction follows the trend over levels instead (a latent purchase rate, as
  BG/NBD's posterior reads it from the count and the age);
- season (optional, last): ISO week of year one-hot ``1..53``.

Regularisation (an L2 penalty) shrinks unsupported one-hot columns to zero, i.e. to the pooled
effect of their group, so every (state, action) has a defined, smooth prediction; positivity
problems are reported separately (:mod:`journeyopt.calibration.support`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from journeyopt.sim.discrete import DiscreteLayout, Summary, pattern_contacts

IntArray = NDArray[np.int64]
Float = NDArray[np.float64]

N_WEEKS_OF_YEAR = 53
LIGHT_PENALTY = 0.01
"""Penalty factor of the segment intercepts and the actions' main effects."""
ACTION_INTERACTIONS: tuple[str, ...] = (
    "action_segment",
    "action_fatigue",
    "action_lifecycle",
    "action_engaged",
    "action_pattern",
    "last_action_contact",
    "action_gap",
)
"""The blocks of the actions' effects beyond their main effects (an action x state
interaction, or the last contact's action x the weeks since it), whose penalty factor
``calibration.action_penalty`` may lighten (:meth:`Design.penalty_scale`)."""


@dataclass(frozen=True)
class Design:
    """Column layout of the response models of one discrete layout and action catalogue.

    Attributes:
        layout: Discrete state numbering (caps, ``S``, ``C``).
        n_actions: ``A``, ``none`` included.
        seasonal: Whether the week-of-year columns are appended.
        silent_channels: Indices of the channels no action uses; their opt-out bits do not
            enter the models (their columns stay zero): an opt-out of a channel the business
            never contacts through cannot change a response, and declaring such a channel
            must not change the world.
    """

    layout: DiscreteLayout
    n_actions: int
    seasonal: bool
    silent_channels: tuple[int, ...] = ()

    @property
    def _blocks(self) -> dict[str, int]:
        """Width of each block of columns, in order."""
        s = self.layout.spec
        n_seg, n_ch, n_c = self.layout.n_segments, self.layout.n_channels, self.n_actions - 1
        return {
            "segment": n_seg,
            "conversions": n_seg * (s.conversions_cap + 1),
            "recency": n_seg * s.recency_columns,
            "log_recency": n_seg * (s.conversions_cap + 1),
            "engagement": n_seg * s.engagement_cap_weeks,
            "contact": n_seg * s.contact_cap_weeks,
            "optout": n_seg * n_ch,
            "log_tenure": n_seg * (s.conversions_cap + 1) * (s.tenure_cap_weeks > 0),
            "relative_recency": n_seg * (s.conversions_cap + 1) * (s.tenure_cap_weeks > 0),
            "action": n_c,
            "action_segment": n_c * n_seg,
            "action_fatigue": n_c * n_seg * s.contact_cap_weeks,
            "action_lifecycle": n_c * n_seg * 3,
            "action_engaged": n_c,
            "pattern_count": n_seg * (s.contact_pattern_weeks + 1) * (s.contact_pattern_weeks > 0),
            "action_pattern": n_c * (s.contact_pattern_weeks + 1) * (s.contact_pattern_weeks > 0),
            "last_action_contact": n_seg * self._n_last * s.contact_cap_weeks * s.last_action,
            "gap": n_seg * s.n_gap_bins * (s.gap_cap_weeks > 0),
            "gap_recency": s.n_gap_bins * s.recency_columns * (s.gap_cap_weeks > 0),
            "gap_log_recency": s.n_gap_bins * (s.gap_cap_weeks > 0),
            "action_gap": n_c * s.n_gap_bins * (s.gap_cap_weeks > 0),
            "purchase_rate": n_seg * 3 * (s.rate_levels > 0),
        }

    @property
    def _n_last(self) -> int:
        """Values of a known last (lasting) action: the catalogue's contacts, or the lasting
        actions when the summary keeps them (:attr:`DiscreteSpec.lasting_actions`)."""
        lasting = self.layout.spec.lasting_actions
        return len(lasting) if lasting else self.n_actions - 1

    def penalty_scale(
        self, width: int | None = None, action_factor: float = 1.0
    ) -> NDArray[np.float64]:
        """(width,) factor on the L2 penalty of each column (default all columns): the
        segment intercepts and the actions' main effects get :data:`LIGHT_PENALTY`, so
        per-segment and per-state deviations shrink toward the pooled effect rather than
        toward zero (the main effects carry most of the data on each action); the blocks of
        :data:`ACTION_INTERACTIONS` get ``action_factor`` (``calibration.action_penalty``;
        1: as every other column), every other column 1."""
        scale = np.ones(self.n_columns)
        offsets = np.cumsum([0, *self._blocks.values()])
        for k, name in enumerate(self._blocks):
            if name in ("segment", "action"):
                scale[offsets[k] : offsets[k + 1]] = LIGHT_PENALTY
            elif name in ACTION_INTERACTIONS:
                scale[offsets[k] : offsets[k + 1]] = action_factor
        return scale[: self.n_columns if width is None else width]

    @property
    def n_state_action_columns(self) -> int:
        """Columns before the season block."""
        return sum(self._blocks.values())

    @property
    def n_columns(self) -> int:
        return self.n_state_action_columns + (N_WEEKS_OF_YEAR if self.seasonal else 0)

    def matrix(
        self, summary: Summary, actions: IntArray, week_of_year: IntArray | None = None
    ) -> sp.csr_matrix:
        """(m, n_columns) sparse design of ``m`` rows; ``week_of_year`` (m,) is required when
        :attr:`seasonal` (else ignored) and may be None to get only the state-action part."""
        s = self.layout.spec
        offsets = np.cumsum([0, *self._blocks.values()])
        start = dict(zip(self._blocks, offsets[:-1], strict=True))
        m = summary.segment.shape[0]
        seg = summary.segment
        a = np.asarray(actions, np.int64)
        customer = summary.conversions > 0
        # the per-level columns' level: with the purchase rate, counts above L share L's
        count = (
            np.minimum(summary.conversions, s.rate_levels) if s.rate_levels else summary.conversions
        )
        contacted = a > 0
        ac = np.maximum(a - 1, 0)
        n_seg = self.layout.n_segments
        r_col, c_cap, e_cap = s.recency_columns, s.contact_cap_weeks, s.engagement_cap_weeks
        # lapsed: at the last recency column (the cap without ``recency_bins_weeks``)
        stage = np.where(~customer, 0, np.where(summary.recency >= r_col, 2, 1))
        log_rec = np.log(np.maximum(summary.recency, 1)).astype(np.float64)
        # the recency's own columns stop at ``recency_columns`` (beyond: the smooth terms)
        rec_col = np.minimum(summary.recency, r_col) - 1
        parts: list[tuple[IntArray, Float, NDArray[np.bool_]]] = [
            (start["segment"] + seg, np.ones(m), np.ones(m, bool)),
            (
                start["conversions"] + seg * (s.conversions_cap + 1) + count,
                np.ones(m),
                np.ones(m, bool),
            ),
            (start["recency"] + seg * r_col + rec_col, np.ones(m), customer),
            (
                start["log_recency"] + seg * (s.conversions_cap + 1) + count,
                log_rec,
                customer,
            ),
            (
                start["engagement"] + seg * e_cap + summary.engagement - 1,
                np.ones(m),
                np.ones(m, bool),
            ),
            (start["contact"] + seg * c_cap + summary.contact - 1, np.ones(m), np.ones(m, bool)),
            (start["action"] + ac, np.ones(m), contacted),
            (start["action_segment"] + ac * n_seg + seg, np.ones(m), contacted),
            (
                start["action_fatigue"] + (ac * n_seg + seg) * c_cap + summary.contact - 1,
                np.ones(m),
                contacted,
            ),
            (start["action_lifecycle"] + (ac * n_seg + seg) * 3 + stage, np.ones(m), contacted),
            (start["action_engaged"] + ac, np.ones(m), contacted & (summary.engagement < e_cap)),
        ]
        if s.tenure_cap_weeks > 0:
            level = start["log_tenure"] + seg * (s.conversions_cap + 1) + count
            tenure = np.broadcast_to(np.asarray(summary.tenure, np.float64), (m,))
            gap = np.maximum(tenure - summary.recency, 0.0)
            parts.append((level, np.log1p(tenure), np.ones(m, bool)))
            parts.append(
                (
                    level - start["log_tenure"] + start["relative_recency"],
                    np.log1p(tenure) - np.log1p(gap),
                    customer,
                )
            )
        if s.contact_pattern_weeks > 0:
            w1 = s.contact_pattern_weeks + 1
            pattern = np.broadcast_to(np.asarray(summary.pattern, np.int64), (m,))
            count = pattern_contacts(pattern, s, self.layout.n_channels)
            parts.append((start["pattern_count"] + seg * w1 + count, np.ones(m), np.ones(m, bool)))
            parts.append((start["action_pattern"] + ac * w1 + count, np.ones(m), contacted))
        if s.last_action:
            last = np.broadcast_to(np.asarray(summary.last_action, np.int64), (m,))
            cell = (seg * self._n_last + np.maximum(last - 1, 0)) * c_cap
            # weeks since that action: the last contact's, or the last lasting contact's
            since = summary.lasting if s.lasting_actions else summary.contact
            parts.append((start["last_action_contact"] + cell + since - 1, np.ones(m), last > 0))
        if s.gap_cap_weeks > 0:
            gap = np.maximum(np.broadcast_to(np.asarray(summary.gap, np.int64), (m,)) - 1, 0)
            repeat = customer & (summary.conversions >= 2)
            n_gap = s.n_gap_bins
            parts.append((start["gap"] + seg * n_gap + gap, np.ones(m), repeat))
            parts.append((start["gap_recency"] + gap * r_col + rec_col, np.ones(m), repeat))
            parts.append((start["gap_log_recency"] + gap, log_rec, repeat))
            parts.append((start["action_gap"] + ac * n_gap + gap, np.ones(m), repeat & contacted))
        if s.rate_levels:
            log_n = np.log(np.maximum(summary.conversions, 1)).astype(np.float64)
            tenure = np.broadcast_to(np.asarray(summary.tenure, np.float64), (m,))
            col = start["purchase_rate"] + seg * 3
            parts.append((col, log_n, customer))
            parts.append((col + 1, log_n - np.log1p(tenure), customer & (s.tenure_cap_weeks > 0)))
            parts.append((col + 2, log_n * log_rec, customer))
        for j in range(self.layout.n_channels):
            if j in self.silent_channels:
                continue
            bit = (summary.optout >> j) & 1 == 1
            parts.append((start["optout"] + seg * self.layout.n_channels + j, np.ones(m), bit))
        if self.seasonal and week_of_year is not None:
            woy = np.asarray(week_of_year, np.int64)
            parts.append((self.n_state_action_columns + woy - 1, np.ones(m), np.ones(m, bool)))
        width = self.n_columns if week_of_year is not None else self.n_state_action_columns
        return _by_rows(parts, m, width)

    def all_state_actions(self) -> sp.csr_matrix:
        """(n_states * A, n_state_action_columns) design of every (state, action), row
        ``state * A + action`` (the layout of the world's response tables)."""
        states = self.layout.all_states()
        n = self.layout.n_states
        rep = Summary(*(np.repeat(x, self.n_actions) for x in states))
        actions = np.tile(np.arange(self.n_actions, dtype=np.int64), n)
        return self.matrix(rep, actions)


def _by_rows(
    parts: list[tuple[IntArray, Float, NDArray[np.bool_]]], m: int, width: int
) -> sp.csr_matrix:
    """(m, width) CSR matrix of ``parts``: each part gives a column (m,) and a value (m,) to
    the rows it keeps (m,), and its columns lie in a block of its own (no two parts share a
    column). The entries are laid out row by row directly, a row's parts in the order of
    their blocks: the sorted (canonical) CSR a COO ``(values, (rows, columns))`` converts
    to, array for array, without sorting every row's entries (the design of millions of
    customer-weeks spent most of its time there)."""
    kept = [(col[keep], val[keep], keep) for col, val, keep in parts if keep.any()]
    kept.sort(key=lambda part: int(part[0].min()))  # the blocks' order
    counts = np.zeros(m, np.int64)
    for _, _, keep in kept:
        counts += keep
    indptr = np.zeros(m + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    nnz = int(indptr[-1])
    index = np.int32 if max(nnz, m, width) <= np.iinfo(np.int32).max else np.int64
    indices = np.empty(nnz, index)
    data = np.empty(nnz, np.float64)
    at = indptr[:-1].copy()  # each row's next free entry
    for col, val, keep in kept:
        where = at[keep]
        indices[where] = col
        data[where] = val
        at += keep
    matrix = sp.csr_matrix((data, indices, indptr.astype(index)), shape=(m, width))
    if not matrix.has_canonical_format:  # parts sharing a column: summed, as COO would
        matrix.sum_duplicates()
    return matrix
