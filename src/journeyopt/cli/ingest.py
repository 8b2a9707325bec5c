"""``journeyopt-ingest``: raw CRM logs -> canonical tables (thin shell over
:func:`journeyopt.data.ingest.ingest`).

    journeyopt-ingest data=cdnow_sample output_dir=out/cdnow
    journeyopt-ingest data=coworking data.path=exports/ output_dir=out/cw overwrite=true
    journeyopt-ingest --config-dir ./my_configs data=my_crm data.path=crm.csv output_dir=out/crm
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from hydra.core.config_store import ConfigStore
from hydra.utils import to_absolute_path
from omegaconf import MISSING, DictConfig
from rich.table import Table

from journeyopt.calibration.cycles import contact_cycles
from journeyopt.cli.entry import command, report_errors, to_object
from journeyopt.cli.entry import console as console_factory
from journeyopt.data.ingest import ingest
from journeyopt.data.result import TABLES, IngestResult
from journeyopt.data.source import SourceConfig
from journeyopt.errors import ConfigError
from journeyopt.outputs import refuse_inputs
from journeyopt.panel.suggest import suggest_lapse_weeks


@dataclass
class IngestConfig:
    """Schema of ``configs/ingest.yaml``, registered as ``ingest_schema`` in Hydra's ConfigStore.

    Making :class:`SourceConfig` the type of ``data`` lets Hydra check every source YAML and
    every ``data.*`` override (``data.as_of=1998-07-01``) at composition time.

    Attributes:
        data: The source (the ``data`` config group).
        output_dir: Folder for the canonical tables, rejects and summary; relative to the
            folder the command is run from.
        overwrite: Replace the outputs of an earlier run in a non-empty ``output_dir``.
    """

    data: SourceConfig = field(default_factory=SourceConfig)
    output_dir: str = MISSING
    overwrite: bool = False


ConfigStore.instance().store(name="ingest_schema", node=IngestConfig)

_COLUMNS = (
    ("rows_read", "read"),
    ("accepted", "accepted"),
    ("rejected", "rejected"),
    ("duplicates_exact", "dup exact"),
    ("duplicates_event_id", "dup id"),
    ("duplicates_near", "dup near"),
    ("merged", "merged"),
)


def counts_table(result: IngestResult) -> Table:
    """The per-table counts as a rich table (one row per canonical table)."""
    table = Table(title=f"ingest {result.source} (as of {result.as_of})")
    table.add_column("table", no_wrap=True)
    for _, label in _COLUMNS:
        table.add_column(label, justify="right", no_wrap=True)
    for name in TABLES:
        counts = result.table(name)
        table.add_row(name, *(f"{getattr(counts, attr):,}" for attr, _ in _COLUMNS))
    return table


def run(cfg: DictConfig) -> IngestResult:
    """Validate the composed config, ingest, print the counts."""
    source = to_object(cfg.data, SourceConfig)
    if not source.path:
        raise ConfigError("data.path is required: the file or folder to ingest")
    source.path = to_absolute_path(source.path)
    output_dir = Path(to_absolute_path(str(cfg.output_dir)))
    refuse_inputs({"output_dir": output_dir}, {"data.path": source.path})
    result = ingest(source, output_dir, overwrite=bool(cfg.overwrite))
    console = console_factory()
    console.print(counts_table(result))
    if result.events_by_role:
        by_role = ", ".join(f"{role} {n:,}" for role, n in result.events_by_role.items())
        console.print(f"accepted events by role: {by_role}")
    console.print(
        f"{result.resolved_customers:,} customers "
        f"({result.raw_ids_merged:,} raw ids merged, "
        f"{result.overshared_identifiers:,} over-shared identifiers ignored); "
        f"{result.rows_rejected:,} rows rejected -> {output_dir / 'rejects.csv'}"
    )
    events = pd.read_parquet(output_dir / "events.parquet", columns=["customer_id", "ts", "role"])
    console.print(suggest_lapse_weeks(events).line(), soft_wrap=True)  # panel.lapse_weeks: null
    logged = output_dir / "contacts.parquet"
    contacts = pd.read_parquet(logged, columns=["customer_id", "ts", "action"])
    if (contacts["action"].astype(str) != "none").any():  # what calibration would read off them
        console.print(contact_cycles(contacts).line())
    return result


@command("ingest")
def main(cfg: DictConfig) -> None:
    """Entry point of ``journeyopt-ingest``."""
    report_errors(lambda: run(cfg))


if __name__ == "__main__":
    main()
