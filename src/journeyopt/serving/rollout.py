"""The arms of a staged rollout: which policy decides for a customer.

- ``control``: the A/B holdout (:mod:`journeyopt.serving.holdout`), today's practice;
- ``canary``: during a canary, the treatment customers whose salted hash
  (:func:`journeyopt.serving.holdout.hash_unit` with ``serve.rollout.salt``) falls below the
  canary share: the newly promoted champion;
- ``previous``: the rest of the treatment group during a canary: the champion it replaced;
- ``full``: the whole treatment group on the champion (no canary in progress).

The canary hash uses its own salt, so the canary is an independent random share of the
treatment group, stable across weeks, processes and the API and batch scorer. The arm is
recorded in the decision log (column ``arm``), where :mod:`journeyopt.monitoring.rollout`
reads it back.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from journeyopt.serving.holdout import hash_unit

CONTROL_ARM = "control"
FULL_ARM = "full"
CANARY_ARM = "canary"
PREVIOUS_ARM = "previous"
ARMS: tuple[str, ...] = (CONTROL_ARM, FULL_ARM, CANARY_ARM, PREVIOUS_ARM)
"""Arm names; an arm code is an index into this tuple."""


def canary_customers(
    customer_ids: Iterable[str], salt: str, canary_share: float
) -> NDArray[np.bool_]:
    """(N,) True for customers whose canary hash is below ``canary_share`` (about that share
    of any set of customers, whatever their holdout group)."""
    return hash_unit(customer_ids, salt) < canary_share


def arm_codes(control: NDArray[np.bool_], canary: NDArray[np.bool_] | None) -> NDArray[np.int8]:
    """(N,) arm codes (indices into :data:`ARMS`) of customers in the control group
    ``control`` and, during a canary, the canary hash ``canary`` (None: no canary, every
    treatment customer is ``full``)."""
    codes = np.full(control.shape[0], ARMS.index(FULL_ARM), np.int8)
    if canary is not None:
        codes[:] = np.where(canary, ARMS.index(CANARY_ARM), ARMS.index(PREVIOUS_ARM))
    codes[control] = ARMS.index(CONTROL_ARM)
    return codes
