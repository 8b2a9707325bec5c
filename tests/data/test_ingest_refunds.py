"""Refunds: a kind mapped to the role ``refund`` is accepted with a negative or a positive
amount (its value is the absolute amount); a negative amount on a conversion is rejected, or
booked as a refund with ``data.negative_conversions=refund``; refunds are never merged into a
purchase; every count reconciles."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from journeyopt.data.ingest import IngestOutput, run_ingest
from journeyopt.data.result import TableCounts
from journeyopt.data.source import SourceConfig
from journeyopt.data.tables import NEGATIVE_AMOUNT
from journeyopt.errors import ConfigError
from journeyopt.panel.build import build_panel
from tests.data.conftest import WriteExport
from tests.panel.windows import panel_config

Coworking = Callable[..., SourceConfig]
REFUND_ROLE = "+data.event_roles.refund=refund"
PURCHASE = "e1,c1,2024-03-01 10:00:00,day_pass,web,25"


def _reconciles(counts: TableCounts) -> bool:
    parts = counts.accepted + counts.rejected + counts.duplicates_exact
    parts += counts.duplicates_event_id + counts.duplicates_near + counts.merged
    return parts == counts.rows_read


def _events(out: IngestOutput) -> list[tuple[str, str, float]]:
    ev = out.logs.events
    return list(zip(ev["kind"], ev["role"], ev["value"], strict=True))


@pytest.mark.parametrize("amount", ["-10", "10", "-10.0", "+10"])
def test_refund_of_either_sign_is_accepted_as_its_absolute_amount(
    amount: str, write_export: WriteExport, coworking: Coworking
) -> None:
    root = write_export(events=[PURCHASE, f"e2,c1,2024-03-08 10:00,refund,web,{amount}"])
    out = run_ingest(coworking(root, REFUND_ROLE))
    assert len(out.rejects) == 0
    assert _events(out) == [("day_pass", "conversion", 25.0), ("refund", "refund", 10.0)]
    assert out.result.events.accepted == 2 and _reconciles(out.result.events)


def test_negative_conversion_is_rejected_with_a_hint(
    write_export: WriteExport, coworking: Coworking
) -> None:
    root = write_export(events=[PURCHASE, "e2,c1,2024-03-08 10:00,day_pass,web,-25"])
    out = run_ingest(coworking(root, REFUND_ROLE))
    assert out.rejects[["source_row", "column", "reason"]].values.tolist() == [
        [2, "value", NEGATIVE_AMOUNT]
    ]
    assert NEGATIVE_AMOUNT.startswith("negative") and "negative_conversions" in NEGATIVE_AMOUNT
    counts = out.result.events
    assert (counts.accepted, counts.rejected) == (1, 1) and _reconciles(counts)


def test_negative_on_other_roles_is_still_rejected(
    write_export: WriteExport, coworking: Coworking
) -> None:
    root = write_export(events=[PURCHASE, "e2,c1,2024-03-08 10:00,website_visit,web,-1"])
    out = run_ingest(coworking(root, "data.negative_conversions=refund"))
    assert out.rejects["reason"].tolist() == [NEGATIVE_AMOUNT]


def test_negative_conversion_as_refund_when_configured(
    write_export: WriteExport, coworking: Coworking
) -> None:
    lines = [PURCHASE, "e2,c1,2024-03-08 10:00,day_pass,web,-25", "e3,c2,2024-03-08,day_pass,,0"]
    out = run_ingest(coworking(write_export(events=lines), "data.negative_conversions=refund"))
    assert len(out.rejects) == 0
    assert _events(out) == [
        ("day_pass", "conversion", 25.0),
        ("day_pass", "refund", 25.0),
        ("day_pass", "conversion", 0.0),
    ]
    assert _reconciles(out.result.events)


def test_negative_conversions_setting_is_checked(tmp_path: Path, coworking: Coworking) -> None:
    with pytest.raises(ConfigError, match=r"data.negative_conversions must be one of"):
        coworking(tmp_path, "data.negative_conversions=ignore")


def test_refund_above_max_value_is_rejected(
    write_export: WriteExport, coworking: Coworking
) -> None:
    root = write_export(events=[PURCHASE, "e2,c1,2024-03-08,refund,web,-2e7"])
    out = run_ingest(coworking(root, REFUND_ROLE))
    assert out.rejects["reason"].tolist() == ["above data.max_value=1e+07"]


def test_refund_is_not_merged_into_a_same_day_purchase(
    write_export: WriteExport, coworking: Coworking
) -> None:
    lines = [
        PURCHASE,
        "e2,c1,2024-03-01 12:00,day_pass,web,5",
        "e3,c1,2024-03-01 13:00,refund,web,-5",
        "e4,c1,2024-03-01 14:00,refund,web,-5",
    ]
    source = coworking(
        write_export(events=lines),
        REFUND_ROLE,
        "data.dedup.near_duplicate_seconds=0",
        "data.dedup.merge_same_day_conversions=true",
    )
    out = run_ingest(source)
    assert _events(out) == [
        ("day_pass", "conversion", 30.0),
        ("refund", "refund", 5.0),
        ("refund", "refund", 5.0),
    ]
    counts = out.result.events
    assert (counts.accepted, counts.merged) == (3, 1) and _reconciles(counts)


def test_purchase_and_refund_of_one_amount_are_not_near_duplicates(
    write_export: WriteExport, coworking: Coworking
) -> None:
    lines = [PURCHASE, "e2,c1,2024-03-01 10:00:30,day_pass,web,-25"]
    out = run_ingest(coworking(write_export(events=lines), "data.negative_conversions=refund"))
    assert [role for _, role, _ in _events(out)] == ["conversion", "refund"]
    assert out.result.events.duplicates_near == 0


def test_refund_file_with_every_kind_of_row_reconciles(
    write_export: WriteExport, coworking: Coworking
) -> None:
    lines = [
        PURCHASE,
        "e2,c1,2024-03-08 10:00,refund,web,-10",
        "e2,c1,2024-03-08 10:05,refund,web,-10",  # duplicate event id
        "e3,c1,2024-03-09 10:00,refund,web,abc",
        "e4,c1,2024-03-09 10:00,refund,web,",  # blank: a refund of 0
        "e5,c1,2031-03-09 10:00,refund,web,-3",  # after the as-of date
        "e6,c1,2024-03-09 11:00,day_pass,web,-3",
    ]
    out = run_ingest(coworking(write_export(events=lines), REFUND_ROLE))
    counts = out.result.events
    assert (counts.accepted, counts.rejected, counts.duplicates_event_id) == (3, 3, 1)
    assert _reconciles(counts)
    assert out.rejects["source_row"].tolist() == [4, 6, 7]
    assert out.rejects["column"].tolist() == ["value", "ts", "value"]


def test_negative_and_positive_refund_exports_give_the_same_panel(
    write_export: WriteExport, coworking: Coworking
) -> None:
    lines = [PURCHASE, "e2,c2,2024-03-04 09:00,day_pass,web,40"]
    panels = []
    for folder, refund in (("neg", "refund,web,-25"), ("pos", "refund,web,25")):
        root = write_export(events=[*lines, f"e3,c1,2024-03-12 10:00,{refund}"], folder=folder)
        logs = run_ingest(coworking(root, REFUND_ROLE)).logs
        panels.append(build_panel(logs, panel_config(as_of="2024-03-25"), ["email", "phone"]))
    pd.testing.assert_frame_equal(panels[0], panels[1])
    a = panels[0][panels[0]["customer_id"] == "c1"].set_index("week")
    assert a["revenue"].tolist() == [25.0, 0.0, -25.0, 0.0]
    assert a["refunds"].tolist() == [0, 0, 1, 0]
    assert panels[0]["revenue"].sum() == 40.0


def test_summary_counts_accepted_events_by_role(
    write_export: WriteExport, coworking: Coworking
) -> None:
    lines = [PURCHASE, "e2,c1,2024-03-08,refund,web,-10", "e3,c1,2024-03-08,website_visit,web,"]
    result = run_ingest(coworking(write_export(events=lines), REFUND_ROLE)).result
    assert result.events_by_role == {"conversion": 1, "engagement": 1, "refund": 1}
    assert sum(result.events_by_role.values()) == result.events.accepted
    assert result.summary_dict()["events_by_role"] == result.events_by_role
