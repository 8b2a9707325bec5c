"""Realistic mess for generated logs: duplicates, identity fragments, mixed time zones and
malformed rows, each injected at a configured rate and counted for the ground truth.

The functions work on row plans (integer arrays) rather than strings, so 100k customers' logs
are messed up in a few vectorised passes; :mod:`journeyopt.sim.render` turns the plans into text.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from journeyopt.sim.config import MessConfig

IntArray = NDArray[np.int64]

MALFORMED_KINDS: tuple[str, ...] = (
    "unparseable_date",
    "negative_amount",
    "non_numeric_amount",
    "unknown_event_type",
    "empty_customer_ref",
)
UNPARSEABLE_DATES: tuple[str, ...] = ("not a date", "2023-02-30 10:00:00", "31.13.2023 25:61")
NON_NUMERIC_AMOUNTS: tuple[str, ...] = ("n/a", "twelve", "12,50 EUR")
UNKNOWN_EVENT_TYPES: tuple[str, ...] = ("coffee_order", "legacy_promo_view", "printer_credit")

# timestamp styles of a rendered row
NAIVE_LOCAL, UTC_Z, PLUS_ONE = 0, 1, 2


class Fragments(NamedTuple):
    """Second customer references of some persons.

    Attributes:
        person: (F,) person index of each fragment.
        by_phone: (F,) the fragment carries the person's phone number formatted differently
            (otherwise a variant of the e-mail address).
        variant: (F,) which variant of the identifier (0..3).
    """

    person: IntArray
    by_phone: NDArray[np.bool_]
    variant: IntArray


def draw_fragments(
    has_phone: NDArray[np.bool_], rate: float, rng: np.random.Generator
) -> Fragments:
    """Pick ``round(rate * n_persons)`` persons who get a second reference."""
    n = has_phone.shape[0]
    person = np.sort(rng.choice(n, size=round(rate * n), replace=False)).astype(np.int64)
    by_phone = has_phone[person] & (rng.random(person.shape[0]) < 0.5)
    variant = np.asarray(rng.integers(0, 4, size=(person.shape[0],)), np.int64)
    return Fragments(person, by_phone, variant)


def fragment_refs(
    customer: IntArray,
    n_persons: int,
    fragments: Fragments,
    share: float,
    rng: np.random.Generator,
) -> IntArray:
    """(M,) reference index of each event: the person's own (``customer``) or, for a share of a
    fragmented person's events, the fragment's (``n_persons + fragment index``)."""
    fragment_of = np.full(n_persons, -1, np.int64)
    fragment_of[fragments.person] = np.arange(fragments.person.shape[0])
    frag = fragment_of[customer]
    moved = (frag >= 0) & (rng.random(customer.shape[0]) < share)
    return np.where(moved, n_persons + frag, customer).astype(np.int64)


class EventRows(NamedTuple):
    """The plan of the rows of ``events.csv``, each (R,).

    Attributes:
        source: Clean event the row comes from.
        seconds: Seconds since the origin (the row's true instant; malformed rows keep their
            source's, for ordering).
        ref: Reference index (``-1``: empty reference).
        event_id: Event id number.
        style: Timestamp style (``NAIVE_LOCAL``, ``UTC_Z``, ``PLUS_ONE``).
        malformed: Index into :data:`MALFORMED_KINDS`, -1 for a well-formed row.
        variant: Which bad value a malformed row carries (0..2).
    """

    source: IntArray
    seconds: IntArray
    ref: IntArray
    event_id: IntArray
    style: IntArray
    malformed: IntArray
    variant: IntArray


def timestamp_styles(n: int, rate: float, rng: np.random.Generator) -> IntArray:
    """(n,) timestamp style of each row: an explicit offset with probability ``rate``."""
    offset = rng.random(n) < rate
    style = np.where(offset, np.where(rng.random(n) < 0.5, UTC_Z, PLUS_ONE), NAIVE_LOCAL)
    return style.astype(np.int64)


def plan_event_rows(
    seconds: IntArray, refs: IntArray, mess: MessConfig, rng: np.random.Generator
) -> tuple[EventRows, dict[str, int]]:
    """Rows of ``events.csv`` for ``M`` clean events with duplicates and malformed rows.

    Args:
        seconds: (M,) instant of each clean event, seconds since the origin.
        refs: (M,) reference index of each clean event (after identity fragments).
        mess: The rates.
        rng: Source of randomness.

    Returns:
        ``(rows, counts)``: the row plan in file order (by instant; copies right after their
        source) and the number of injected rows per kind of mess.
    """
    m = seconds.shape[0]
    order = rng.permutation(m)
    n_exact = round(mess.exact_duplicate_rate * m)
    n_near = min(round(mess.near_duplicate_rate * m), m - n_exact)
    exact, near = order[:n_exact], order[n_exact : n_exact + n_near]
    n_bad = round(mess.malformed_rate * m) if m else 0
    bad_kind = np.repeat(
        np.arange(len(MALFORMED_KINDS)),
        rng.multinomial(n_bad, np.full(len(MALFORMED_KINDS), 1 / len(MALFORMED_KINDS))),
    )
    bad = rng.integers(0, max(m, 1), n_bad)

    style = timestamp_styles(m, mess.offset_timestamp_rate, rng)
    delay = rng.integers(1, mess.near_duplicate_max_seconds + 1, n_near)
    source = np.concatenate([np.arange(m), exact, near, bad]).astype(np.int64)
    rows = EventRows(
        source=source,
        seconds=np.concatenate([seconds, seconds[exact], seconds[near] + delay, seconds[bad]]),
        ref=np.concatenate([refs, refs[exact], refs[near], refs[bad]]),
        event_id=np.concatenate(
            [np.arange(m), exact, m + np.arange(n_near), m + n_near + np.arange(n_bad)]
        ).astype(np.int64),
        style=np.concatenate(
            [style, style[exact], timestamp_styles(n_near + n_bad, mess.offset_timestamp_rate, rng)]
        ),
        malformed=np.concatenate([np.full(m + n_exact + n_near, -1), bad_kind]).astype(np.int64),
        variant=np.concatenate(
            [np.zeros(m + n_exact + n_near, np.int64), rng.integers(0, 3, n_bad)]
        ),
    )
    rows = rows._replace(
        ref=np.where(rows.malformed == MALFORMED_KINDS.index("empty_customer_ref"), -1, rows.ref)
    )
    file_order = np.argsort(rows.seconds, kind="stable")
    rows = EventRows(*(np.asarray(x)[file_order] for x in rows))
    counts = {
        "exact_duplicate_events": int(n_exact),
        "near_duplicate_events": int(n_near),
        **{f"malformed_{k}": int((bad_kind == i).sum()) for i, k in enumerate(MALFORMED_KINDS)},
    }
    return rows, counts
