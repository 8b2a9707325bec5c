"""Render a simulated history as raw tables in the coworking source format, with mess.

Raw columns (see ``configs/data/coworking.yaml``):

- ``events.csv``: ``event_id, customer_ref, timestamp, event_type, channel, amount``
- ``contacts.csv``: ``customer_ref, timestamp, action, channel, cost, propensity, campaign``
- ``identities.csv``: ``customer_ref, email, phone, crm_id``
- ``customers.csv``: ``customer_ref, customer_type, company_size, signup_date,
  acquisition_channel``

Timestamps are naive Europe/Berlin local time unless written with an explicit offset. Within a
week (Monday 00:00 UTC onwards) contacts go out Monday or Tuesday 08:00-11:00 UTC and customer
events happen Tuesday to Sunday 12:00-19:00 UTC, so every response follows its contact and no
local time falls in a daylight-saving gap or overlap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from journeyopt.sim.config import GenerateConfig
from journeyopt.sim.mess import (
    MALFORMED_KINDS,
    NAIVE_LOCAL,
    NON_NUMERIC_AMOUNTS,
    PLUS_ONE,
    UNKNOWN_EVENT_TYPES,
    UNPARSEABLE_DATES,
    UTC_Z,
    Fragments,
    draw_fragments,
    fragment_refs,
    plan_event_rows,
    timestamp_styles,
)
from journeyopt.sim.population import event_kinds
from journeyopt.sim.world import WorldSpec

if TYPE_CHECKING:
    from journeyopt.sim.logs import Simulation

IntArray = NDArray[np.int64]
WEEK_S = 7 * 24 * 3600
DAY_S = 24 * 3600
HOUR_S = 3600
FIRST_NAMES = np.array(["anna", "ben", "clara", "deniz", "emil", "fatma", "jonas", "lea", "mia"])
LAST_NAMES = np.array(["schmidt", "weber", "yilmaz", "nowak", "fischer", "meyer", "wagner"])


@dataclass(frozen=True)
class RawTables:
    """The raw tables as written: Arrow tables of strings with the source's column names."""

    events: pa.Table
    contacts: pa.Table
    identities: pa.Table
    customers: pa.Table


@dataclass(frozen=True)
class Truth:
    """What ingestion should recover from the logs (written as ``truth.json``).

    Attributes:
        seed, start_date, weeks: How the logs were generated.
        n_persons: True customers (after identity resolution).
        person_of_ref: Raw ``customer_ref`` -> true person index.
        fragment_refs: The second references of fragmented persons (sorted).
        events: Distinct true events (``events.csv`` rows minus injected duplicates and
            malformed rows).
        events_by_type: Distinct true events per ``event_type``.
        conversions, revenue: True conversions and their total amount (currency).
        contact_rows: Rows of ``contacts.csv`` (``none`` decisions included).
        contacts: Rows of ``contacts.csv`` that are real contacts (action other than ``none``).
        mess: Injected rows per kind of mess: ``exact_duplicate_events``,
            ``near_duplicate_events``, ``malformed_<kind>``, ``identity_fragments``,
            ``events_under_fragments``, ``offset_timestamp_events``,
            ``offset_timestamp_contacts``.
    """

    seed: int
    start_date: str
    weeks: int
    n_persons: int
    person_of_ref: dict[str, int]
    fragment_refs: list[str]
    events: int
    events_by_type: dict[str, int]
    conversions: int
    revenue: float
    contact_rows: int
    contacts: int
    mess: dict[str, int] = field(default_factory=dict)

    @property
    def malformed_rows(self) -> int:
        """Injected malformed rows of ``events.csv`` (all kinds)."""
        return sum(self.mess.get(f"malformed_{k}", 0) for k in MALFORMED_KINDS)

    @property
    def duplicate_rows(self) -> int:
        """Injected exact and near duplicates of events."""
        return self.mess["exact_duplicate_events"] + self.mess["near_duplicate_events"]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["malformed_rows"] = self.malformed_rows
        out["duplicate_rows"] = self.duplicate_rows
        return out


