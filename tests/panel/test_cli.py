"""``journeyopt-panel`` composed like the command line, over an ingest output folder."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from rich.console import Console

from journeyopt.cli.entry import to_object
from journeyopt.cli.panel import OUTPUT_FILES, PanelJobConfig, print_panel_summary, run_panel
from journeyopt.data.schema import CanonicalLogs
from journeyopt.errors import OutputExistsError
from tests.panel.conftest import make_logs


def _job(*overrides: str) -> PanelJobConfig:
    with initialize_config_module(version_base="1.3", config_module="journeyopt.configs"):
        cfg = compose("panel", overrides=["panel=coworking", *overrides])  # the demo's windows
    return to_object(cfg, PanelJobConfig)


def _ingest_folder(logs: CanonicalLogs, folder: Path) -> Path:
    """The three canonical Parquet files, laid out like an ingest output folder."""
    folder.mkdir()
    for name in ("events", "contacts", "customers"):
        getattr(logs, name).to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def test_panel_command_writes_every_output(cdnow_logs: CanonicalLogs, tmp_path: Path) -> None:
    inputs = _ingest_folder(cdnow_logs, tmp_path / "canonical")
    out = tmp_path / "panel"
    job = _job(f"input_dir={inputs}", f"output_dir={out}", "panel.as_of=1998-07-01")
    assert job.panel.lapse_weeks == 26 and job.contact_channels is None
    summary = run_panel(job)
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    panel = pd.read_parquet(out / "panel.parquet")
    assert len(panel) == summary.n_rows and panel["customer_id"].nunique() == 2357
    assert summary.n_customers == 2357
    assert len(pd.read_csv(out / "rfm.csv")) == 2357
    console = Console(record=True, width=120)
    print_panel_summary(summary, console)
    assert "2,357 customers" in console.export_text()
    with pytest.raises(OutputExistsError, match="overwrite=true"):
        run_panel(job)
    run_panel(_job(f"input_dir={inputs}", f"output_dir={out}", "overwrite=true"))


def test_panel_takes_the_channels_the_source_declared(tmp_path: Path) -> None:
    """Only e-mails were logged, but the source declares e-mail and phone: the panel's fatigue
    and opt-out features cover both, as recorded by ingestion in summary.json."""
    logs = make_logs(
        [("c1", "2024-01-02T10:00:00Z", "conversion", 10.0)],
        [("c1", "2024-01-09T10:00:00Z", "newsletter", "email", 0.1, 0.5)],
    )
    inputs = _ingest_folder(logs, tmp_path / "canonical")
    (inputs / "summary.json").write_text(json.dumps({"contact_channels": ["email", "phone"]}))
    run_panel(_job(f"input_dir={inputs}", f"output_dir={tmp_path / 'declared'}"))
    declared = pd.read_parquet(tmp_path / "declared" / "panel.parquet")
    assert {"contacts_4w_phone", "opted_out_phone"} <= set(declared.columns)

    (inputs / "summary.json").unlink()
    run_panel(_job(f"input_dir={inputs}", f"output_dir={tmp_path / 'logged'}"))
    logged = pd.read_parquet(tmp_path / "logged" / "panel.parquet")
    assert "contacts_4w_email" in logged.columns
    assert "contacts_4w_phone" not in logged.columns
