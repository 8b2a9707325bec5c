"""A bounded fuzz of ingestion: generated CSV bytes (random fields, quoting, line endings,
dates in and out of range, raw junk bytes) either end in one clear ``JourneyoptError`` or in
a run whose counts reconcile with the rejects and the canonical tables; never anything else."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from functools import cache
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeyopt.data.ingest import run_ingest
from journeyopt.data.result import TABLES
from journeyopt.data.source import SourceConfig
from journeyopt.errors import JourneyoptError
from tests.data.conftest import EVENTS_HEADER, compose_source

_DATES = [
    "2024-03-01 10:00:00",
    "2024-03-01T10:00:00Z",
    "2024-03-31 02:30:00",
    "2024-10-27 02:30:00+01:00",
    "2024-03-01",
    "9999-12-31 00:00:00",
    "0001-01-01",
    "1900-01-01",
    "1970-01-01T00:00:00Z",
    "2262-04-12 00:00:00",
    "1677-09-21 00:00:00",
    "2024-02-30 10:00:00",
    "31.12.9999",
    "",
    "yesterday",
]
_VALUES = ["", "10", "0", "-1", "1e308", "inf", "NaN", "12,50", "1e12", "abc", "7.5"]
_KINDS = ["day_pass", "visit", "membership", "unsubscribe", "", "teleport", "event_type"]
_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=6)
_FIELD = st.one_of(
    _TEXT,
    st.sampled_from(['"', '""', '"a,b"', "a\x00b", " ", "c1", "\t"]),
)


@st.composite
def _row(draw: st.DrawFn) -> bytes:
    junk = draw(st.integers(0, 40))
    if junk == 0:  # raw junk: any bytes, invalid UTF-8 included (a whole-file error)
        return draw(st.binary(max_size=30)).replace(b"\n", b"").replace(b"\r", b"")
    if junk < 4:  # junk text: quotes, delimiters, control characters
        return draw(st.text(alphabet='",;\x00\t ab1', max_size=30)).encode()
    fields = [
        draw(st.one_of(st.sampled_from(["e1", "e2", ""]), _FIELD)),
        draw(st.one_of(st.sampled_from(["c1", "c2", "c3"]), _FIELD)),
        draw(st.sampled_from(_DATES)),
        draw(st.sampled_from(_KINDS)),
        draw(st.sampled_from(["web", "", "email"])),
        draw(st.sampled_from(_VALUES)),
    ]
    if draw(st.integers(0, 7)) == 0:  # ragged
        fields = fields[: draw(st.integers(0, 5))] + draw(st.lists(_FIELD, max_size=2))
    quoted = [
        f'"{f.replace(chr(34), chr(34) * 2)}"' if draw(st.integers(0, 4)) == 0 else f
        for f in fields
    ]
    return ",".join(quoted).encode("utf-8", errors="surrogatepass")


@st.composite
def _csv_bytes(draw: st.DrawFn) -> bytes:
    ending = draw(st.sampled_from([b"\n", b"\r\n", b"\r", None]))  # None: mixed
    rows = [EVENTS_HEADER.encode(), *draw(st.lists(_row(), min_size=0, max_size=12))]
    out = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    for i, row in enumerate(rows):
        end = ending if ending is not None else draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
        last = i == len(rows) - 1
        out += row + (end if not last or draw(st.booleans()) else b"")
    return out


@cache
def _coworking() -> SourceConfig:
    return compose_source("coworking", "data.path=unused", "data.as_of=2025-01-01")


def _physical_lines(data: bytes) -> int:
    text = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return text.count(b"\n") + (0 if text.endswith(b"\n") or not text else 1)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=_csv_bytes(), merge=st.booleans())
def test_ingestion_fails_clearly_or_reconciles(data: bytes, merge: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "events.csv").write_bytes(data)
        base = _coworking()
        source = replace(
            base,
            path=str(root),
            dedup=replace(base.dedup, merge_same_day_conversions=merge),
        )
        try:
            out = run_ingest(source)
        except JourneyoptError as err:
            assert str(err).strip() and "\n" not in str(err).strip()
            return
    result = out.result
    for table in TABLES:
        counts = result.table(table)
        assert counts.rejected == int((out.rejects["table"] == table).sum())
    assert result.events.accepted == len(out.logs.events)
    assert result.events.rows_read <= _physical_lines(data) - 1  # the header is not a row
    assert out.logs.events["ts"].notna().all()
    assert out.logs.events["value"].map(pd.notna).all()
