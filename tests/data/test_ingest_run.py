"""End-to-end ingestion of small coworking exports and the vendored CDNOW sample."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from journeyopt.data.ingest import (
    OUTPUT_FILES,
    IngestOutput,
    ingest,
    ingest_to_logs,
    load_canonical,
    run_ingest,
)
from journeyopt.data.result import TABLES, TableCounts
from journeyopt.data.schema import CONTACT_COLUMNS, EVENT_COLUMNS
from journeyopt.data.source import SourceConfig
from journeyopt.data.tables import NEGATIVE_AMOUNT
from journeyopt.errors import InputFileError, OutputExistsError
from tests.data.conftest import LoadSource, WriteExport

Coworking = Callable[..., SourceConfig]

EVENTS = [
    "e1,c1,2024-03-01 10:00:00,day_pass,web,25",
    "e1,c1,2024-03-01 10:00:00,day_pass,web,25",  # exact duplicate
    "e2,c2,2024-03-01 10:00:20,inquiry,web,",
    "e2,c2,2024-03-02 10:00:20,inquiry,web,",  # duplicate event_id
    "e3,c3,2024-03-01 10:00:40,inquiry,web,",  # c3 = c2 by phone: near-duplicate of e2
    "e4,c4,2024-03-05 10:00,meeting_room,web,-3",  # rejected
    "e5,c4,2024-03-05 12:00,unsubscribe,email,",
]
CONTACTS = [
    "c1,2024-02-01 10:00,newsletter,email,,,spring",
    "c1,2024-02-01 10:00,newsletter,email,,,spring",
    "c3,2024-02-02 10:00,personal_call,,,0.2,",
]
IDENTITIES = ["c1,anna@x.com,,", "c2,bob@x.com,030 111222,", "c3,,+4930111222,", "c4,,,"]
CUSTOMERS = [
    "c2,startup,5,2024-01-10,web",
    "c3,,,2023-12-01,",
    "c4,freelancer,1,,ads",
]


@pytest.fixture
def export(write_export: WriteExport) -> Path:
    return write_export(
        events=EVENTS, contacts=CONTACTS, identities=IDENTITIES, customers=CUSTOMERS
    )


def test_counts_reconcile_and_tables_are_canonical(export: Path, coworking: Coworking) -> None:
    logs, result = ingest_to_logs(coworking(export))
    assert result.events == TableCounts(
        rows_read=7,
        accepted=3,
        rejected=1,
        duplicates_exact=1,
        duplicates_event_id=1,
        duplicates_near=1,
    )
    assert result.contacts == TableCounts(rows_read=3, accepted=2, duplicates_exact=1)
    assert result.customers == TableCounts(rows_read=3, accepted=2, merged=1)
    assert result.identities == TableCounts(rows_read=4, accepted=4)
    assert (result.raw_ids, result.raw_ids_merged, result.resolved_customers) == (4, 1, 3)
    assert tuple(logs.events.columns) == EVENT_COLUMNS
    assert tuple(logs.contacts.columns) == CONTACT_COLUMNS
    assert sorted(logs.events["customer_id"].unique()) == ["c1", "c2", "c4"]
    assert logs.contacts["customer_id"].tolist() == ["c1", "c2"]
    assert logs.contacts["channel"].tolist() == ["email", "phone"]
    assert logs.contacts["cost"].tolist() == [0.05, 6.0]
    c2 = logs.customers.set_index("customer_id").loc["c2"]
    assert c2["segment"] == "startup"
    assert c2["signup_date"] == pd.Timestamp("2023-11-30 23:00", tz="UTC")
    summary = result.summary_dict()
    for table in TABLES:
        counts = summary[table]
        assert isinstance(counts, dict)
        assert counts["rows_read"] == sum(v for k, v in counts.items() if k != "rows_read")


def _assert_same_output(one: IngestOutput, other: IngestOutput) -> None:
    for table in ("events", "contacts", "customers"):
        pd.testing.assert_frame_equal(getattr(one.logs, table), getattr(other.logs, table))
    pd.testing.assert_frame_equal(one.rejects, other.rejects)
    pd.testing.assert_frame_equal(one.identity.mapping, other.identity.mapping)
    assert one.result == other.result


def test_contacts_on_a_forked_process_give_the_same_output(
    write_export: WriteExport, coworking: Coworking
) -> None:
    """workers=2 ingests the contacts beside the events: the same tables, rejects and counts,
    bad contact rows included."""
    contacts = [*CONTACTS, "c1,2024-02-02 10:00,fax,,,,", "c9,not a date,newsletter,,,,"]
    source = coworking(
        write_export(events=EVENTS, contacts=contacts, identities=IDENTITIES, customers=CUSTOMERS),
        "data.as_of=2024-06-01",
    )
    alone, beside = run_ingest(source), run_ingest(source, workers=2)
    _assert_same_output(alone, beside)
    assert beside.result.contacts.rejected == 2


def test_a_contacts_file_problem_on_a_forked_process_keeps_its_message(
    write_export: WriteExport, coworking: Coworking
) -> None:
    root = write_export(events=EVENTS)
    (root / "contacts.csv").write_text("customer_ref,timestamp\nc1,2024-02-01 10:00\n")
    with pytest.raises(InputFileError) as alone:
        run_ingest(coworking(root))
    with pytest.raises(InputFileError) as beside:
        run_ingest(coworking(root), workers=2)
    assert "missing column(s) ['action'" in str(beside.value)
    assert (beside.value.path, beside.value.problem) == (alone.value.path, alone.value.problem)


def test_counts_that_do_not_reconcile_are_refused() -> None:
    with pytest.raises(RuntimeError, match="do not reconcile"):
        TableCounts(rows_read=3, accepted=1, rejected=1)


def test_ingest_writes_outputs_and_load_round_trips(
    export: Path, coworking: Coworking, tmp_path: Path
) -> None:
    before = {p.name: p.read_bytes() for p in export.iterdir()}
    out = tmp_path / "out"
    result = ingest(coworking(export), out)
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    assert {p.name: p.read_bytes() for p in export.iterdir()} == before  # inputs untouched
    summary = json.loads((out / "summary.json").read_text())
    assert summary["events"]["rows_read"] == 7 and summary["output_dir"] == str(out)
    rejects = pd.read_csv(out / "rejects.csv")
    assert rejects[["table", "source_row", "column", "reason"]].values.tolist() == [
        ["events", 6, "value", NEGATIVE_AMOUNT]
    ]
    identity_map = pd.read_parquet(out / "identity_map.parquet")
    assert identity_map.set_index("raw_id")["customer_id"].to_dict()["c3"] == "c2"
    links = pd.read_parquet(out / "identity_links.parquet")
    assert links[["identifier_type", "identifier"]].drop_duplicates().values.tolist() == [
        ["phone", "+4930111222"]
    ]
    logs = load_canonical(out)
    assert len(logs.events) == result.events.accepted
    assert str(logs.events["ts"].dtype) == "datetime64[ns, UTC]"


def test_output_dir_refusals(export: Path, coworking: Coworking, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"not empty.*overwrite=true"):
        ingest(coworking(export), out)
    ingest(coworking(export), out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    ingest(coworking(export), out, overwrite=True)  # out/events.parquet is now an input
    with pytest.raises(OutputExistsError, match="is the input"):
        ingest(coworking(out, "data.events.file=events.parquet"), out, overwrite=True)


def test_load_canonical_of_a_wrong_folder(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not an ingest output folder"):
        load_canonical(tmp_path)


def test_folder_of_parts(write_export: WriteExport, coworking: Coworking) -> None:
    root = write_export(events=EVENTS[:3])
    parts = root / "events"
    parts.mkdir()
    (root / "events.csv").rename(parts / "part-0.csv")
    write_export(events=EVENTS[3:], folder="export2")
    (root.parent / "export2" / "events.csv").rename(parts / "part-1.csv")
    out_logs, result = ingest_to_logs(coworking(root, "data.events.file=events"))
    assert result.events.rows_read == len(EVENTS)
    assert set(out_logs.events["source_file"]) == {"events/part-0.csv", "events/part-1.csv"}


def test_cdnow_sample(load_source: LoadSource) -> None:
    logs, result = ingest_to_logs(load_source("cdnow_sample"))
    assert result.events.rows_read == 6919
    assert result.resolved_customers == 2357
    assert result.events.merged == 6919 - result.events.accepted > 0
    assert result.rows_rejected == 0
    assert logs.events["role"].eq("conversion").all()
    raw_total = pd.read_csv(
        load_source("cdnow_sample").path, sep=r"\s+", header=None, names=list("abcde")
    )["e"].sum()
    assert logs.events["value"].sum() == pytest.approx(raw_total)
