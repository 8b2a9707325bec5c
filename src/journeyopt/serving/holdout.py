"""The A/B holdout: a stable, salted hash of ``customer_id`` puts a share of customers into a
control group that gets today's staff rules instead of the policy.

A customer's group depends only on the salt and the id: the same customer is in the same group
in the API, in the batch scorer, in every week and on every machine, so the real uplift of the
policy over the staff rules can be measured later from the decision log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

TREATMENT = "treatment"
CONTROL = "control"
GROUPS: tuple[str, ...] = (TREATMENT, CONTROL)

_MANTISSA = 2.0**-53


def hash_unit(customer_ids: Iterable[str], salt: str) -> NDArray[np.float64]:
    """(N,) a uniform number in [0, 1) per customer: the first 8 bytes of
    ``blake2b(salt + "\\x00" + customer_id)`` (little endian), top 53 bits.

    blake2b is used rather than a faster non-cryptographic hash because its output is fixed
    by its specification: any other tool can recompute the groups.
    """
    key = salt.encode() + b"\x00"
    blake2b = hashlib.blake2b
    digests = b"".join(
        [blake2b(key + str(c).encode(), digest_size=8).digest() for c in customer_ids]
    )
    words = np.frombuffer(digests, dtype="<u8")
    return (words >> np.uint64(11)).astype(np.float64) * _MANTISSA


def control_group(
    customer_ids: Iterable[str], salt: str, control_share: float
) -> NDArray[np.bool_]:
    """(N,) True for customers in the control group (about ``control_share`` of them)."""
    return hash_unit(customer_ids, salt) < control_share


def group_names(control: NDArray[np.bool_]) -> NDArray[np.object_]:
    """(N,) ``"control"`` or ``"treatment"``."""
    return np.where(control, CONTROL, TREATMENT).astype(object)
