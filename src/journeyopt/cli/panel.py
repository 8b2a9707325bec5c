"""``journeyopt-panel``: canonical tables -> weekly panel, segments and cohorts (thin shell over
:func:`run_panel`).

    journeyopt-panel input_dir=out/cdnow output_dir=out/cdnow_panel
    journeyopt-panel input_dir=out/cw output_dir=out/cw_panel panel.as_of=2024-06-30

Writes ``panel.parquet``, ``segments.csv``, ``rfm.csv``, ``cohorts.csv`` and ``cohorts.png``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from hydra.core.config_store import ConfigStore
from hydra.utils import to_absolute_path
from omegaconf import MISSING, DictConfig
from rich.console import Console
from rich.table import Table

from journeyopt.cli.entry import command, report_errors, to_object
from journeyopt.cli.entry import console as console_factory
from journeyopt.data.ingest import load_canonical, recorded_contact_channels
from journeyopt.data.schema import CanonicalLogs
from journeyopt.outputs import check_output_dir, refuse_inputs, staged_output_dir
from journeyopt.panel.build import resolve_as_of, write_panel_and_state
from journeyopt.panel.cohorts import Cohorts, plot_retention, retention_table
from journeyopt.panel.config import PanelConfig, feature_spec
from journeyopt.panel.segments import (
    lifecycle_counts,
    rfm_distribution,
    rfm_scores,
    segment_counts,
    snapshot_of_state,
)
from journeyopt.panel.suggest import panel_for_logs

OUTPUT_FILES: tuple[str, ...] = (
    "panel.parquet",
    "segments.csv",
    "rfm.csv",
    "cohorts.csv",
    "cohorts.png",
)


@dataclass
class PanelJobConfig:
    """Schema of ``configs/panel.yaml``, registered as ``panel_schema`` in Hydra's ConfigStore.

    Attributes:
        panel: As-of date and feature windows (the ``panel`` config group).
        input_dir: An ingest output folder (``events.parquet``, ``contacts.parquet``,
            ``customers.parquet``).
        output_dir: Folder for the outputs (:data:`OUTPUT_FILES`).
        overwrite: Replace the outputs of an earlier run in a non-empty ``output_dir``.
        contact_channels: The source's contact channels; ``None`` means the channels the
            source declared (recorded by ingestion in ``summary.json``), else the channels of
            the logged contacts whose action is not ``none``, sorted.
    """

    panel: PanelConfig = MISSING  # required: the business's panel windows (configs/panel/)
    input_dir: str = MISSING
    output_dir: str = MISSING
    overwrite: bool = False
    contact_channels: list[str] | None = None


ConfigStore.instance().store(name="panel_schema", node=PanelJobConfig)


@dataclass(frozen=True)
class PanelSummary:
    """What one panel run produced (what :func:`print_panel_summary` shows).

    Attributes:
        as_of: The as-of instant (UTC).
        n_customers: Customers known at ``as_of``.
        n_rows: Panel rows written.
        contact_channels: Contact channels of the features.
        lifecycle: Output of :func:`~journeyopt.panel.segments.lifecycle_counts`.
        segments: Output of :func:`~journeyopt.panel.segments.segment_counts`.
        rfm_distribution: Output of :func:`~journeyopt.panel.segments.rfm_distribution`.
        cohorts: The retention table.
    """

    as_of: pd.Timestamp
    n_customers: int
    n_rows: int
    contact_channels: tuple[str, ...]
    lifecycle: pd.DataFrame
    segments: pd.DataFrame
    rfm_distribution: pd.DataFrame
    cohorts: Cohorts


def logged_contact_channels(logs: CanonicalLogs) -> tuple[str, ...]:
    """Sorted non-empty channels of the contacts whose action is not ``none``."""
    contacts = logs.contacts
    channels = contacts.loc[contacts["action"] != "none", "channel"]
    return tuple(sorted({str(c) for c in channels.unique() if c}))


def build_outputs(
    logs: CanonicalLogs,
    cfg: PanelConfig,
    contact_channels: Sequence[str],
    output_dir: Path,
) -> PanelSummary:
    """Write the panel, segments, RFM scores and cohorts of ``logs`` into ``output_dir``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    as_of = resolve_as_of(logs, cfg)
    # The walk writing the panel ends in the state at as-of: no second pass over the logs.
    n_rows, ids, state = write_panel_and_state(
        logs, cfg, contact_channels, output_dir / "panel.parquet"
    )
    snapshot = snapshot_of_state(ids, state, feature_spec(cfg, contact_channels))
    segments = segment_counts(snapshot, logs.customers)
    segments.to_csv(output_dir / "segments.csv", index=False)
    rfm = rfm_scores(snapshot)
    rfm.to_csv(output_dir / "rfm.csv", index=False)
    cohorts = retention_table(logs.events, as_of)
    cohorts.to_frame().to_csv(output_dir / "cohorts.csv", index=False)
    plot_retention(cohorts, output_dir / "cohorts.png")
    return PanelSummary(
        as_of=as_of,
        n_customers=len(snapshot),
        n_rows=n_rows,
        contact_channels=tuple(contact_channels),
        lifecycle=lifecycle_counts(snapshot),
        segments=segments,
        rfm_distribution=rfm_distribution(rfm),
        cohorts=cohorts,
    )


