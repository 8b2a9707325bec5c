"""A corpus of malformed inputs: each gives one clear file-level error or quarantines exactly
the bad rows with the right row number, column and reason; nothing crashes, nothing vanishes."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from journeyopt.data.ingest import IngestOutput, ingest, run_ingest
from journeyopt.data.read import UNBALANCED_QUOTE
from journeyopt.data.source import SourceConfig
from journeyopt.data.tables import CONTROL_CHARACTER
from journeyopt.errors import ConfigError, InputFileError, OutputExistsError
from tests.data.conftest import EVENTS_HEADER, LoadSource, WriteExport, run_cli

GOOD = "e1,c1,2024-03-01 10:00:00,day_pass,web,25"
Coworking = Callable[..., SourceConfig]


def _events_file(root: Path, content: bytes) -> Path:
    root.mkdir(exist_ok=True)
    (root / "events.csv").write_bytes(content)
    return root


# ---------------------------------------------------------------- whole-file problems
FILE_CASES: dict[str, tuple[bytes | None, str]] = {
    "missing file": (None, r"no such file"),
    "non-utf8": (
        f"{EVENTS_HEADER}\n{GOOD}\ne2,c2,2024-03-01 10:00,day_pass,caf\xe9,3\n".encode("latin-1"),
        r"not valid utf-8 text: byte 0xe9 at offset \d+ \(line 3\).*data.encoding",
    ),
    "missing column": (
        b"event_id,customer_ref,timestamp,event_type,channel\ne1,c1,2024-03-01,day_pass,web\n",
        r"missing column\(s\) \['amount'\]: the file has columns \['event_id',.*'channel'\]",
    ),
    "empty file": (b"", r"file is empty \(0 bytes\)"),
    "blank lines only": (b"\n\n  \n", r"file is empty \(only blank lines\)"),
    "header only": (f"{EVENTS_HEADER}\n".encode(), r"has a header but no data rows"),
    "semicolon file": (
        f"{EVENTS_HEADER.replace(',', ';')}\n{GOOD.replace(',', ';')}\n".encode(),
        r"looks semicolon-separated; set data.delimiter=';'",
    ),
    "invalid utf-8 in a ragged row": (
        f"{EVENTS_HEADER}\n{GOOD}\n\x82x,y\n".encode("latin-1"),
        r"not valid utf-8 text: byte 0x82 at offset \d+ \(line 3\)",
    ),
    "every row ragged": (
        f"{EVENTS_HEADER}\ne1,c1\ne2,c2\n".encode(),
        r"no row has the 6 fields",
    ),
}


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_whole_file_problem_names_file_and_problem(
    case: str, tmp_path: Path, coworking: Coworking
) -> None:
    content, message = FILE_CASES[case]
    root = tmp_path / "export"
    root.mkdir()
    if content is not None:
        _events_file(root, content)
    with pytest.raises(InputFileError, match=message) as info:
        run_ingest(coworking(root))
    assert "events.csv" in str(info.value)


def test_missing_data_path(tmp_path: Path, coworking: Coworking) -> None:
    with pytest.raises(InputFileError, match="no such file or directory"):
        run_ingest(coworking(tmp_path / "nowhere"))


def test_unreadable_parquet(tmp_path: Path, load_source: LoadSource) -> None:
    path = tmp_path / "events.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputFileError, match=r"set data\.format=parquet"):
        run_ingest(load_source("cdnow", f"data.path={path}"))
    with pytest.raises(InputFileError, match="not a readable Parquet file"):
        run_ingest(load_source("cdnow", f"data.path={path}", "data.format=auto"))


# ---------------------------------------------------------------- row-level problems
# (data lines after the header, expected (source_row, column, reason regex) of the rejects)
ROW_CASES: dict[str, tuple[list[str], list[tuple[int, str, str]]]] = {
    "NaN value": (
        [GOOD, "e2,c2,2024-03-01 10:00,day_pass,web,NaN"],
        [(2, "value", "^NaN$")],
    ),
    "infinite value": (
        [GOOD, "e2,c2,2024-03-01 10:00,day_pass,web,inf"],
        [(2, "value", "infinite")],
    ),
    "huge value": (
        ["e0,c0,2024-03-01 10:00,day_pass,web,1e12", GOOD],
        [(1, "value", r"above data.max_value=1e\+07")],
    ),
    "negative value": (
        [GOOD, "e2,c2,2024-03-01 10:00,day_pass,web,-5"],
        [(2, "value", "negative")],
    ),
    "non-numeric value": (
        [GOOD, 'e2,c2,2024-03-01 10:00,day_pass,web,"12,50"', "e3,c3,2024-03-01,day_pass,web,abc"],
        [(2, "value", "not a number"), (3, "value", "not a number")],
    ),
    "unparseable date": (
        [GOOD, "e2,c2,31/02/2024,day_pass,web,3", "e3,c3,,day_pass,web,3"],
        [(2, "ts", "unparseable timestamp"), (3, "ts", "empty timestamp")],
    ),
    "unknown kind": (
        [GOOD, "e2,c2,2024-03-01 10:00,teleport,web,"],
        [(2, "kind", "unknown kind 'teleport'")],
    ),
    "empty customer id": (
        [GOOD, "e2,  ,2024-03-01 10:00,day_pass,web,3"],
        [(2, "customer_id", "empty customer id")],
    ),
    "future timestamp": (
        [GOOD, "e2,c2,2031-01-01 10:00,day_pass,web,3"],
        [(2, "ts", "after the as-of date 2025-01-01")],
    ),
    "ragged rows": (
        [
            GOOD,
            "e2,c2,2024-03-01 10:00,day_pass",
            "e3,c3,2024-03-01 10:00,day_pass,web,1,extra",
            GOOD.replace("e1,c1", "e4,c4"),
        ],
        [(2, "", "ragged row: expected 6 fields"), (3, "", "ragged row: expected 6 fields")],
    ),
    "duplicated header row": (
        [GOOD, EVENTS_HEADER, "e2,c2,2024-03-01 11:00,day_pass,web,3"],
        [(2, "", "repeated header row")],
    ),
    "blank line": ([GOOD, "", "e2,c2,2024-03-01 11:00,day_pass,web,3"], [(2, "", "blank row")]),
}


@pytest.mark.parametrize("case", sorted(ROW_CASES))
def test_bad_rows_are_quarantined_with_row_and_reason(
    case: str, write_export: WriteExport, coworking: Coworking
) -> None:
    lines, expected = ROW_CASES[case]
    out = run_ingest(coworking(write_export(events=lines)))
    rejects = out.rejects
    assert len(rejects) == len(expected), rejects
    for (_, got), (row, column, reason) in zip(rejects.iterrows(), expected, strict=True):
        assert got["table"] == "events"
        assert got["source_file"] == "events.csv"
        assert got["source_row"] == row
        assert got["column"] == column
        assert pd.Series([got["reason"]]).str.contains(reason).all(), got["reason"]
        assert got["raw"] == lines[row - 1].replace('"', "")
    counts = out.result.events
    assert counts.rows_read == len(lines)
    assert counts.rejected == len(expected)
    assert counts.accepted == len(lines) - len(expected)


# Refund rows (kind ``refund`` mapped to the role ``refund``): either sign is fine, every other
# problem of an amount is rejected as on a conversion, and a negative conversion still is.
REFUND_CASES: dict[str, tuple[list[str], list[tuple[int, str, str]]]] = {
    "refunds of both signs": (
        [GOOD, "e2,c1,2024-03-05 10:00,refund,web,-25", "e3,c1,2024-03-06,refund,web,5"],
        [],
    ),
    "NaN refund": ([GOOD, "e2,c1,2024-03-05 10:00,refund,web,-NaN"], [(2, "value", "^NaN$")]),
    "infinite refund": ([GOOD, "e2,c1,2024-03-05,refund,web,-inf"], [(2, "value", "infinite")]),
    "huge refund": ([GOOD, "e2,c1,2024-03-05,refund,web,-1e12"], [(2, "value", "max_value")]),
    "decimal-comma refund": (
        [GOOD, 'e2,c1,2024-03-05,refund,web,"-12,50"'],
        [(2, "value", "decimal comma")],
    ),
    "negative conversion beside refunds": (
        [GOOD, "e2,c1,2024-03-05,refund,web,-5", "e3,c1,2024-03-05,day_pass,web,-5"],
        [(3, "value", r"^negative \(a refund\? map its kind to the role refund")],
    ),
}


@pytest.mark.parametrize("case", sorted(REFUND_CASES))
def test_bad_refund_rows_are_quarantined(
    case: str, write_export: WriteExport, coworking: Coworking
) -> None:
    lines, expected = REFUND_CASES[case]
    out = run_ingest(coworking(write_export(events=lines), "+data.event_roles.refund=refund"))
    got = out.rejects[["source_row", "column"]].values.tolist()
    assert got == [[row, column] for row, column, _ in expected]
    for reason, (_, _, pattern) in zip(out.rejects["reason"], expected, strict=True):
        assert re.search(pattern, reason), reason
    counts = out.result.events
    assert counts.rows_read == len(lines) == counts.accepted + counts.rejected
    assert (out.logs.events["value"] >= 0).all()


def test_bom_is_stripped(tmp_path: Path, coworking: Coworking) -> None:
    root = _events_file(tmp_path / "export", f"\ufeff{EVENTS_HEADER}\n{GOOD}\n".encode())
    out = run_ingest(coworking(root))
    assert len(out.rejects) == 0
    assert out.logs.events["event_id"].tolist() == ["e1"]


def test_mixed_timezones_are_normalised_to_utc(
    write_export: WriteExport, coworking: Coworking
) -> None:
    lines = [
        "e1,c1,2024-01-15 10:00:00,day_pass,web,1",  # naive winter: Berlin = UTC+1
        "e2,c1,2024-07-15T10:00:00,day_pass,web,1",  # naive summer: UTC+2
        "e3,c1,2024-07-15T10:00:00Z,day_pass,web,1",
        "e4,c1,2024-07-15 10:00:00-05:00,day_pass,web,1",
        "e5,c1,2024-07-15T10:00:00.250+0530,day_pass,web,1",
        "e6,c1,2024-07-16,day_pass,web,1",  # a date: local midnight
    ]
    out = run_ingest(coworking(write_export(events=lines), "data.dedup.near_duplicate_seconds=0"))
    got = out.logs.events.set_index("event_id")["ts"]
    expected = {
        "e1": "2024-01-15 09:00:00",
        "e2": "2024-07-15 08:00:00",
        "e3": "2024-07-15 10:00:00",
        "e4": "2024-07-15 15:00:00",
        "e5": "2024-07-15 04:30:00.250",
        "e6": "2024-07-15 22:00:00",
    }
    for event_id, utc in expected.items():
        assert got[event_id] == pd.Timestamp(utc, tz="UTC"), event_id


def test_contact_problems(write_export: WriteExport, coworking: Coworking) -> None:
    contacts = [
        "c1,2024-02-01 10:00,newsletter,,,0.5,spring",  # channel and cost from the catalogue
        "c1,2024-02-02 10:00,fax,,,,",
        "c1,2024-02-03 10:00,personal_call,pigeon,,,",
        "c1,2024-02-04 10:00,personal_call,phone,,1.5,",
        "c1,2024-02-05 10:00,personal_call,phone,-2,,",
        "c1,2024-02-06 10:00,personal_call,phone,2.5,,",
    ]
    out = run_ingest(coworking(write_export(events=[GOOD], contacts=contacts)))
    rejects = out.rejects.set_index("source_row")
    assert rejects.loc[2, "reason"].startswith("unknown action 'fax'")
    assert rejects.loc[3, "reason"].startswith("unknown channel 'pigeon'")
    assert (rejects.loc[4, "column"], rejects.loc[4, "reason"]) == ("propensity", "not in (0, 1]")
    assert (rejects.loc[5, "column"], rejects.loc[5, "reason"]) == ("cost", "negative")
    contacts_out = out.logs.contacts.set_index("source_row")
    assert contacts_out.loc[1, ["channel", "cost"]].tolist() == ["email", 0.05]
    assert contacts_out.loc[6, "cost"] == 2.5
    assert pd.isna(contacts_out.loc[6, "propensity"])


def test_whitespace_file_with_ragged_line(tmp_path: Path, load_source: LoadSource) -> None:
    path = tmp_path / "cdnow.txt"
    path.write_text(
        " 00001 0001 19970101  1   11.77\r\n 00002 0002 19970112  1\r\n"
        " 00002 0002 19970112  2   20.00\r\n",
        encoding="utf-8",
    )
    out = run_ingest(load_source("cdnow_sample", f"data.path={path}"))
    assert out.rejects[["source_row", "reason"]].values.tolist() == [
        [2, "ragged row: expected 5 fields"]
    ]
    assert out.logs.events["customer_id"].tolist() == ["00001", "00002"]


def test_parquet_events_with_native_types(tmp_path: Path, load_source: LoadSource) -> None:
    table = pa.table(
        {
            "customer_id": ["a", "b", "c"],
            "date": pa.array(
                pd.to_datetime(["1997-01-01", "1997-02-01", "1999-01-01"]), pa.timestamp("ns")
            ),
            "dollar_value": [1.5, -1.0, 2.0],
        }
    )
    pq.write_table(table, tmp_path / "events.parquet")
    source = load_source("cdnow", f"data.path={tmp_path / 'events.parquet'}", "data.format=parquet")
    out = run_ingest(source)
    assert out.logs.events["customer_id"].tolist() == ["a"]
    assert out.logs.events["ts"].iloc[0] == pd.Timestamp("1997-01-01 05:00", tz="UTC")
    assert out.rejects["reason"].str[:8].tolist() == ["negative", "timestam"]


# ---------------------------------------------------------------- placeholder and sentinel dates
OUT_OF_RANGE = r"^implausible timestamp: outside 1677-09-23\.\.2262-04-10 \(a placeholder"
BEFORE_MIN = r"^implausible timestamp: before data\.min_date=1990-01-01 \(a placeholder"


def _reasons(out: IngestOutput, table: str) -> dict[int, tuple[str, str]]:
    rejects = out.rejects.loc[out.rejects["table"] == table]
    return {
        int(r.source_row): (str(r.column), str(r.reason)) for r in rejects.itertuples(index=False)
    }


def _assert_reasons(got: dict[int, tuple[str, str]], expected: dict[int, tuple[str, str]]) -> None:
    assert sorted(got) == sorted(expected), got
    for row, (column, reason) in expected.items():
        assert got[row][0] == column, (row, got[row])
        assert re.search(reason, got[row][1]), (row, got[row])


def test_out_of_range_dates_are_rejected_not_fatal(
    write_export: WriteExport, coworking: Coworking
) -> None:
    events = [
        GOOD,
        "e2,c1,9999-12-31 00:00:00,day_pass,web,10",
        "e3,c1,0001-01-01,day_pass,web,10",
        "e4,c1,9999-12-31T23:59:59+02:00,day_pass,web,10",
        "e5,c1,1000-06-01T00:00:00Z,day_pass,web,10",
        "e6,c1,2262-04-12 00:00:00,day_pass,web,10",
        "e7,c2,2024-03-02 10:00:00,day_pass,web,10",
    ]
    contacts = ["c1,9999-12-31 00:00:00,newsletter,,,,", "c1,2024-02-01 10:00,newsletter,,,,"]
    customers = ["c1,member,small,9999-12-31,web", "c2,member,small,2023-05-01,web"]
    out = run_ingest(coworking(write_export(events=events, contacts=contacts, customers=customers)))
    ts = ("ts", OUT_OF_RANGE)
    _assert_reasons(_reasons(out, "events"), {2: ts, 3: ts, 4: ts, 5: ts, 6: ts})
    _assert_reasons(_reasons(out, "contacts"), {1: ts})
    _assert_reasons(_reasons(out, "customers"), {1: ("signup_date", OUT_OF_RANGE)})
    assert out.logs.events["event_id"].tolist() == ["e1", "e7"]
    assert out.result.events.rows_read == 7 and out.result.events.rejected == 5
    assert out.result.contacts.accepted == 1 and out.result.customers.accepted == 1


def test_out_of_range_dates_with_timestamp_format(tmp_path: Path, coworking: Coworking) -> None:
    root = _events_file(
        tmp_path / "export",
        f"{EVENTS_HEADER}\ne1,c1,01.03.2024 10:00,day_pass,web,1\n"
        "e2,c1,31.12.9999 00:00,day_pass,web,1\ne3,c1,01.01.0001 00:00,day_pass,web,1\n"
        "e4,c1,01.01.1900 00:00,day_pass,web,1\n".encode(),
    )
    out = run_ingest(coworking(root, "data.timestamp_format=%d.%m.%Y %H:%M"))
    ts = ("ts", OUT_OF_RANGE)
    _assert_reasons(_reasons(out, "events"), {2: ts, 3: ts, 4: ("ts", BEFORE_MIN)})
    assert out.logs.events["event_id"].tolist() == ["e1"]


@pytest.mark.parametrize("aware", [False, True])
def test_out_of_range_parquet_timestamps(
    tmp_path: Path, load_source: LoadSource, aware: bool
) -> None:
    when = [datetime(1997, 1, 1), datetime(9999, 12, 31), datetime(1, 1, 1), datetime(1900, 1, 1)]
    unit = pa.timestamp("us", tz="UTC" if aware else None)
    table = pa.table(
        {
            "customer_id": ["a", "b", "c", "d"],
            "date": pa.array(when, unit),
            "dollar_value": [1.5, 1.0, 2.0, 3.0],
        }
    )
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)
    out = run_ingest(load_source("cdnow", f"data.path={path}", "data.format=parquet"))
    ts = ("ts", OUT_OF_RANGE)
    _assert_reasons(_reasons(out, "events"), {2: ts, 3: ts, 4: ("ts", BEFORE_MIN)})
    assert out.logs.events["customer_id"].tolist() == ["a"]


def test_sentinel_dates_before_min_date(write_export: WriteExport, coworking: Coworking) -> None:
    events = [
        GOOD,
        "e2,c1,1900-01-01 00:00:00,day_pass,web,1",
        "e3,c1,1970-01-01T00:00:00Z,day_pass,web,1",
        "e4,c1,1989-12-31 12:00:00+00:00,day_pass,web,1",
        "e5,c1,1990-01-02 00:00:00,day_pass,web,1",
    ]
    customers = ["c1,member,small,1970-01-01,web", "c2,member,small,,web"]
    root = write_export(events=events, customers=customers)
    out = run_ingest(coworking(root))
    before = ("ts", BEFORE_MIN)
    _assert_reasons(_reasons(out, "events"), {2: before, 3: before, 4: before})
    _assert_reasons(_reasons(out, "customers"), {1: ("signup_date", BEFORE_MIN)})
    assert out.logs.events["event_id"].tolist() == ["e1", "e5"]
    # The window is configurable: an earlier data.min_date, or none at all.
    out = run_ingest(coworking(root, "data.min_date=1950-01-01"))
    assert _reasons(out, "events").keys() == {2}
    out = run_ingest(coworking(root, "data.min_date="))
    assert len(out.rejects) == 0
    assert out.logs.customers.set_index("customer_id")["signup_date"]["c1"] == pd.Timestamp(
        "1969-12-31 23:00", tz="UTC"
    )


def test_min_date_must_be_a_date(coworking: Coworking, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.min_date='someday' is not an ISO 8601 date"):
        coworking(tmp_path, "data.min_date=someday")


def test_cli_survives_a_9999_row(tmp_path: Path) -> None:
    """The issue's repro: exit 0, the row in the rejects with its reason."""
    _events_file(
        tmp_path / "r1",
        f"{EVENTS_HEADER}\nE1,C1,2024-01-01 10:00:00,day_pass,,10\n"
        "E2,C1,9999-12-31 00:00:00,day_pass,,10\n".encode(),
    )
    proc = run_cli(["data=coworking", "data.path=r1", "output_dir=r1_out"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rejects = pd.read_csv(tmp_path / "r1_out" / "rejects.csv")
    assert rejects["source_row"].tolist() == [2]
    assert rejects["reason"].str.match(OUT_OF_RANGE).all()


# ---------------------------------------------------------------- line endings
@pytest.mark.parametrize("newline", ["\r", "\r\n", "\n"])
def test_any_line_ending_is_read(tmp_path: Path, coworking: Coworking, newline: str) -> None:
    """Classic Mac (CR only), Windows and Unix line endings read alike, row numbers included."""
    lines = [EVENTS_HEADER, GOOD, "e2,c2,2024-03-01 10:00,day_pass", GOOD.replace("e1,c1", "e3,c3")]
    root = _events_file(tmp_path / "export", (newline.join(lines) + newline).encode())
    out = run_ingest(coworking(root))
    assert out.logs.events["event_id"].tolist() == ["e1", "e3"]
    assert out.logs.events["source_row"].tolist() == [1, 3]
    assert out.rejects[["source_row", "reason"]].values.tolist() == [
        [2, "ragged row: expected 6 fields"]
    ]
    assert out.result.events.rows_read == 3


def test_cr_only_whitespace_file(tmp_path: Path, load_source: LoadSource) -> None:
    path = tmp_path / "cdnow.txt"
    path.write_bytes(b" 00001 0001 19970101  1   11.77\r 00002 0002 19970112  2   20.00\r")
    out = run_ingest(load_source("cdnow_sample", f"data.path={path}"))
    assert out.logs.events["customer_id"].tolist() == ["00001", "00002"]
    assert out.result.events.rows_read == 2


# ---------------------------------------------------------------- outputs never mix with inputs
def test_output_folder_overlapping_an_input_is_refused(
    write_export: WriteExport, coworking: Coworking, tmp_path: Path
) -> None:
    """Is, lies inside or contains an input path: refused, overwrite or not, nothing written."""
    root = write_export(events=[GOOD, GOOD.replace("e1,c1", "e2,c2")])
    parts = root / "parts"
    parts.mkdir()
    (root / "events.csv").rename(parts / "part-0.csv")
    source = coworking(root, "data.events.file=parts")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    cases = {
        parts: "is the input",
        root: "is the input",
        parts / "out": "lies inside the input folder",
        root / "canonical": "lies inside the input folder",
        tmp_path: "contains the input",
    }
    for output_dir, how in cases.items():
        for overwrite in (False, True):
            with pytest.raises(OutputExistsError, match=f"{how} .*choose a folder outside"):
                ingest(source, output_dir, overwrite=overwrite)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    ingest(source, tmp_path / "out")  # a sibling folder is fine


def test_cli_refuses_output_into_input_parts_folder(tmp_path: Path) -> None:
    parts = tmp_path / "export" / "events"
    parts.mkdir(parents=True)
    (parts / "part-0.csv").write_text(f"{EVENTS_HEADER}\n{GOOD}\n")
    args = ["data=coworking", "data.path=export", "data.events.file=events", "overwrite=true"]
    proc = run_cli([*args, "output_dir=export/events"], cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "input" in lines[0] and "export/events" in lines[0]
    assert sorted(p.name for p in parts.iterdir()) == ["part-0.csv"]


# ---------------------------------------------------------------- stray quotes, huge fields
def _numbered(n: int, start: int = 2) -> list[str]:
    return [f"e{i},c{i},2024-03-01 10:00:00,day_pass,web,{i}" for i in range(start, start + n)]


def test_stray_quote_costs_one_row_not_the_rest_of_the_file(
    tmp_path: Path, coworking: Coworking
) -> None:
    """The issue's file: 102 lines, a stray quote on line 3, valid rows around it."""
    lines = [EVENTS_HEADER, GOOD, 'e2,c2,"2024-03-01 10:00:00,day_pass,web,1', *_numbered(99, 3)]
    assert len(lines) == 102
    root = _events_file(tmp_path / "export", ("\n".join(lines) + "\n").encode())
    out = run_ingest(coworking(root))
    counts = out.result.events
    assert (counts.rows_read, counts.accepted, counts.rejected) == (101, 100, 1)
    assert out.rejects[["source_row", "reason"]].values.tolist() == [[2, UNBALANCED_QUOTE]]
    assert out.rejects["raw"].tolist() == [lines[2]]
    assert out.logs.events["source_row"].tolist() == [1, *range(3, 102)]


def test_several_stray_quotes_and_a_real_multiline_value(
    tmp_path: Path, coworking: Coworking
) -> None:
    """Stray quotes that would pair up across lines are each rejected on their own line; a
    quoted value that really spans lines (a note) keeps its row, numbered by its first line."""
    header = f"{EVENTS_HEADER},note"
    lines = [
        f"{GOOD},plain",  # 1
        'e2,c2,2024-03-01 10:00:00,day_pass,web,2,"first line',  # 2: a note over 2 lines
        'second line"',  # 3
        'e4,"c4,2024-03-01 10:00:00,day_pass,web,4,',  # 4: stray quote ...
        "e5,c5,2024-03-01 10:00:00,day_pass,web,5,",  # 5
        'e6,c6,"2024-03-01 10:00:00,day_pass,web,6,',  # 6: ... another one would close
        "e7,c7,2024-03-01 10:00:00,day_pass,web,7,",  # 7
        'e8,c8,2024-03-01 10:00:00,day_pass,web,"8',  # 8: unclosed at the end of the file
    ]
    root = _events_file(tmp_path / "export", ("\r\n".join([header, *lines]) + "\r\n").encode())
    out = run_ingest(coworking(root))
    assert out.rejects[["source_row", "reason"]].values.tolist() == [
        [4, UNBALANCED_QUOTE],
        [6, UNBALANCED_QUOTE],
        [8, UNBALANCED_QUOTE],
    ]
    assert out.logs.events["source_row"].tolist() == [1, 2, 5, 7]
    assert out.logs.events["event_id"].tolist() == ["e1", "e2", "e5", "e7"]
    counts = out.result.events
    assert counts.rows_read == 7 == counts.accepted + counts.rejected  # 8 lines, 7 rows


@pytest.mark.parametrize("quoted", [False, True])
def test_huge_field_rejects_its_row(tmp_path: Path, coworking: Coworking, quoted: bool) -> None:
    """A 5 MB field (longer than Arrow's blocks) rejects its row, naming the column."""
    blob = "x" * 5_000_000
    blob = f'"{blob}"' if quoted else blob
    lines = [GOOD, f"e2,c2,2024-03-01 10:00:00,day_pass,{blob},2", *_numbered(3, 3)]
    root = _events_file(tmp_path / "export", ("\n".join([EVENTS_HEADER, *lines]) + "\n").encode())
    out = run_ingest(coworking(root))
    assert out.rejects["source_row"].tolist() == [2]
    reason = out.rejects["reason"].iloc[0]
    assert reason.startswith("field of 5,000,000 characters in column 'channel' (longer than")
    assert len(out.rejects["raw"].iloc[0]) < 2000  # clipped in the rejects file
    assert out.logs.events["source_row"].tolist() == [1, 3, 4, 5]
    assert out.result.events.rows_read == 5


# ---------------------------------------------------------------- ids that are not ids
def test_control_characters_in_ids_are_rejected(
    write_export: WriteExport, coworking: Coworking
) -> None:
    """A NUL byte (or a tab, a line break) inside an id is a broken export, never an id."""
    events = [
        GOOD,
        "e2,c\x002,2024-03-01 11:00,day_pass,web,1",
        "e\x003,c3,2024-03-01,day_pass,web,1",
    ]
    contacts = ["c\x001,2024-02-01 10:00,newsletter,,,,", "c1,2024-02-02 10:00,newsletter,,,,"]
    identities = ["c1,a@x.com,,", "c\t9,b@x.com,,", "c8,,,crm\x007"]
    customers = ["c1,member,small,2023-01-01,web", "c\x002,member,small,2023-01-01,web"]
    root = write_export(
        events=events, contacts=contacts, identities=identities, customers=customers
    )
    out = run_ingest(coworking(root))
    control = re.escape(CONTROL_CHARACTER)
    bad = ("customer_id", control)
    _assert_reasons(_reasons(out, "events"), {2: bad, 3: ("event_id", control)})
    _assert_reasons(_reasons(out, "contacts"), {1: bad})
    _assert_reasons(
        _reasons(out, "identities"), {2: ("raw_id", control), 3: ("external_id", control)}
    )
    _assert_reasons(_reasons(out, "customers"), {2: bad})
    ids = pd.concat([out.logs.events["customer_id"], out.logs.customers["customer_id"]])
    assert not ids.str.contains("\x00").any()


def test_list_typed_parquet_ids_are_rejected(tmp_path: Path, load_source: LoadSource) -> None:
    table = pa.table(
        {
            "customer_id": pa.array([["a"], ["b", "c"], None], pa.list_(pa.string())),
            "date": ["1997-01-01", "1997-01-02", "1997-01-03"],
            "dollar_value": [1.0, 2.0, 3.0],
        }
    )
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)
    out = run_ingest(load_source("cdnow", f"data.path={path}", "data.format=parquet"))
    assert len(out.logs.events) == 0
    got = out.rejects[["source_row", "reason"]].values.tolist()
    assert [row for row, _ in got] == [1, 2, 3]
    assert re.match(r"column 'customer_id' holds a list<.*> value, expected a single", got[0][1])
    assert got[2][1] == "empty customer id"
    assert out.result.events.rows_read == 3 == out.result.events.rejected


# ---------------------------------------------------------------- same-day merge overflow
def test_same_day_sum_overflow_is_rejected_not_a_crash(
    write_export: WriteExport, coworking: Coworking
) -> None:
    """With a huge data.max_value, same-day conversions used to sum to inf and fail the
    schema check; the day's rows are rejected with the reason, the other days merge."""
    events = [
        "e1,c1,2024-03-01 10:00:00,day_pass,web,1e308",
        "e2,c1,2024-03-01 11:00:00,day_pass,web,1e308",
        "e3,c1,2024-03-02 10:00:00,day_pass,web,5",
        "e4,c1,2024-03-02 11:00:00,day_pass,web,7",
    ]
    merge = "data.dedup.merge_same_day_conversions=true"
    out = run_ingest(coworking(write_export(events=events), merge, "data.max_value=1.5e308"))
    reason = r"^same-day conversions of this customer sum above data\.max_value=1\.5e\+308"
    _assert_reasons(_reasons(out, "events"), {1: ("value", reason), 2: ("value", reason)})
    assert out.rejects["raw"].tolist() == events[:2]
    assert out.logs.events[["event_id", "value"]].values.tolist() == [["e3", 12.0]]
    counts = out.result.events
    assert (counts.rows_read, counts.accepted, counts.rejected, counts.merged) == (4, 1, 2, 1)


def test_same_day_sum_above_max_value(write_export: WriteExport, coworking: Coworking) -> None:
    events = [f"e{i},c1,2024-03-01 1{i}:00:00,day_pass,web,6000000" for i in range(2)]
    merge = "data.dedup.merge_same_day_conversions=true"
    out = run_ingest(coworking(write_export(events=events), merge))
    assert out.rejects["source_row"].tolist() == [1, 2]
    assert len(out.logs.events) == 0


@pytest.mark.parametrize("value", ["inf", "0", "-1"])
def test_max_value_must_be_positive_and_finite(
    coworking: Coworking, tmp_path: Path, value: str
) -> None:
    with pytest.raises(ConfigError, match=r"data\.max_value must be > 0 and finite"):
        coworking(tmp_path, f"data.max_value={value}")


def test_cli_undecodable_ragged_row_is_one_line(tmp_path: Path) -> None:
    """Arrow cannot hand an undecodable invalid row to the handler: one line, no traceback."""
    _events_file(tmp_path / "u", f"{EVENTS_HEADER}\n{GOOD}\n\x82x,y\n".encode("latin-1"))
    proc = run_cli(["data=coworking", "data.path=u", "output_dir=out"], cwd=tmp_path)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "not valid utf-8 text: byte 0x82" in proc.stderr
