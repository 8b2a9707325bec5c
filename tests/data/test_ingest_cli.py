"""The real ``journeyopt-ingest`` command, run as a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

from tests.data.conftest import EVENTS_HEADER, run_cli

MY_CRM_YAML = """\
# my_configs/data/my_crm.yaml: a CRM export with its own column names (see docs/data.md)
name: my_crm
path: ???
format: csv
delimiter: ";"
timezone: Europe/Vienna
events:
  file: crm_events.csv
  columns: {customer_id: Kunde, ts: Zeitpunkt, kind: Ereignis, value: Betrag}
contacts:
  file: crm_contacts.csv
  required: false
  columns: {customer_id: Kunde, ts: Zeitpunkt, action: Aktion}
event_roles: {kauf: conversion, besuch: engagement, abmeldung: opt_out}
contact_channels: [email]
actions:
  none: {channel: "", cost: 0.0}
  newsletter: {channel: email, cost: 0.02}
"""


def test_cdnow_sample(tmp_path: Path) -> None:
    proc = run_cli(["data=cdnow_sample", "output_dir=out"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["events"]["rows_read"] == 6919
    assert summary["resolved_customers"] == 2357
    merged = summary["events"]["merged"]
    assert merged > 0
    assert (
        f"{merged:,}" in proc.stdout and "6,919" in proc.stdout and "2,357 customers" in proc.stdout
    )
    assert (tmp_path / "outputs" / "hydra").is_dir()  # Hydra's files go there ...
    assert not (tmp_path / "out" / ".hydra").exists()  # ... never into output_dir

    again = run_cli(["data=cdnow_sample", "output_dir=out"], cwd=tmp_path)
    assert again.returncode != 0
    assert "output_dir" in again.stderr and "overwrite=true" in again.stderr
    assert "Traceback" not in again.stderr
    assert (
        run_cli(["data=cdnow_sample", "output_dir=out", "overwrite=true"], cwd=tmp_path).returncode
        == 0
    )


def test_malformed_file_fails_cleanly(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    (export / "events.csv").write_text(EVENTS_HEADER.replace(",", ";") + "\n1;2;3;4;5;6\n")
    proc = run_cli(["data=coworking", "data.path=export", "output_dir=out"], cwd=tmp_path)
    assert proc.returncode != 0
    assert "events.csv" in proc.stderr
    assert "looks semicolon-separated; set data.delimiter=';'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_own_config_dir_walkthrough(tmp_path: Path) -> None:
    (tmp_path / "my_configs" / "data").mkdir(parents=True)
    (tmp_path / "my_configs" / "data" / "my_crm.yaml").write_text(MY_CRM_YAML)
    crm = tmp_path / "crm"
    crm.mkdir()
    (crm / "crm_events.csv").write_text(
        "Kunde;Zeitpunkt;Ereignis;Betrag\n"
        "K-1;2024-05-02 09:15;besuch;\n"
        "K-1;2024-05-03 18:00;kauf;49.90\n"
        "K-2;2024-05-03 18:00;storno;\n",
        encoding="utf-8",
    )
    (crm / "crm_contacts.csv").write_text(
        "Kunde;Zeitpunkt;Aktion\nK-2;2024-05-01 08:00;newsletter\n"
    )
    proc = run_cli(
        ["--config-dir", "./my_configs", "data=my_crm", "data.path=crm", "output_dir=out"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["events"] == {
        "rows_read": 3,
        "accepted": 2,
        "rejected": 1,
        "duplicates_exact": 0,
        "duplicates_event_id": 0,
        "duplicates_near": 0,
        "merged": 0,
    }
    assert summary["contacts"]["accepted"] == 1
    rejects = (tmp_path / "out" / "rejects.csv").read_text()
    assert "events,crm_events.csv,3,kind,\"unknown kind 'storno'" in rejects
