"""Fixtures for the panel tests: tiny hand-written canonical logs and the CDNOW sample ingested
the way ``journeyopt-ingest data=cdnow_sample`` does."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_module

import journeyopt
from journeyopt.cli.entry import to_object
from journeyopt.cli.ingest import IngestConfig
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.schema import CanonicalLogs, empty_contacts, empty_customers

CHANNELS = ("email", "phone")
CDNOW_TXT = Path(journeyopt.__file__).parent / "datasets" / "cdnow_sample.txt"

Event = tuple[str, str, str, float] | tuple[str, str, str, float, str]
"""(customer_id, ts, role, value[, channel]); ts is ISO 8601 UTC."""
Contact = tuple[str, str, str, str, float, float]
"""(customer_id, ts, action, channel, cost, propensity)."""


def make_logs(
    events: Sequence[Event],
    contacts: Sequence[Contact] = (),
    customers: pd.DataFrame | None = None,
) -> CanonicalLogs:
    """Canonical logs from compact tuples (``kind`` is the role, sources are placeholders)."""
    rows = [(*e, "") if len(e) == 4 else e for e in events]
    ev = pd.DataFrame(rows, columns=["customer_id", "ts", "role", "value", "channel"])
    ev = pd.DataFrame(
        {
            "customer_id": ev["customer_id"].astype(str),
            "ts": pd.to_datetime(ev["ts"], utc=True, format="ISO8601").dt.as_unit("ns"),
            "kind": ev["role"].astype(str),
            "role": ev["role"].astype(str),
            "channel": ev["channel"].astype(str),
            "value": ev["value"].astype(np.float64),
            "event_id": "",
            "source_file": "events.csv",
            "source_row": np.arange(1, len(ev) + 1, dtype=np.int64),
        }
    )
    co = empty_contacts()
    if contacts:
        raw = pd.DataFrame(
            list(contacts), columns=["customer_id", "ts", "action", "channel", "cost", "propensity"]
        )
        co = pd.DataFrame(
            {
                "customer_id": raw["customer_id"].astype(str),
                "ts": pd.to_datetime(raw["ts"], utc=True, format="ISO8601").dt.as_unit("ns"),
                "action": raw["action"].astype(str),
                "channel": raw["channel"].astype(str),
                "cost": raw["cost"].astype(np.float64),
                "propensity": raw["propensity"].astype(np.float64),
                "campaign": "",
                "source_file": "contacts.csv",
                "source_row": np.arange(1, len(raw) + 1, dtype=np.int64),
            }
        )
    return CanonicalLogs(
        events=ev, contacts=co, customers=empty_customers() if customers is None else customers
    )


@pytest.fixture(scope="session")
def cdnow_logs() -> CanonicalLogs:
    """The vendored CDNOW sample through ingestion (same-day purchases merged)."""
    with initialize_config_module(version_base="1.3", config_module="journeyopt.configs"):
        cfg = compose("ingest", overrides=["data=cdnow_sample", "output_dir=unused"])
    logs, _ = ingest_to_logs(to_object(cfg, IngestConfig).data)
    return logs


@pytest.fixture(scope="session")
def cdnow_raw() -> pd.DataFrame:
    """The raw CDNOW sample, read independently of journeyopt: one row per purchase line."""
    raw = pd.read_csv(
        CDNOW_TXT,
        sep=r"\s+",
        header=None,
        names=["customer_id", "sample_id", "date", "cds", "dollars"],
        dtype={"customer_id": str, "date": str},
    )
    raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    return raw