def _str(values: NDArray[Any] | list[str]) -> pa.Array:
    return pa.array(np.asarray(values, dtype=object), type=pa.string())


def _lookup(vocabulary: NDArray[Any] | list[str], index: NDArray[np.integer]) -> pa.Array:
    """``vocabulary[index]`` as an Arrow string array, without a Python string per row."""
    return _str(np.asarray(vocabulary).ravel()).take(pa.array(np.asarray(index, np.int64)))


def render_timestamps(origin: pd.Timestamp, seconds: IntArray, style: IntArray) -> pa.Array:
    """(R,) timestamp strings of instants ``origin + seconds`` in the given styles: naive
    Europe/Berlin local time, ``...Z`` (UTC) or ``...+01:00``."""
    utc = pd.DatetimeIndex(origin.tz_convert(None) + pd.to_timedelta(seconds, unit="s"))
    local = utc.tz_localize("UTC").tz_convert("Europe/Berlin").tz_localize(None)
    shown = np.where(
        style == PLUS_ONE,
        (utc + pd.Timedelta(hours=1)).to_numpy("datetime64[s]"),
        np.where(style == UTC_Z, utc.to_numpy("datetime64[s]"), local.to_numpy("datetime64[s]")),
    )
    text = pc.cast(pa.array(shown.astype("datetime64[s]")), pa.string())
    iso = pc.replace_substring(text, " ", "T")
    suffix = np.where(style == UTC_Z, "Z", np.where(style == PLUS_ONE, "+01:00", ""))
    return pc.if_else(
        pa.array(style == NAIVE_LOCAL), text, pc.binary_join_element_wise(iso, _str(suffix), "")
    )


def _refs(n_refs: int, rng: np.random.Generator) -> NDArray[np.str_]:
    """Customer references ``C100001``... in random order (fragments look like anyone)."""
    numbers = 100001 + rng.permutation(n_refs)
    return np.char.add("C", numbers.astype(str))


class Identifiers(NamedTuple):
    """Raw identifiers of ``n`` persons, each (n,): e-mail, phone digits after the country
    code (``30 2000123``), whether the person gave a phone number, CRM id."""

    email: NDArray[np.str_]
    digits: NDArray[np.str_]
    has_phone: NDArray[np.bool_]
    crm: NDArray[np.str_]


def _identifiers(n: int, rng: np.random.Generator) -> Identifiers:
    """Unique identifiers of ``n`` persons (``example.*`` domains, Berlin numbers)."""
    first = FIRST_NAMES[rng.integers(0, FIRST_NAMES.size, n)]
    last = LAST_NAMES[rng.integers(0, LAST_NAMES.size, n)]
    number = np.arange(n).astype(str)
    domain = np.array(["@example.com", "@example.org", "@example.net"])[rng.integers(0, 3, n)]
    email = np.char.add(np.char.add(np.char.add(np.char.add(first, "."), last), number), domain)
    digits = np.char.add("30 ", (2_000_000 + rng.permutation(n)).astype(str))
    has_phone = rng.random(n) < 0.7
    crm = np.char.add("CRM-", (500000 + rng.permutation(n)).astype(str))
    return Identifiers(email, digits, has_phone, crm)


def _email_variant(email: NDArray[np.str_], variant: IntArray) -> NDArray[np.str_]:
    if email.size == 0:
        return email
    local = np.char.partition(email, "@")
    plus = np.char.add(np.char.add(local[:, 0], "+offers@"), local[:, 2])
    return np.where(
        variant == 0,
        np.char.upper(email),
        np.where(
            variant == 1,
            np.char.add(np.char.add("  ", email), " "),
            np.where(variant == 2, plus, np.char.title(email)),
        ),
    )


def _phone_variant(digits: NDArray[np.str_], variant: IntArray) -> NDArray[np.str_]:
    if digits.size == 0:
        return digits
    area_number = np.char.partition(digits, " ")
    area, number = area_number[:, 0], area_number[:, 2]
    return np.where(
        variant == 0,
        np.char.add(np.char.add("0", area), np.char.add(" ", number)),
        np.where(
            variant == 1,
            np.char.add(np.char.add("+49-", area), np.char.add("-", number)),
            np.where(
                variant == 2,
                np.char.add("0049 ", digits),
                np.char.add(np.char.add("(0", area), np.char.add(") ", number)),
            ),
        ),
    )