def _frame_table(frame: pd.DataFrame, title: str, float_format: str = "{:.2f}") -> Table:
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(str(column), justify="left" if column == frame.columns[0] else "right")
    for row in frame.itertuples(index=False):
        cells = [
            ""
            if isinstance(v, float) and v != v
            else float_format.format(v)
            if isinstance(v, float)
            else f"{v:,}"
            if isinstance(v, int)
            else str(v)
            for v in row
        ]
        table.add_row(*cells)
    return table


def print_panel_summary(
    summary: PanelSummary, console: Console | None = None, cohort_rows: int = 6
) -> None:
    """Print customers and rows, lifecycle and segment counts, RFM distribution, cohorts."""
    console = console or console_factory()
    console.print(
        f"panel as of {summary.as_of:%Y-%m-%d %H:%M} UTC: {summary.n_customers:,} customers, "
        f"{summary.n_rows:,} customer-weeks; contact channels: "
        f"{', '.join(summary.contact_channels) or '(none)'}"
    )
    console.print(_frame_table(summary.lifecycle, "lifecycle at as-of"))
    console.print(_frame_table(summary.segments, "customers per segment and lifecycle"))
    console.print(_frame_table(summary.rfm_distribution.reset_index(), "RFM score distribution"))
    # the largest cohorts, in calendar order (the first months may hold a few early customers)
    frame = summary.cohorts.to_frame()
    cohorts = frame.loc[frame["customers"].nlargest(cohort_rows).index].sort_index()
    months = [c for c in cohorts.columns if c not in ("cohort", "customers")][:10]
    console.print(
        _frame_table(cohorts[["cohort", "customers", *months]], "retention by acquisition month")
    )


def run_panel(job: PanelJobConfig) -> PanelSummary:
    """Read the ingest output in ``job.input_dir``, write the outputs, return the summary."""
    output_dir = Path(to_absolute_path(job.output_dir))
    input_dir = Path(to_absolute_path(job.input_dir))
    refuse_inputs({"output_dir": output_dir}, {"input_dir": input_dir})
    check_output_dir(output_dir, job.overwrite)
    logs = load_canonical(input_dir)
    channels = (
        tuple(job.contact_channels)
        if job.contact_channels is not None
        else recorded_contact_channels(input_dir) or logged_contact_channels(logs)
    )
    settings = panel_for_logs(job.panel, logs.events)  # lapse_weeks null: from the logs
    with staged_output_dir(output_dir, job.overwrite) as staging:
        return build_outputs(logs, settings, channels, staging)


def run(cfg: DictConfig) -> PanelSummary:
    """Validate the composed config, build the panel and print the summary."""
    summary = run_panel(to_object(cfg, PanelJobConfig))
    print_panel_summary(summary)
    return summary


@command("panel")
def main(cfg: DictConfig) -> None:
    """Entry point of ``journeyopt-panel``."""
    report_errors(lambda: run(cfg))


if __name__ == "__main__":
    main()
