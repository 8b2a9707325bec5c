"""Fixtures for the ingestion tests: source configs composed like the CLI does, and small
coworking exports written into ``tmp_path``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from journeyopt.cli.entry import to_object
from journeyopt.cli.ingest import IngestConfig
from journeyopt.data.source import SourceConfig

EVENTS_HEADER = "event_id,customer_ref,timestamp,event_type,channel,amount"
CONTACTS_HEADER = "customer_ref,timestamp,action,channel,cost,propensity,campaign"
IDENTITIES_HEADER = "customer_ref,email,phone,crm_id"
CUSTOMERS_HEADER = "customer_ref,customer_type,company_size,signup_date,acquisition_channel"

LoadSource = Callable[..., SourceConfig]
WriteExport = Callable[..., Path]


def compose_source(name: str, *overrides: str) -> SourceConfig:
    """The ``data`` node of ``journeyopt-ingest data=<name> <overrides>``, as a SourceConfig."""
    with initialize_config_module(version_base="1.3", config_module="journeyopt.configs"):
        cfg = compose("ingest", overrides=[f"data={name}", "output_dir=unused", *overrides])
    return to_object(cfg, IngestConfig).data


@pytest.fixture
def load_source() -> LoadSource:
    """``load_source("coworking", "data.path=...", ...)`` -> SourceConfig."""
    return compose_source


@pytest.fixture
def write_export(tmp_path: Path) -> WriteExport:
    """Write a coworking export folder: ``write_export(events=[lines], contacts=[lines], ...)``.

    Each table is a list of data lines (the header is added) or a full text when ``raw=True``.
    Returns the folder.
    """

    def write(
        events: list[str] | None = None,
        contacts: list[str] | None = None,
        identities: list[str] | None = None,
        customers: list[str] | None = None,
        folder: str = "export",
    ) -> Path:
        root = tmp_path / folder
        root.mkdir(exist_ok=True)
        tables = {
            "events.csv": (EVENTS_HEADER, events),
            "contacts.csv": (CONTACTS_HEADER, contacts),
            "identities.csv": (IDENTITIES_HEADER, identities),
            "customers.csv": (CUSTOMERS_HEADER, customers),
        }
        for name, (header, lines) in tables.items():
            if lines is not None:
                (root / name).write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
        return root

    return write


@pytest.fixture
def coworking(load_source: LoadSource) -> Callable[[Path], SourceConfig]:
    """The coworking source over a folder, as of 2025-01-01 UTC."""

    def make(root: Path, *overrides: str) -> SourceConfig:
        return load_source("coworking", f"data.path={root}", "data.as_of=2025-01-01", *overrides)

    return make


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``journeyopt-ingest <args>`` in a subprocess, run from ``cwd`` (no debug tracebacks)."""
    env = {k: v for k, v in os.environ.items() if k != "JOURNEYOPT_DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "journeyopt.cli.ingest", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "160"},
        timeout=120,
        check=False,
    )