def _identity_tables(
    world: WorldSpec,
    sim: Simulation,
    refs: NDArray[np.str_],
    fragments: Fragments,
    first_seconds: IntArray,
    ids: Identifiers,
) -> tuple[pa.Table, pa.Table]:
    n = sim.customers.n
    email, digits, has_phone, crm = ids
    phone = np.where(has_phone, np.char.add("+49 ", digits), "")
    f = fragments.person
    frag_email = np.where(fragments.by_phone, "", _email_variant(email[f], fragments.variant))
    frag_phone = np.where(fragments.by_phone, _phone_variant(digits[f], fragments.variant), "")
    identities = pa.table(
        {
            "customer_ref": _str(refs),
            "email": _str(np.concatenate([email, frag_email])),
            "phone": _str(np.concatenate([phone, frag_phone])),
            "crm_id": _str(np.concatenate([crm, np.full(f.size, "")])),
        }
    )
    person = np.concatenate([np.arange(n), f])
    signup = pd.DatetimeIndex(
        sim.origin.tz_convert(None) + pd.to_timedelta(first_seconds[person], unit="s")
    )
    signup_local = signup.tz_localize("UTC").tz_convert("Europe/Berlin").strftime("%Y-%m-%d")
    c = sim.customers
    customers = pa.table(
        {
            "customer_ref": _str(refs),
            "customer_type": _str(np.array(world.segment_names)[c.segment[person]]),
            "company_size": _str(c.company_size[person]),
            "signup_date": _str(np.asarray(signup_local)),
            "acquisition_channel": _str(c.acquisition[person]),
        }
    )
    order = np.argsort(refs, kind="stable")
    return identities.take(order), customers.take(order)


def _event_table(
    world: WorldSpec, sim: Simulation, refs: NDArray[np.str_], event_refs: IntArray,
    seconds: IntArray, cfg: GenerateConfig, rng: np.random.Generator,
) -> tuple[pa.Table, dict[str, int]]:  # fmt: skip
    rows, counts = plan_event_rows(seconds, event_refs, cfg.mess, rng)
    ev = sim.events
    kinds = np.array(event_kinds(world))
    kind = kinds[ev.kind[rows.source]]
    channel = np.array([*world.channels, ""])[ev.channel[rows.source]]
    value = ev.value[rows.source]
    amount = np.where(value > 0, pc.cast(pa.array(value), pa.string()).to_numpy(False), "")
    bad = rows.malformed
    v = rows.variant
    kind = np.where(bad == 3, np.array(UNKNOWN_EVENT_TYPES)[v], kind)
    amount = np.where(
        bad == 1,
        np.char.add("-", np.where(value > 0, amount, "10")),
        np.where(bad == 2, np.array(NON_NUMERIC_AMOUNTS)[v], amount),
    )
    stamp = render_timestamps(sim.origin, rows.seconds, rows.style).to_numpy(False)
    stamp = np.where(bad == 0, np.array(UNPARSEABLE_DATES)[v], stamp)
    ids = pc.utf8_lpad(pc.cast(pa.array(rows.event_id + 1), pa.string()), 8, "0")
    table = pa.table(
        {
            "event_id": pc.binary_join_element_wise("E", ids, ""),
            "customer_ref": _lookup(
                np.append(refs, ""), np.where(rows.ref >= 0, rows.ref, refs.size)
            ),
            "timestamp": _str(stamp),
            "event_type": _str(kind),
            "channel": _str(channel),
            "amount": _str(amount),
        }
    )
    counts["offset_timestamp_events"] = int(((rows.style != NAIVE_LOCAL) & (bad != 0)).sum())
    return table, counts


