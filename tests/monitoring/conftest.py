"""Shared fixtures: coworking logs generated under the staff rules, and a decision log made
from their contacts with serving groups assigned by a stable hash of the customer id."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from journeyopt.monitoring.decisions_contacts import DECISION_LOG_COLUMNS
from journeyopt.sim.config import GenerateConfig, shipped_practice
from journeyopt.sim.logs import generate_logs, write_logs
from journeyopt.sim.world import load_world

SINCE = "2023-08-07"
"""First measured week of the generated logs (weeks 31.. of 40)."""


def serving_group(customer_id: str) -> str:
    """A stable 50/50 assignment: the parity of the id's SHA-256."""
    return (
        "treatment" if int(hashlib.sha256(customer_id.encode()).hexdigest(), 16) % 2 else "control"
    )


def decision_log(contacts: pd.DataFrame, since: str) -> pd.DataFrame:
    """Decision-log rows (:data:`DECISION_LOG_COLUMNS`) of the coworking ``contacts.csv``
    rows (``none`` rows included) from the week of ``since`` on."""
    ts = pd.to_datetime(contacts["timestamp"]).dt.tz_localize(
        "Europe/Berlin", ambiguous="NaT", nonexistent="NaT"
    )
    ts = ts.dt.tz_convert("UTC")
    keep = ts.notna()
    contacts, ts = contacts[keep], ts[keep]
    week = ts.dt.normalize() - pd.to_timedelta(ts.dt.day_of_week, unit="D")
    arm = contacts["customer_ref"].map(serving_group).replace("treatment", "full").to_numpy()
    rows = pd.DataFrame(
        {
            "decision_id": [f"d{i}" for i in range(len(contacts))],
            "customer_id": contacts["customer_ref"].to_numpy(),
            "as_of": ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(),
            "week": week.dt.strftime("%Y-%m-%d").to_numpy(),
            "group": contacts["customer_ref"].map(serving_group).to_numpy(),
            "action": contacts["action"].to_numpy(),
            "channel": contacts["channel"].to_numpy(),
            "propensity": contacts["propensity"].to_numpy(),
            "expected_value": "0.0",
            "model_name": "journey-policy",
            "model_version": "1",
            "probabilities": '{"none": 0.5, "newsletter": 0.5}',
            "arm": arm,
        }
    )
    return rows[week.to_numpy() >= pd.Timestamp(since, tz="UTC")].loc[:, list(DECISION_LOG_COLUMNS)]


@pytest.fixture(scope="session")
def coworking_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Raw coworking logs: 1,200 customers over 40 weeks from 2023-01-02, 20 % exploration."""
    out = tmp_path_factory.mktemp("logs")
    cfg = GenerateConfig(
        staff=shipped_practice("coworking"),
        output_dir=str(out),
        n_customers=1200,
        weeks=40,
        exploration=0.2,
    )
    world = load_world("coworking")
    write_logs(generate_logs(world, cfg, np.random.default_rng(0)), out, overwrite=True)
    return out


@pytest.fixture(scope="session")
def decisions_dir(coworking_logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the decision log of the weeks from :data:`SINCE` on, in two files."""
    contacts = pd.read_csv(coworking_logs / "contacts.csv", dtype=str, keep_default_na=False)
    rows = decision_log(contacts, SINCE)
    out = tmp_path_factory.mktemp("decisions")
    half = len(rows) // 2
    rows.iloc[:half].to_csv(out / "decisions-a.csv", index=False)
    rows.iloc[half:].to_csv(out / "decisions-b.csv", index=False)
    return out
