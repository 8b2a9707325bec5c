"""A large synthetic log in the coworking source format, for throughput benchmarks only.

Vectorised numpy + pyarrow so that 10 million events take seconds to write. The behaviour is not
a world (see ``journeyopt-generate`` for that); it only has the shape of real logs: many
customers, a few events each, conversions with values, some opt-outs, and contacts.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

EVENT_KINDS = np.array(
    [
        "website_visit",
        "newsletter_click",
        "inquiry",
        "day_pass",
        "meeting_room",
        "membership",
        "unsubscribe",
    ]
)
KIND_WEIGHTS = np.array([0.40, 0.15, 0.05, 0.20, 0.12, 0.07, 0.01])
ACTIONS = np.array(["newsletter", "personal_email", "discount_offer", "personal_call"])
ACTION_CHANNELS = np.array(["email", "email", "email", "phone"])


def write_synthetic_logs(
    out_dir: Path,
    n_events: int,
    n_customers: int,
    n_contacts: int,
    weeks: int = 104,
    seed: int = 0,
) -> None:
    """Write ``events.csv`` and ``contacts.csv`` with the coworking source's raw columns, and
    print how long it took."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = np.datetime64("2023-01-02T00:00:00", "s")
    span = weeks * 7 * 24 * 3600

    # Customers are acquired uniformly over the period (as in a real CRM, where the base
    # grows); each customer's activity falls between their arrival and the end of the log.
    arrival = rng.integers(0, span, n_customers)

    def customers_and_stamps(n: int) -> tuple[pa.Array, pa.Array]:
        ids = rng.integers(0, n_customers, n)
        secs = arrival[ids] + (rng.random(n) * (span - arrival[ids])).astype(np.int64)
        order = np.argsort(secs, kind="stable")
        refs = pa.array(np.char.add("C", ids[order].astype("U7")))
        return refs, pa.array(np.datetime_as_string(start + secs[order], unit="s"))

    kinds = rng.choice(EVENT_KINDS, n_events, p=KIND_WEIGHTS)
    amount = np.where(np.isin(kinds, ["day_pass", "meeting_room", "membership"]), 25.0, 0.0)
    amount = np.round(amount * rng.lognormal(0.0, 0.5, n_events), 2)
    event_refs, event_stamps = customers_and_stamps(n_events)
    events = pa.table(
        {
            "event_id": pa.array(np.char.add("E", np.arange(n_events).astype("U9"))),
            "customer_ref": event_refs,
            "timestamp": event_stamps,
            "event_type": pa.array(kinds),
            "channel": pa.array(np.where(kinds == "unsubscribe", "email", "web")),
            "amount": pa.array(amount),
        }
    )
    pacsv.write_csv(events, out_dir / "events.csv")
    which = rng.integers(0, len(ACTIONS), n_contacts)
    contact_refs, contact_stamps = customers_and_stamps(n_contacts)
    contacts = pa.table(
        {
            "customer_ref": contact_refs,
            "timestamp": contact_stamps,
            "action": pa.array(ACTIONS[which]),
            "channel": pa.array(ACTION_CHANNELS[which]),
            "cost": pa.array(np.full(n_contacts, 0.5)),
            "propensity": pa.array(np.full(n_contacts, 0.25)),
            "campaign": pa.array(np.full(n_contacts, "bench")),
        }
    )
    pacsv.write_csv(contacts, out_dir / "contacts.csv")
    print(f"wrote {n_events:,} events in {time.perf_counter() - started:.1f} s", flush=True)