def _contact_table(
    world: WorldSpec, sim: Simulation, refs: NDArray[np.str_], cfg: GenerateConfig,
    rng: np.random.Generator,
) -> tuple[pa.Table, int]:  # fmt: skip
    d = sim.decisions
    m = d.customer.shape[0]
    seconds = (
        d.week * WEEK_S + rng.integers(0, 2, m) * DAY_S + rng.integers(8 * HOUR_S, 11 * HOUR_S, m)
    )
    order = np.argsort(seconds, kind="stable")
    seconds, customer, action, propensity = (
        seconds[order], d.customer[order], d.action[order], d.propensity[order],
    )  # fmt: skip
    style = timestamp_styles(m, cfg.mess.offset_timestamp_rate, rng)
    names = np.array(world.actions.names)
    week_start = (sim.origin + pd.to_timedelta(np.arange(sim.weeks) * 7, unit="D")).strftime(
        "%Y-%m-%d"
    )
    campaigns = np.char.add(np.char.add(names[:, None], "-"), np.asarray(week_start)[None, :])
    campaigns[0, :] = ""
    table = pa.table(
        {
            "customer_ref": _lookup(refs, customer),
            "timestamp": render_timestamps(sim.origin, seconds, style),
            "action": _lookup(names, action),
            "channel": _lookup(list(world.actions.channels), action),
            "cost": _lookup([str(c) for c in world.actions.costs], action),
            "propensity": pc.cast(pa.array(propensity), pa.string()),
            "campaign": _lookup(campaigns, action * sim.weeks + d.week[order]),
        }
    )
    return table, int((style != NAIVE_LOCAL).sum())


def _event_seconds(sim: Simulation, rng: np.random.Generator) -> IntArray:
    """(M,) instants of the clean events: Tuesday to Sunday, 12:00-19:00 UTC of their week."""
    m = sim.events.week.shape[0]
    return (
        sim.events.week * WEEK_S
        + rng.integers(1, 7, m) * DAY_S
        + rng.integers(12 * HOUR_S, 19 * HOUR_S, m)
    ).astype(np.int64)


def render_tables(
    world: WorldSpec, sim: Simulation, cfg: GenerateConfig, rng: np.random.Generator
) -> tuple[RawTables, Truth]:
    """The raw tables of a simulated history with ``cfg.mess``, and their ground truth."""
    n = sim.customers.n
    ev = sim.events
    seconds = _event_seconds(sim, rng)
    first_seconds = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_seconds, ev.customer, seconds)
    ids = _identifiers(n, rng)
    fragments = draw_fragments(ids.has_phone, cfg.mess.identity_fragment_rate, rng)
    refs = _refs(n + fragments.person.shape[0], rng)
    event_refs = fragment_refs(ev.customer, n, fragments, cfg.mess.fragment_event_share, rng)
    identities, customers = _identity_tables(world, sim, refs, fragments, first_seconds, ids)
    events, counts = _event_table(world, sim, refs, event_refs, seconds, cfg, rng)
    contacts, offset_contacts = _contact_table(world, sim, refs, cfg, rng)

    kinds = event_kinds(world)
    by_type = np.bincount(ev.kind, minlength=len(kinds))
    conv = ev.kind < len(world.kinds)
    person = np.concatenate([np.arange(n), fragments.person])
    truth = Truth(
        seed=cfg.seed,
        start_date=cfg.start_date,
        weeks=cfg.weeks,
        n_persons=n,
        person_of_ref={str(r): int(p) for r, p in zip(refs, person, strict=True)},
        fragment_refs=sorted(str(r) for r in refs[n:]),
        events=int(ev.kind.shape[0]),
        events_by_type={k: int(c) for k, c in zip(kinds, by_type, strict=True) if c},
        conversions=int(conv.sum()),
        revenue=round(float(ev.value[conv].sum()), 2),
        contact_rows=int(contacts.num_rows),
        contacts=int((sim.decisions.action != 0).sum()),
        mess={
            **counts,
            "identity_fragments": int(fragments.person.shape[0]),
            "events_under_fragments": int((event_refs >= n).sum()),
            "offset_timestamp_contacts": offset_contacts,
        },
    )
    return RawTables(events, contacts, identities, customers), truth
